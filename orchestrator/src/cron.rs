//! CronJob schedules: five-field cron lines and the `@hourly`-style macros
//! (parsed by `croner`), evaluated in a time zone as Kubernetes does:
//! the CronJob's `timeZone`, or the server's own zone when it has none.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// How many missed start times are looked at before giving up on
/// counting (Kubernetes' limit, after which it warns).
pub const MISSED_LIMIT: usize = 100;

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: TimeZone,
}

/// Parses a `spec.schedule`; the error says what is wrong with it.
pub fn parse(schedule: &str) -> Result<Cron, String> {
    let trimmed = schedule.trim();
    if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
    }
    if trimmed.starts_with("@every") {
        return Err("@every is not supported; use a five-field schedule".into());
    }
    if !trimmed.starts_with('@') {
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|e| e.to_string())
}

/// The zone a `spec.timeZone` names; `None` is the server's zone.
pub fn zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None => Ok(TimeZone::system()),
        Some(name) => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}")),
    }
}

impl Schedule {
    pub fn new(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, String> {
        Ok(Schedule {
            cron: parse(schedule)?,
            zone: zone(time_zone)?,
        })
    }

    /// The first start time strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let at = t.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&at, false)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }

    /// The latest start time in `(after, now]`, with how many start times
    /// that interval holds (counted up to [`MISSED_LIMIT`] + 1).
    pub fn most_recent(&self, after: Timestamp, now: Timestamp) -> (Option<Timestamp>, usize) {
        let latest = self
            .cron
            .find_previous_occurrence(&now.to_zoned(self.zone.clone()), true)
            .ok()
            .map(|z: Zoned| z.timestamp())
            .filter(|t| *t > after);
        let Some(latest) = latest else {
            return (None, 0);
        };
        let mut count = 0;
        let mut t = after;
        while let Some(next) = self.next_after(t) {
            if next > latest || count > MISSED_LIMIT {
                break;
            }
            count += 1;
            t = next;
        }
        (Some(latest), count)
    }

    /// The zone times are read in.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn five_fields_and_macros_parse_others_are_refused() {
        assert!(parse("*/1 * * * *").is_ok());
        assert!(parse("@hourly").is_ok());
        assert!(parse("0 0 * * MON-FRI").is_ok());
        assert_eq!(
            parse("* * * *").unwrap_err(),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert!(parse("0 * * * * *").unwrap_err().contains("found 6"));
        assert!(parse("61 * * * *").is_err());
        assert!(
            parse("TZ=UTC 0 * * * *")
                .unwrap_err()
                .contains("timeZone field")
        );
        assert_eq!(
            zone(Some("Mars/Olympus")).unwrap_err(),
            "unknown time zone Mars/Olympus"
        );
    }

    #[test]
    fn next_times_follow_the_zone() {
        let utc = Schedule::new("30 9 * * *", Some("UTC")).unwrap();
        assert_eq!(
            utc.next_after(at("2026-03-01T10:00:00Z")),
            Some(at("2026-03-02T09:30:00Z"))
        );
        // 09:30 in Berlin is 08:30 UTC in winter.
        let berlin = Schedule::new("30 9 * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            berlin.next_after(at("2026-03-01T10:00:00Z")),
            Some(at("2026-03-02T08:30:00Z"))
        );
        let hourly = Schedule::new("@hourly", Some("UTC")).unwrap();
        assert_eq!(
            hourly.next_after(at("2026-03-01T10:00:00Z")),
            Some(at("2026-03-01T11:00:00Z"))
        );
    }

    #[test]
    fn missed_start_times_are_counted_and_the_latest_chosen() {
        let every_minute = Schedule::new("*/1 * * * *", Some("UTC")).unwrap();
        let (latest, missed) =
            every_minute.most_recent(at("2026-03-01T10:00:00Z"), at("2026-03-01T10:05:30Z"));
        assert_eq!(latest, Some(at("2026-03-01T10:05:00Z")));
        assert_eq!(missed, 5);
        let (none, zero) =
            every_minute.most_recent(at("2026-03-01T10:05:00Z"), at("2026-03-01T10:05:59Z"));
        assert_eq!((none, zero), (None, 0));
        // A day of downtime: the latest start, and the count stops past the limit.
        let (latest, missed) =
            every_minute.most_recent(at("2026-03-01T10:00:00Z"), at("2026-03-02T10:00:00Z"));
        assert_eq!(latest, Some(at("2026-03-02T10:00:00Z")));
        assert!(missed > MISSED_LIMIT);
    }

    #[test]
    fn a_schedule_that_never_fires_has_no_next_time() {
        let february_30 = Schedule::new("0 0 30 2 *", Some("UTC")).unwrap();
        assert_eq!(february_30.next_after(at("2026-03-01T10:00:00Z")), None);
    }
}
