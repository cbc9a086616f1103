//! The W3C trace context a component works under, so the events it writes
//! continue the trace that caused them: the API sets it from the request's
//! `traceparent` header, a Kafka handler from each message's, and
//! [`crate::events::outbox::enqueue`] stores it with every event as the
//! `traceparent` and `ce_traceparent` (CloudEvents distributed-tracing
//! extension) headers. A component instance handles one thing at a time,
//! so a thread-local is its whole scope.

use std::cell::RefCell;

thread_local! {
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` with `traceparent` as the current trace context; a value that
/// is not a well-formed `traceparent` is ignored (it came from a client).
pub fn with<T>(traceparent: Option<&str>, f: impl FnOnce() -> T) -> T {
    let value = traceparent.filter(|v| well_formed(v)).map(str::to_owned);
    let before = CURRENT.with(|c| c.replace(value));
    let result = f();
    CURRENT.with(|c| *c.borrow_mut() = before);
    result
}

/// The current trace context, if any.
pub fn current() -> Option<String> {
    CURRENT.with(|c| c.borrow().clone())
}

/// `version-traceid-parentid-flags`, lower-case hex, as W3C Trace Context
/// level 1 writes it (version 00: exactly four fields; ids not all zero).
fn well_formed(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match parts.as_slice() {
        [version, trace, parent, flags, ..] => {
            hex(version, 2)
                && *version != "ff"
                && (parts.len() == 4 || *version != "00")
                && hex(trace, 32)
                && trace.bytes().any(|b| b != b'0')
                && hex(parent, 16)
                && parent.bytes().any(|b| b != b'0')
                && hex(flags, 2)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn only_well_formed_contexts_are_kept_and_only_inside() {
        assert_eq!(with(Some(GOOD), current).as_deref(), Some(GOOD));
        assert_eq!(current(), None);
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nx: y",
        ] {
            assert_eq!(with(Some(bad), current), None, "{bad:?}");
        }
    }
}
