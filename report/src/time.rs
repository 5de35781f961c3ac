//! How times read in a report: offsets from the run's start (`+41.0 s`), durations
//! (`1 min 05 s`) and UTC clock times (`2026-01-01 00:00:41 UTC`), without a date library.

/// An offset from the run's start in milliseconds, as `+41.0 s`.
pub fn offset(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    format!("{sign}{:.1} s", ms.unsigned_abs() as f64 / 1000.0)
}

/// A duration in milliseconds for people: `4.5 s`, `2 min 05 s`, `1 h 02 min`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    if s < 60 {
        if ms.is_multiple_of(1000) {
            format!("{s} s")
        } else {
            format!("{:.1} s", ms as f64 / 1000.0)
        }
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, s % 3600 / 60)
    }
}

/// Unix milliseconds as a UTC date and time to the second: `2026-01-01 00:00:41 UTC`.
pub fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = ballast_model::units::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_plainly() {
        assert_eq!(offset(41_000), "+41.0 s");
        assert_eq!(offset(-1_500), "-1.5 s");
        assert_eq!(duration(4_500), "4.5 s");
        assert_eq!(duration(12_000), "12 s");
        assert_eq!(duration(125_000), "2 min 05 s");
        assert_eq!(duration(3_720_000), "1 h 02 min");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_767_225_641_000), "2026-01-01 00:00:41 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
