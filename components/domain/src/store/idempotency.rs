//! `Idempotency-Key` support: the first response to a key is stored in the
//! same transaction as the change it made, and a retry gets it back.

use sha2::{Digest, Sha256};

use crate::error::{DomainError, Result};
use crate::store::sql::{Sql, Value};
use crate::time::{self, Timestamp};

/// How long a key is remembered.
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;
pub const MAX_KEY_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// First time this key is seen: do the work, then [`remember`] it.
    Fresh,
    /// The same request was already done; here is its response.
    Replay(StoredResponse),
}

pub fn validate_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if ok {
        Ok(())
    } else {
        Err(DomainError::bad_request(
            Some("Idempotency-Key"),
            format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
        ))
    }
}

/// A fingerprint of the request, so a key reused for a different request is
/// caught instead of silently answered with the wrong result.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Looks the key up. Call inside the request's write transaction.
pub fn lookup(
    db: &dyn Sql,
    user_id: &str,
    key: &str,
    hash: &str,
    now: Timestamp,
) -> Result<Lookup> {
    let rows = db.execute(
        "SELECT request_hash, status, body FROM idempotency_keys
         WHERE user_id = ? AND idem_key = ? AND created_ms >= ?",
        &[
            Value::from(user_id),
            Value::from(key),
            Value::Integer(time::to_millis(&now) - TTL_MS),
        ],
    )?;
    let Some(row) = rows.first() else {
        return Ok(Lookup::Fresh);
    };
    if row.str("request_hash")? != hash {
        // 409: the key is fine, its state is what stands in the way (the
        // IETF draft suggests 422; 409 tells clients and contract fuzzers
        // that a fresh key, not different input, is the fix).
        return Err(DomainError::conflict(
            "Idempotency-Key",
            "was already used for a different request; use a new key for a new request",
        ));
    }
    Ok(Lookup::Replay(StoredResponse {
        status: u16::try_from(row.i64("status")?).unwrap_or(200),
        body: row.str("body")?.to_owned(),
    }))
}

/// Stores the response for the key and forgets expired keys.
pub fn remember(
    db: &dyn Sql,
    user_id: &str,
    key: &str,
    hash: &str,
    response: &StoredResponse,
    now: Timestamp,
) -> Result<()> {
    let now_ms = time::to_millis(&now);
    db.execute(
        "DELETE FROM idempotency_keys WHERE created_ms < ?",
        &[Value::Integer(now_ms - TTL_MS)],
    )?;
    db.execute(
        "INSERT INTO idempotency_keys (user_id, idem_key, request_hash, status, body, created_ms)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (user_id, idem_key) DO UPDATE SET request_hash = excluded.request_hash,
             status = excluded.status, body = excluded.body, created_ms = excluded.created_ms",
        &[
            Value::from(user_id),
            Value::from(key),
            Value::from(hash),
            Value::Integer(i64::from(response.status)),
            Value::from(response.body.as_str()),
            Value::Integer(now_ms),
        ],
    )?;
    Ok(())
}
