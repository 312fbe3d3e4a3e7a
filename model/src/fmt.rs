//! Number formatting for the screens (and the tests that read them).

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `0.5551` → `55.5%`.
pub fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Seconds as a short age: `8 s`, `3 min`, `2 h`.
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// Below this, a micro-grid's count is shown as "<5" on a public wall
/// (small-cell suppression: a count of one or two people or events in a
/// block of 200–300 residents points at someone).
pub const SMALL: u64 = 5;

/// A micro-grid's count as a screen shows it: on a public wall 1–4 read
/// "<5" (0 stays 0, it names nobody).
pub fn small_count(n: u64, public: bool) -> String {
    if public && n > 0 && n < SMALL {
        format!("<{SMALL}")
    } else {
        thousands(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(217000), "217,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(percent(0.5551), "55.5%");
        assert_eq!(age(8.0), "8 s");
        assert_eq!(age(180.0), "3 min");
    }

    #[test]
    fn a_public_wall_shows_small_counts_as_below_five() {
        assert_eq!(super::small_count(3, true), "<5");
        assert_eq!(super::small_count(0, true), "0");
        assert_eq!(super::small_count(5, true), "5");
        assert_eq!(super::small_count(3, false), "3");
        assert_eq!(super::small_count(12_000, true), "12,000");
    }
}
