//! Cron schedules: validated expressions and the fire times they produce.

use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::Invalid;

/// A cron expression: five fields (`min hour day month weekday`, as in crontab) or six with
/// seconds first (`sec min hour day month weekday`). Times are UTC.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    text: String,
    schedule: cron::Schedule,
}

impl CronSchedule {
    /// Parses and validates an expression; the error carries the parser's message.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let trimmed = text.trim();
        let fields = trimmed.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {trimmed}"),
            6 | 7 => trimmed.to_owned(),
            _ => {
                return Err(Invalid::new(format!(
                    "`{text}` has {fields} fields; write 5 (min hour day month weekday) or 6 (sec min hour day month weekday)"
                )));
            }
        };
        let schedule = cron::Schedule::from_str(&full)
            .map_err(|e| Invalid::new(format!("`{text}` is not a valid cron expression: {e}")))?;
        if schedule.upcoming(Utc).next().is_none() {
            return Err(Invalid::new(format!("`{text}` never fires")));
        }
        Ok(Self {
            text: trimmed.to_owned(),
            schedule,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The shortest time between two of its next fire times (looked at over the next 1,000,
    /// which covers the irregular expressions too: `* 0 * * * *` fires a second apart within
    /// the hour); `None` when it fires once.
    pub fn shortest_interval(&self) -> Option<chrono::Duration> {
        let times: Vec<DateTime<Utc>> = self.schedule.upcoming(Utc).take(1000).collect();
        times.windows(2).map(|pair| pair[1] - pair[0]).min()
    }

    /// Refuses an expression that fires more often than every `minimum` seconds.
    pub fn at_most_every(self, minimum: u64) -> Result<Self, Invalid> {
        match self.shortest_interval() {
            Some(gap) if gap.num_seconds() < i64::try_from(minimum).unwrap_or(i64::MAX) => Err(Invalid::new(format!(
                "`{}` fires {}s apart; schedules may fire at most every {minimum}s (sync.min_schedule_interval_seconds)",
                self.text,
                gap.num_seconds()
            ))),
            _ => Ok(self),
        }
    }

    /// Every fire time in `(after, until]`, oldest first.
    pub fn fire_times(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.schedule.after(&after).take_while(|t| *t <= until).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_field_forms_parse() {
        assert!(CronSchedule::parse("*/5 * * * *").is_ok());
        assert!(CronSchedule::parse("0 */5 * * * *").is_ok());
        let err = CronSchedule::parse("every minute").expect_err("not cron");
        assert!(err.0.contains("fields"), "{err}");
        let err = CronSchedule::parse("61 * * * *").expect_err("bad minute");
        assert!(err.0.contains("not a valid cron expression"), "{err}");
    }

    #[test]
    fn schedules_firing_too_often_are_refused() {
        let every = |text: &str| CronSchedule::parse(text).expect("valid").at_most_every(60);
        assert!(every("* * * * * *").is_err());
        assert!(every("0,30 * * * * *").is_err());
        assert!(every("* 0 * * * *").is_err(), "a second apart within minute 0");
        assert!(every("*/5 * * * *").is_ok());
        assert!(every("0 * * * * *").is_ok(), "once a minute");
        let message = every("*/10 * * * * *").expect_err("too often").0;
        assert!(message.contains("10s apart") && message.contains("60s"), "{message}");
    }

    #[test]
    fn fire_times_are_half_open() {
        let every_second = CronSchedule::parse("* * * * * *").expect("valid");
        let start = DateTime::from_timestamp(1_000, 0).expect("time");
        let end = DateTime::from_timestamp(1_003, 0).expect("time");
        let times: Vec<i64> = every_second
            .fire_times(start, end)
            .iter()
            .map(DateTime::timestamp)
            .collect();
        assert_eq!(times, [1_001, 1_002, 1_003]);
    }
}
