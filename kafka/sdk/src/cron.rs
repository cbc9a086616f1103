//! Timer handlers in the world of Spin's cron trigger.

use std::fmt;

/// When the schedule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Unix seconds.
    pub timestamp: u64,
}

/// What a `#[cron_component]` function may return.
pub trait IntoCronResult {
    fn into_cron_result(self) -> Result<(), String>;
}

impl IntoCronResult for () {
    fn into_cron_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display> IntoCronResult for Result<(), E> {
    fn into_cron_result(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:#}"))
    }
}

pub fn cron_result(result: impl IntoCronResult) -> Result<(), String> {
    result.into_cron_result()
}
