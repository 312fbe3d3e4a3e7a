//! The limits of every field an event carries: a range for each number and
//! a length for each text. An event outside them is refused with reason
//! `schema` (DESIGN §3; the README's wire-format section lists the same
//! table, and a test checks that it does).
//!
//! The ranges are wide for the field (a patrol team of 100, a testing site
//! sampling 10,000 residents of one micro-grid in one report) and small
//! enough that no sum of them can overflow a `u64`.

/// The allowed range of a numeric field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// Event kind, or `*` for every kind.
    pub kind: &'static str,
    pub field: &'static str,
    pub min: u64,
    pub max: u64,
}

/// The longest value of a text field, in bytes of UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Length {
    pub kind: &'static str,
    pub field: &'static str,
    pub max_bytes: usize,
}

const fn range(kind: &'static str, field: &'static str, min: u64, max: u64) -> Range {
    Range {
        kind,
        field,
        min,
        max,
    }
}

const fn length(kind: &'static str, field: &'static str, max_bytes: usize) -> Length {
    Length {
        kind,
        field,
        max_bytes,
    }
}

pub const PERSONS: Range = range("patrol", "persons", 1, 100);
pub const CHECKPOINTS: Range = range("patrol", "checkpoints", 0, 1_000);
/// Each of the five counts under `findings`.
pub const FINDING: Range = range("patrol", "findings.*", 0, 10_000);
pub const INTERVAL_S: Range = range("testing", "interval_s", 1, 86_400);
pub const SAMPLES: Range = range("testing", "samples", 0, 10_000);
pub const QUEUE: Range = range("testing", "queue", 0, 10_000);
pub const STAFF: Range = range("testing", "staff", 0, 1_000);
pub const SEVERITY: Range = range("video", "severity", 1, 3);
pub const LEVEL: Range = range("incident", "level", 1, 4);

/// Every numeric limit, in the order the README lists them.
pub const RANGES: [Range; 9] = [
    PERSONS,
    CHECKPOINTS,
    FINDING,
    INTERVAL_S,
    SAMPLES,
    QUEUE,
    STAFF,
    SEVERITY,
    LEVEL,
];

/// `id` is counted in characters, the others in bytes.
pub const ID_CHARS: usize = 64;
pub const NODE: Length = length("*", "node", 128);
pub const TEAM: Length = length("patrol", "team", 128);
pub const SITE: Length = length("testing", "site", 128);
pub const CAMERA: Length = length("video", "camera", 128);
pub const FLAG_ID: Length = length("video", "flag_id", 64);
pub const INCIDENT_ID: Length = length("incident", "incident_id", 64);
pub const CATEGORY: Length = length("incident", "category", 128);
pub const NOTE: Length = length("incident", "note", 2_048);
pub const REASON: Length = length("zone", "reason", 512);
/// The acting user of a step taken from a tablet.
pub const INCIDENT_BY: Length = length("incident", "by", 64);
/// The node an incident is transferred to.
pub const TO: Length = length("incident", "to", 128);
pub const VIDEO_BY: Length = length("video", "by", 64);
/// What was done to rectify, or why an order is reopened.
pub const VIDEO_NOTE: Length = length("video", "note", 2_048);

/// Every text limit but `id`'s, in the order the README lists them.
pub const LENGTHS: [Length; 13] = [
    NODE,
    TEAM,
    SITE,
    CAMERA,
    FLAG_ID,
    INCIDENT_ID,
    CATEGORY,
    NOTE,
    REASON,
    INCIDENT_BY,
    TO,
    VIDEO_BY,
    VIDEO_NOTE,
];

/// Flags, and incidents, open on one micro-grid at once: one more raised
/// or reported is refused as a `conflict`. A micro-grid is 200–300 people;
/// the bound keeps every recompute's work and the checkpoint bounded
/// whatever a publisher sends.
pub const OPEN_PER_MICROGRID: usize = 1_000;

impl Range {
    /// `v` when it is inside the range, else the `schema` detail.
    pub fn check(&self, v: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&v) {
            Ok(v)
        } else {
            Err(format!(
                "{}: field `{}` is {v}, outside {}–{}",
                self.kind, self.field, self.min, self.max
            ))
        }
    }
}

impl Length {
    /// `Ok` when `s` is at most the limit long, else the `schema` detail.
    pub fn check(&self, s: &str) -> Result<(), String> {
        if s.len() <= self.max_bytes {
            Ok(())
        } else {
            Err(format!(
                "{}: field `{}` is {} bytes, over {}",
                self.kind,
                self.field,
                s.len(),
                self.max_bytes
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_sum_of_a_day_of_maximal_values_can_overflow() {
        // A billion events a minute for a year, each at its field's maximum,
        // for every field that is summed.
        let events = 1_000_000_000u64 * 60 * 24 * 366;
        for r in [PERSONS, CHECKPOINTS, FINDING, SAMPLES, QUEUE, STAFF] {
            assert!(r.max.checked_mul(events).is_some(), "{r:?}");
        }
    }

    #[test]
    fn checks_name_the_field_and_the_limit() {
        assert_eq!(PERSONS.check(100), Ok(100));
        let e = PERSONS.check(101).expect_err("over");
        assert!(e.contains("`persons`") && e.contains("1–100"), "{e}");
        assert!(CATEGORY.check(&"x".repeat(128)).is_ok());
        let e = CATEGORY.check(&"x".repeat(129)).expect_err("over");
        assert!(e.contains("129 bytes, over 128"), "{e}");
    }
}
