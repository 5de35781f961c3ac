//! Numbers, times and trends as short text for narrow columns.

/// `HH:MM:SSZ` of a Unix time in milliseconds (UTC: the sidecars' and runs' clock).
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}Z", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// `MM:SS` (or `H:MM:SS`) of an offset, for replay positions.
pub fn offset(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// A span in its two largest units: `45s`, `3m 12s`, `2h 05m`, `3d 04h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d {:02}h", s / 86_400, s / 3600 % 24),
    }
}

/// Requests per second: `0.5`, `12.3`, `523`, `12.3k`, `1.2M`.
pub fn rate(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.1}")
    } else if r < 1_000.0 {
        format!("{r:.0}")
    } else if r < 1_000_000.0 {
        format!("{:.1}k", r / 1_000.0)
    } else {
        format!("{:.1}M", r / 1_000_000.0)
    }
}

/// A ratio as a percentage: `0.0%`, `12.5%`, `100%`.
pub fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if (99.95..100.0).contains(&p) {
        "99.9%".into()
    } else if p.abs() >= 100.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// A latency in microseconds: `850µs`, `12.3ms`, `123ms`, `1.23s`, `12.3s`.
pub fn latency(us: u64) -> String {
    let ms = us as f64 / 1_000.0;
    if us < 1_000 {
        format!("{us}µs")
    } else if ms < 100.0 {
        format!("{ms:.1}ms")
    } else if ms < 1_000.0 {
        format!("{ms:.0}ms")
    } else if ms < 10_000.0 {
        format!("{:.2}s", ms / 1_000.0)
    } else {
        format!("{:.1}s", ms / 1_000.0)
    }
}

/// Budget left as a percentage (below zero: overspent), without decimals past ±10%.
pub fn budget(remaining: f64) -> String {
    let p = remaining * 100.0;
    if p.abs() < 10.0 {
        format!("{p:.1}%")
    } else if p.abs() < 100_000.0 {
        format!("{p:.0}%")
    } else {
        format!("{:.0}k%", p / 1_000.0)
    }
}

/// A burn rate: `0.4×`, `14×`, `1.2k×`.
pub fn burn(b: f64) -> String {
    if b < 10.0 {
        format!("{b:.1}×")
    } else if b < 1_000.0 {
        format!("{b:.0}×")
    } else {
        format!("{:.1}k×", b / 1_000.0)
    }
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The last `width` values as a sparkline, scaled from zero to their maximum; missing values
/// (`None`) are blank and leading room is padded with blanks.
pub fn sparkline(values: &[Option<f64>], width: usize) -> String {
    let shown = &values[values.len().saturating_sub(width)..];
    let max = shown.iter().flatten().fold(0.0f64, |a, b| a.max(*b));
    let mut out = " ".repeat(width - shown.len());
    for v in shown {
        out.push(match v {
            None => ' ',
            Some(_) if max <= 0.0 => BARS[0],
            Some(v) => BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize],
        });
    }
    out
}

/// A bar of `width` cells for `value` out of `max` (eighths of a cell).
pub fn bar(value: f64, max: f64, width: usize) -> String {
    if max <= 0.0 || value <= 0.0 {
        return String::new();
    }
    let eighths = ((value / max) * (width * 8) as f64).round().max(1.0) as usize;
    let mut out = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        out.push(['▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8 - 1]);
    }
    out
}

/// `s` cut to `width` characters, with `…` when cut.
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms() {
        assert_eq!(clock(1_767_225_600_000 + 3_723_000), "01:02:03Z");
        assert_eq!(offset(83_000), "01:23");
        assert_eq!(duration(192_000), "3m 12s");
        assert_eq!(duration(90_061_000), "1d 01h");
        assert_eq!(
            (rate(0.5), rate(523.4), rate(12_345.0)),
            ("0.5".into(), "523".into(), "12.3k".into())
        );
        assert_eq!(
            (percent(0.125), percent(1.0), percent(0.99999)),
            ("12.5%".into(), "100%".into(), "99.9%".into())
        );
        assert_eq!(
            (latency(850), latency(12_340), latency(1_234_000)),
            ("850µs".into(), "12.3ms".into(), "1.23s".into())
        );
        assert_eq!(
            (budget(0.934), budget(-11.5), budget(0.05)),
            ("93%".into(), "-1150%".into(), "5.0%".into())
        );
        assert_eq!(
            (burn(0.42), burn(14.4), burn(1_250.0)),
            ("0.4×".into(), "14×".into(), "1.2k×".into())
        );
        assert_eq!(fit("checkout-latency", 8), "checkou…");
    }

    #[test]
    fn sparklines_scale_to_their_maximum() {
        assert_eq!(sparkline(&[Some(0.0), Some(1.0), Some(2.0), None], 6), "  ▁▅█ ");
        assert_eq!(sparkline(&[Some(0.0); 3], 2), "▁▁");
        assert_eq!(bar(1.0, 2.0, 4), "██");
        assert_eq!(bar(1.0, 16.0, 2), "▏");
    }
}
