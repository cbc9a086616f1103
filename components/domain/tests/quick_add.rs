//! Quick Add's phrase table: each line of English, the title left over and
//! exactly the fields it sets, for a user in UTC on Sunday 2026-11-29 at
//! 18:00; then time zones and the 2026 DST changes of Europe/Berlin and
//! America/New_York. Every recurrence pattern it writes parses.

use serde_json::{json, Value as Json};
use todo_domain::quick_add::{self, zone};
use todo_domain::{recurrence::rules, time, TaskPatch};

const NOW: &str = "2026-11-29T18:00:00Z";

/// (text, title, the other fields as JSON)
const PHRASES: &[(&str, &str, &str)] = &[
    ("buy milk", "buy milk", r#"{}"#),
    (
        "buy milk today",
        "buy milk",
        r#"{"due_date": "2026-11-29T09:00:00Z"}"#,
    ),
    (
        "buy milk tomorrow",
        "buy milk",
        r#"{"due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "buy milk tmrw",
        "buy milk",
        r#"{"due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "buy milk tomorrow 5pm",
        "buy milk",
        r#"{"due_date": "2026-11-30T17:00:00Z"}"#,
    ),
    (
        "buy milk tomorrow at 5pm",
        "buy milk",
        r#"{"due_date": "2026-11-30T17:00:00Z"}"#,
    ),
    (
        "buy milk tomorrow at 5:30 pm",
        "buy milk",
        r#"{"due_date": "2026-11-30T17:30:00Z"}"#,
    ),
    (
        "buy milk at 5pm",
        "buy milk",
        r#"{"due_date": "2026-11-30T17:00:00Z"}"#,
    ),
    (
        "buy milk 9pm",
        "buy milk",
        r#"{"due_date": "2026-11-29T21:00:00Z"}"#,
    ),
    (
        "buy milk at 21:15",
        "buy milk",
        r#"{"due_date": "2026-11-29T21:15:00Z"}"#,
    ),
    (
        "buy milk at noon",
        "buy milk",
        r#"{"due_date": "2026-11-30T12:00:00Z"}"#,
    ),
    (
        "buy milk tomorrow noon",
        "buy milk",
        r#"{"due_date": "2026-11-30T12:00:00Z"}"#,
    ),
    (
        "buy milk at midnight",
        "buy milk",
        r#"{"due_date": "2026-11-30T00:00:00Z"}"#,
    ),
    (
        "call mom in 3 days",
        "call mom",
        r#"{"due_date": "2026-12-02T09:00:00Z"}"#,
    ),
    (
        "call mom in 2 hours",
        "call mom",
        r#"{"due_date": "2026-11-29T20:00:00Z"}"#,
    ),
    (
        "call mom in 30 min",
        "call mom",
        r#"{"due_date": "2026-11-29T18:30:00Z"}"#,
    ),
    (
        "call mom in 45 minutes",
        "call mom",
        r#"{"due_date": "2026-11-29T18:45:00Z"}"#,
    ),
    (
        "call mom in an hour",
        "call mom",
        r#"{"due_date": "2026-11-29T19:00:00Z"}"#,
    ),
    (
        "call mom in 1 week",
        "call mom",
        r#"{"due_date": "2026-12-06T09:00:00Z"}"#,
    ),
    (
        "call mom in 2 weeks",
        "call mom",
        r#"{"due_date": "2026-12-13T09:00:00Z"}"#,
    ),
    (
        "call mom in 2 months",
        "call mom",
        r#"{"due_date": "2027-01-29T09:00:00Z"}"#,
    ),
    (
        "call mom in a year",
        "call mom",
        r#"{"due_date": "2027-11-29T09:00:00Z"}"#,
    ),
    (
        "dentist next fri",
        "dentist",
        r#"{"due_date": "2026-12-04T09:00:00Z"}"#,
    ),
    (
        "dentist this fri",
        "dentist",
        r#"{"due_date": "2026-12-04T09:00:00Z"}"#,
    ),
    (
        "dentist next week",
        "dentist",
        r#"{"due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "dentist next month",
        "dentist",
        r#"{"due_date": "2026-12-01T09:00:00Z"}"#,
    ),
    (
        "pay rent on the 1st",
        "pay rent",
        r#"{"due_date": "2026-12-01T09:00:00Z"}"#,
    ),
    (
        "pay rent the 15th",
        "pay rent",
        r#"{"due_date": "2026-12-15T09:00:00Z"}"#,
    ),
    (
        "pay rent on the 31st",
        "pay rent",
        r#"{"due_date": "2026-12-31T09:00:00Z"}"#,
    ),
    (
        "party dec 24 at 18:30",
        "party",
        r#"{"due_date": "2026-12-24T18:30:00Z"}"#,
    ),
    (
        "party on dec 24 at 6pm",
        "party",
        r#"{"due_date": "2026-12-24T18:00:00Z"}"#,
    ),
    (
        "party december 24th",
        "party",
        r#"{"due_date": "2026-12-24T09:00:00Z"}"#,
    ),
    (
        "party 24 dec",
        "party",
        r#"{"due_date": "2026-12-24T09:00:00Z"}"#,
    ),
    (
        "party 24th of december",
        "party",
        r#"{"due_date": "2026-12-24T09:00:00Z"}"#,
    ),
    (
        "party dec 24 2027",
        "party",
        r#"{"due_date": "2027-12-24T09:00:00Z"}"#,
    ),
    (
        "party on 2026-12-24",
        "party",
        r#"{"due_date": "2026-12-24T09:00:00Z"}"#,
    ),
    (
        "renew passport jan 5",
        "renew passport",
        r#"{"due_date": "2027-01-05T09:00:00Z"}"#,
    ),
    (
        "renew passport sept 3",
        "renew passport",
        r#"{"due_date": "2027-09-03T09:00:00Z"}"#,
    ),
    (
        "renew passport due dec 1",
        "renew passport",
        r#"{"due_date": "2026-12-01T09:00:00Z"}"#,
    ),
    (
        "renew passport by friday",
        "renew passport",
        r#"{"due_date": "2026-12-04T09:00:00Z"}"#,
    ),
    (
        "report by friday 5pm",
        "report",
        r#"{"due_date": "2026-12-04T17:00:00Z"}"#,
    ),
    (
        "report friday 8am",
        "report",
        r#"{"due_date": "2026-12-04T08:00:00Z"}"#,
    ),
    (
        "Submit Report Tomorrow 5PM",
        "Submit Report",
        r#"{"due_date": "2026-11-30T17:00:00Z"}"#,
    ),
    (
        "water plants, tomorrow",
        "water plants",
        r#"{"due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    ("gym mon", "gym", r#"{"due_date": "2026-11-30T09:00:00Z"}"#),
    (
        "gym monday",
        "gym",
        r#"{"due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    ("gym tue", "gym", r#"{"due_date": "2026-12-01T09:00:00Z"}"#),
    ("gym tues", "gym", r#"{"due_date": "2026-12-01T09:00:00Z"}"#),
    (
        "gym tuesday",
        "gym",
        r#"{"due_date": "2026-12-01T09:00:00Z"}"#,
    ),
    ("gym wed", "gym", r#"{"due_date": "2026-12-02T09:00:00Z"}"#),
    (
        "gym wednesday",
        "gym",
        r#"{"due_date": "2026-12-02T09:00:00Z"}"#,
    ),
    ("gym thu", "gym", r#"{"due_date": "2026-12-03T09:00:00Z"}"#),
    (
        "gym thurs",
        "gym",
        r#"{"due_date": "2026-12-03T09:00:00Z"}"#,
    ),
    (
        "gym thursday",
        "gym",
        r#"{"due_date": "2026-12-03T09:00:00Z"}"#,
    ),
    ("gym fri", "gym", r#"{"due_date": "2026-12-04T09:00:00Z"}"#),
    (
        "gym friday",
        "gym",
        r#"{"due_date": "2026-12-04T09:00:00Z"}"#,
    ),
    ("gym sat", "gym", r#"{"due_date": "2026-12-05T09:00:00Z"}"#),
    (
        "gym saturday",
        "gym",
        r#"{"due_date": "2026-12-05T09:00:00Z"}"#,
    ),
    ("gym sun", "gym", r#"{"due_date": "2026-12-06T09:00:00Z"}"#),
    (
        "gym sunday",
        "gym",
        r#"{"due_date": "2026-12-06T09:00:00Z"}"#,
    ),
    (
        "trip jan 10",
        "trip",
        r#"{"due_date": "2027-01-10T09:00:00Z"}"#,
    ),
    (
        "trip feb 10",
        "trip",
        r#"{"due_date": "2027-02-10T09:00:00Z"}"#,
    ),
    (
        "trip mar 10",
        "trip",
        r#"{"due_date": "2027-03-10T09:00:00Z"}"#,
    ),
    (
        "trip apr 10",
        "trip",
        r#"{"due_date": "2027-04-10T09:00:00Z"}"#,
    ),
    (
        "trip may 10",
        "trip",
        r#"{"due_date": "2027-05-10T09:00:00Z"}"#,
    ),
    (
        "trip jun 10",
        "trip",
        r#"{"due_date": "2027-06-10T09:00:00Z"}"#,
    ),
    (
        "trip jul 10",
        "trip",
        r#"{"due_date": "2027-07-10T09:00:00Z"}"#,
    ),
    (
        "trip aug 10",
        "trip",
        r#"{"due_date": "2027-08-10T09:00:00Z"}"#,
    ),
    (
        "trip sep 10",
        "trip",
        r#"{"due_date": "2027-09-10T09:00:00Z"}"#,
    ),
    (
        "trip oct 10",
        "trip",
        r#"{"due_date": "2027-10-10T09:00:00Z"}"#,
    ),
    (
        "trip nov 10",
        "trip",
        r#"{"due_date": "2027-11-10T09:00:00Z"}"#,
    ),
    (
        "trip dec 10",
        "trip",
        r#"{"due_date": "2026-12-10T09:00:00Z"}"#,
    ),
    (
        "stretch at 7am",
        "stretch",
        r#"{"due_date": "2026-11-30T07:00:00Z"}"#,
    ),
    (
        "stretch at 7:45am",
        "stretch",
        r#"{"due_date": "2026-11-30T07:45:00Z"}"#,
    ),
    (
        "stretch at 11pm",
        "stretch",
        r#"{"due_date": "2026-11-29T23:00:00Z"}"#,
    ),
    (
        "stretch at 11:59pm",
        "stretch",
        r#"{"due_date": "2026-11-29T23:59:00Z"}"#,
    ),
    (
        "stretch at 12am",
        "stretch",
        r#"{"due_date": "2026-11-30T00:00:00Z"}"#,
    ),
    (
        "stretch at 12pm",
        "stretch",
        r#"{"due_date": "2026-11-30T12:00:00Z"}"#,
    ),
    (
        "stretch at 6 pm",
        "stretch",
        r#"{"due_date": "2026-11-30T18:00:00Z"}"#,
    ),
    (
        "stretch at 19:00",
        "stretch",
        r#"{"due_date": "2026-11-29T19:00:00Z"}"#,
    ),
    (
        "stretch at 08:30",
        "stretch",
        r#"{"due_date": "2026-11-30T08:30:00Z"}"#,
    ),
    (
        "stretch at 5 am",
        "stretch",
        r#"{"due_date": "2026-11-30T05:00:00Z"}"#,
    ),
    ("fix bug p1", "fix bug", r#"{"priority": "urgent"}"#),
    ("fix bug p2", "fix bug", r#"{"priority": "high"}"#),
    ("fix bug p3", "fix bug", r#"{"priority": "medium"}"#),
    ("fix bug p4", "fix bug", r#"{"priority": "low"}"#),
    ("urgent fix bug", "fix bug", r#"{"priority": "urgent"}"#),
    ("fix bug #work", "fix bug", r#"{"tags": ["work"]}"#),
    (
        "fix bug #work #backend",
        "fix bug",
        r#"{"tags": ["work", "backend"]}"#,
    ),
    (
        "#errands buy stamps",
        "buy stamps",
        r#"{"tags": ["errands"]}"#,
    ),
    (
        "buy stamps #errands tomorrow p2",
        "buy stamps",
        r#"{"tags": ["errands"], "due_date": "2026-11-30T09:00:00Z", "priority": "high"}"#,
    ),
    (
        "buy stamps #Errands",
        "buy stamps",
        r#"{"tags": ["errands"]}"#,
    ),
    (
        "email #team-lead about #q4_plan",
        "email about",
        r#"{"tags": ["team-lead", "q4_plan"]}"#,
    ),
    (
        "buy café au lait #café",
        "buy café au lait",
        r#"{"tags": ["café"]}"#,
    ),
    (
        "stand-up every day",
        "stand-up",
        r#"{"recurrence_pattern": "daily", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "stand-up every day at 9:30am",
        "stand-up",
        r#"{"recurrence_pattern": "daily", "due_date": "2026-11-30T09:30:00Z"}"#,
    ),
    (
        "stand-up every weekday",
        "stand-up",
        r#"{"recurrence_pattern": "weekdays", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "stand-up every weekday 10am",
        "stand-up",
        r#"{"recurrence_pattern": "weekdays", "due_date": "2026-11-30T10:00:00Z"}"#,
    ),
    (
        "laundry every weekend",
        "laundry",
        r#"{"recurrence_pattern": "weekends", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "review every week",
        "review",
        r#"{"recurrence_pattern": "weekly", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "review every month",
        "review",
        r#"{"recurrence_pattern": "monthly", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "birthday every year dec 24",
        "birthday",
        r#"{"recurrence_pattern": "yearly", "due_date": "2026-12-24T09:00:00Z"}"#,
    ),
    (
        "plants every other day",
        "plants",
        r#"{"recurrence_pattern": "every 2 days", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "plants every other week",
        "plants",
        r#"{"recurrence_pattern": "every 2 weeks", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "plants every 3 days",
        "plants",
        r#"{"recurrence_pattern": "RRULE:FREQ=DAILY;INTERVAL=3", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "plants every 2 weeks",
        "plants",
        r#"{"recurrence_pattern": "RRULE:FREQ=WEEKLY;INTERVAL=2", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "plants every 6 months",
        "plants",
        r#"{"recurrence_pattern": "RRULE:FREQ=MONTHLY;INTERVAL=6", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "taxes every 1 year",
        "taxes",
        r#"{"recurrence_pattern": "RRULE:FREQ=YEARLY;INTERVAL=1", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "1:1 every 2 weeks on mon",
        "1:1",
        r#"{"recurrence_pattern": "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "1:1 every 2 weeks on tue and thu",
        "1:1",
        r#"{"recurrence_pattern": "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH", "due_date": "2026-12-01T09:00:00Z"}"#,
    ),
    (
        "1:1 every 2 weeks on fri 3pm",
        "1:1",
        r#"{"recurrence_pattern": "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", "due_date": "2026-12-04T15:00:00Z"}"#,
    ),
    (
        "gym every monday",
        "gym",
        r#"{"recurrence_pattern": "every monday", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "gym every mon and thu",
        "gym",
        r#"{"recurrence_pattern": "every monday and thursday", "due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "gym every tue, thu",
        "gym",
        r#"{"recurrence_pattern": "every tuesday and thursday", "due_date": "2026-12-01T09:00:00Z"}"#,
    ),
    (
        "gym every mon, wed and fri 7am",
        "gym",
        r#"{"recurrence_pattern": "every monday and wednesday and friday", "due_date": "2026-11-30T07:00:00Z"}"#,
    ),
    (
        "gym every saturday at 10am",
        "gym",
        r#"{"recurrence_pattern": "every saturday", "due_date": "2026-12-05T10:00:00Z"}"#,
    ),
    (
        "rent every month on the 1st",
        "rent",
        r#"{"recurrence_pattern": "RRULE:FREQ=MONTHLY;BYMONTHDAY=1", "due_date": "2026-12-01T09:00:00Z"}"#,
    ),
    (
        "rent every month on the 15th 8am",
        "rent",
        r#"{"recurrence_pattern": "RRULE:FREQ=MONTHLY;BYMONTHDAY=15", "due_date": "2026-12-15T08:00:00Z"}"#,
    ),
    (
        "rent every month on 28th",
        "rent",
        r#"{"recurrence_pattern": "RRULE:FREQ=MONTHLY;BYMONTHDAY=28", "due_date": "2026-12-28T09:00:00Z"}"#,
    ),
    (
        "rent every month on the 29",
        "rent",
        r#"{"recurrence_pattern": "RRULE:FREQ=MONTHLY;BYMONTHDAY=29", "due_date": "2026-11-29T09:00:00Z"}"#,
    ),
    (
        "pay rent on the 1st every month 9am",
        "pay rent",
        r#"{"recurrence_pattern": "monthly", "due_date": "2026-12-01T09:00:00Z"}"#,
    ),
    (
        "pay rent on the 1st every month 9am remind me the day before",
        "pay rent",
        r#"{"recurrence_pattern": "monthly", "due_date": "2026-12-01T09:00:00Z", "remind_before_minutes": 1440}"#,
    ),
    (
        "meeting tomorrow 3pm remind me 30 min before",
        "meeting",
        r#"{"due_date": "2026-11-30T15:00:00Z", "remind_before_minutes": 30}"#,
    ),
    (
        "meeting tomorrow 3pm remind me 1 hour before",
        "meeting",
        r#"{"due_date": "2026-11-30T15:00:00Z", "remind_before_minutes": 60}"#,
    ),
    (
        "meeting tomorrow 3pm remind me 2 hours before",
        "meeting",
        r#"{"due_date": "2026-11-30T15:00:00Z", "remind_before_minutes": 120}"#,
    ),
    (
        "meeting tomorrow 3pm remind me 10 mins before",
        "meeting",
        r#"{"due_date": "2026-11-30T15:00:00Z", "remind_before_minutes": 10}"#,
    ),
    (
        "meeting fri 3pm remind me 2 days before",
        "meeting",
        r#"{"due_date": "2026-12-04T15:00:00Z", "remind_before_minutes": 2880}"#,
    ),
    (
        "meeting fri remind me a week before",
        "meeting",
        r#"{"due_date": "2026-12-04T09:00:00Z", "remind_before_minutes": 10080}"#,
    ),
    (
        "meeting fri remind me the hour before",
        "meeting",
        r#"{"due_date": "2026-12-04T09:00:00Z", "remind_before_minutes": 60}"#,
    ),
    (
        "meeting tomorrow remind me at 8am",
        "meeting",
        r#"{"due_date": "2026-11-30T09:00:00Z", "remind_at": "2026-11-30T08:00:00Z"}"#,
    ),
    (
        "meeting dec 24 remind me at 7:30am",
        "meeting",
        r#"{"due_date": "2026-12-24T09:00:00Z", "remind_at": "2026-12-24T07:30:00Z"}"#,
    ),
    (
        "call bank remind me at 10pm",
        "call bank",
        r#"{"remind_at": "2026-11-29T22:00:00Z"}"#,
    ),
    (
        "call bank remind me 9am",
        "call bank",
        r#"{"remind_at": "2026-11-29T09:00:00Z"}"#,
    ),
    ("meet at 9", "meet at 9", r#"{}"#),
    (
        "meet at 9 tomorrow",
        "meet at 9",
        r#"{"due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    ("pay 12/11", "pay 12/11", r#"{}"#),
    ("water plants every!", "water plants every!", r#"{}"#),
    ("read every chapter", "read every chapter", r#"{}"#),
    ("weekly report", "weekly report", r#"{}"#),
    ("daily standup notes", "daily standup notes", r#"{}"#),
    ("book the 32nd floor", "book the 32nd floor", r#"{}"#),
    ("on call rota", "on call rota", r#"{}"#),
    ("buy 2 apples", "buy 2 apples", r#"{}"#),
    ("in the garden", "in the garden", r#"{}"#),
    ("next steps for launch", "next steps for launch", r#"{}"#),
    ("watch may december", "watch may december", r#"{}"#),
    ("march on washington", "march on washington", r#"{}"#),
    ("p5 review", "p5 review", r#"{}"#),
    (
        "email the 1st draft",
        "email draft",
        r#"{"due_date": "2026-12-01T09:00:00Z"}"#,
    ),
    ("fix #", "fix #", r#"{}"#),
    (
        "room 101 cleanup at 25:00",
        "room 101 cleanup at 25:00",
        r#"{}"#,
    ),
    (
        "remind me later to call",
        "remind me later to call",
        r#"{}"#,
    ),
    ("this is fine", "this is fine", r#"{}"#),
    ("mondays are hard", "mondays are hard", r#"{}"#),
    ("in 0 days", "in 0 days", r#"{}"#),
    ("plan trip every 0 days", "plan trip every 0 days", r#"{}"#),
    (
        "buy milk tomorrow tomorrow",
        "buy milk",
        r#"{"due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    (
        "  spaced   out   title   tomorrow ",
        "spaced out title",
        r#"{"due_date": "2026-11-30T09:00:00Z"}"#,
    ),
    ("日本語のタスク 明日", "日本語のタスク 明日", r#"{}"#),
    (
        "émigré paperwork fri",
        "émigré paperwork",
        r#"{"due_date": "2026-12-04T09:00:00Z"}"#,
    ),
];

#[test]
fn the_phrase_table() {
    assert!(PHRASES.len() >= 150, "{} phrases", PHRASES.len());
    let now = time::parse("now", NOW).unwrap();
    let utc = zone("time_zone", "UTC").unwrap();
    let mut failures = Vec::new();
    for (text, title, fields) in PHRASES {
        let mut expected: serde_json::Map<String, Json> = serde_json::from_str(fields).unwrap();
        expected.insert("title".into(), json!(title));
        match quick_add::parse(text, utc, now) {
            Ok(parsed) => {
                if parsed.fields != expected {
                    failures.push(format!(
                        "{text:?}\n  got      {}\n  expected {}",
                        Json::Object(parsed.fields),
                        Json::Object(expected)
                    ));
                    continue;
                }
                // What it produces is a valid create request.
                TaskPatch::from_json(&parsed.fields).unwrap_or_else(|e| panic!("{text:?}: {e}"));
                if let Some(p) = parsed.fields.get("recurrence_pattern") {
                    rules::parse(p.as_str().unwrap()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
                }
                // Every understood span is a piece of the text.
                for span in &parsed.spans {
                    let piece: String = text
                        .chars()
                        .skip(span.start)
                        .take(span.end - span.start)
                        .collect();
                    assert_eq!(piece, span.text, "{text:?}");
                }
            }
            Err(e) => failures.push(format!("{text:?}: error {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} phrases differ:\n{}",
        failures.len(),
        PHRASES.len(),
        failures.join("\n")
    );
}

#[test]
fn nothing_left_for_a_title_and_unknown_zones_name_the_field() {
    let now = time::parse("now", NOW).unwrap();
    let utc = zone("time_zone", "UTC").unwrap();
    let long = "x".repeat(201);
    for text in ["", "   ", "a\u{c}b", "tab\there", long.as_str()] {
        let err = quick_add::parse(text, utc, now).unwrap_err();
        assert_eq!(err.field(), Some("text"), "{text:?}");
    }
    // Nothing left for a title: the words are the title, the fields set.
    let all = quick_add::parse("tomorrow  5pm", utc, now).unwrap();
    assert_eq!(all.fields["title"], "tomorrow 5pm");
    assert_eq!(all.fields["due_date"], "2026-11-30T17:00:00Z");
    let err = zone("time_zone", "Mars/Olympus").unwrap_err();
    assert_eq!(err.field(), Some("time_zone"));
    // A relative reminder without a due date is not guessed at.
    let no_due = quick_add::parse("call remind me 5 min before", utc, now).unwrap();
    assert_eq!(no_due.fields["title"], "call remind me 5 min before");
    assert!(no_due.fields.get("remind_before_minutes").is_none());
    // Tags past twenty stay in the title.
    let many: Vec<String> = (0..22).map(|i| format!("#t{i}")).collect();
    let tagged = quick_add::parse(&format!("x {}", many.join(" ")), utc, now).unwrap();
    assert_eq!(tagged.fields["tags"].as_array().unwrap().len(), 20);
    assert_eq!(tagged.fields["title"], "x #t20 #t21");
}

fn due(text: &str, zone_name: &str, now: &str) -> String {
    let now = time::parse("now", now).unwrap();
    let parsed = quick_add::parse(text, zone(zone_name, zone_name).unwrap(), now).unwrap();
    parsed.fields["due_date"].as_str().unwrap().to_owned()
}

#[test]
fn times_are_the_users_local_times() {
    // 19:00 in Berlin (CET, UTC+1), 13:00 in New York (EST, UTC-5).
    assert_eq!(
        due("x tomorrow 9am", "Europe/Berlin", NOW),
        "2026-11-30T08:00:00Z"
    );
    assert_eq!(
        due("x 5pm", "America/New_York", NOW),
        "2026-11-29T22:00:00Z"
    );
    assert_eq!(due("x 5pm", "Europe/Berlin", NOW), "2026-11-30T16:00:00Z");
    // Late evening in UTC is already tomorrow in Tokyo.
    assert_eq!(due("x today", "Asia/Tokyo", NOW), "2026-11-30T00:00:00Z");
}

#[test]
fn dates_across_the_2026_dst_changes() {
    // Berlin springs forward on Sunday 29 March 2026 (02:00 -> 03:00).
    let sat = "2026-03-28T12:00:00Z";
    assert_eq!(
        due("x tomorrow 9am", "Europe/Berlin", sat),
        "2026-03-29T07:00:00Z"
    );
    assert_eq!(
        due("x today 9pm", "Europe/Berlin", sat),
        "2026-03-28T20:00:00Z"
    );
    // 02:30 does not exist that night: the first instant after the gap.
    assert_eq!(
        due("x tomorrow 2:30am", "Europe/Berlin", sat),
        "2026-03-29T01:30:00Z"
    );
    // And falls back on Sunday 25 October 2026 (03:00 -> 02:00).
    let oct = "2026-10-24T12:00:00Z";
    assert_eq!(
        due("x tomorrow 9am", "Europe/Berlin", oct),
        "2026-10-25T08:00:00Z"
    );
    // 02:30 happens twice: the first (summer time) one.
    assert_eq!(
        due("x tomorrow 2:30am", "Europe/Berlin", oct),
        "2026-10-25T00:30:00Z"
    );
    // New York: 8 March 2026 forward, 1 November 2026 back.
    assert_eq!(
        due("x tomorrow 9am", "America/New_York", "2026-03-07T17:00:00Z"),
        "2026-03-08T13:00:00Z"
    );
    assert_eq!(
        due("x mon 9am", "America/New_York", "2026-03-07T17:00:00Z"),
        "2026-03-09T13:00:00Z"
    );
    assert_eq!(
        due("x tomorrow 9am", "America/New_York", "2026-10-31T17:00:00Z"),
        "2026-11-01T14:00:00Z"
    );
    assert_eq!(
        due("x in 2 hours", "America/New_York", "2026-11-01T05:30:00Z"),
        "2026-11-01T07:30:00Z"
    );
}

/// Issue 21 item 6: these answered with a panic (a 500 or a trap).
#[test]
fn gaps_of_any_length_missing_days_and_extreme_years_do_not_panic() {
    // Antarctica/Troll jumps two hours (01:00 -> 03:00 local, +00 -> +02)
    // on 28 March 2027: 01:30 is read with the offset before the gap.
    assert_eq!(
        due("x 2027-03-28 1:30am", "Antarctica/Troll", NOW),
        "2027-03-28T01:30:00Z"
    );
    // Samoa skipped 30 December 2011 whole (-10 -> +14).
    assert_eq!(
        due("x 2011-12-30", "Pacific/Apia", NOW),
        "2011-12-30T19:00:00Z"
    );
    // A signed six-digit year is no date a user means: it stays in the title.
    let now = time::parse("now", NOW).unwrap();
    let utc = zone("time_zone", "UTC").unwrap();
    let extreme = quick_add::parse("x +262142-12-31 11pm", utc, now).unwrap();
    assert_eq!(extreme.fields["title"], "x +262142-12-31");
    assert_eq!(extreme.fields["due_date"], "2026-11-29T23:00:00Z");
    // A relative reminder without a due date returns to the title once.
    let alone = quick_add::parse("remind me 30 min before", utc, now).unwrap();
    assert_eq!(alone.fields["title"], "remind me 30 min before");
    assert!(alone.spans.is_empty());
    let inside = quick_add::parse("call remind me 5 min before mum", utc, now).unwrap();
    assert_eq!(inside.fields["title"], "call remind me 5 min before mum");
}

/// Parses `text` and holds the answer to what the API makes of it: a
/// create request that validates (201), or an error naming a field (422).
fn parses_to_201_or_422(text: &str, tz: chrono_tz::Tz, now: todo_domain::time::Timestamp) {
    match quick_add::parse(text, tz, now) {
        Ok(parsed) => {
            if let Err(e) = TaskPatch::from_json(&parsed.fields) {
                assert!(e.field().is_some(), "{text:?} in {tz}: {e}");
            }
        }
        Err(e) => assert!(e.field().is_some(), "{text:?} in {tz}: {e}"),
    }
}

/// Every IANA zone, at the DST edges and the ends of the year range.
#[test]
fn every_zone_answers_at_its_edges() {
    let nows = [
        "0001-01-01T00:00:00Z",
        "2011-12-29T12:00:00Z",
        "2026-11-29T18:00:00Z",
        "9999-12-30T12:00:00Z",
    ];
    let texts = [
        "x 2027-03-28 1:30am",
        "x 2011-12-30",
        "x 0000-01-01 12:30am",
        "x 9999-12-31 11pm",
        "x tomorrow 2:30am",
        "x today midnight remind me 30 min before",
        "x every day 1:30am",
        "x in 999 years",
        "x next month 11:59pm",
    ];
    for tz in chrono_tz::TZ_VARIANTS {
        for now in nows {
            let now = time::parse("now", now).unwrap();
            for text in texts {
                parses_to_201_or_422(text, tz, now);
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

    /// Any zone, any four-digit year, any local time: never a panic.
    #[test]
    fn any_zone_any_year_any_time(
        zone_index in 0..chrono_tz::TZ_VARIANTS.len(),
        year in 0i32..=9999,
        month in 1u32..=12,
        day in 1u32..=31,
        hour in 1u32..=12,
        minute in 0u32..60,
        pm in proptest::bool::ANY,
        now_secs in -62_135_596_800i64..253_402_214_400,
    ) {
        let tz = chrono_tz::TZ_VARIANTS[zone_index];
        let now = chrono::DateTime::from_timestamp(now_secs, 0).unwrap();
        let meridiem = if pm { "pm" } else { "am" };
        let text = format!("x {year:04}-{month:02}-{day:02} {hour}:{minute:02}{meridiem} every day remind me 1 day before");
        parses_to_201_or_422(&text, tz, now);
    }
}
