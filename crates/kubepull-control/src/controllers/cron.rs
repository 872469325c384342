//! Cron schedules as the CronJob controller parses them: `github.com/robfig/cron/v3`
//! `ParseStandard` (five fields: minute hour day-of-month month day-of-week; `*`, `?`, ranges,
//! steps, lists, month and weekday names; the descriptors `@yearly`/`@annually`, `@monthly`,
//! `@weekly`, `@daily`/`@midnight`, `@hourly`; a `TZ=`/`CRON_TZ=` prefix), and
//! `SpecSchedule.Next` (spec.go), evaluated in the schedule's time zone.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Why a schedule does not parse (the texts follow robfig/cron).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    tz: TimeZone,
}

const STAR: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

fn bits(min: u32, max: u32, step: u32) -> u64 {
    if step == 1 {
        return !(u64::MAX << (max + 1)) & (u64::MAX << min);
    }
    let mut b = 0;
    let mut i = min;
    while i <= max {
        b |= 1 << i;
        // a step past the range ends it (`"1/4294967295"` must not wrap back to 0)
        match i.checked_add(step) {
            Some(n) => i = n,
            None => break,
        }
    }
    b
}

fn parse_int(expr: &str) -> Result<u32, ScheduleError> {
    expr.parse::<u32>()
        .map_err(|_| ScheduleError(format!("failed to parse int from {expr}")))
}

fn parse_value(expr: &str, r: &Bounds) -> Result<u32, ScheduleError> {
    let lower = expr.to_ascii_lowercase();
    if let Some((_, v)) = r.names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    parse_int(expr)
}

/// `getRange` (parser.go).
fn get_range(expr: &str, r: &Bounds) -> Result<u64, ScheduleError> {
    let (range, step) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let (start, mut end, extra);
    let low_high: Vec<&str> = range.split('-').collect();
    if low_high[0] == "*" || low_high[0] == "?" {
        start = r.min;
        end = r.max;
        extra = STAR;
    } else {
        start = parse_value(low_high[0], r)?;
        end = match low_high.len() {
            1 => start,
            2 => parse_value(low_high[1], r)?,
            _ => return Err(ScheduleError(format!("too many hyphens: {expr}"))),
        };
        extra = 0;
    }
    let step = match step {
        None => 1,
        Some(s) => {
            let st = parse_int(s)?;
            // "*/n" and "n/m" run to the end of the range
            if low_high.len() == 1 {
                end = r.max;
            }
            if st > 1 {
                // a step makes it no longer a star (robfig: extra = 0)
                return check(start, end, st, r, expr).map(|()| bits(start, end, st));
            }
            st
        }
    };
    check(start, end, step, r, expr)?;
    Ok(bits(start, end, step) | extra)
}

fn check(start: u32, end: u32, step: u32, r: &Bounds, expr: &str) -> Result<(), ScheduleError> {
    if start < r.min {
        return Err(ScheduleError(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            r.min
        )));
    }
    if end > r.max {
        return Err(ScheduleError(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            r.max
        )));
    }
    if start > end {
        return Err(ScheduleError(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(ScheduleError(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    Ok(())
}

fn get_field(field: &str, r: &Bounds) -> Result<u64, ScheduleError> {
    let mut b = 0;
    for expr in field.split(',') {
        b |= get_range(expr, r)?;
    }
    Ok(b)
}

impl Schedule {
    /// `cron.ParseStandard`.
    pub fn parse(spec: &str) -> Result<Schedule, ScheduleError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(ScheduleError("empty spec string".into()));
        }
        let mut tz = TimeZone::UTC;
        let mut rest = spec;
        if rest.starts_with("TZ=") || rest.starts_with("CRON_TZ=") {
            let i = rest.find(' ').unwrap_or(rest.len());
            let name = &rest[rest.find('=').map_or(0, |e| e + 1)..i];
            tz = TimeZone::get(name).map_err(|_| {
                ScheduleError(format!(
                    "provided bad location {name}: unknown time zone {name}"
                ))
            })?;
            rest = rest[i..].trim();
        }
        if let Some(d) = rest.strip_prefix('@') {
            let all = |b: &Bounds| bits(b.min, b.max, 1) | STAR;
            let (minute, hour, dom, month, dow) = match d {
                "yearly" | "annually" => (1, 1, 1 << 1, 1 << 1, all(&DOW)),
                "monthly" => (1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
                "weekly" => (1, 1, all(&DOM), all(&MONTHS), 1),
                "daily" | "midnight" => (1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
                "hourly" => (1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
                _ => return Err(ScheduleError(format!("unrecognized descriptor: {rest}"))),
            };
            return Ok(Schedule {
                minute,
                hour,
                dom,
                month,
                dow,
                tz,
            });
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ScheduleError(format!(
                "expected exactly 5 fields, found {}: {rest}",
                fields.len()
            )));
        }
        Ok(Schedule {
            minute: get_field(fields[0], &MINUTES)?,
            hour: get_field(fields[1], &HOURS)?,
            dom: get_field(fields[2], &DOM)?,
            month: get_field(fields[3], &MONTHS)?,
            dow: get_field(fields[4], &DOW)?,
            tz,
        })
    }

    /// The same schedule evaluated in `tz` (a CronJob's `spec.timeZone`).
    pub fn in_zone(mut self, tz: TimeZone) -> Self {
        self.tz = tz;
        self
    }

    fn day_matches(&self, t: DateTime) -> bool {
        let dom = self.dom & (1 << t.day()) != 0;
        let dow = self.dow & (1 << t.weekday().to_sunday_zero_offset()) != 0;
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first activation strictly after `after` (`SpecSchedule.Next`); none within five
    /// years.
    pub fn next(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(self.tz.clone());
        let mut t = zoned
            .datetime()
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let year_limit = t.year() + 5;
        loop {
            if t.year() > year_limit {
                return None;
            }
            if self.month & (1 << t.month()) == 0 {
                t = DateTime::new(t.year(), t.month(), 1, 0, 0, 0, 0)
                    .ok()?
                    .checked_add(1.month())
                    .ok()?;
                continue;
            }
            if !self.day_matches(t) {
                t = t
                    .date()
                    .checked_add(1.day())
                    .ok()?
                    .to_datetime(jiff::civil::Time::midnight());
                continue;
            }
            if self.hour & (1 << t.hour()) == 0 {
                t = t
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if self.minute & (1 << t.minute()) == 0 {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            let at = self.tz.to_ambiguous_zoned(t).compatible().ok()?.timestamp();
            if at > after {
                return Some(at);
            }
            t = t.checked_add(1.minute()).ok()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(spec: &str, from: &str) -> String {
        let s = Schedule::parse(spec).unwrap();
        let t: Timestamp = from.parse().unwrap();
        s.next(t).map(|x| x.to_string()).unwrap_or_default()
    }

    #[test]
    fn next_times_as_robfig() {
        // robfig/cron spec_test.go TestNext (the minute-resolution cases, UTC)
        assert_eq!(
            next("*/15 * * * *", "2012-07-09T14:45:00Z"),
            "2012-07-09T15:00:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2012-07-09T14:59:59Z"),
            "2012-07-09T15:00:00Z"
        );
        assert_eq!(
            next("* * * * *", "2012-07-09T14:45:00Z"),
            "2012-07-09T14:46:00Z"
        );
        // wrap around hours, days, months, years
        assert_eq!(
            next("15 10-11 * * *", "2012-07-09T23:35:00Z"),
            "2012-07-10T10:15:00Z"
        );
        assert_eq!(
            next("*/15 * */2 * *", "2012-07-09T23:46:00Z"),
            "2012-07-11T00:00:00Z"
        );
        assert_eq!(
            next("0 0 1 Feb *", "2012-07-09T23:35:00Z"),
            "2013-02-01T00:00:00Z"
        );
        // leap year
        assert_eq!(
            next("0 0 29 Feb ?", "2012-07-09T23:35:00Z"),
            "2016-02-29T00:00:00Z"
        );
        // day of week and day of month: either matches when both are restricted
        assert_eq!(
            next("0 0 1 * 1", "2012-07-09T23:35:00Z"),
            "2012-07-16T00:00:00Z"
        );
        assert_eq!(
            next("0 0 * * Mon", "2012-07-09T23:35:00Z"),
            "2012-07-16T00:00:00Z"
        );
        // unsatisfiable
        assert_eq!(next("0 0 30 Feb *", "2012-07-09T23:35:00Z"), "");
        assert_eq!(
            next("@hourly", "2012-07-09T14:45:00Z"),
            "2012-07-09T15:00:00Z"
        );
        assert_eq!(
            next("@daily", "2012-07-09T14:45:00Z"),
            "2012-07-10T00:00:00Z"
        );
        assert_eq!(
            next("@weekly", "2012-07-09T14:45:00Z"),
            "2012-07-15T00:00:00Z"
        );
        assert_eq!(
            next("@monthly", "2012-07-09T14:45:00Z"),
            "2012-08-01T00:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2012-07-09T14:45:00Z"),
            "2013-01-01T00:00:00Z"
        );
        // a time zone: 09:00 in New York (EDT, UTC-4 in July)
        assert_eq!(
            next("TZ=America/New_York 0 9 * * *", "2012-07-09T14:45:00Z"),
            "2012-07-10T13:00:00Z"
        );
    }

    proptest::proptest! {
        /// Any text: a schedule or an error, never a panic; a schedule's next activation is
        /// later than the start, on a whole minute, and matches every field.
        #[test]
        fn parse_never_panics_and_next_matches(spec in "\\PC{0,40}", secs in 0i64..4_000_000_000) {
            if let Ok(s) = Schedule::parse(&spec) {
                let from = Timestamp::from_second(secs).unwrap();
                if let Some(n) = s.next(from) {
                    proptest::prop_assert!(n > from);
                    let dt = n.to_zoned(s.tz.clone()).datetime();
                    proptest::prop_assert_eq!(dt.second(), 0);
                    proptest::prop_assert!(s.minute & (1 << dt.minute()) != 0);
                    proptest::prop_assert!(s.hour & (1 << dt.hour()) != 0);
                    proptest::prop_assert!(s.month & (1 << dt.month()) != 0);
                    proptest::prop_assert!(s.day_matches(dt));
                }
            }
        }

        /// Generated five-field specs parse, and the next activation is the first matching
        /// minute (checked minute by minute over the following day for frequent schedules).
        #[test]
        fn next_is_the_first_matching_minute(
            m in 0u32..60, step in 1u32..30, h in proptest::option::of(0u32..24),
            secs in 1_600_000_000i64..1_900_000_000,
        ) {
            let spec = format!("{m}-59/{step} {} * * *", h.map_or("*".to_string(), |h| h.to_string()));
            let s = Schedule::parse(&spec).unwrap();
            let from = Timestamp::from_second(secs).unwrap();
            let n = s.next(from).unwrap();
            let mut t = Timestamp::from_second(secs - secs.rem_euclid(60) + 60).unwrap();
            while t < n {
                let dt = t.to_zoned(TimeZone::UTC).datetime();
                let hit = dt.minute() >= m as i8 && (dt.minute() as u32 - m).is_multiple_of(step)
                    && h.is_none_or(|h| dt.hour() as u32 == h);
                proptest::prop_assert!(!hit, "{spec}: {t} matches before {n}");
                t += jiff::SignedDuration::from_secs(60);
            }
        }
    }

    #[test]
    fn a_step_larger_than_the_range_does_not_wrap() {
        assert_eq!(bits(1, 59, u32::MAX), 1 << 1);
        assert_eq!(bits(0, 59, u32::MAX - 1), 1);
        let s = Schedule::parse("1/4294967295 * * * *").unwrap();
        let n = s
            .next(Timestamp::from_second(1_767_225_600).unwrap())
            .unwrap();
        assert_eq!(
            n.as_second() % 3600,
            60,
            "only minute 1 fires, never minute 0: {n}"
        );
    }

    #[test]
    fn parse_errors() {
        let e = |s: &str| Schedule::parse(s).unwrap_err().0;
        assert_eq!(e("* * * *"), "expected exactly 5 fields, found 4: * * * *");
        assert_eq!(e("60 * * * *"), "end of range (60) above maximum (59): 60");
        assert_eq!(
            e("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            e("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(e("x * * * *"), "failed to parse int from x");
        assert_eq!(e("@fortnightly"), "unrecognized descriptor: @fortnightly");
        assert!(e("TZ=Mars/Base 0 9 * * *").contains("unknown time zone Mars/Base"));
        assert!(Schedule::parse("0 9 * * mon-fri").is_ok());
        assert!(Schedule::parse("1,2,3 */2 1-15/3 JAN-jun *").is_ok());
    }
}
