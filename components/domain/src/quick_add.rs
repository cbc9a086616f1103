//! Quick Add: a task from one line of English, without a model.
//!
//! "pay rent on the 1st every month 9am remind me the day before #home p1"
//! becomes a title ("pay rent"), a due date in the user's time zone, a
//! recurrence pattern, a reminder, tags and a priority. Each understood
//! phrase is reported with its span; anything the parser is not sure of
//! (a bare "at 9", "12/11", "every!") stays in the title, so nothing is
//! guessed silently. The one default, written down: a date without a time
//! is due at 09:00 local time.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use serde_json::{json, Map, Value as Json};

use crate::error::{DomainError, Result};
use crate::time::{self, Timestamp};

/// The local time a date without a time is due at.
pub const DEFAULT_TIME: (u32, u32) = (9, 0);

/// One understood phrase: where it was (character offsets) and what it set.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub field: &'static str,
}

/// The parse: the task fields as a create request's JSON, and the spans.
#[derive(Debug, Clone, PartialEq)]
pub struct QuickAdd {
    pub title: String,
    pub fields: Map<String, Json>,
    pub spans: Vec<Span>,
}

/// Every zone name the server knows (chrono-tz's IANA database); the
/// OpenAPI `TimeZone` enum lists exactly these (a test checks).
pub fn zone_names() -> Vec<&'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect()
}

/// Parses a time zone name (IANA, e.g. `Europe/Berlin`).
pub fn zone(field: &str, name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        DomainError::invalid(
            field,
            format!(
                "`{name}` is not an IANA time zone name such as Europe/Berlin or America/New_York"
            ),
        )
    })
}

#[derive(Debug, Clone)]
struct Word {
    /// Lower case, surrounding punctuation (`,` `.` `;`) removed.
    norm: String,
    start: usize,
    end: usize,
}

fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars
        .iter()
        .enumerate()
        .chain(std::iter::once((chars.len(), &' ')))
    {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                let raw: String = chars[s..i].iter().collect();
                let norm = raw.trim_end_matches([',', '.', ';']).to_lowercase();
                out.push(Word {
                    norm,
                    start: s,
                    end: i,
                });
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tues" | "tuesday" => Weekday::Tue,
        "wed" | "weds" | "wednesday" => Weekday::Wed,
        "thu" | "thur" | "thurs" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

fn rrule_day(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

/// A month by its English name or three-letter abbreviation (`sept` too).
fn month(word: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    if word == "sept" {
        return Some(9);
    }
    NAMES
        .iter()
        .position(|n| *n == word || (word.len() == 3 && n.starts_with(word)))
        .map(|i| i as u32 + 1)
}

/// `1st`, `2nd`, `23rd`, `31st`, or a plain `1`…`31` when `plain` is allowed.
fn day_of_month(word: &str, plain: bool) -> Option<u32> {
    let digits: String = word.chars().take_while(|c| c.is_ascii_digit()).collect();
    let suffix = &word[digits.len()..];
    let n: u32 = digits.parse().ok()?;
    let ok_suffix = match suffix {
        "" => plain,
        "st" => n % 10 == 1 && n != 11,
        "nd" => n % 10 == 2 && n != 12,
        "rd" => n % 10 == 3 && n != 13,
        "th" => !(n % 10 == 1 && n != 11 || n % 10 == 2 && n != 12 || n % 10 == 3 && n != 13),
        _ => false,
    };
    (ok_suffix && (1..=31).contains(&n)).then_some(n)
}

fn number(word: &str) -> Option<u32> {
    match word {
        "a" | "an" | "one" => Some(1),
        "two" => Some(2),
        "three" => Some(3),
        "four" => Some(4),
        "five" => Some(5),
        "ten" => Some(10),
        _ => word.parse().ok().filter(|n| (1..=999).contains(n)),
    }
}

/// A clock time: `5pm`, `5:30pm`, `5 pm` (two words), `17:00`, `noon`,
/// `midnight`. Returns the time and how many words it took. A bare hour
/// (`9`) is ambiguous and is not a time.
fn clock(w: &[Word]) -> Option<(NaiveTime, usize)> {
    let first = w.first()?.norm.as_str();
    match first {
        "noon" | "midday" => return Some((NaiveTime::from_hms_opt(12, 0, 0)?, 1)),
        "midnight" => return Some((NaiveTime::from_hms_opt(0, 0, 0)?, 1)),
        _ => {}
    }
    let (body, meridiem, used) = if let Some(b) = first.strip_suffix("am") {
        (b, Some(false), 1)
    } else if let Some(b) = first.strip_suffix("pm") {
        (b, Some(true), 1)
    } else {
        match w.get(1).map(|x| x.norm.as_str()) {
            Some("am") | Some("a.m.") => (first, Some(false), 2),
            Some("pm") | Some("p.m.") => (first, Some(true), 2),
            _ => (first, None, 1),
        }
    };
    let (h, m) = match body.split_once(':') {
        Some((h, m)) if m.len() == 2 => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
        None if meridiem.is_some() => (body.parse::<u32>().ok()?, 0),
        _ => return None,
    };
    if m > 59 || body.is_empty() {
        return None;
    }
    let hour = match meridiem {
        Some(pm) => {
            if !(1..=12).contains(&h) {
                return None;
            }
            (h % 12) + if pm { 12 } else { 0 }
        }
        None if h <= 23 => h,
        None => return None,
    };
    Some((NaiveTime::from_hms_opt(hour, m, 0)?, used))
}

/// Minutes in `n` of a unit word (`min`, `hours`, `day`, `week`).
fn unit_minutes(n: u32, unit: &str) -> Option<i64> {
    let per = match unit {
        "m" | "min" | "mins" | "minute" | "minutes" => 1,
        "h" | "hr" | "hrs" | "hour" | "hours" => 60,
        "d" | "day" | "days" => 1440,
        "w" | "week" | "weeks" => 10080,
        _ => return None,
    };
    Some(i64::from(n) * per)
}

fn add_months(date: NaiveDate, months: u32) -> NaiveDate {
    let total = date.year() * 12 + date.month0() as i32 + months as i32;
    let (y, m0) = (total.div_euclid(12), total.rem_euclid(12) as u32);
    let last = crate::recurrence::rules::days_in_month(y, m0 + 1);
    NaiveDate::from_ymd_opt(y, m0 + 1, date.day().min(last)).expect("valid date")
}

/// The next date after `today` (today included when `inclusive`) that is
/// day `n` of its month.
fn next_month_day(today: NaiveDate, n: u32, inclusive: bool) -> Option<NaiveDate> {
    let mut first = today.with_day(1)?;
    for _ in 0..24 {
        if let Some(d) = first.with_day(n) {
            if d > today || (inclusive && d == today) {
                return Some(d);
            }
        }
        first = add_months(first, 1);
    }
    None
}

fn next_weekday(today: NaiveDate, day: Weekday) -> NaiveDate {
    let ahead =
        (7 + day.num_days_from_monday() as i64 - today.weekday().num_days_from_monday() as i64) % 7;
    today + Duration::days(if ahead == 0 { 7 } else { ahead })
}

/// The next `month`/`day` on or after today, this year or the next.
fn next_date(today: NaiveDate, month: u32, day: u32, year: Option<i32>) -> Option<NaiveDate> {
    if let Some(y) = year {
        return NaiveDate::from_ymd_opt(y, month, day);
    }
    (0..8)
        .find_map(|k| NaiveDate::from_ymd_opt(today.year() + k, month, day).filter(|d| *d >= today))
}

#[derive(Debug, Default)]
struct Found {
    date: Option<NaiveDate>,
    time: Option<NaiveTime>,
    /// An exact instant (`in 2 hours`).
    instant: Option<Timestamp>,
    recurrence: Option<String>,
    /// First occurrence of a recurrence without a date (`every monday`).
    recurrence_start: Option<NaiveDate>,
    priority: Option<&'static str>,
    tags: Vec<String>,
    remind_before: Option<i64>,
    remind_at_time: Option<NaiveTime>,
}

/// What a phrase starting at `i` means: the words it takes and its effect.
type Effect = Box<dyn FnOnce(&mut Found)>;

struct Parser<'a> {
    w: &'a [Word],
    today: NaiveDate,
    now: Timestamp,
}

impl Parser<'_> {
    fn at(&self, i: usize) -> &str {
        self.w.get(i).map_or("", |w| w.norm.as_str())
    }

    /// Tries every phrase at `i`, longest grammar first.
    fn phrase(&self, i: usize) -> Option<(usize, &'static str, Effect)> {
        let word = self.at(i);
        // #tag
        if let Some(tag) = word.strip_prefix('#') {
            let ok = !tag.is_empty()
                && tag.chars().count() <= 40
                && tag
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '/');
            if ok {
                let tag = tag.to_owned();
                return Some((1, "tags", Box::new(move |f| f.tags.push(tag))));
            }
        }
        // p1..p4, urgent
        let priority = match word {
            "p1" | "urgent" => Some("urgent"),
            "p2" => Some("high"),
            "p3" => Some("medium"),
            "p4" => Some("low"),
            _ => None,
        };
        if let Some(p) = priority {
            return Some((1, "priority", Box::new(move |f| f.priority = Some(p))));
        }
        if word == "remind" && self.at(i + 1) == "me" {
            return self.reminder(i + 2).map(|(n, e)| (n + 2, "reminder", e));
        }
        if word == "every" {
            return self
                .recurrence(i + 1)
                .map(|(n, e)| (n + 1, "recurrence_pattern", e));
        }
        if let Some((n, e)) = self.when(i) {
            return Some((n, "due_date", e));
        }
        // Joining words belong to the phrase after them.
        if matches!(word, "on" | "at" | "by" | "due") {
            if let Some((n, field, e)) = self.phrase(i + 1).filter(|(_, f, _)| *f == "due_date") {
                return Some((n + 1, field, e));
            }
        }
        None
    }

    /// `30 min before`, `1 hour before`, `the day before`, `at 8am`.
    fn reminder(&self, i: usize) -> Option<(usize, Effect)> {
        if self.at(i) == "at" {
            let (t, n) = clock(&self.w[i + 1..])?;
            return Some((n + 1, Box::new(move |f| f.remind_at_time = Some(t))));
        }
        if let Some((t, n)) = clock(&self.w[i..]) {
            return Some((n, Box::new(move |f| f.remind_at_time = Some(t))));
        }
        if self.at(i) == "the" && self.at(i + 2) == "before" {
            let minutes = unit_minutes(1, self.at(i + 1))?;
            return Some((3, Box::new(move |f| f.remind_before = Some(minutes))));
        }
        let n = number(self.at(i))?;
        let minutes = unit_minutes(n, self.at(i + 1))?;
        (self.at(i + 2) == "before").then_some(())?;
        Some((3, Box::new(move |f| f.remind_before = Some(minutes))))
    }

    /// After `every`: the recurrence pattern the engine understands.
    fn recurrence(&self, i: usize) -> Option<(usize, Effect)> {
        let word = self.at(i);
        let simple = match word {
            "day" => Some("daily"),
            "weekday" => Some("weekdays"),
            "weekend" => Some("weekends"),
            "week" => Some("weekly"),
            "month" => None,
            "year" => Some("yearly"),
            _ => None,
        };
        if word == "month" {
            // every month on the 1st / on the 15th
            let (skip, day) = if self.at(i + 1) == "on" && self.at(i + 2) == "the" {
                (3, day_of_month(self.at(i + 3), true))
            } else if self.at(i + 1) == "on" {
                (2, day_of_month(self.at(i + 2), false))
            } else {
                (0, None)
            };
            if let Some(d) = day {
                let today = self.today;
                let pattern = format!("RRULE:FREQ=MONTHLY;BYMONTHDAY={d}");
                return Some((
                    skip + 1,
                    Box::new(move |f| {
                        f.recurrence = Some(pattern);
                        f.recurrence_start = next_month_day(today, d, true);
                    }),
                ));
            }
            return Some((1, Box::new(|f| f.recurrence = Some("monthly".into()))));
        }
        if let Some(p) = simple {
            return Some((1, Box::new(move |f| f.recurrence = Some(p.into()))));
        }
        if word == "other" {
            let unit = match self.at(i + 1) {
                "day" => "days",
                "week" => "weeks",
                "month" => "months",
                "year" => "years",
                _ => return None,
            };
            let p = format!("every 2 {unit}");
            return Some((2, Box::new(move |f| f.recurrence = Some(p))));
        }
        // every 2 weeks [on mon]
        if let Some(n) = self
            .at(i)
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=999).contains(n))
        {
            let unit = match self.at(i + 1) {
                "day" | "days" => "DAILY",
                "week" | "weeks" => "WEEKLY",
                "month" | "months" => "MONTHLY",
                "year" | "years" => "YEARLY",
                _ => return None,
            };
            if unit == "WEEKLY" && self.at(i + 2) == "on" {
                let (days, used) = self.weekday_list(i + 3)?;
                let by: Vec<&str> = days.iter().map(|d| rrule_day(*d)).collect();
                let p = format!("RRULE:FREQ=WEEKLY;INTERVAL={n};BYDAY={}", by.join(","));
                let (today, first) = (self.today, days[0]);
                return Some((
                    3 + used,
                    Box::new(move |f| {
                        f.recurrence = Some(p);
                        f.recurrence_start = Some(next_weekday(today, first));
                    }),
                ));
            }
            let p = format!("RRULE:FREQ={unit};INTERVAL={n}");
            return Some((2, Box::new(move |f| f.recurrence = Some(p))));
        }
        // every mon and thu
        let (days, used) = self.weekday_list(i)?;
        let names: Vec<&str> = days.iter().map(|d| weekday_name(*d)).collect();
        let p = format!("every {}", names.join(" and "));
        let today = self.today;
        Some((
            used,
            Box::new(move |f| {
                f.recurrence = Some(p);
                f.recurrence_start = days.iter().map(|d| next_weekday(today, *d)).min();
            }),
        ))
    }

    /// `mon`, `mon and thu`, `mon, wed and fri`.
    fn weekday_list(&self, i: usize) -> Option<(Vec<Weekday>, usize)> {
        let mut days = vec![weekday(self.at(i))?];
        let mut used = 1;
        loop {
            let next = self.at(i + used);
            if next == "and" {
                if let Some(d) = weekday(self.at(i + used + 1)) {
                    days.push(d);
                    used += 2;
                    continue;
                }
            }
            if let Some(d) = weekday(next) {
                // `mon, thu` (the comma was stripped)
                if self.w[i + used - 1].end < self.w[i + used].start {
                    days.push(d);
                    used += 1;
                    continue;
                }
            }
            break;
        }
        days.sort_by_key(|d| d.num_days_from_monday());
        days.dedup();
        Some((days, used))
    }

    /// A date and/or a time.
    fn when(&self, i: usize) -> Option<(usize, Effect)> {
        let word = self.at(i);
        if let Some((t, n)) = clock(&self.w[i..]) {
            return Some((n, Box::new(move |f| f.time = Some(t))));
        }
        let today = self.today;
        let date = |n: usize, d: NaiveDate| -> Option<(usize, Effect)> {
            Some((n, Box::new(move |f: &mut Found| f.date = Some(d))))
        };
        match word {
            "today" => return date(1, today),
            "tomorrow" | "tmr" | "tmrw" => return date(1, today + Duration::days(1)),
            "next" => {
                return match self.at(i + 1) {
                    "week" => date(2, next_weekday(today, Weekday::Mon)),
                    "month" => date(2, add_months(today.with_day(1)?, 1)),
                    other => weekday(other).and_then(|d| date(2, next_weekday(today, d))),
                };
            }
            "this" => return weekday(self.at(i + 1)).and_then(|d| date(2, next_weekday(today, d))),
            "in" => {
                let n = number(self.at(i + 1))?;
                let unit = self.at(i + 2);
                if let Some(months) = match unit {
                    "month" | "months" => Some(n),
                    "year" | "years" => Some(n * 12),
                    _ => None,
                } {
                    return date(3, add_months(today, months));
                }
                let minutes = unit_minutes(n, unit)?;
                if minutes % 1440 == 0 {
                    return date(3, today + Duration::minutes(minutes));
                }
                let at = time::truncate_to_millis(self.now + Duration::minutes(minutes));
                return Some((3, Box::new(move |f| f.instant = Some(at))));
            }
            "the" => {
                let d = day_of_month(self.at(i + 1), false)?;
                return date(2, next_month_day(today, d, true)?);
            }
            _ => {}
        }
        if let Some(d) = weekday(word) {
            return date(1, next_weekday(today, d));
        }
        // 2026-12-24: four-digit years only (chrono also reads signed,
        // six-digit ones such as +262142-12-31, which no user means).
        if word.len() == 10 && word.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
            if let Ok(d) = NaiveDate::parse_from_str(word, "%Y-%m-%d") {
                return date(1, d);
            }
        }
        // dec 24 [2027] / december 24th
        if let Some(m) = month(word) {
            let d = day_of_month(self.at(i + 1), true)?;
            let year = self
                .at(i + 2)
                .parse::<i32>()
                .ok()
                .filter(|y| (2000..=2100).contains(y));
            let used = if year.is_some() { 3 } else { 2 };
            return date(used, next_date(today, m, d, year)?);
        }
        // 24 dec / 24th of december
        if let Some(d) = day_of_month(word, true) {
            let (m, used) = match (month(self.at(i + 1)), self.at(i + 1)) {
                (Some(m), _) => (m, 2),
                (None, "of") => (month(self.at(i + 2))?, 3),
                _ => return None,
            };
            return date(used, next_date(today, m, d, None)?);
        }
        None
    }
}

/// Local date and time to an instant. A time a DST change skips (a gap of
/// any length: an hour in Berlin, two in Antarctica/Troll, the whole of
/// 2011-12-30 in Pacific/Apia) is read with the offset in force before the
/// gap, as RFC 5545 says, so it lands the same distance past the gap.
fn resolve(tz: Tz, date: NaiveDate, t: NaiveTime) -> Timestamp {
    use chrono::Offset;
    let local = NaiveDateTime::new(date, t);
    if let Some(ts) = tz.from_local_datetime(&local).earliest() {
        return ts.with_timezone(&chrono::Utc);
    }
    // The offset a day before the gap (no zone has two changes a day apart
    // and a gap longer than a day).
    let before = local - Duration::days(1);
    let offset = tz.offset_from_utc_datetime(&before).fix().local_minus_utc();
    chrono::Utc.from_utc_datetime(&(local - Duration::seconds(i64::from(offset))))
}

/// Parses `text` for a user in `tz` at `now`.
pub fn parse(text: &str, tz: Tz, now: Timestamp) -> Result<QuickAdd> {
    if text.trim().is_empty() {
        return Err(DomainError::invalid("text", "must not be empty"));
    }
    // The title comes from these words, so the title's rules apply.
    if text.chars().count() > 200 {
        return Err(DomainError::invalid(
            "text",
            "must be at most 200 characters",
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "text",
            "must not contain control characters",
        ));
    }
    let w = words(text);
    let today = now.with_timezone(&tz).date_naive();
    let parser = Parser { w: &w, today, now };
    let mut found = Found::default();
    let mut spans = Vec::new();
    // The words each span took, beside it: a span given back to the title
    // returns its words to their places.
    let mut span_words = Vec::new();
    let mut title_words = Vec::new();
    let mut i = 0;
    while i < w.len() {
        match parser.phrase(i) {
            // Tags past the limit stay words of the title.
            Some((_, "tags", _)) if found.tags.len() >= crate::model::input::MAX_TAGS => {
                title_words.push(i);
                i += 1;
            }
            Some((n, field, effect)) => {
                effect(&mut found);
                let (start, end) = (w[i].start, w[i + n - 1].end);
                spans.push(Span {
                    start,
                    end,
                    text: text.chars().skip(start).take(end - start).collect(),
                    field,
                });
                span_words.push(i..i + n);
                i += n;
            }
            None => {
                title_words.push(i);
                i += 1;
            }
        }
    }
    let local_now = now.with_timezone(&tz).time();
    let due = if let Some(at) = found.instant {
        Some(at)
    } else {
        let date = found.date.or(found.recurrence_start);
        match (date, found.time) {
            (Some(d), t) => Some(resolve(
                tz,
                d,
                t.unwrap_or_else(|| {
                    NaiveTime::from_hms_opt(DEFAULT_TIME.0, DEFAULT_TIME.1, 0).unwrap()
                }),
            )),
            // A time alone: today if still ahead, else tomorrow.
            (None, Some(t)) => Some(resolve(
                tz,
                if t > local_now {
                    today
                } else {
                    today + Duration::days(1)
                },
                t,
            )),
            (None, None) if found.recurrence.is_some() => {
                let t = NaiveTime::from_hms_opt(DEFAULT_TIME.0, DEFAULT_TIME.1, 0).unwrap();
                Some(resolve(
                    tz,
                    if t > local_now {
                        today
                    } else {
                        today + Duration::days(1)
                    },
                    t,
                ))
            }
            (None, None) => None,
        }
    };
    // `remind me … before` with no due date means nothing: its words go
    // back to the title, in their places, instead of being guessed at.
    if found.remind_before.is_some() && due.is_none() {
        if let Some(k) = spans.iter().position(|s| s.field == "reminder") {
            spans.remove(k);
            title_words.extend(span_words.remove(k));
            title_words.sort_unstable();
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let title = title_words
        .iter()
        .map(|&k| chars[w[k].start..w[k].end].iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches([',', '-', ':'])
        .trim()
        .to_owned();
    // Nothing left for a title: the user's words are the title, so none
    // are lost (the fields are still set).
    let title = if title.is_empty() {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        title
    };
    let mut fields = Map::new();
    fields.insert("title".into(), json!(title));
    if let Some(due) = due {
        fields.insert("due_date".into(), json!(time::format(&due)));
    }
    if let Some(p) = found.recurrence {
        fields.insert("recurrence_pattern".into(), json!(p));
    }
    if let Some(p) = found.priority {
        fields.insert("priority".into(), json!(p));
    }
    if !found.tags.is_empty() {
        found.tags.dedup();
        fields.insert("tags".into(), json!(found.tags));
    }
    match (found.remind_before, found.remind_at_time, due) {
        (Some(m), _, Some(_)) => {
            fields.insert("remind_before_minutes".into(), json!(m));
        }
        (None, Some(t), due) => {
            let day = due.map_or(today, |d| d.with_timezone(&tz).date_naive());
            fields.insert(
                "remind_at".into(),
                json!(time::format(&resolve(tz, day, t))),
            );
        }
        _ => {}
    }
    Ok(QuickAdd {
        title: fields["title"].as_str().unwrap_or_default().to_owned(),
        fields,
        spans,
    })
}

impl Span {
    pub fn to_json(&self) -> Json {
        json!({"text": self.text, "start": self.start, "end": self.end, "field": self.field})
    }
}
