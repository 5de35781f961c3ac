//! The report's charts, drawn with plotters into SVG strings: latency p50/p99, error rate and
//! error budget remaining over the run, each with the faults (red) and alerts (orange) drawn
//! as labelled spans; and the latency histogram before vs during the incident.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::analysis::Analysis;
use crate::analysis::latency::{BINS, bin_floor_ms};
use crate::document::Chart;
use crate::error::ReportError;
use crate::time::offset;

const SIZE: (u32, u32) = (960, 340);
const FAULT: RGBColor = RGBColor(214, 39, 40);
const ALERT: RGBColor = RGBColor(255, 127, 14);

pub fn slug(c: Chart) -> &'static str {
    match c {
        Chart::Latency => "latency",
        Chart::ErrorRate => "error-rate",
        Chart::Budget => "budget",
        Chart::Histogram => "histogram",
    }
}

/// A span drawn on the time charts: `[from, to)` in seconds, its label and colour.
struct Span {
    from_s: f64,
    to_s: f64,
    label: String,
    color: RGBColor,
}

fn spans(a: &Analysis) -> Vec<Span> {
    let end = a.length_ms as f64 / 1000.0;
    let faults = a.faults.iter().map(|f| Span {
        from_s: f.window.added_ms as f64 / 1000.0,
        to_s: f.window.ended_ms.map_or(end, |e| e as f64 / 1000.0),
        label: format!("fault {}", f.window.id),
        color: FAULT,
    });
    let alerts = a.alerts.iter().map(|al| Span {
        from_s: al.fired_ms as f64 / 1000.0,
        to_s: al.resolved_ms.map_or(end, |e| e as f64 / 1000.0),
        label: format!("alert {} {}", al.severity.as_str(), al.slo),
        color: ALERT,
    });
    faults.chain(alerts).collect()
}

/// What a chart shows, in words (its caption).
pub fn caption(a: &Analysis, c: Chart) -> String {
    let shaded: Vec<String> = spans(a)
        .iter()
        .map(|s| {
            format!(
                "{} ({} to {})",
                s.label,
                offset((s.from_s * 1000.0) as i64),
                offset((s.to_s * 1000.0) as i64)
            )
        })
        .collect();
    let spans = if shaded.is_empty() {
        String::new()
    } else {
        format!(" Shaded: {}.", shaded.join("; "))
    };
    match c {
        Chart::Latency => format!("{}, all routes, as the load generator saw it.{spans}", c.title()),
        Chart::ErrorRate => format!("{}, all routes (client, and sidecar when scraped).{spans}", c.title()),
        Chart::Budget => format!("{}, per SLO (1 = untouched, 0 = spent).{spans}", c.title()),
        Chart::Histogram => format!(
            "{}: share of each phase's requests per latency bin (log scale).",
            c.title()
        ),
    }
}

pub fn draw(a: &Analysis, c: Chart) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let fail = |e: String| ReportError::Chart {
            chart: slug(c),
            detail: e,
        };
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        match c {
            Chart::Latency => {
                let p50: Vec<(f64, f64)> = points(a, |f| f.p50_ms);
                let p99: Vec<(f64, f64)> = points(a, |f| f.p99_ms);
                let lines = vec![("p50 (ms)", p50, BLUE), ("p99 (ms)", p99, RGBColor(148, 103, 189))];
                time_chart(a, &root, c.title(), "ms", lines)
            }
            Chart::ErrorRate => {
                let mut lines = vec![("client", points(a, |f| f.error_rate()), BLUE)];
                if let Some(side) = &a.lines.sidecar {
                    let pts = side
                        .iter()
                        .enumerate()
                        .map(|(s, f)| (s as f64 + 0.5, f.error_rate()))
                        .collect();
                    lines.push(("sidecar", pts, RGBColor(44, 160, 44)));
                }
                time_chart(a, &root, c.title(), "failed / requests", lines)
            }
            Chart::Budget => {
                let palette = [
                    BLUE,
                    RGBColor(44, 160, 44),
                    RGBColor(148, 103, 189),
                    RGBColor(140, 86, 75),
                ];
                let lines = a
                    .lines
                    .budgets
                    .iter()
                    .enumerate()
                    .map(|(i, (name, v))| {
                        let pts = v.iter().enumerate().map(|(s, r)| (s as f64 + 1.0, *r)).collect();
                        (name.as_str(), pts, palette[i % palette.len()])
                    })
                    .collect();
                time_chart(a, &root, c.title(), "budget remaining", lines)
            }
            Chart::Histogram => histogram(a, &root),
        }
        .map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(svg)
}

/// Per-second client figures as points at the middle of each second.
fn points(a: &Analysis, f: impl Fn(&crate::load::SecondFigures) -> f64) -> Vec<(f64, f64)> {
    a.lines
        .client
        .iter()
        .enumerate()
        .filter(|(_, s)| s.requests > 0)
        .map(|(i, s)| (i as f64 + 0.5, f(s)))
        .collect()
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// A named line: its points (seconds, value) and colour.
type Line<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

fn time_chart(a: &Analysis, root: &Area, title: &str, y_desc: &str, lines: Vec<Line>) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    let end = (a.length_ms as f64 / 1000.0).max(1.0);
    let (lo, hi) = lines
        .iter()
        .flat_map(|(_, p, _)| p.iter().map(|(_, y)| *y))
        .fold((0.0f64, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let hi = if hi <= lo { lo + 1.0 } else { hi + (hi - lo) * 0.15 };
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, lo..hi)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start")
        .y_desc(y_desc)
        .light_line_style(WHITE)
        .draw()
        .map_err(e)?;
    for (i, s) in spans(a).iter().enumerate() {
        let style = s.color.mix(0.15).filled();
        chart
            .draw_series(std::iter::once(Rectangle::new([(s.from_s, lo), (s.to_s, hi)], style)))
            .map_err(e)?;
        // Labels stagger down the top so overlapping spans stay readable.
        let y = hi - (hi - lo) * (0.06 + 0.07 * (i % 4) as f64);
        chart
            .draw_series(std::iter::once(Text::new(
                s.label.clone(),
                (s.from_s + end * 0.003, y),
                ("sans-serif", 12).into_font().color(&s.color),
            )))
            .map_err(e)?;
    }
    for (name, pts, color) in lines {
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}

fn histogram(a: &Analysis, root: &Area) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();
    let (Some(before), Some(during)) = (a.phase("before"), a.phase("during")) else {
        return Ok(());
    };
    let share = |h: &[u64]| {
        let n: u64 = h.iter().sum();
        h.iter()
            .map(|&c| if n == 0 { 0.0 } else { c as f64 / n as f64 })
            .collect::<Vec<f64>>()
    };
    let (b, d) = (share(&before.histogram), share(&during.histogram));
    let used = |i: &usize| b[*i] > 0.0 || d[*i] > 0.0;
    let first = (0..BINS).find(used).unwrap_or(0);
    let last = (0..BINS).rev().find(used).unwrap_or(BINS - 1);
    let top = b.iter().chain(&d).fold(0.0f64, |m, v| m.max(*v)) * 1.15 + 1e-9;
    let mut chart = ChartBuilder::on(root)
        .caption(Chart::Histogram.title(), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(first as f64..(last + 1) as f64, 0.0..top)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, lower edge of each bin)")
        .y_desc("share of the phase's requests")
        .x_label_formatter(&|x| format!("{:.3}", bin_floor_ms(*x as usize)))
        .light_line_style(WHITE)
        .draw()
        .map_err(e)?;
    for (name, values, color, shift) in [("before", &b, BLUE, 0.05), ("during", &d, FAULT, 0.5)] {
        chart
            .draw_series((first..=last).filter(|i| values[*i] > 0.0).map(|i| {
                let x = i as f64 + shift;
                Rectangle::new([(x, 0.0), (x + 0.45, values[i])], color.mix(0.7).filled())
            }))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.mix(0.7).filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    Ok(())
}
