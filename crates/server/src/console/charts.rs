//! Charts as inline SVG, drawn on the server from the pre-aggregated hourly stats: no script, no
//! external library, and the sizes are attributes (the CSP allows no inline styles).

use crate::service::AttemptView;
use hookline_core::stats::HourStats;
use hookline_core::time;
use maud::{html, Markup};

const W: f64 = 720.0;
const H: f64 = 160.0;
const PAD: f64 = 28.0;

/// `hours` hourly slots ending now, each with its stats (empty hours as zeros).
fn slots(stats: &[HourStats], hours: usize) -> Vec<HourStats> {
    let now = hookline_core::stats::hour_of(time::now());
    (0..hours)
        .rev()
        .map(|i| {
            let at = now - chrono::Duration::hours(i as i64);
            stats
                .iter()
                .find(|s| s.hour == at)
                .cloned()
                .unwrap_or_else(|| HourStats::new(at))
        })
        .collect()
}

fn axis_label(hours: usize) -> &'static str {
    if hours <= 24 {
        "24 hours ago → now"
    } else {
        "7 days ago → now"
    }
}

/// Delivered (green) and failed (red) attempts per hour, stacked.
pub fn deliveries_per_hour(stats: &[HourStats], hours: usize, title: &str) -> Markup {
    let s = slots(stats, hours);
    let max = s.iter().map(HourStats::attempts).max().unwrap_or(0).max(1) as f64;
    let bw = (W - PAD) / hours as f64;
    let total: u64 = s.iter().map(|h| h.delivered).sum();
    let failed: u64 = s.iter().map(|h| h.failed).sum();
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (W) " " (H + 16.0) } role="img" aria-label={ (title) ": " (total) " delivered, " (failed) " failed" } {
                title { (title) }
                line x1=(PAD) y1=(H) x2=(W) y2=(H) class="axis" {}
                text x="0" y="12" class="label" { (max as u64) }
                text x="0" y=(H) class="label" { "0" }
                @for (i, h) in s.iter().enumerate() {
                    @let x = PAD + i as f64 * bw;
                    @let hd = h.delivered as f64 / max * (H - 8.0);
                    @let hf = h.failed as f64 / max * (H - 8.0);
                    @if h.delivered > 0 {
                        rect class="ok" x=(x) y=(H - hd) width=((bw - 0.5).max(0.5)) height=(hd) {
                            title { (time::format(&h.hour)) ": " (h.delivered) " delivered" }
                        }
                    }
                    @if h.failed > 0 {
                        rect class="fail" x=(x) y=(H - hd - hf) width=((bw - 0.5).max(0.5)) height=(hf) {
                            title { (time::format(&h.hour)) ": " (h.failed) " failed" }
                        }
                    }
                }
                text x=(PAD) y=(H + 14.0) class="label" { (axis_label(hours)) }
            }
            figcaption { (title) ": " (total) " delivered, " (failed) " failed." }
        }
    }
}

/// Latency p50 (solid) and p95 (dashed) per hour, on a log scale (1 ms … 2 min).
pub fn latency(stats: &[HourStats], hours: usize, title: &str) -> Markup {
    let s = slots(stats, hours);
    let bw = (W - PAD) / hours as f64;
    let y = |ms: f64| {
        let (lo, hi) = (1.0f64.ln(), 120_000.0f64.ln());
        H - ((ms.max(1.0).ln() - lo) / (hi - lo)) * (H - 8.0)
    };
    let points = |q: f64| -> Vec<(f64, f64)> {
        s.iter()
            .enumerate()
            .filter_map(|(i, h)| {
                h.latency_quantile(q)
                    .map(|v| (PAD + i as f64 * bw + bw / 2.0, y(v)))
            })
            .collect()
    };
    let path = |pts: &[(f64, f64)]| {
        pts.iter()
            .enumerate()
            .map(|(i, (x, y))| format!("{}{x:.1},{y:.1}", if i == 0 { 'M' } else { 'L' }))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (pts50, pts95) = (points(0.5), points(0.95));
    let (p50, p95) = (path(&pts50), path(&pts95));
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (W) " " (H + 16.0) } role="img" aria-label=(title) {
                title { (title) }
                line x1=(PAD) y1=(H) x2=(W) y2=(H) class="axis" {}
                @for (label, v) in [("1 ms", 1.0), ("100 ms", 100.0), ("10 s", 10_000.0)] {
                    line x1=(PAD) y1=(y(v)) x2=(W) y2=(y(v)) class="grid" {}
                    text x="0" y=(y(v) + 4.0) class="label" { (label) }
                }
                @if !p50.is_empty() { path d=(p50) class="p50" {} }
                @if !p95.is_empty() { path d=(p95) class="p95" {} }
                @for (x, y) in &pts50 { circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" class="p50dot" {} }
                @for (x, y) in &pts95 { circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" class="p95dot" {} }
                text x=(PAD) y=(H + 14.0) class="label" { (axis_label(hours)) " · solid p50, dashed p95" }
            }
            figcaption { (title) "." @if p50.is_empty() { " No attempts in this period." } }
        }
    }
}

/// One attempt's phases (DNS, connect, TLS, waiting for the first byte, the rest) as a bar.
pub fn timing_bar(a: &AttemptView) -> Markup {
    let total = a.total_ms.max(0.001);
    let dns = a.dns_ms.unwrap_or(0.0);
    let connect = a.connect_ms.unwrap_or(0.0);
    let tls = a.tls_ms.unwrap_or(0.0);
    let ttfb = a.ttfb_ms.unwrap_or(total);
    let wait = (ttfb - dns - connect - tls).max(0.0);
    let rest = (total - ttfb).max(0.0);
    let parts = [
        ("dns", dns),
        ("connect", connect),
        ("tls", tls),
        ("wait", wait),
        ("transfer", rest),
    ];
    let sum: f64 = parts.iter().map(|(_, v)| v).sum::<f64>().max(0.001);
    let mut x = 0.0;
    let bars: Vec<(&str, f64, f64, f64)> = parts
        .iter()
        .map(|&(name, v)| {
            let w = v / sum * 600.0;
            let at = x;
            x += w;
            (name, at, w, v)
        })
        .filter(|&(_, _, w, _)| w > 0.0)
        .collect();
    html! {
        figure.timing {
            svg viewBox="0 0 600 18" role="img" aria-label={ "timing: total " (format!("{total:.1}")) " ms" } {
                @for (name, at, w, v) in &bars {
                    rect class=(name) x=(format!("{at:.1}")) y="0" width=(format!("{w:.1}")) height="18" {
                        title { (name) ": " (format!("{v:.1}")) " ms" }
                    }
                }
            }
            figcaption {
                "dns " (fmt(a.dns_ms)) " · connect " (fmt(a.connect_ms)) " · tls " (fmt(a.tls_ms))
                " · ttfb " (fmt(a.ttfb_ms)) " · total " (format!("{:.1}", a.total_ms)) " ms"
            }
        }
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}
