//! The answer drawn: a line per group and metric in SVG (the largest
//! [`SERIES_MAX`] totals), or bars for one series or a label → number
//! answer.

use leptos::prelude::*;

use super::Answer;

/// Series drawn at most (the largest totals).
pub const SERIES_MAX: usize = 8;
/// The chart's size in SVG units.
const W: f64 = 960.0;
const H: f64 = 320.0;
const PAD: f64 = 44.0;
const COLOURS: [&str; SERIES_MAX] = [
    "#38bdf8", "#f472b6", "#a3e635", "#fbbf24", "#c084fc", "#f87171", "#2dd4bf", "#e5e7eb",
];

/// One series of the chart: a group's values of one metric by time (or
/// label).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub group: String,
    pub points: Vec<(String, f64)>,
}

/// The answer's series, the largest totals first: (time, group, metrics…)
/// rows give one per group and metric (named "group · metric" when there
/// are several metrics); (label, number) rows one, by label.
pub fn series(a: &Answer) -> Vec<Series> {
    let mut by: Vec<Series> = Vec::new();
    let mut add = |group: String, t: &str, v: f64| match by.iter_mut().find(|s| s.group == group) {
        Some(s) => s.points.push((t.to_string(), v)),
        None => by.push(Series {
            group,
            points: vec![(t.to_string(), v)],
        }),
    };
    let value = |v: &serde_json::Value| v.as_f64();
    if a.columns.len() == 2 {
        for r in &a.rows {
            if let (Some(t), Some(v)) = (
                r.first().map(|v| {
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string())
                }),
                r.get(1).and_then(value),
            ) {
                add(a.columns[1].clone(), &t, v);
            }
        }
    } else {
        let metrics = a.columns.len().saturating_sub(2);
        for r in &a.rows {
            let (Some(t), Some(g)) = (
                r.first().and_then(|v| v.as_str()),
                r.get(1).and_then(|v| v.as_str()),
            ) else {
                continue;
            };
            for k in 0..metrics {
                let Some(v) = r.get(2 + k).and_then(value) else {
                    continue;
                };
                let name = if metrics > 1 {
                    format!(
                        "{} · {}",
                        g.rsplit('/').next().unwrap_or(g),
                        a.columns[2 + k]
                    )
                } else {
                    g.to_string()
                };
                add(name, t, v);
            }
        }
    }
    let total = |s: &Series| s.points.iter().map(|p| p.1).sum::<f64>();
    by.sort_by(|a, b| total(b).total_cmp(&total(a)));
    by.truncate(SERIES_MAX);
    by
}

/// The chart as SVG elements: polylines (or bars for one group), the axes'
/// labels.
#[component]
pub fn Chart(answer: Memo<Option<Answer>>) -> impl IntoView {
    let drawn = move || {
        let a = answer.get()?;
        let s = series(&a);
        let mut times: Vec<String> = s
            .iter()
            .flat_map(|x| x.points.iter().map(|p| p.0.clone()))
            .collect();
        times.sort();
        times.dedup();
        if times.is_empty() {
            return None;
        }
        let max = s
            .iter()
            .flat_map(|x| x.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            .max(1.0);
        let x = |t: &str| {
            let i = times.iter().position(|u| u == t).unwrap_or(0) as f64;
            let n = (times.len().max(2) - 1) as f64;
            PAD + i / n * (W - 2.0 * PAD)
        };
        let y = |v: f64| H - PAD - v / max * (H - 2.0 * PAD);
        let bars = s.len() == 1;
        // Bars sit in bands (each label its own), lines run edge to edge.
        let band = (W - 2.0 * PAD) / times.len() as f64;
        let centre = |t: &str| {
            let i = times.iter().position(|u| u == t).unwrap_or(0) as f64;
            PAD + (i + 0.5) * band
        };
        let shapes = s
            .iter()
            .enumerate()
            .map(|(k, ser)| {
                let colour = COLOURS[k % COLOURS.len()];
                if bars {
                    let w = (band * 0.8).max(1.0);
                    let labelled = times.len() <= 24;
                    ser.points
                        .iter()
                        .map(|(t, v)| {
                            let short = t.rsplit('/').next().unwrap_or(t).chars().take(16).collect::<String>();
                            let (cx, top) = (centre(t), y(*v));
                            view! {
                                <rect x=cx - w / 2.0 y=top width=w height=(H - PAD - top).max(0.0) fill=colour/>
                                {labelled.then(|| view! {
                                    <text x=cx y=H - PAD + 18.0 text-anchor="middle" fill="#94a3b8" font-size="12">{short}</text>
                                })}
                            }
                        })
                        .collect_view()
                        .into_any()
                } else {
                    let pts: Vec<String> = ser
                        .points
                        .iter()
                        .map(|(t, v)| format!("{:.1},{:.1}", x(t), y(*v)))
                        .collect();
                    view! { <polyline points=pts.join(" ") fill="none" stroke=colour stroke-width="2"/> }
                        .into_any()
                }
            })
            .collect_view();
        let first = times.first().cloned().unwrap_or_default();
        let last = times.last().cloned().unwrap_or_default();
        let legend = s
            .iter()
            .enumerate()
            .map(|(k, ser)| {
                let short = ser.group.rsplit('/').next().unwrap_or_default().to_string();
                view! {
                    <text x=PAD + 120.0 * k as f64 y="16" fill=COLOURS[k % COLOURS.len()] font-size="13">{short}</text>
                }
            })
            .collect_view();
        Some(view! {
            <line x1=PAD y1=H - PAD x2=W - PAD y2=H - PAD stroke="#64748b"/>
            <line x1=PAD y1=PAD x2=PAD y2=H - PAD stroke="#64748b"/>
            <text x=PAD - 6.0 y=PAD text-anchor="end" fill="#94a3b8" font-size="12">{format!("{max:.0}")}</text>
            <text x=PAD - 6.0 y=H - PAD text-anchor="end" fill="#94a3b8" font-size="12">"0"</text>
            {(!bars).then(|| view! {
                <text x=PAD y=H - PAD + 18.0 fill="#94a3b8" font-size="12">{first.get(..16).unwrap_or_default().to_string()}</text>
                <text x=W - PAD y=H - PAD + 18.0 text-anchor="end" fill="#94a3b8" font-size="12">{last.get(..16).unwrap_or_default().to_string()}</text>
            })}
            {legend}
            {shapes}
        })
    };
    view! {
        <svg class="analyst-chart" data-testid="analyst-chart" viewBox=format!("0 0 {W} {H}")>
            {drawn}
        </svg>
    }
}
