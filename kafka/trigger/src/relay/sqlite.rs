//! The relay's outbox in a SQLite file (the embedded default): one
//! process writes it, so its relay is the only one.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::store::{Counts, Marks};
use super::{Row, PER_KEY};
use crate::host::sqlite::Database;

pub struct SqliteOutbox {
    db: Arc<Database>,
    conn: Option<Arc<Mutex<rusqlite::Connection>>>,
    ready: bool,
}

impl SqliteOutbox {
    pub fn new(db: Arc<Database>) -> SqliteOutbox {
        SqliteOutbox {
            db,
            conn: None,
            ready: false,
        }
    }

    /// Runs `f` on the relay's connection, off the async threads.
    async fn blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = match &self.conn {
            Some(conn) => conn.clone(),
            None => {
                let db = self.db.clone();
                let conn = Arc::new(Mutex::new(
                    tokio::task::spawn_blocking(move || db.connect()).await??,
                ));
                self.conn = Some(conn.clone());
                conn
            }
        };
        Ok(
            tokio::task::spawn_blocking(move || f(&conn.lock().expect("relay connection")))
                .await??,
        )
    }

    pub async fn ready(&mut self) -> Result<bool> {
        if !self.ready {
            self.ready = self.blocking(ensure_schema).await?;
        }
        Ok(self.ready)
    }

    pub async fn prune(&mut self, before_ms: i64) -> Result<usize> {
        self.blocking(move |c| prune(c, before_ms)).await
    }

    pub async fn counts(&mut self) -> Result<Counts> {
        self.blocking(|c| {
            c.query_row(
                "SELECT COUNT(*) FILTER (WHERE dead_ms IS NULL),
                        COUNT(*) FILTER (WHERE dead_ms IS NOT NULL),
                        MIN(created_ms) FILTER (WHERE dead_ms IS NULL)
                 FROM outbox WHERE sent_ms IS NULL",
                [],
                |r| {
                    Ok(Counts {
                        backlog: r.get(0)?,
                        dead: r.get(1)?,
                        oldest_ms: r.get(2)?,
                    })
                },
            )
        })
        .await
        .context("counting the outbox")
    }

    pub async fn due_rows(&mut self, limit: i64, in_flight: Vec<i64>) -> Result<Vec<Row>> {
        let in_flight = serde_json::to_string(&in_flight).expect("seqs serialize");
        self.blocking(move |c| due_rows(c, limit, &in_flight))
            .await
            .context("reading the outbox")
    }

    pub async fn mark(&mut self, marks: Marks) -> Result<()> {
        self.blocking(move |c| {
            let tx = c.unchecked_transaction()?;
            {
                let mut mark = tx.prepare_cached("UPDATE outbox SET sent_ms = ?1 WHERE seq = ?2")?;
                for seq in &marks.sent {
                    mark.execute(rusqlite::params![marks.acked_ms, seq])?;
                }
                let mut bury = tx.prepare_cached(
                    "UPDATE outbox SET dead_ms = ?1, attempts = attempts + 1, last_error = ?2 WHERE seq = ?3",
                )?;
                for (seq, error) in &marks.dead {
                    bury.execute(rusqlite::params![marks.acked_ms, error, seq])?;
                }
                let mut fail = tx.prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?1 WHERE seq = ?2",
                )?;
                for (seq, error) in &marks.retry {
                    fail.execute(rusqlite::params![error, seq])?;
                }
            }
            tx.commit()
        })
        .await
        .context("marking outbox rows")
    }
}

/// The next rows to send, at most `limit`: the oldest unsent rows of every
/// key in turn (first rows of all keys, then second rows, …; at most
/// `PER_KEY` of one key), leaving out the rows in flight (`in_flight`, a
/// JSON array of seqs). The window runs over the `(msg_key, seq)` index
/// alone; only the chosen rows are read whole.
pub(super) fn due_rows(
    c: &rusqlite::Connection,
    limit: i64,
    in_flight: &str,
) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = c.prepare_cached(
        "WITH due AS (
             SELECT seq, ROW_NUMBER() OVER (PARTITION BY msg_key ORDER BY seq) AS nth
             FROM outbox
             WHERE sent_ms IS NULL AND dead_ms IS NULL
               AND seq NOT IN (SELECT value FROM json_each(?3)))
         SELECT o.seq, o.topic, o.msg_key, o.payload, o.headers, o.created_ms
         FROM due JOIN outbox o ON o.seq = due.seq
         WHERE due.nth <= ?1 ORDER BY due.nth, due.seq LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(rusqlite::params![PER_KEY, limit, in_flight], |r| {
            let headers: String = r.get(4)?;
            Ok(Row {
                seq: r.get(0)?,
                topic: r.get(1)?,
                key: r.get(2)?,
                payload: r.get(3)?,
                headers: serde_json::from_str(&headers).unwrap_or_default(),
                created_ms: r.get(5)?,
            })
        })?
        .collect();
    rows
}

/// Adds the relay's bookkeeping to an outbox a component created: the
/// `dead_ms` column and the indexes the relay reads by. False while the
/// table does not exist yet (no component has written).
pub(super) fn ensure_schema(c: &rusqlite::Connection) -> rusqlite::Result<bool> {
    let exists: i64 = c.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'outbox'",
        [],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(false);
    }
    let has_dead: i64 = c.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'dead_ms'",
        [],
        |r| r.get(0),
    )?;
    if has_dead == 0 {
        c.execute_batch("ALTER TABLE outbox ADD COLUMN dead_ms INTEGER")?;
    }
    c.execute_batch(
        "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (msg_key, seq) WHERE sent_ms IS NULL AND dead_ms IS NULL;
         CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (sent_ms) WHERE sent_ms IS NOT NULL;",
    )?;
    Ok(true)
}

/// Deletes sent rows acknowledged before `before_ms`, a slice at a time so
/// writers never wait long. Dead and unsent rows stay.
pub(super) fn prune(c: &rusqlite::Connection, before_ms: i64) -> rusqlite::Result<usize> {
    let mut total = 0;
    loop {
        let n = c.execute(
            "DELETE FROM outbox WHERE seq IN
             (SELECT seq FROM outbox WHERE sent_ms IS NOT NULL AND sent_ms < ?1 LIMIT 2000)",
            [before_ms],
        )?;
        total += n;
        if n < 2000 {
            return Ok(total);
        }
    }
}
