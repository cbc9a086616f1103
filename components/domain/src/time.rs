//! Timestamps: stored as Unix milliseconds (so SQL can sort and compare them),
//! shown as RFC 3339 in UTC.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};

use crate::error::{DomainError, Result};

pub type Timestamp = DateTime<Utc>;

/// Earliest and latest years we accept: every four-digit RFC 3339 year, as
/// the OpenAPI `date-time` format allows (chrono's range is far wider, so
/// arithmetic never overflows).
const MIN_YEAR: i32 = 0;
const MAX_YEAR: i32 = 9999;

/// RFC 3339 in UTC with a `Z`; milliseconds only when they are not zero.
pub fn format(ts: &Timestamp) -> String {
    let precision = if ts.timestamp_subsec_millis() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Millis
    };
    ts.to_rfc3339_opts(precision, true)
}

/// Parses an RFC 3339 date-time. It must carry an offset (`Z` or `+02:00`),
/// because a bare local time is ambiguous for a user we know nothing about.
pub fn parse(field: &str, text: &str) -> Result<Timestamp> {
    let ts = DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
        DomainError::invalid(
            field,
            format!(
                "`{text}` is not an RFC 3339 date-time with an offset, \
                 e.g. 2026-12-01T09:00:00Z or 2026-12-01T09:00:00+02:00"
            ),
        )
    })?;
    let ts = truncate_to_millis(ts.with_timezone(&Utc));
    check_range(field, ts)
}

/// Like [`parse`], but a plain date (`2026-12-01`) is also accepted and means
/// midnight UTC. Used for list filters, where a day is a natural bound.
pub fn parse_bound(field: &str, text: &str) -> Result<Timestamp> {
    if let Ok(date) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        let ts = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"));
        return check_range(field, ts);
    }
    parse(field, text)
}

/// Whether `ts` is a year from 0000 to 9999: every timestamp this app stores
/// or emits must be, or a consumer's parser (RFC 3339) refuses the event.
pub fn in_range(ts: &Timestamp) -> bool {
    use chrono::Datelike;
    (MIN_YEAR..=MAX_YEAR).contains(&ts.year())
}

/// `ts` if [`in_range`], else an invalid-input error naming `field`.
pub fn check_range(field: &str, ts: Timestamp) -> Result<Timestamp> {
    use chrono::Datelike;
    if !(MIN_YEAR..=MAX_YEAR).contains(&ts.year()) {
        return Err(DomainError::invalid(
            field,
            format!("year must be between {MIN_YEAR} and {MAX_YEAR}"),
        ));
    }
    Ok(ts)
}

/// Serde for timestamps as [`format`] writes them and [`parse`] reads them
/// (`#[serde(with = "time::rfc3339")]`).
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Timestamp;

    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        super::parse("time", &text).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Timestamp>` (`null` is `None`).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use crate::time::Timestamp;

        pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match ts {
                Some(ts) => s.serialize_str(&crate::time::format(ts)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(text) => crate::time::parse("time", &text)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }
    }
}

pub fn truncate_to_millis(ts: Timestamp) -> Timestamp {
    from_millis(ts.timestamp_millis())
}

pub fn to_millis(ts: &Timestamp) -> i64 {
    ts.timestamp_millis()
}

pub fn from_millis(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The current time, truncated to what we store.
pub fn now() -> Timestamp {
    truncate_to_millis(Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_utc_with_z() {
        let ts = parse("due_date", "2026-12-01T09:00:00+02:00").unwrap();
        assert_eq!(format(&ts), "2026-12-01T07:00:00Z");
        let ts = parse("due_date", "2026-12-01T09:00:00.250Z").unwrap();
        assert_eq!(format(&ts), "2026-12-01T09:00:00.250Z");
    }

    #[test]
    fn rejects_times_without_offset_and_takes_every_four_digit_year() {
        assert!(parse("due_date", "2026-12-01T09:00:00").is_err());
        let err = parse("due_date", "tomorrow").unwrap_err();
        assert_eq!(err.field(), Some("due_date"));
        // The OpenAPI `date-time` format admits years 0000 to 9999.
        assert!(parse("due_date", "1900-01-01T00:00:00Z").is_ok());
        assert!(parse("due_date", "0000-01-01T00:00:00Z").is_ok());
        assert!(parse("due_date", "9999-12-31T23:59:59Z").is_ok());
        assert!(parse("due_date", "-0001-01-01T00:00:00Z").is_err());
    }

    #[test]
    fn bounds_accept_plain_dates_as_midnight_utc() {
        let ts = parse_bound("due_before", "2026-12-01").unwrap();
        assert_eq!(format(&ts), "2026-12-01T00:00:00Z");
        assert!(parse_bound("due_before", "2026-13-01").is_err());
    }

    #[test]
    fn millis_round_trip() {
        let ts = parse("x", "2026-02-28T23:59:59.999Z").unwrap();
        assert_eq!(from_millis(to_millis(&ts)), ts);
    }
}
