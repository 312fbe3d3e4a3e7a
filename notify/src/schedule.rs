//! When digests go out: at every full local hour from `first_hour` to
//! `last_hour` (07:00–16:00 by default, the article's "once an hour until
//! 16:00"), by the deployment clock (on a replay, the replay's).
//!
//! Each (group, slot) is sent once, recorded in a JetStream key-value
//! bucket under [`ledger_key`] (`crate::ledger` has the crash window).
//! The slot due at a time is the newest full hour at or before it: a
//! notify restarted within the hour finds its slot recorded (no resend)
//! or not (it sends it, late: no skip); one down for longer sends only
//! the newest slot — an older hour's digest would list what the newest
//! one lists, minus what was closed since.

use chrono::{DateTime, NaiveDate, Timelike, Utc};

/// The hours digests go out at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hours {
    pub first: u32,
    pub last: u32,
}

impl Default for Hours {
    fn default() -> Self {
        Self { first: 7, last: 16 }
    }
}

/// One full hour of one local day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub date: NaiveDate,
    pub hour: u32,
}

impl Hours {
    /// The slot due at `now` (by Beilun's local time): the newest full
    /// hour within the window at or before it; none before the first.
    pub fn due(&self, now: DateTime<Utc>) -> Option<Slot> {
        let now = now.with_timezone(&gridwatch_model::time::local_offset());
        let h = now.hour();
        if h < self.first {
            return None;
        }
        Some(Slot {
            date: now.date_naive(),
            hour: h.min(self.last),
        })
    }
}

impl Slot {
    /// The hour's start, RFC 3339 with Beilun's offset.
    pub fn start(&self) -> String {
        let t = self.date.and_hms_opt(self.hour, 0, 0).and_then(|t| {
            t.and_local_timezone(gridwatch_model::time::local_offset())
                .single()
        });
        t.map(|t| t.to_rfc3339()).unwrap_or_default()
    }

    /// The ledger key that says the slot was worked through (every group's
    /// digest made): `YYYYMMDD.HH`.
    pub fn marker_key(&self) -> String {
        format!("{}.{:02}", self.date.format("%Y%m%d"), self.hour)
    }
}

/// The ledger's key of `group`'s digest for `slot`: `YYYYMMDD.HH`, then
/// the node id with `/` as `.` (key-value keys take `[-/_=.a-zA-Z0-9]`),
/// so one slot's keys share the prefix `YYYYMMDD.HH.`.
pub fn ledger_key(group: &str, slot: Slot) -> String {
    format!("{}.{}", slot.marker_key(), group.replace('/', "."))
}

/// The group of a ledger key of `slot` (`None`: another slot's, or the
/// marker).
pub fn group_of_key(key: &str, slot: Slot) -> Option<String> {
    key.strip_prefix(&slot.marker_key())
        .and_then(|k| k.strip_prefix('.'))
        .filter(|g| !g.is_empty())
        .map(|g| g.replace('.', "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_slot_is_the_newest_full_hour_in_the_window() {
        let h = Hours::default();
        assert_eq!(h.due(at("2022-10-15T06:59:59+08:00")), None);
        let slot = |hour| Slot {
            date: NaiveDate::from_ymd_opt(2022, 10, 15).expect("a date"),
            hour,
        };
        assert_eq!(h.due(at("2022-10-15T07:00:00+08:00")), Some(slot(7)));
        assert_eq!(h.due(at("2022-10-15T09:59:59+08:00")), Some(slot(9)));
        assert_eq!(h.due(at("2022-10-15T16:00:00+08:00")), Some(slot(16)));
        // After the last hour the last slot stays due (sent once, so
        // nothing more goes out that day).
        assert_eq!(h.due(at("2022-10-15T23:30:00+08:00")), Some(slot(16)));
        // Beilun's local day and hour, whatever the offset given.
        assert_eq!(h.due(at("2022-10-14T23:30:00Z")), Some(slot(7)));
        assert_eq!(
            ledger_key("beilun/daqi", slot(9)),
            "20221015.09.beilun.daqi"
        );
        assert_eq!(slot(9).marker_key(), "20221015.09");
        assert_eq!(slot(9).start(), "2022-10-15T09:00:00+08:00");
        assert_eq!(
            group_of_key("20221015.09.beilun.daqi", slot(9)).as_deref(),
            Some("beilun/daqi")
        );
        assert_eq!(group_of_key("20221015.09", slot(9)), None);
        assert_eq!(group_of_key("20221015.10.beilun", slot(9)), None);
    }
}
