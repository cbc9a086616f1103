//! Postgres values to and from their WIT forms, type for type as Spin 3.6
//! maps them (`factor-outbound-pg`), so a component reads the same values
//! under either host: the same column types, the same `other`/`unsupported`
//! fallbacks, and a WIT `db-null` accepted for a parameter of any type.

use anyhow::{anyhow, Context, Result};
use bytes::BufMut;
use chrono::{Datelike, Timelike};
use postgres_range::{BoundSided, BoundType, Normalizable, Range, RangeBound};
use rust_decimal::Decimal;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::Row;

use crate::host::bindings::spin::spin::postgres::postgres::{
    DbDataType, DbValue, Interval, ParameterValue, RangeBoundKind,
};

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// The WIT type a column of `ty` is reported as.
pub fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::BYTEA => DbDataType::Binary,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(ty.name().to_owned()),
    }
}

/// Column `index` of `row` as a WIT value (SQL NULL is `db-null`).
pub fn value(row: &Row, index: usize) -> Result<DbValue> {
    /// Reads the column as `T` and wraps it, NULL as `db-null`.
    fn read<'a, T: FromSql<'a>>(
        row: &'a Row,
        index: usize,
        wrap: impl FnOnce(T) -> Result<DbValue>,
    ) -> Result<DbValue> {
        match row
            .try_get::<_, Option<T>>(index)
            .map_err(super::DriverError)?
        {
            Some(v) => wrap(v),
            None => Ok(DbValue::DbNull),
        }
    }
    let ok = Ok;
    match *row.columns()[index].type_() {
        Type::BOOL => read(row, index, |v| ok(DbValue::Boolean(v))),
        Type::BYTEA => read(row, index, |v| ok(DbValue::Binary(v))),
        Type::FLOAT4 => read(row, index, |v| ok(DbValue::Floating32(v))),
        Type::FLOAT8 => read(row, index, |v| ok(DbValue::Floating64(v))),
        Type::INT2 => read(row, index, |v| ok(DbValue::Int16(v))),
        Type::INT4 => read(row, index, |v| ok(DbValue::Int32(v))),
        Type::INT8 => read(row, index, |v| ok(DbValue::Int64(v))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => read(row, index, |v| ok(DbValue::Str(v))),
        // As in Spin, read as a zoneless date-time: a TIMESTAMPTZ column
        // fails to decode (a `query-failed` error), exactly as it does there.
        Type::TIMESTAMP | Type::TIMESTAMPTZ => read(row, index, |v: chrono::NaiveDateTime| {
            Ok(DbValue::Datetime((
                v.year(),
                v.month().try_into()?,
                v.day().try_into()?,
                v.hour().try_into()?,
                v.minute().try_into()?,
                v.second().try_into()?,
                v.nanosecond(),
            )))
        }),
        Type::DATE => read(row, index, |v: chrono::NaiveDate| {
            Ok(DbValue::Date((
                v.year(),
                v.month().try_into()?,
                v.day().try_into()?,
            )))
        }),
        Type::TIME => read(row, index, |v: chrono::NaiveTime| {
            Ok(DbValue::Time((
                v.hour().try_into()?,
                v.minute().try_into()?,
                v.second().try_into()?,
                v.nanosecond(),
            )))
        }),
        Type::UUID => read(row, index, |v: uuid::Uuid| ok(DbValue::Uuid(v.to_string()))),
        Type::JSONB => read(row, index, |v: serde_json::Value| {
            Ok(DbValue::Jsonb(
                serde_json::to_vec(&v).context("invalid JSON from database")?,
            ))
        }),
        Type::NUMERIC => read(row, index, |v: Decimal| ok(DbValue::Decimal(v.to_string()))),
        Type::INT4_RANGE => read(row, index, |v: Range<i32>| {
            ok(DbValue::RangeInt32(bounds_out(&v, |n| *n)))
        }),
        Type::INT8_RANGE => read(row, index, |v: Range<i64>| {
            ok(DbValue::RangeInt64(bounds_out(&v, |n| *n)))
        }),
        Type::NUM_RANGE => read(row, index, |v: Range<RangeDecimal>| {
            ok(DbValue::RangeDecimal(bounds_out(&v, |d| d.0.to_string())))
        }),
        Type::INT4_ARRAY => read(row, index, |v| ok(DbValue::ArrayInt32(v))),
        Type::INT8_ARRAY => read(row, index, |v| ok(DbValue::ArrayInt64(v))),
        Type::NUMERIC_ARRAY => read(row, index, |v: Vec<Option<Decimal>>| {
            ok(DbValue::ArrayDecimal(
                v.into_iter().map(|d| d.map(|d| d.to_string())).collect(),
            ))
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            read(row, index, |v| ok(DbValue::ArrayStr(v)))
        }
        Type::INTERVAL => read(row, index, |v: PgInterval| ok(DbValue::Interval(v.0))),
        _ => read(row, index, |v: RawBytes| ok(DbValue::Unsupported(v.0))),
    }
}

/// Bytes a value holds, for the result-size limit.
pub fn size_of(value: &DbValue) -> usize {
    let heap = match value {
        DbValue::Str(s) | DbValue::Uuid(s) | DbValue::Decimal(s) => s.len(),
        DbValue::Binary(b) | DbValue::Jsonb(b) | DbValue::Unsupported(b) => b.len(),
        DbValue::RangeDecimal((lower, upper)) => {
            lower.as_ref().map_or(0, |b| b.0.len()) + upper.as_ref().map_or(0, |b| b.0.len())
        }
        DbValue::ArrayInt32(v) => v.len() * std::mem::size_of::<Option<i32>>(),
        DbValue::ArrayInt64(v) => v.len() * std::mem::size_of::<Option<i64>>(),
        DbValue::ArrayDecimal(v) | DbValue::ArrayStr(v) => v
            .iter()
            .map(|s| std::mem::size_of::<Option<String>>() + s.as_ref().map_or(0, String::len))
            .sum(),
        _ => 0,
    };
    std::mem::size_of::<DbValue>() + heap
}

/// A parameter as something tokio-postgres can send.
pub fn parameter(value: &ParameterValue) -> Result<Box<dyn ToSql + Send + Sync>> {
    Ok(match value {
        ParameterValue::Boolean(v) => Box::new(*v),
        ParameterValue::Int8(v) => Box::new(*v),
        ParameterValue::Int16(v) => Box::new(*v),
        ParameterValue::Int32(v) => Box::new(*v),
        ParameterValue::Int64(v) => Box::new(*v),
        ParameterValue::Floating32(v) => Box::new(*v),
        ParameterValue::Floating64(v) => Box::new(*v),
        ParameterValue::Str(v) => Box::new(v.clone()),
        ParameterValue::Binary(v) => Box::new(v.clone()),
        ParameterValue::Date(d) => Box::new(date(d)?),
        ParameterValue::Time(t) => Box::new(time(t)?),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => Box::new(chrono::NaiveDateTime::new(
            date(&(*y, *mo, *d))?,
            time(&(*h, *mi, *s, *ns))?,
        )),
        ParameterValue::Timestamp(secs) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(*secs, 0)
                .ok_or_else(|| anyhow!("invalid epoch timestamp {secs}"))?,
        ),
        ParameterValue::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(v).with_context(|| format!("invalid UUID {v}"))?)
        }
        ParameterValue::Jsonb(bytes) => Box::new(
            serde_json::from_slice::<serde_json::Value>(bytes)
                .with_context(|| format!("invalid JSON {}", String::from_utf8_lossy(bytes)))?,
        ),
        ParameterValue::Decimal(v) => Box::new(decimal(v)?),
        ParameterValue::RangeInt32((lower, upper)) => Box::new(Range::new(
            lower.map(|(n, kind)| RangeBound::new(n, bound_type(kind))),
            upper.map(|(n, kind)| RangeBound::new(n, bound_type(kind))),
        )),
        ParameterValue::RangeInt64((lower, upper)) => Box::new(Range::new(
            lower.map(|(n, kind)| RangeBound::new(n, bound_type(kind))),
            upper.map(|(n, kind)| RangeBound::new(n, bound_type(kind))),
        )),
        ParameterValue::RangeDecimal((lower, upper)) => {
            Box::new(Range::new(decimal_bound(lower)?, decimal_bound(upper)?))
        }
        ParameterValue::ArrayInt32(v) => Box::new(v.clone()),
        ParameterValue::ArrayInt64(v) => Box::new(v.clone()),
        ParameterValue::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|d| d.as_deref().map(decimal).transpose())
                .collect::<Result<Vec<_>>>()?,
        ),
        ParameterValue::ArrayStr(v) => Box::new(v.clone()),
        ParameterValue::Interval(v) => Box::new(PgInterval(*v)),
        ParameterValue::DbNull => Box::new(AnyNull),
    })
}

fn date((y, mo, d): &(i32, u8, u8)) -> Result<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(*y, (*mo).into(), (*d).into())
        .ok_or_else(|| anyhow!("invalid date y={y}, m={mo}, d={d}"))
}

fn time((h, mi, s, ns): &(u8, u8, u8, u32)) -> Result<chrono::NaiveTime> {
    chrono::NaiveTime::from_hms_nano_opt((*h).into(), (*mi).into(), (*s).into(), *ns)
        .ok_or_else(|| anyhow!("invalid time {h}:{mi}:{s}:{ns}"))
}

fn decimal(text: &str) -> Result<Decimal> {
    Decimal::from_str_exact(text).with_context(|| format!("invalid decimal {text}"))
}

fn decimal_bound<S: BoundSided>(
    bound: &Option<(String, RangeBoundKind)>,
) -> Result<Option<RangeBound<S, RangeDecimal>>> {
    bound
        .as_ref()
        .map(|(text, kind)| {
            Ok(RangeBound::new(
                RangeDecimal(decimal(text)?),
                bound_type(*kind),
            ))
        })
        .transpose()
}

fn bound_type(kind: RangeBoundKind) -> BoundType {
    match kind {
        RangeBoundKind::Inclusive => BoundType::Inclusive,
        RangeBoundKind::Exclusive => BoundType::Exclusive,
    }
}

fn bound_kind(kind: BoundType) -> RangeBoundKind {
    match kind {
        BoundType::Inclusive => RangeBoundKind::Inclusive,
        BoundType::Exclusive => RangeBoundKind::Exclusive,
    }
}

type WitBound<U> = Option<(U, RangeBoundKind)>;

fn bounds_out<T: PartialOrd + Normalizable, U>(
    range: &Range<T>,
    map: impl Fn(&T) -> U,
) -> (WitBound<U>, WitBound<U>) {
    (
        range.lower().map(|b| (map(&b.value), bound_kind(b.type_))),
        range.upper().map(|b| (map(&b.value), bound_kind(b.type_))),
    )
}

/// SQL NULL for a parameter of whatever type the statement expects (an
/// `Option::<T>::None` would insist on `T`'s type).
#[derive(Debug)]
struct AnyNull;

impl ToSql for AnyNull {
    fn to_sql(&self, _: &Type, _: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(&self, _: &Type, _: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }
}

/// The binary encoding of a value of a type with no WIT form.
struct RawBytes(Vec<u8>);

impl<'a> FromSql<'a> for RawBytes {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(RawBytes(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// INTERVAL in Postgres's binary form: microseconds, days, months.
#[derive(Debug)]
struct PgInterval(Interval);

impl ToSql for PgInterval {
    fn to_sql(&self, _: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgInterval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let raw: &[u8; 16] = raw
            .try_into()
            .map_err(|_| "unexpected binary format for Postgres INTERVAL")?;
        let (micros, rest) = raw.split_at(8);
        let (days, months) = rest.split_at(4);
        Ok(PgInterval(Interval {
            micros: i64::from_be_bytes(micros.try_into()?),
            days: i32::from_be_bytes(days.try_into()?),
            months: i32::from_be_bytes(months.try_into()?),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// A decimal that can be a range bound (NUMRANGE needs no normalising).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct RangeDecimal(Decimal);

impl Normalizable for RangeDecimal {
    fn normalize<S: BoundSided>(bound: RangeBound<S, Self>) -> RangeBound<S, Self> {
        bound
    }
}

impl std::fmt::Display for RangeDecimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ToSql for RangeDecimal {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <Decimal as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for RangeDecimal {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Decimal::from_sql(ty, raw).map(RangeDecimal)
    }

    fn accepts(ty: &Type) -> bool {
        <Decimal as FromSql>::accepts(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_parameter_is_seconds_since_the_epoch() {
        let sent = format!("{:?}", parameter(&ParameterValue::Timestamp(3723)).unwrap());
        assert!(sent.contains("1970-01-01T01:02:03"), "{sent}");
        let error = parameter(&ParameterValue::Date((2026, 2, 30))).unwrap_err();
        assert_eq!(error.to_string(), "invalid date y=2026, m=2, d=30");
        let error = parameter(&ParameterValue::Decimal("1.2.3".into())).unwrap_err();
        assert_eq!(error.to_string(), "invalid decimal 1.2.3");
    }

    #[test]
    fn an_interval_round_trips_through_its_binary_form() {
        let interval = Interval {
            micros: -1_500_000,
            days: 3,
            months: 14,
        };
        let mut out = bytes::BytesMut::new();
        PgInterval(interval)
            .to_sql(&Type::INTERVAL, &mut out)
            .unwrap();
        let back = PgInterval::from_sql(&Type::INTERVAL, &out).unwrap();
        let PgInterval(back) = back;
        assert_eq!((back.micros, back.days, back.months), (-1_500_000, 3, 14));
        assert!(PgInterval::from_sql(&Type::INTERVAL, &out[..15]).is_err());
    }
}
