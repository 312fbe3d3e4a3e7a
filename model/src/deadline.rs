//! The disposal loop's clocks, from the article: every incident is due by
//! 16:00 local on the day it was reported (one reported at 16:00 or later,
//! by 16:00 the next day); a level-2 incident must go up a level within
//! 6 hours of its report; a supervision order is due by its flag's
//! severity. Pure functions of the report time, shared by ingest (which
//! marks items overdue) and the screens (which count down).

use chrono::{DateTime, Duration, Utc};

use crate::time::{local_date, start_of_local_day};

/// The local hour every incident is due by.
pub const DUE_HOUR: u32 = 16;
/// A level-2 incident goes up within this long of its report.
pub const TRANSFER_WITHIN: Duration = Duration::hours(6);

/// 16:00 local on `date`.
fn due_on(date: chrono::NaiveDate) -> DateTime<Utc> {
    start_of_local_day(date) + Duration::hours(i64::from(DUE_HOUR))
}

/// When an incident reported at `reported` is due: 16:00 local that day,
/// or the next day's when it came at 16:00 or later.
pub fn incident_due(reported: DateTime<Utc>) -> DateTime<Utc> {
    let today = due_on(local_date(reported));
    if reported < today {
        today
    } else {
        due_on(local_date(reported) + Duration::days(1))
    }
}

/// When a level-2 incident reported at `reported` must have gone up.
pub fn transfer_due(reported: DateTime<Utc>) -> DateTime<Utc> {
    reported + TRANSFER_WITHIN
}

/// How long a supervision order has, by its flag's severity (1–3): the
/// configured time for severities 2 and 3; severity 1 is due by 16:00
/// like an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderDue {
    pub severity3: Duration,
    pub severity2: Duration,
}

impl Default for OrderDue {
    /// The example: severity 3 within 1 h, 2 within 4 h.
    fn default() -> Self {
        Self {
            severity3: Duration::hours(1),
            severity2: Duration::hours(4),
        }
    }
}

impl OrderDue {
    /// When an order opened at `raised` for a flag of `severity` is due.
    pub fn due(&self, raised: DateTime<Utc>, severity: u8) -> DateTime<Utc> {
        match severity {
            3.. => raised + self.severity3,
            2 => raised + self.severity2,
            _ => incident_due(raised),
        }
    }
}

/// Seconds from `as_of` (RFC 3339 with its offset, +08:00 on the wire) to
/// 16:00 that local day; negative after it. For the wall's countdown.
pub fn seconds_to_due_hour(as_of: &str) -> Option<i64> {
    let t = DateTime::parse_from_rfc3339(as_of).ok()?;
    let due = t.date_naive().and_hms_opt(DUE_HOUR, 0, 0)?;
    Some((due - t.naive_local()).num_seconds())
}

/// Whether something due at `due` is overdue at `now`.
pub fn overdue(due: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now > due
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn an_incident_is_due_at_16_00_that_day_or_the_next_at_the_edge() {
        let due = local("2022-10-15T16:00:00+08:00");
        assert_eq!(incident_due(local("2022-10-15T00:00:00+08:00")), due);
        assert_eq!(incident_due(local("2022-10-15T15:59:59+08:00")), due);
        let next = local("2022-10-16T16:00:00+08:00");
        assert_eq!(incident_due(local("2022-10-15T16:00:00+08:00")), next);
        assert_eq!(incident_due(local("2022-10-15T23:59:59+08:00")), next);
        assert!(!overdue(due, due));
        assert!(overdue(due, due + Duration::seconds(1)));
    }

    #[test]
    fn the_countdown_reaches_zero_at_16_00() {
        assert_eq!(seconds_to_due_hour("2022-10-15T13:25:10+08:00"), Some(9290));
        assert_eq!(seconds_to_due_hour("2022-10-15T16:00:00+08:00"), Some(0));
        assert_eq!(seconds_to_due_hour("2022-10-15T16:00:01+08:00"), Some(-1));
        assert_eq!(seconds_to_due_hour("not a time"), None);
    }

    #[test]
    fn level_two_goes_up_within_six_hours_and_orders_by_severity() {
        let r = local("2022-10-15T09:30:00+08:00");
        assert_eq!(transfer_due(r), local("2022-10-15T15:30:00+08:00"));
        let o = OrderDue::default();
        assert_eq!(o.due(r, 3), local("2022-10-15T10:30:00+08:00"));
        assert_eq!(o.due(r, 2), local("2022-10-15T13:30:00+08:00"));
        assert_eq!(o.due(r, 1), local("2022-10-15T16:00:00+08:00"));
        assert_eq!(
            o.due(local("2022-10-15T17:00:00+08:00"), 1),
            local("2022-10-16T16:00:00+08:00")
        );
    }
}
