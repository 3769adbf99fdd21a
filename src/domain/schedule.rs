//! Schedules (SPEC §4) as plain data: triggers, the fire-time computation (cron through the
//! `croner` crate in an IANA time zone from `chrono-tz`, DST included), and the misfire
//! decision taken when slots were missed while steward was down. No actix, no diesel.

use std::str::FromStr;

use chrono::{NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Millis;

/// The most missed slots `catch_up` replays after an outage; older ones are dropped (logged),
/// so a per-minute schedule down for a month does not flood the queue.
pub const MAX_CATCH_UP: usize = 100;
/// Default of `misfire_grace_secs`: a slot fired later than this counts as missed.
pub const DEFAULT_MISFIRE_GRACE_SECS: f64 = 5.0;

/// When a schedule fires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// 5-field cron (ranges, lists, steps, names like `MON-FRI`) read in `timezone`.
    Cron { cron: String, timezone: String },
    /// Every `interval_secs`, counted from `start_at` (the first slot).
    Interval {
        interval_secs: f64,
        start_at: Millis,
    },
    /// One slot.
    Once { once_at: Millis },
    /// Never by itself: only `POST .../trigger` (seed 003's groups without a schedule).
    Manual,
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Cron { .. } => "cron",
            Trigger::Interval { .. } => "interval",
            Trigger::Once { .. } => "once",
            Trigger::Manual => "manual",
        }
    }

    /// A cron trigger, checked: the expression must have exactly five fields and parse, the
    /// time zone must be an IANA name.
    pub fn cron(expr: &str, timezone: &str) -> Result<Trigger, TriggerError> {
        parse_cron(expr)?;
        parse_tz(timezone)?;
        Ok(Trigger::Cron {
            cron: expr.trim().to_string(),
            timezone: timezone.to_string(),
        })
    }

    /// The first slot strictly after `after`, or `None` when there is none.
    pub fn next_after(&self, after: Millis) -> Option<Millis> {
        match self {
            Trigger::Cron { cron, timezone } => {
                let cron = parse_cron(cron).ok()?;
                let tz = parse_tz(timezone).ok()?;
                let start = tz.timestamp_millis_opt(after).single()?;
                // croner moves in real time and applies the DST rules (a fixed time in a gap
                // fires right after it; in a repeated hour it fires on the first pass only).
                let next = cron.find_next_occurrence(&start, false).ok()?;
                Some(next.timestamp_millis())
            }
            Trigger::Interval {
                interval_secs,
                start_at,
            } => {
                let step = (interval_secs * 1000.0).round() as i64;
                if step <= 0 {
                    return None;
                }
                if after < *start_at {
                    return Some(*start_at);
                }
                let k = (after - start_at) / step + 1;
                Some(start_at + k * step)
            }
            Trigger::Once { once_at } => (*once_at > after).then_some(*once_at),
            Trigger::Manual => None,
        }
    }

    /// The slots in `(after, until]`, oldest first, at most `cap` of the newest ones, and how
    /// many older ones were left out.
    pub fn slots_between(&self, after: Millis, until: Millis, cap: usize) -> (Vec<Millis>, usize) {
        let mut slots = std::collections::VecDeque::new();
        let mut dropped = 0;
        let mut at = after;
        while let Some(next) = self.next_after(at) {
            if next > until {
                break;
            }
            slots.push_back(next);
            if slots.len() > cap {
                slots.pop_front();
                dropped += 1;
            }
            at = next;
        }
        (slots.into(), dropped)
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TriggerError {
    #[error("'{0}' is not a 5-field cron expression: {1}")]
    Cron(String, String),
    #[error("'{0}' is not an IANA time zone (like Asia/Shanghai or UTC)")]
    Timezone(String),
}

fn parse_cron(expr: &str) -> Result<Cron, TriggerError> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(TriggerError::Cron(
            expr.into(),
            format!("it has {fields} fields"),
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| TriggerError::Cron(expr.into(), e.to_string()))
}

pub fn parse_tz(name: &str) -> Result<Tz, TriggerError> {
    Tz::from_str(name).map_err(|_| TriggerError::Timezone(name.into()))
}

/// A local wall-clock time (`2025-10-17T09:00:00`, seed 003's `start_time`) or an RFC 3339
/// time, read in `timezone`; a local time in a DST gap moves past the gap.
pub fn parse_local_time(s: &str, timezone: &str) -> Option<Millis> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let tz = parse_tz(timezone).ok()?;
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .ok()?;
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Some(t.timestamp_millis()),
        chrono::LocalResult::Ambiguous(first, _) => Some(first.timestamp_millis()),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.timestamp_millis()),
    }
}

/// The wall-clock form of `ms` in `timezone`, as seed 003 writes `start_time`.
pub fn format_local_time(ms: Millis, timezone: &str) -> String {
    let utc = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    match parse_tz(timezone) {
        Ok(tz) => utc
            .with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string(),
        Err(_) => utc.format("%Y-%m-%dT%H:%M:%S").to_string(),
    }
}

/// What happens to slots missed while steward was down (APScheduler / Quartz semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    /// Missed slots are dropped; the schedule waits for its next slot.
    Skip,
    /// All missed slots together fire once (APScheduler's `coalesce`).
    RunOnce,
    /// Every missed slot fires, oldest first (at most [`MAX_CATCH_UP`]).
    CatchUp,
}

impl MisfirePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MisfirePolicy::Skip => "skip",
            MisfirePolicy::RunOnce => "run_once",
            MisfirePolicy::CatchUp => "catch_up",
        }
    }
}

impl FromStr for MisfirePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(MisfirePolicy::Skip),
            "run_once" => Ok(MisfirePolicy::RunOnce),
            "catch_up" => Ok(MisfirePolicy::CatchUp),
            other => Err(format!("'{other}' is not one of skip, run_once, catch_up")),
        }
    }
}

/// Which of the due slots fire. A slot no later than `grace_ms` behind `now` is on time and
/// always fires; older ones are misfires and follow the policy.
pub fn slots_to_fire(
    due: &[Millis],
    now: Millis,
    grace_ms: i64,
    policy: MisfirePolicy,
) -> Vec<Millis> {
    let (late, on_time): (Vec<Millis>, Vec<Millis>) =
        due.iter().partition(|&&s| now - s > grace_ms);
    match policy {
        MisfirePolicy::CatchUp => due.to_vec(),
        MisfirePolicy::Skip => on_time,
        MisfirePolicy::RunOnce => {
            if on_time.is_empty() {
                late.last().copied().into_iter().collect()
            } else {
                on_time
            }
        }
    }
}

/// A schedule as stored: its definition (`spec`, the normalised request body, which is what
/// PUT replaces and PATCH merges into) and what it decoded to.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub trigger: Trigger,
    pub misfire_policy: MisfirePolicy,
    pub misfire_grace_secs: f64,
    pub max_instances: i32,
    pub depends_on: Vec<String>,
    pub tags: Vec<String>,
    pub template: Template,
    /// The normalised definition, in the request's shape.
    pub spec: Value,
    /// The newest slot handled (fired or skipped); missed slots are counted from here.
    pub last_slot: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What a fire creates: a task spec as POST /tasks takes, or a batch as POST /batches takes.
#[derive(Clone, Debug, PartialEq)]
pub enum Template {
    Task(Value),
    Batch(Value),
}

impl Schedule {
    /// The next slot to fire, when enabled.
    pub fn next_run_at(&self, now: Millis) -> Option<Millis> {
        if !self.enabled {
            return None;
        }
        let from = self.last_slot.map_or(now, |l| l.max(now));
        self.trigger.next_after(from)
    }

    /// Slots due at `now` since the last handled one, and how many older ones were dropped.
    pub fn due(&self, now: Millis) -> (Vec<Millis>, usize) {
        let from = self.last_slot.unwrap_or(self.created_at);
        self.trigger.slots_between(from, now, MAX_CATCH_UP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(tz: &str, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Millis {
        parse_tz(tz)
            .unwrap()
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .unwrap()
            .timestamp_millis()
    }

    fn utc(ms: Millis) -> String {
        crate::domain::rfc3339(ms)
    }

    #[test]
    fn weekday_cron_in_shanghai_skips_the_weekend() {
        let t = Trigger::cron("0 16 * * 1-5", "Asia/Shanghai").unwrap();
        // Friday 2026-11-27 17:00 Shanghai → Monday 2026-11-30 16:00 Shanghai (08:00 UTC).
        let fri = at("Asia/Shanghai", 2026, 11, 27, 17, 0);
        assert_eq!(utc(t.next_after(fri).unwrap()), "2026-11-30T08:00:00.000Z");
    }

    #[test]
    fn names_steps_and_lists_parse() {
        for e in [
            "0 9-17 * * MON-FRI",
            "*/5 * * * *",
            "0 0 1,15 * *",
            "30 4 * JAN,JUL SUN",
        ] {
            assert!(Trigger::cron(e, "UTC").is_ok(), "{e}");
        }
    }

    #[test]
    fn bad_cron_and_bad_zone_are_refused() {
        assert!(matches!(
            Trigger::cron("61 * * * *", "UTC"),
            Err(TriggerError::Cron(..))
        ));
        assert!(matches!(
            Trigger::cron("0 0 * * * *", "UTC"),
            Err(TriggerError::Cron(..))
        ));
        assert!(matches!(
            Trigger::cron("not cron", "UTC"),
            Err(TriggerError::Cron(..))
        ));
        assert!(matches!(
            Trigger::cron("0 0 * * *", "Mars/Olympus"),
            Err(TriggerError::Timezone(_))
        ));
    }

    #[test]
    fn a_local_time_skipped_by_dst_fires_once_right_after_the_gap() {
        // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist.
        let t = Trigger::cron("30 2 * * *", "America/New_York").unwrap();
        let before = at("America/New_York", 2026, 3, 8, 1, 0);
        let (slots, _) = t.slots_between(before, before + 86_400_000, 10);
        assert_eq!(slots.len(), 1, "one fire on the day of the gap: {slots:?}");
        // 03:00 EDT = 07:00 UTC.
        assert_eq!(utc(slots[0]), "2026-03-08T07:00:00.000Z");
        // and the day after, back at 02:30 local (06:30 UTC).
        assert_eq!(
            utc(t.next_after(slots[0]).unwrap()),
            "2026-03-09T06:30:00.000Z"
        );
    }

    #[test]
    fn a_local_time_repeated_by_dst_fires_once() {
        // New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        let t = Trigger::cron("30 1 * * *", "America/New_York").unwrap();
        let before = at("America/New_York", 2026, 11, 1, 0, 0);
        let (slots, _) = t.slots_between(before, before + 20 * 3_600_000, 10);
        assert_eq!(slots.len(), 1, "one fire in the repeated hour: {slots:?}");
        // the first pass: 01:30 EDT = 05:30 UTC.
        assert_eq!(utc(slots[0]), "2026-11-01T05:30:00.000Z");
    }

    #[test]
    fn interval_slots_count_from_the_start() {
        let t = Trigger::Interval {
            interval_secs: 10.0,
            start_at: 1_000,
        };
        assert_eq!(t.next_after(0), Some(1_000));
        assert_eq!(t.next_after(1_000), Some(11_000));
        assert_eq!(t.next_after(10_999), Some(11_000));
        let (slots, dropped) = t.slots_between(1_000, 41_000, 2);
        assert_eq!((slots, dropped), (vec![31_000, 41_000], 2));
    }

    #[test]
    fn once_fires_once() {
        let t = Trigger::Once { once_at: 5_000 };
        assert_eq!(t.next_after(0), Some(5_000));
        assert_eq!(t.next_after(5_000), None);
        assert_eq!(Trigger::Manual.next_after(0), None);
    }

    #[test]
    fn misfire_policies_decide_what_fires() {
        let due = [1_000, 2_000, 3_000];
        let now = 10_000;
        assert_eq!(
            slots_to_fire(&due, now, 500, MisfirePolicy::Skip),
            Vec::<Millis>::new()
        );
        assert_eq!(
            slots_to_fire(&due, now, 500, MisfirePolicy::RunOnce),
            vec![3_000]
        );
        assert_eq!(
            slots_to_fire(&due, now, 500, MisfirePolicy::CatchUp),
            vec![1_000, 2_000, 3_000]
        );
        // an on-time slot always fires, and under run_once covers the missed ones.
        let due = [1_000, 9_900];
        assert_eq!(
            slots_to_fire(&due, now, 500, MisfirePolicy::Skip),
            vec![9_900]
        );
        assert_eq!(
            slots_to_fire(&due, now, 500, MisfirePolicy::RunOnce),
            vec![9_900]
        );
    }

    #[test]
    fn seed_start_time_is_local_wall_clock() {
        let ms = parse_local_time("2025-10-17T09:00:00", "Asia/Shanghai").unwrap();
        assert_eq!(utc(ms), "2025-10-17T01:00:00.000Z");
        assert_eq!(
            format_local_time(ms, "Asia/Shanghai"),
            "2025-10-17T09:00:00"
        );
    }
}
