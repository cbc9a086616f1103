//! Recurrence patterns and the one function that computes the next occurrence.
//!
//! Accepted patterns (case-insensitive):
//! - `daily`, `weekly`, `monthly`, `yearly` (`annually`), `every day|week|month|year`,
//!   `fortnightly`, `every other day|week|month|year`;
//! - `every N days|weeks|months|years` (N from 1 to 1000);
//! - named weekdays: `every monday and thursday`, `every mon, wed, fri`,
//!   `weekdays` / `every weekday`, `weekends` / `every weekend`;
//! - RFC 5545 rules: `RRULE:FREQ=…;INTERVAL=…;BYDAY=…;BYMONTHDAY=…;COUNT=…;UNTIL=…`
//!   (the `RRULE:` prefix is optional).
//!
//! A series is anchored at the due date of its first task, which is
//! occurrence 1. The plain-English patterns are a layer over RFC 5545: each
//! becomes a rule the `rrule` crate evaluates in the task's time zone, so
//! occurrences keep the anchor's local time of day across DST changes.
//!
//! Month ends follow RFC 5545 for every pattern: a month without the
//! anchor's day is skipped (monthly on the 31st: Jan 31 → Mar 31; yearly on
//! 29 February: the next leap year); `BYMONTHDAY=-1` asks for the last day.

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::error::{DomainError, Result};
use crate::time::{self, Timestamp};

const FIELD: &str = "recurrence_pattern";
const MAX_INTERVAL: u32 = 1000;
const MAX_COUNT: u32 = 10_000;
/// Upper bound on generated candidates per call, so a rule that can never
/// match again (e.g. BYMONTHDAY=30 in February only) ends instead of spinning.
const MAX_CANDIDATES: usize = 500_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// A `BYDAY` entry: a weekday, with an ordinal in the month for MONTHLY rules
/// (`2TU` = second Tuesday, `-1FR` = last Friday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByDay {
    pub nth: Option<i8>,
    pub weekday: Weekday,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recurrence {
    pub freq: Freq,
    pub interval: u32,
    pub by_day: Vec<ByDay>,
    pub by_month_day: Vec<i8>,
    pub count: Option<u32>,
    pub until: Option<Timestamp>,
}

/// One occurrence of a series: when, and its 1-based position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub at: Timestamp,
    pub index: u32,
}

impl Recurrence {
    fn plain(freq: Freq, interval: u32) -> Self {
        Recurrence {
            freq,
            interval,
            by_day: Vec::new(),
            by_month_day: Vec::new(),
            count: None,
            until: None,
        }
    }

    fn on_weekdays(days: &[Weekday]) -> Self {
        Recurrence {
            by_day: days
                .iter()
                .map(|&weekday| ByDay { nth: None, weekday })
                .collect(),
            ..Recurrence::plain(Freq::Weekly, 1)
        }
    }

    /// The first occurrence strictly after `after` in the series whose first
    /// occurrence is `anchor`, or `None` when the series has ended; see
    /// [`Recurrence::next`] for why.
    pub fn next_after(&self, zone: Tz, anchor: Timestamp, after: Timestamp) -> Option<Occurrence> {
        match self.next(zone, anchor, after) {
            Next::At(occurrence) => Some(occurrence),
            Next::Ended(_) => None,
        }
    }

    /// The first occurrence strictly after `after` in the series whose first
    /// occurrence is `anchor`, or why there is none. Occurrences are
    /// computed by the `rrule` crate (RFC 5545) in `zone`, so a daily 09:00
    /// task stays at 09:00 local time across DST changes, a monthly task on
    /// the 31st skips shorter months and a yearly one on 29 February waits
    /// for leap years. The anchor is always occurrence 1 (the user's own due
    /// date); `COUNT` and `UNTIL` are applied here so they count it.
    ///
    /// The work is bounded: daily and weekly rules start from the last whole
    /// period before `after` (computed, not walked), so a series anchored
    /// centuries ago costs what a new one does; any rule gives up after
    /// [`MAX_CANDIDATES`] candidates and says so.
    pub fn next(&self, zone: Tz, anchor: Timestamp, after: Timestamp) -> Next {
        self.next_from(zone, anchor, after, true)
    }

    /// [`Recurrence::next`], with the jump to a later start allowed or not
    /// (tests compare the two).
    fn next_from(&self, zone: Tz, anchor: Timestamp, after: Timestamp, jump: bool) -> Next {
        if anchor > after {
            return self.limited(Occurrence {
                at: anchor,
                index: 1,
            });
        }
        let Some(rule) = self.rrule() else {
            return Next::Ended(End::Unsupported);
        };
        let jumped = if jump {
            self.jump(zone, anchor, after)
        } else {
            None
        };
        let (start, mut index, skip_through) = jumped.unwrap_or((anchor, 1, Some(anchor)));
        let Ok(set) = rule.build(start.with_timezone(&rrule::Tz::from(zone))) else {
            return Next::Ended(End::Unsupported);
        };
        for (seen, at) in (&set).into_iter().enumerate() {
            if seen > MAX_CANDIDATES {
                return Next::Ended(End::TooFarAhead);
            }
            let at = at.with_timezone(&Utc);
            if skip_through.is_some_and(|skip| at <= skip) {
                continue;
            }
            index = index.saturating_add(1);
            let occurrence = match self.limited(Occurrence { at, index }) {
                Next::At(occurrence) => occurrence,
                ended => return ended,
            };
            if at > after {
                return Next::At(occurrence);
            }
        }
        Next::Ended(End::NoMoreOccurrences)
    }

    /// For a daily rule, or a weekly one on plain weekdays: a later start
    /// on the same lattice (whole periods after the anchor, same local time,
    /// at least one period before `after`) and how many occurrences come
    /// before it, anchor included. Every occurrence from that start on is
    /// one of the series', so walking from it finds the same next one. The
    /// third value is the start itself when it is no occurrence (the
    /// anchor's weekday is not listed), to be skipped.
    #[allow(clippy::type_complexity)]
    fn jump(
        &self,
        zone: Tz,
        anchor: Timestamp,
        after: Timestamp,
    ) -> Option<(Timestamp, u32, Option<Timestamp>)> {
        if !self.by_month_day.is_empty() || self.by_day.iter().any(|d| d.nth.is_some()) {
            return None;
        }
        let week_days = match self.freq {
            Freq::Daily if self.by_day.is_empty() => 1,
            Freq::Weekly => 7,
            _ => return None,
        };
        let period = i64::from(self.interval) * week_days;
        let local = anchor.with_timezone(&zone).naive_local();
        let days = (after.with_timezone(&zone).date_naive() - local.date()).num_days();
        let mut periods = days / period - 1;
        // Occurrences per period: one per listed weekday (a weekly rule
        // without BYDAY repeats the anchor's weekday).
        let per_period = if self.by_day.is_empty() {
            1
        } else {
            self.by_day.len() as i64
        };
        let anchor_listed =
            self.by_day.is_empty() || self.by_day.iter().any(|d| d.weekday == local.weekday());
        while periods >= 1 {
            let start = local + chrono::Duration::days(periods * period);
            // A start the zone skips or repeats is stepped back from.
            if let chrono::LocalResult::Single(start) = zone.from_local_datetime(&start) {
                let before = 1 + periods * per_period - i64::from(anchor_listed);
                let start = start.with_timezone(&Utc);
                let skip = (!anchor_listed).then_some(start);
                return Some((start, u32::try_from(before).ok()?, skip));
            }
            periods -= 1;
        }
        None
    }

    /// The rule for the `rrule` crate (RFC 5545), built directly;
    /// `COUNT` and `UNTIL` are applied by [`Recurrence::next`] so they count
    /// the anchor. None for what the crate cannot take (an interval past
    /// 65535).
    fn rrule(&self) -> Option<rrule::RRule<rrule::Unvalidated>> {
        let freq = match self.freq {
            Freq::Daily => rrule::Frequency::Daily,
            Freq::Weekly => rrule::Frequency::Weekly,
            Freq::Monthly => rrule::Frequency::Monthly,
            Freq::Yearly => rrule::Frequency::Yearly,
        };
        let by_day = self
            .by_day
            .iter()
            .map(|d| rrule::NWeekday::new(d.nth.map(i16::from), d.weekday))
            .collect();
        Some(
            rrule::RRule::new(freq)
                .interval(u16::try_from(self.interval).ok()?)
                .by_weekday(by_day)
                .by_month_day(self.by_month_day.clone()),
        )
    }

    /// The occurrence, unless `COUNT`, `UNTIL` or the year 9999 ends the
    /// series before it.
    fn limited(&self, occurrence: Occurrence) -> Next {
        if self.count.is_some_and(|count| occurrence.index > count) {
            return Next::Ended(End::Count);
        }
        if self.until.is_some_and(|until| occurrence.at > until) {
            return Next::Ended(End::Until);
        }
        if !time::in_range(&occurrence.at) {
            return Next::Ended(End::PastYear9999);
        }
        Next::At(occurrence)
    }
}

/// The next occurrence of a series, or why it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    At(Occurrence),
    Ended(End),
}

/// Why a series has no next occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `COUNT` occurrences happened: the series is complete.
    Count,
    /// The next one would be after `UNTIL`: the series is complete.
    Until,
    /// The next one would fall after 9999-12-31, past what RFC 3339 writes.
    PastYear9999,
    /// The rule matches no further date (e.g. the 30th of February).
    NoMoreOccurrences,
    /// No occurrence within the bounded search.
    TooFarAhead,
    /// The rule could not be evaluated.
    Unsupported,
}

impl End {
    /// Whether the series ended as its rule says (`COUNT`, `UNTIL`), rather
    /// than because it could not continue.
    pub fn is_complete(self) -> bool {
        matches!(self, End::Count | End::Until)
    }

    pub fn reason(self) -> &'static str {
        match self {
            End::Count => "the series reached its COUNT",
            End::Until => "the next occurrence would be after UNTIL",
            End::PastYear9999 => "the next occurrence would fall after the year 9999",
            End::NoMoreOccurrences => "the rule matches no further date",
            End::TooFarAhead => {
                "no occurrence was found within the search bound after the completed one"
            }
            End::Unsupported => "the rule could not be evaluated",
        }
    }
}

pub fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day())
}

/// Parses and validates a recurrence pattern.
pub fn parse(text: &str) -> Result<Recurrence> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DomainError::invalid(FIELD, "must not be empty"));
    }
    if trimmed.len() > 200 {
        return Err(DomainError::invalid(
            FIELD,
            "must be at most 200 characters",
        ));
    }
    let upper = trimmed.to_ascii_uppercase();
    if upper.starts_with("RRULE:") || upper.starts_with("FREQ=") || upper.contains(";FREQ=") {
        return parse_rrule(upper.trim_start_matches("RRULE:"));
    }
    parse_phrase(&trimmed.to_ascii_lowercase()).ok_or_else(|| {
        DomainError::invalid(
            FIELD,
            format!(
                "`{trimmed}` is not a recurrence pattern I understand; use daily, weekly, \
                 monthly, yearly, `every N days|weeks|months|years`, `every monday and thursday`, \
                 weekdays, or an RFC 5545 rule such as RRULE:FREQ=WEEKLY;BYDAY=MO,TH"
            ),
        )
    })
}

fn parse_phrase(text: &str) -> Option<Recurrence> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let phrase = words.join(" ");
    let simple = match phrase.as_str() {
        "daily" | "every day" => Some(Recurrence::plain(Freq::Daily, 1)),
        "weekly" | "every week" => Some(Recurrence::plain(Freq::Weekly, 1)),
        "monthly" | "every month" => Some(Recurrence::plain(Freq::Monthly, 1)),
        "yearly" | "annually" | "every year" => Some(Recurrence::plain(Freq::Yearly, 1)),
        "fortnightly" => Some(Recurrence::plain(Freq::Weekly, 2)),
        "weekdays" | "every weekday" => Some(Recurrence::on_weekdays(&[
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ])),
        "weekends" | "every weekend" => {
            Some(Recurrence::on_weekdays(&[Weekday::Sat, Weekday::Sun]))
        }
        _ => None,
    };
    if simple.is_some() {
        return simple;
    }
    let rest = phrase.strip_prefix("every ")?;
    if let Some(unit) = rest.strip_prefix("other ") {
        return unit_freq(unit).map(|f| Recurrence::plain(f, 2));
    }
    let mut parts = rest.splitn(2, ' ');
    if let (Some(n), Some(unit)) = (parts.next(), parts.next()) {
        if let Ok(n) = n.parse::<u32>() {
            return (1..=MAX_INTERVAL)
                .contains(&n)
                .then(|| unit_freq(unit).map(|f| Recurrence::plain(f, n)))
                .flatten();
        }
    }
    let days: Option<Vec<Weekday>> = rest
        .replace(" and ", ",")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(weekday_name)
        .collect();
    days.filter(|d| !d.is_empty())
        .map(|d| Recurrence::on_weekdays(&d))
}

fn unit_freq(unit: &str) -> Option<Freq> {
    match unit {
        "day" | "days" => Some(Freq::Daily),
        "week" | "weeks" => Some(Freq::Weekly),
        "month" | "months" => Some(Freq::Monthly),
        "year" | "years" => Some(Freq::Yearly),
        _ => None,
    }
}

fn weekday_name(word: &str) -> Option<Weekday> {
    let word = word.trim_end_matches('s');
    let day = match word {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" | "tues" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    };
    Some(day)
}

fn rrule_error(message: impl Into<String>) -> DomainError {
    DomainError::invalid(FIELD, message)
}

fn parse_rrule(rule: &str) -> Result<Recurrence> {
    let mut freq = None;
    let mut interval = 1;
    let mut by_day = Vec::new();
    let mut by_month_day = Vec::new();
    let mut count = None;
    let mut until = None;
    for part in rule.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| rrule_error(format!("RRULE part `{part}` is not KEY=VALUE")))?;
        match key {
            "FREQ" => {
                freq = Some(match value {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    "MONTHLY" => Freq::Monthly,
                    "YEARLY" => Freq::Yearly,
                    _ => {
                        return Err(rrule_error(format!(
                            "FREQ={value} is not supported; use DAILY, WEEKLY, MONTHLY or YEARLY"
                        )))
                    }
                })
            }
            "INTERVAL" => {
                interval = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_INTERVAL).contains(n))
                    .ok_or_else(|| {
                        rrule_error(format!("INTERVAL must be from 1 to {MAX_INTERVAL}"))
                    })?
            }
            "COUNT" => {
                count = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_COUNT).contains(n))
                        .ok_or_else(|| {
                            rrule_error(format!("COUNT must be from 1 to {MAX_COUNT}"))
                        })?,
                )
            }
            "UNTIL" => until = Some(parse_until(value)?),
            "BYDAY" => {
                by_day = value
                    .split(',')
                    .map(parse_by_day)
                    .collect::<Result<Vec<_>>>()?
            }
            "BYMONTHDAY" => {
                by_month_day = value
                    .split(',')
                    .map(|v| {
                        v.trim()
                            .parse::<i8>()
                            .ok()
                            .filter(|n| *n != 0 && (-31..=31).contains(n))
                            .ok_or_else(|| {
                                rrule_error(format!(
                                    "BYMONTHDAY value `{v}` must be from 1 to 31 or -31 to -1"
                                ))
                            })
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            "WKST" if value == "MO" => {}
            "WKST" => return Err(rrule_error("only WKST=MO (the default) is supported")),
            other => {
                return Err(rrule_error(format!(
                    "RRULE part {other} is not supported; supported parts are FREQ, INTERVAL, \
                     BYDAY, BYMONTHDAY, COUNT, UNTIL and WKST=MO"
                )))
            }
        }
    }
    let freq = freq.ok_or_else(|| rrule_error("an RRULE needs FREQ"))?;
    if count.is_some() && until.is_some() {
        return Err(rrule_error(
            "COUNT and UNTIL must not both be given (RFC 5545)",
        ));
    }
    if by_day.iter().any(|d| d.nth.is_some()) && freq != Freq::Monthly {
        return Err(rrule_error(
            "BYDAY with an ordinal (like 2TU or -1FR) is supported only with FREQ=MONTHLY",
        ));
    }
    if freq == Freq::Weekly && !by_month_day.is_empty() {
        return Err(rrule_error(
            "BYMONTHDAY must not be used with FREQ=WEEKLY (RFC 5545)",
        ));
    }
    if freq == Freq::Yearly && !by_day.is_empty() {
        return Err(rrule_error("BYDAY is not supported with FREQ=YEARLY"));
    }
    if freq == Freq::Monthly && !by_day.is_empty() && !by_month_day.is_empty() {
        return Err(rrule_error(
            "BYDAY together with BYMONTHDAY is not supported; use one of them",
        ));
    }
    Ok(Recurrence {
        freq,
        interval,
        by_day,
        by_month_day,
        count,
        until,
    })
}

fn parse_by_day(text: &str) -> Result<ByDay> {
    let text = text.trim();
    if text.len() < 2 {
        return Err(rrule_error(format!(
            "BYDAY value `{text}` is not a weekday"
        )));
    }
    // The weekday code is the last two characters; anything else (unicode
    // included) is not a weekday. Split on a character boundary.
    let Some((at, _)) = text.char_indices().rev().nth(1) else {
        return Err(rrule_error(format!(
            "BYDAY value `{text}` is not a weekday"
        )));
    };
    let (nth, code) = text.split_at(at);
    let weekday = match code {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => {
            return Err(rrule_error(format!(
                "BYDAY value `{text}` is not a weekday (MO, TU, WE, TH, FR, SA, SU)"
            )))
        }
    };
    let nth = if nth.is_empty() {
        None
    } else {
        Some(
            nth.parse::<i8>()
                .ok()
                .filter(|n| *n != 0 && (-5..=5).contains(n))
                .ok_or_else(|| {
                    rrule_error(format!(
                        "BYDAY ordinal in `{text}` must be 1 to 5 or -5 to -1"
                    ))
                })?,
        )
    };
    Ok(ByDay { nth, weekday })
}

/// `UNTIL` as `YYYYMMDD` (end of that day, UTC) or `YYYYMMDDTHHMMSS[Z]` (UTC).
fn parse_until(value: &str) -> Result<Timestamp> {
    let bad = || {
        rrule_error(format!(
            "UNTIL=`{value}` must be YYYYMMDD or YYYYMMDDTHHMMSSZ"
        ))
    };
    let ts = if value.len() == 8 {
        let date = NaiveDate::parse_from_str(value, "%Y%m%d").map_err(|_| bad())?;
        let end = NaiveTime::from_hms_opt(23, 59, 59).expect("valid time");
        Utc.from_utc_datetime(&date.and_time(end))
    } else {
        let naive =
            chrono::NaiveDateTime::parse_from_str(value.trim_end_matches('Z'), "%Y%m%dT%H%M%S")
                .map_err(|_| bad())?;
        Utc.from_utc_datetime(&naive)
    };
    Ok(time::truncate_to_millis(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        time::parse("t", s).unwrap()
    }

    /// The next `n` occurrences after the anchor, in UTC.
    fn series(pattern: &str, anchor: &str, n: usize) -> Vec<String> {
        series_in("UTC", pattern, anchor, n)
    }

    /// The next `n` occurrences after the anchor, in a time zone.
    fn series_in(zone: &str, pattern: &str, anchor: &str, n: usize) -> Vec<String> {
        let zone: Tz = zone.parse().unwrap();
        let rule = parse(pattern).unwrap();
        let anchor = ts(anchor);
        let mut out = Vec::new();
        let mut after = anchor;
        while out.len() < n {
            match rule.next_after(zone, anchor, after) {
                Some(o) => {
                    out.push(time::format(&o.at));
                    after = o.at;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn daily_weekly_and_every_n() {
        assert_eq!(
            series("daily", "2026-12-30T09:00:00Z", 3),
            [
                "2026-12-31T09:00:00Z",
                "2027-01-01T09:00:00Z",
                "2027-01-02T09:00:00Z"
            ]
        );
        assert_eq!(
            series("Weekly", "2026-12-01T08:30:00Z", 2),
            ["2026-12-08T08:30:00Z", "2026-12-15T08:30:00Z"]
        );
        assert_eq!(
            series("every 3 days", "2026-02-27T10:00:00Z", 2),
            ["2026-03-02T10:00:00Z", "2026-03-05T10:00:00Z"]
        );
        assert_eq!(
            series("every 2 weeks", "2026-12-01T10:00:00Z", 1),
            ["2026-12-15T10:00:00Z"]
        );
        assert_eq!(
            series("fortnightly", "2026-12-01T10:00:00Z", 1),
            ["2026-12-15T10:00:00Z"]
        );
        assert_eq!(
            series("every other month", "2026-11-15T10:00:00Z", 2),
            ["2027-01-15T10:00:00Z", "2027-03-15T10:00:00Z"]
        );
    }

    #[test]
    fn named_weekdays_and_weekdays() {
        // 2026-11-30 is a Monday.
        assert_eq!(
            series("every monday and thursday", "2026-11-30T07:00:00Z", 4),
            [
                "2026-12-03T07:00:00Z",
                "2026-12-07T07:00:00Z",
                "2026-12-10T07:00:00Z",
                "2026-12-14T07:00:00Z"
            ]
        );
        assert_eq!(
            series("every Mon, Wed and Fri", "2026-12-04T07:00:00Z", 2),
            ["2026-12-07T07:00:00Z", "2026-12-09T07:00:00Z"]
        );
        // Friday → Monday, skipping the weekend.
        assert_eq!(
            series("weekdays", "2026-12-04T18:00:00Z", 2),
            ["2026-12-07T18:00:00Z", "2026-12-08T18:00:00Z"]
        );
        assert_eq!(
            series("every weekend", "2026-12-04T18:00:00Z", 3),
            [
                "2026-12-05T18:00:00Z",
                "2026-12-06T18:00:00Z",
                "2026-12-12T18:00:00Z"
            ]
        );
    }

    #[test]
    fn monthly_on_the_31st_skips_shorter_months_as_rfc_5545_says() {
        for pattern in ["monthly", "RRULE:FREQ=MONTHLY"] {
            assert_eq!(
                series(pattern, "2027-01-31T12:00:00Z", 4),
                [
                    "2027-03-31T12:00:00Z",
                    "2027-05-31T12:00:00Z",
                    "2027-07-31T12:00:00Z",
                    "2027-08-31T12:00:00Z"
                ],
                "{pattern}"
            );
        }
        // The last day of every month is asked for explicitly.
        assert_eq!(
            series(
                "RRULE:FREQ=MONTHLY;BYMONTHDAY=-1",
                "2028-01-31T12:00:00Z",
                2
            ),
            ["2028-02-29T12:00:00Z", "2028-03-31T12:00:00Z"]
        );
    }

    #[test]
    fn far_future_and_millisecond_anchors_work() {
        assert_eq!(
            series("daily", "2099-03-01T09:00:00Z", 2),
            ["2099-03-02T09:00:00Z", "2099-03-03T09:00:00Z"]
        );
        assert_eq!(
            series("daily", "2026-11-29T19:03:06.440Z", 1),
            ["2026-11-30T19:03:06Z"]
        );
    }

    #[test]
    fn yearly_on_29_february_waits_for_leap_years() {
        for pattern in ["yearly", "RRULE:FREQ=YEARLY"] {
            assert_eq!(
                series(pattern, "2028-02-29T09:00:00Z", 2),
                ["2032-02-29T09:00:00Z", "2036-02-29T09:00:00Z"],
                "{pattern}"
            );
        }
    }

    #[test]
    fn a_daily_0900_task_stays_at_0900_local_across_the_2026_dst_changes() {
        // Berlin: CET (UTC+1) until 29 March 2026, CEST (UTC+2) until 25 October.
        assert_eq!(
            series_in("Europe/Berlin", "daily", "2026-03-27T08:00:00Z", 3),
            [
                "2026-03-28T08:00:00Z",
                "2026-03-29T07:00:00Z",
                "2026-03-30T07:00:00Z"
            ]
        );
        assert_eq!(
            series_in("Europe/Berlin", "daily", "2026-10-24T07:00:00Z", 2),
            ["2026-10-25T08:00:00Z", "2026-10-26T08:00:00Z"]
        );
        // New York: EST (UTC-5) until 8 March 2026, EDT (UTC-4) until 1 November.
        assert_eq!(
            series_in("America/New_York", "daily", "2026-03-07T14:00:00Z", 2),
            ["2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"]
        );
        assert_eq!(
            series_in(
                "America/New_York",
                "every monday",
                "2026-10-26T13:00:00Z",
                2
            ),
            ["2026-11-02T14:00:00Z", "2026-11-09T14:00:00Z"]
        );
        // A time the spring-forward skips (02:30) moves past the gap that day only.
        assert_eq!(
            series_in("Europe/Berlin", "daily", "2026-03-28T01:30:00Z", 2),
            ["2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"]
        );
        // The same rule in UTC keeps the UTC time instead.
        assert_eq!(
            series("daily", "2026-03-28T08:00:00Z", 2),
            ["2026-03-29T08:00:00Z", "2026-03-30T08:00:00Z"]
        );
    }

    #[test]
    fn rrule_monthly_skips_short_months_and_supports_last_day() {
        assert_eq!(
            series("RRULE:FREQ=MONTHLY", "2027-01-31T12:00:00Z", 2),
            ["2027-03-31T12:00:00Z", "2027-05-31T12:00:00Z"]
        );
        assert_eq!(
            series("FREQ=MONTHLY;BYMONTHDAY=-1", "2027-01-31T12:00:00Z", 2),
            ["2027-02-28T12:00:00Z", "2027-03-31T12:00:00Z"]
        );
        assert_eq!(
            series(
                "RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15",
                "2027-01-15T12:00:00Z",
                3
            ),
            [
                "2027-02-01T12:00:00Z",
                "2027-02-15T12:00:00Z",
                "2027-03-01T12:00:00Z"
            ]
        );
    }

    #[test]
    fn rrule_byday_with_ordinals() {
        // Second Tuesday and last Friday of each month.
        assert_eq!(
            series("RRULE:FREQ=MONTHLY;BYDAY=2TU", "2026-12-08T09:00:00Z", 2),
            ["2027-01-12T09:00:00Z", "2027-02-09T09:00:00Z"]
        );
        assert_eq!(
            series("RRULE:FREQ=MONTHLY;BYDAY=-1FR", "2026-12-25T09:00:00Z", 2),
            ["2027-01-29T09:00:00Z", "2027-02-26T09:00:00Z"]
        );
    }

    #[test]
    fn rrule_weekly_with_interval_and_byday() {
        assert_eq!(
            series(
                "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
                "2026-11-30T07:00:00Z",
                4
            ),
            [
                "2026-12-03T07:00:00Z",
                "2026-12-14T07:00:00Z",
                "2026-12-17T07:00:00Z",
                "2026-12-28T07:00:00Z"
            ]
        );
    }

    #[test]
    fn count_and_until_end_the_series() {
        assert_eq!(
            series("RRULE:FREQ=DAILY;COUNT=3", "2026-12-01T09:00:00Z", 10),
            ["2026-12-02T09:00:00Z", "2026-12-03T09:00:00Z"]
        );
        assert_eq!(
            series(
                "RRULE:FREQ=DAILY;UNTIL=20261203",
                "2026-12-01T09:00:00Z",
                10
            ),
            ["2026-12-02T09:00:00Z", "2026-12-03T09:00:00Z"]
        );
        assert_eq!(
            series(
                "RRULE:FREQ=DAILY;UNTIL=20261203T080000Z",
                "2026-12-01T09:00:00Z",
                10
            ),
            ["2026-12-02T09:00:00Z"]
        );
    }

    #[test]
    fn overdue_series_jump_to_the_first_future_occurrence_and_count_what_they_skip() {
        let rule = parse("daily").unwrap();
        let anchor = ts("2026-01-01T09:00:00Z");
        let next = rule
            .next_after(Tz::UTC, anchor, ts("2026-03-10T12:00:00Z"))
            .unwrap();
        assert_eq!(time::format(&next.at), "2026-03-11T09:00:00Z");
        assert_eq!(next.index, 70);
        let limited = parse("RRULE:FREQ=DAILY;COUNT=5").unwrap();
        assert_eq!(
            limited.next_after(Tz::UTC, anchor, ts("2026-03-10T12:00:00Z")),
            None
        );
    }

    /// Issue 21 item 3: a daily series anchored in year 1 walked 740 000
    /// candidates (past the bound, so it ended silently); it is computed.
    #[test]
    fn a_series_anchored_centuries_ago_continues_and_says_why_when_it_cannot() {
        let rule = parse("daily").unwrap();
        let anchor = ts("0001-01-01T09:00:00Z");
        let next = rule.next(Tz::UTC, anchor, ts("2026-12-04T12:00:00Z"));
        let Next::At(next) = next else {
            panic!("{next:?}")
        };
        assert_eq!(time::format(&next.at), "2026-12-05T09:00:00Z");
        // Days from 0001-01-01 to 2026-12-05, plus the anchor itself.
        let days = (NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
            - NaiveDate::from_ymd_opt(1, 1, 1).unwrap())
        .num_days();
        assert_eq!(i64::from(next.index), days + 1);
        // A daily task due on the last day RFC 3339 can write ends there,
        // with the reason, instead of producing year 10000.
        let last = rule.next(
            Tz::UTC,
            ts("9999-12-31T09:00:00Z"),
            ts("9999-12-31T09:00:00Z"),
        );
        assert_eq!(last, Next::Ended(End::PastYear9999));
        assert!(!End::PastYear9999.is_complete());
        let counted = parse("RRULE:FREQ=DAILY;COUNT=2").unwrap().next(
            Tz::UTC,
            anchor,
            ts("0001-01-02T09:00:00Z"),
        );
        assert_eq!(counted, Next::Ended(End::Count));
        assert!(End::Count.is_complete());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 400, ..Default::default() })]

        /// Jumping to a later start finds what walking from the anchor finds.
        #[test]
        fn the_jump_finds_what_the_walk_finds(
            pattern in proptest::sample::select(vec![
                "daily", "every 3 days", "weekly", "every 2 weeks", "weekdays",
                "every monday and thursday", "every weekend",
                "RRULE:FREQ=WEEKLY;INTERVAL=3;BYDAY=TU,SA", "RRULE:FREQ=DAILY;COUNT=400",
                "RRULE:FREQ=WEEKLY;BYDAY=WE;UNTIL=20280101",
            ]),
            zone in proptest::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Antarctica/Troll", "Pacific/Apia"]),
            anchor_secs in 1_500_000_000i64..1_800_000_000,
            gap_days in 0i64..1500,
            extra_secs in 0i64..86_400,
        ) {
            let rule = parse(pattern).unwrap();
            let zone: Tz = zone.parse().unwrap();
            let anchor = chrono::DateTime::from_timestamp(anchor_secs, 0).unwrap();
            let after = anchor + chrono::Duration::days(gap_days) + chrono::Duration::seconds(extra_secs);
            proptest::prop_assert_eq!(
                rule.next_from(zone, anchor, after, true),
                rule.next_from(zone, anchor, after, false)
            );
        }
    }

    #[test]
    fn anchor_in_the_future_is_the_next_occurrence() {
        let rule = parse("weekly").unwrap();
        let anchor = ts("2027-01-01T09:00:00Z");
        let next = rule
            .next_after(Tz::UTC, anchor, ts("2026-12-01T00:00:00Z"))
            .unwrap();
        assert_eq!((next.at, next.index), (anchor, 1));
    }

    #[test]
    fn rejects_what_it_cannot_honour_with_a_reason() {
        for bad in [
            "sometimes",
            "every 0 days",
            "every 5 fortnights",
            "every funday",
            "RRULE:FREQ=HOURLY",
            "RRULE:INTERVAL=2",
            "RRULE:FREQ=DAILY;COUNT=2;UNTIL=20270101",
            "RRULE:FREQ=WEEKLY;BYDAY=2MO",
            "RRULE:FREQ=WEEKLY;BYMONTHDAY=3",
            "RRULE:FREQ=MONTHLY;BYSETPOS=1",
            "RRULE:FREQ=MONTHLY;BYMONTHDAY=32",
            "RRULE:FREQ=DAILY;UNTIL=tomorrow",
            "",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.field(), Some(FIELD), "{bad}");
        }
    }
}
