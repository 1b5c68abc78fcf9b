//! Calendar arithmetic and `strftime`-style formatting for `date` and
//! `ls -l`, in UTC (WASI exposes no time zone).

pub use guest_util::{civil, Civil};
use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Seconds and nanoseconds since the Unix epoch, now.
pub fn now() -> (i64, u32) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => (-(e.duration().as_secs() as i64), 0),
    }
}

/// Formats like `strftime` (the common conversions; the zone is UTC).
pub fn format(t: &Civil, fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        let piece = match spec {
            'Y' => t.year.to_string(),
            'C' => format!("{:02}", t.year / 100),
            'y' => format!("{:02}", t.year % 100),
            'm' => format!("{:02}", t.month),
            'd' => format!("{:02}", t.day),
            'e' => format!("{:>2}", t.day),
            'H' => format!("{:02}", t.hour),
            'I' => format!("{:02}", (t.hour + 11) % 12 + 1),
            'M' => format!("{:02}", t.minute),
            'S' => format!("{:02}", t.second),
            'N' => format!("{:09}", t.nanos),
            'p' => (if t.hour < 12 { "AM" } else { "PM" }).to_string(),
            's' => t.epoch_secs.to_string(),
            'j' => format!("{:03}", t.yday),
            'u' => (if t.weekday == 0 { 7 } else { t.weekday }).to_string(),
            'w' => t.weekday.to_string(),
            'a' => DAYS[t.weekday as usize][..3].to_string(),
            'A' => DAYS[t.weekday as usize].to_string(),
            'b' | 'h' => MONTHS[(t.month - 1) as usize][..3].to_string(),
            'B' => MONTHS[(t.month - 1) as usize].to_string(),
            'Z' => "UTC".to_string(),
            'z' => "+0000".to_string(),
            'F' => format(t, "%Y-%m-%d"),
            'T' => format(t, "%H:%M:%S"),
            'R' => format(t, "%H:%M"),
            'D' => format(t, "%m/%d/%y"),
            'c' => format(t, "%a %b %e %H:%M:%S %Y"),
            'n' => "\n".to_string(),
            't' => "\t".to_string(),
            '%' => "%".to_string(),
            other => format!("%{other}"),
        };
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = civil(0, 0);
        assert_eq!(
            format(&t, "%a %b %e %H:%M:%S %Z %Y"),
            "Thu Jan  1 00:00:00 UTC 1970"
        );
        let t = civil(1_795_830_471, 0); // 2026-11-28T01:47:51Z
        assert_eq!(format(&t, "%F %T %a %j"), "2026-11-28 01:47:51 Sat 332");
        let t = civil(951_782_400, 0); // 2000-02-29
        assert_eq!(format(&t, "%F"), "2000-02-29");
    }
}
