//! What Spin does before a trigger starts serving, and so this host too:
//! `--sqlite` statements against the app's databases and `--key-value`
//! pairs into the default store. Spin runs them in every trigger process
//! that declares the flags (its HTTP trigger and each plugin), so they
//! should be idempotent (`CREATE TABLE IF NOT EXISTS`, `INSERT OR REPLACE`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::engine::Runtime;
use crate::host::key_value::StoreDb;
use crate::host::sqlite::Database;
use crate::runtime_config::RuntimeConfig;

/// `@file[:label]`, as Spin parses it.
fn file_and_label(spec: &str) -> Result<(&str, &str)> {
    let spec = spec.trim();
    if spec.is_empty() {
        bail!("database configuration is empty in the '@{spec}' sqlite statement");
    }
    match spec.split_once(':') {
        Some((_, label)) if label.trim().is_empty() => {
            bail!("database label is empty in the '@{spec}' sqlite statement")
        }
        Some((file, _)) if file.trim().is_empty() => {
            bail!("file path is empty in the '@{spec}' sqlite statement")
        }
        Some((file, label)) => Ok((file.trim(), label.trim())),
        None => Ok((spec, "default")),
    }
}

fn database(runtime: &Runtime, config: &RuntimeConfig, label: &str) -> Result<Arc<Database>> {
    if let Some(db) = runtime.databases.get(label) {
        return Ok(db.clone());
    }
    let location = config.sqlite.get(label).with_context(|| {
        format!("a registered database named '{label}' was expected but not found")
    })?;
    Ok(Arc::new(Database::new(label, location.clone())?))
}

/// Runs `--sqlite` statements in order: plain SQL against `default`, and
/// `@file[:label]` as a batch against `label`.
pub async fn run_statements(
    runtime: &Runtime,
    config: &RuntimeConfig,
    statements: &[String],
    cwd: &Path,
) -> Result<()> {
    for statement in statements {
        let (label, sql, batch) = match statement.strip_prefix('@') {
            Some(spec) => {
                let (file, label) = file_and_label(spec)?;
                let sql = std::fs::read_to_string(cwd.join(file)).with_context(|| {
                    format!("could not read file '{file}' containing sql statements")
                })?;
                (label.to_owned(), sql, true)
            }
            None => ("default".to_owned(), statement.clone(), false),
        };
        let db = database(runtime, config, &label)?;
        let what = statement.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let conn = db.connect()?;
            if batch {
                conn.execute_batch(&sql)?;
            } else {
                let mut stmt = conn.prepare(&sql)?;
                let mut rows = stmt.query([])?;
                while rows.next()?.is_some() {}
            }
            Ok(())
        })
        .await?
        .with_context(|| {
            format!("failed to execute sql statement '{what}' against database '{label}'")
        })?;
    }
    Ok(())
}

/// `--key-value key=value`: set in the default store.
pub async fn set_key_values(
    runtime: &Runtime,
    config: &RuntimeConfig,
    pairs: &[(String, String)],
) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let store = match runtime.key_value_store("default") {
        Some(store) => store,
        None => {
            let location = config
                .key_value
                .get("default")
                .context("no default key-value store")?;
            Arc::new(StoreDb::open("default", location)?)
        }
    };
    for (key, value) in pairs {
        store
            .set_now(key.clone(), value.as_bytes().to_vec())
            .await
            .context("failed to set key-value pair")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_files_name_a_database_like_spin() {
        assert_eq!(file_and_label("file:label").unwrap(), ("file", "label"));
        assert_eq!(file_and_label("file").unwrap(), ("file", "default"));
        assert!(file_and_label("file:").is_err());
        assert!(file_and_label(":label").is_err());
        assert!(file_and_label("").is_err());
    }
}
