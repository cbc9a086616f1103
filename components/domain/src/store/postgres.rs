//! What the Postgres connections share. The store writes its SQL once with
//! SQLite's `?` placeholders; here they become `$1, $2, …`. Each database
//! label lives in a schema of its own (`todo_<label>`), so the services
//! keep owning their stores in one Postgres database, and a write
//! transaction first takes the store's advisory lock: one writer per store
//! across every replica, as SQLite's `BEGIN IMMEDIATE` gives one writer per
//! file, so quotas, version checks and idempotency keys hold as they do
//! on SQLite. A write that names its owners (`begin_for`) takes only
//! theirs, beside the store's lock held shared.

use crate::store::sql::{DbError, Sql, Value};

/// `?` placeholders as `$1, $2, …`, leaving quoted text and names alone.
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// The schema of a database label. Labels are Spin's (`default`, `audit`,
/// …): lowercase letters, digits and underscores.
pub fn schema_for(label: &str) -> Result<String, DbError> {
    let valid = !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(DbError::new(format!(
            "database label `{label}` cannot name a Postgres schema: use lowercase letters, digits and _"
        )));
    }
    Ok(format!("todo_{label}"))
}

/// The store's advisory-lock key: a stable hash of its schema (FNV-1a), the
/// same in every replica.
pub fn lock_key(schema: &str) -> i64 {
    let hash = schema.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash as i64
}

/// Takes the store's write lock until the transaction ends.
pub const WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(?)";

/// What every Postgres connection's `begin` is: a transaction that holds
/// the store's write lock (`lock`, from [`lock_key`]) from the start.
pub fn begin_locked(db: &dyn Sql, lock: i64) -> Result<(), DbError> {
    db.execute("BEGIN", &[])?;
    db.execute(WRITE_LOCK, &[Value::Integer(lock)]).map(drop)
}

/// What [`crate::store::sql::Sql::begin_for`] is on Postgres: a
/// transaction that holds the store's lock *shared* (so a plain `begin`,
/// which takes it exclusively, still excludes everyone) and an exclusive
/// lock of each owner, in the two-key space (`(store, owner)`, which never
/// meets the one-key store locks). Owners are locked in one order, so two
/// such transactions cannot deadlock; one statement takes them all. Two
/// owners whose hashes collide only wait for each other.
///
/// What per-owner locking keeps: an owner's quota, idempotency keys and
/// task versions are written by one transaction at a time, and the
/// owner's outbox rows (keyed by owner) are numbered in commit order.
pub fn begin_for_owners(db: &dyn Sql, lock: i64, owners: &[&str]) -> Result<(), DbError> {
    let mut keys: Vec<i32> = owners.iter().map(|o| short_hash(o)).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut sql = String::from("SELECT pg_advisory_xact_lock_shared(?)");
    let mut params = vec![Value::Integer(lock)];
    for key in keys {
        sql.push_str(
            ", pg_advisory_xact_lock(CAST(CAST(? AS BIGINT) AS INTEGER), CAST(CAST(? AS BIGINT) AS INTEGER))",
        );
        params.push(Value::Integer(i64::from(lock as i32)));
        params.push(Value::Integer(i64::from(key)));
    }
    db.execute("BEGIN", &[])?;
    db.execute(&sql, &params).map(drop)
}

/// A 32-bit FNV-1a hash: an owner's half of its lock key.
fn short_hash(text: &str) -> i32 {
    text.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    }) as i32
}

/// SQLSTATE classes of a database that is gone or overloaded (connection
/// exception, insufficient resources, operator intervention, system
/// error) and of contention (serialization failure, deadlock): a retry
/// later may succeed.
pub fn passes(sqlstate: &str) -> bool {
    ["08", "53", "57", "58", "40001", "40P01", "55P03"]
        .iter()
        .any(|class| sqlstate.starts_with(class))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered(
                "SELECT a FROM t WHERE b = ? AND c LIKE ? ESCAPE '\\' AND d = '?' AND \"e?\" = ?"
            ),
            "SELECT a FROM t WHERE b = $1 AND c LIKE $2 ESCAPE '\\' AND d = '?' AND \"e?\" = $3"
        );
        assert_eq!(
            numbered("x = 'it''s ?' OR y = ?"),
            "x = 'it''s ?' OR y = $1"
        );
    }

    #[test]
    fn labels_name_schemas_and_locks() {
        assert_eq!(schema_for("default").unwrap(), "todo_default");
        assert!(schema_for("Default; DROP").is_err());
        assert_ne!(lock_key("todo_default"), lock_key("todo_audit"));
        assert_eq!(lock_key("todo_default"), lock_key("todo_default"));
    }
}
