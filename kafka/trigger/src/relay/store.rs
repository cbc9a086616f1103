//! Where a relay reads and marks its outbox: a SQLite file, or a schema in
//! a Postgres shared by replicas.

use anyhow::Result;

use super::postgres::PgOutbox;
use super::sqlite::SqliteOutbox;
use super::Row;

/// What waits in an outbox, for metrics and /healthz.
pub struct Counts {
    pub backlog: i64,
    pub dead: i64,
    pub oldest_ms: Option<i64>,
}

/// What became of a settled batch.
pub struct Marks {
    pub acked_ms: i64,
    pub sent: Vec<i64>,
    pub dead: Vec<(i64, String)>,
    pub retry: Vec<(i64, String)>,
}

pub enum OutboxStore {
    Sqlite(SqliteOutbox),
    // Boxed: it carries a client and its connection state.
    Postgres(Box<PgOutbox>),
}

impl OutboxStore {
    /// Whether the relay may publish now: the outbox exists (and, on
    /// Postgres, this relay holds the relay lock).
    pub async fn ready(&mut self) -> Result<bool> {
        match self {
            OutboxStore::Sqlite(s) => s.ready().await,
            OutboxStore::Postgres(p) => p.ready().await,
        }
    }

    /// Deletes sent rows acknowledged before `before_ms`.
    pub async fn prune(&mut self, before_ms: i64) -> Result<usize> {
        match self {
            OutboxStore::Sqlite(s) => s.prune(before_ms).await,
            OutboxStore::Postgres(p) => p.prune(before_ms).await,
        }
    }

    pub async fn counts(&mut self) -> Result<Counts> {
        match self {
            OutboxStore::Sqlite(s) => s.counts().await,
            OutboxStore::Postgres(p) => p.counts().await,
        }
    }

    /// The next batch, leaving out the rows in flight.
    pub async fn due_rows(&mut self, limit: i64, in_flight: Vec<i64>) -> Result<Vec<Row>> {
        match self {
            OutboxStore::Sqlite(s) => s.due_rows(limit, in_flight).await,
            OutboxStore::Postgres(p) => p.due_rows(limit, in_flight).await,
        }
    }

    /// Records a settled batch in one transaction.
    pub async fn mark(&mut self, marks: Marks) -> Result<()> {
        match self {
            OutboxStore::Sqlite(s) => s.mark(marks).await,
            OutboxStore::Postgres(p) => p.mark(marks).await,
        }
    }
}
