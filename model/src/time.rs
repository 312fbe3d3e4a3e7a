//! Local time: every "today", the 06:00 testing start and the 16:00 deadline
//! are in Asia/Shanghai, which has been UTC+8 without daylight saving since
//! 1991, so a fixed offset is exact.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};

/// Seconds east of UTC of Asia/Shanghai.
pub const LOCAL_OFFSET_SECS: i32 = 8 * 3600;

/// The fixed UTC+8 offset.
pub fn local_offset() -> FixedOffset {
    FixedOffset::east_opt(LOCAL_OFFSET_SECS).expect("UTC+8 is a valid offset")
}

/// The local calendar date of an instant.
pub fn local_date(ts: DateTime<Utc>) -> NaiveDate {
    ts.with_timezone(&local_offset()).date_naive()
}

/// The instant local midnight starts `date`.
pub fn start_of_local_day(date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    local_offset()
        .from_local_datetime(&midnight)
        .single()
        .expect("a fixed offset maps every local time once")
        .with_timezone(&Utc)
}

/// RFC 3339 with the local offset, as `as_of` is shown.
pub fn to_local_rfc3339(ts: DateTime<Utc>) -> String {
    ts.with_timezone(&local_offset())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Whole minutes from one RFC 3339 time to another (negative when `to`
/// is earlier); `None` when either does not parse.
pub fn minutes_between(from: &str, to: &str) -> Option<i64> {
    let f = DateTime::parse_from_rfc3339(from).ok()?;
    let t = DateTime::parse_from_rfc3339(to).ok()?;
    Some((t - f).num_minutes())
}

/// Whole minutes since the Unix epoch (floor), the history bucket key.
pub fn epoch_minute(ts: DateTime<Utc>) -> i64 {
    ts.timestamp().div_euclid(60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_day_starts_at_16_utc_the_day_before() {
        let d = NaiveDate::from_ymd_opt(2022, 10, 15).expect("valid date");
        let s = start_of_local_day(d);
        assert_eq!(s.to_rfc3339(), "2022-10-14T16:00:00+00:00");
        assert_eq!(local_date(s), d);
        assert_eq!(to_local_rfc3339(s), "2022-10-15T00:00:00+08:00");
        let m = minutes_between("2022-10-15T09:00:00+08:00", "2022-10-15T01:30:59Z");
        assert_eq!(m, Some(30));
        assert_eq!(minutes_between("09:00", "2022-10-15T01:30:59Z"), None);
    }
}
