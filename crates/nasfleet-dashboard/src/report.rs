//! `nasfleet report`: a run as one self-contained HTML file — the
//! dashboard's own page and code with the run's data inlined, every view
//! stacked on one page, nothing fetched — plus PNGs of the main plots for a
//! paper or a mail.
//!
//! The PNGs are drawn with plotters' bitmap backend. Like the bench's plots
//! (`nasfleet_nb201::plot`) they draw their text from font8x8's embedded
//! bitmap glyphs, since plotters' own text needs system fonts that a server
//! or CI may lack.

use std::path::{Path, PathBuf};

use font8x8::UnicodeFonts;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{json, Value};

use crate::run::{now_ms, ChildStatus, RunState};
use crate::{child_detail, DashboardError};

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// The HTML file.
    pub html: PathBuf,
    /// The PNGs.
    pub pngs: Vec<PathBuf>,
}

/// Children whose page (picture, JSON, metrics) the report carries: the
/// best ones and the first children that failed.
const DETAILED_BEST: usize = 10;
const DETAILED_FAILED: usize = 10;

/// `encodeURIComponent`, as the page builds its API paths.
fn uri_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The page's data for run `name` in `run_dir`, as `window.NASFLEET_STATIC`.
pub fn static_data(name: &str, s: &RunState) -> Value {
    let now = now_ms();
    let base = format!("/api/runs/{}", uri_component(name));
    let mut api = serde_json::Map::new();
    api.insert("/api/runs".into(), json!({ "single": name, "runs": [s.row(now)], "notices": [] }));
    let mut summary = s.summary(now);
    summary["live"] = Value::Null;
    api.insert(format!("{base}/summary"), summary);
    api.insert(format!("{base}/children"), s.children_since(0));
    let mut rewarded: Vec<&crate::run::Child> = s.children.iter().filter(|c| c.reward.is_some()).collect();
    rewarded.sort_by(|a, b| b.reward.partial_cmp(&a.reward).unwrap_or(std::cmp::Ordering::Equal));
    let failed = s.children.iter().filter(|c| c.reward.is_none()).take(DETAILED_FAILED);
    let mut detailed = Vec::new();
    for c in rewarded.into_iter().take(DETAILED_BEST).chain(failed) {
        if let Some(d) = child_detail(s, c.seq) {
            api.insert(format!("{base}/children/{}", c.seq), d);
            detailed.push(c.seq);
        }
    }
    json!({ "run": name, "written_ms": now, "api": api, "detailed": detailed, "best_seq": s.best().map(|c| c.seq) })
}

/// Writes `<out>/<name>.html` and the PNGs (`<name>-best.png`,
/// `<name>-curves.png`, `<name>-controller.png`) for the run in `run_dir`.
pub fn write_report(name: &str, run_dir: &Path, out: &Path) -> Result<ReportFiles, DashboardError> {
    if !run_dir.is_dir() {
        return Err(DashboardError::Run(format!("unknown run {name:?}: no run directory {}", run_dir.display())));
    }
    let mut s = RunState::new(name, run_dir.to_owned());
    s.refresh();
    if s.children.is_empty() && s.config().is_none() {
        return Err(DashboardError::Run(format!(
            "{} is not a run directory (no config.toml and no history.jsonl with a child)",
            run_dir.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|source| DashboardError::Io { what: "creating", path: out.to_owned(), source })?;
    let stem: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let html = out.join(format!("{stem}.html"));
    let page = crate::assets::static_page(&static_data(name, &s));
    std::fs::write(&html, page).map_err(|source| DashboardError::Io { what: "writing", path: html.clone(), source })?;
    let mut pngs = Vec::new();
    let best = out.join(format!("{stem}-best.png"));
    plot_best(&s, &best)?;
    pngs.push(best);
    let curves = out.join(format!("{stem}-curves.png"));
    plot_curves(&s, &curves)?;
    pngs.push(curves);
    if !s.updates.is_empty() {
        let ctl = out.join(format!("{stem}-controller.png"));
        plot_controller(&s, &ctl)?;
        pngs.push(ctl);
    }
    Ok(ReportFiles { html, pngs })
}

// ------------------------------------------------------------------ PNGs

const W: u32 = 1200;
const H: u32 = 700;
const AREA: (i32, i32, i32, i32) = (100, 60, 1170, 620);
const SCALE: i32 = 2;

/// One data series of a plot.
enum Mark {
    Points(RGBColor, i32),
    Line(RGBColor, u32),
    Step(RGBColor, u32),
}

fn text(area: &DrawingArea<BitMapBackend, Shift>, s: &str, x: i32, y: i32, vertical: bool, c: &RGBColor) {
    for (i, ch) in s.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
        let origin = i as i32 * 8 * SCALE;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 0 {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        let (u, v) = (origin + col * SCALE + dx, row as i32 * SCALE + dy);
                        let p = if vertical { (x + v, y - u) } else { (x + u, y + v) };
                        let _ = area.draw_pixel(p, c);
                    }
                }
            }
        }
    }
}

fn nice_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p)
}

fn label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil() as usize };
    format!("{v:.decimals$}")
}

fn plot(path: &Path, title: &str, xlabel: &str, ylabel: &str, series: &[(Mark, Vec<(f64, f64)>)]) -> Result<(), DashboardError> {
    let err = |e: String| DashboardError::Plot { path: path.to_owned(), message: e };
    let root = BitMapBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let pts = series.iter().flat_map(|(_, p)| p.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let black = RGBColor(29, 35, 48);
    let grey = RGBColor(120, 128, 140);
    text(&root, title, AREA.0, 20, false, &black);
    if !x0.is_finite() {
        text(&root, "no data yet", 500, 330, false, &grey);
        return root.present().map_err(|e| err(e.to_string()));
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.04;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let (l, t, r, b) = AREA;
    let px = |x: f64| l + ((x - x0) / (x1 - x0) * f64::from(r - l)).round() as i32;
    let py = |y: f64| b - ((y - y0) / (y1 - y0) * f64::from(b - t)).round() as i32;
    let light = RGBColor(227, 231, 238);
    let ys = nice_step(y1 - y0, 6.0);
    let mut v = (y0 / ys).ceil() * ys;
    while v <= y1 {
        let _ = root.draw(&PathElement::new(vec![(l, py(v)), (r, py(v))], light));
        let s = label(v, ys);
        text(&root, &s, l - 10 - s.len() as i32 * 8 * SCALE, py(v) - 8, false, &grey);
        v += ys;
    }
    let xs = nice_step(x1 - x0, 8.0);
    let mut v = (x0 / xs).ceil() * xs;
    while v <= x1 {
        let _ = root.draw(&PathElement::new(vec![(px(v), t), (px(v), b)], light));
        let s = label(v, xs);
        text(&root, &s, px(v) - s.len() as i32 * 4 * SCALE, b + 10, false, &grey);
        v += xs;
    }
    let _ = root.draw(&Rectangle::new([(l, t), (r, b)], black));
    text(&root, xlabel, (l + r) / 2 - xlabel.len() as i32 * 4 * SCALE, b + 40, false, &black);
    text(&root, ylabel, 20, (t + b) / 2 + ylabel.len() as i32 * 4 * SCALE, true, &black);
    for (mark, points) in series {
        let ok: Vec<(i32, i32)> = points.iter().filter(|(x, y)| x.is_finite() && y.is_finite()).map(|&(x, y)| (px(x), py(y))).collect();
        match mark {
            Mark::Points(c, size) => {
                for &(x, y) in &ok {
                    let _ = root.draw(&Rectangle::new([(x - size / 2, y - size / 2), (x + size / 2, y + size / 2)], c.filled()));
                }
            }
            Mark::Line(c, w) => {
                let _ = root.draw(&PathElement::new(ok, c.stroke_width(*w)));
            }
            Mark::Step(c, w) => {
                let mut stepped = Vec::with_capacity(ok.len() * 2);
                for (i, &(x, y)) in ok.iter().enumerate() {
                    if i > 0 {
                        stepped.push((x, ok[i - 1].1));
                    }
                    stepped.push((x, y));
                }
                let _ = root.draw(&PathElement::new(stepped, c.stroke_width(*w)));
            }
        }
    }
    root.present().map_err(|e| err(e.to_string()))
}

fn status_colour(s: ChildStatus) -> RGBColor {
    match s {
        ChildStatus::Ok => RGBColor(47, 158, 68),
        ChildStatus::Failed => RGBColor(232, 89, 12),
        ChildStatus::Dead => RGBColor(201, 42, 42),
        ChildStatus::StoppedEarly => RGBColor(156, 54, 181),
    }
}

fn plot_best(s: &RunState, path: &Path) -> Result<(), DashboardError> {
    let floor = s.children.iter().filter_map(|c| c.reward).fold(f64::INFINITY, f64::min);
    let floor = if floor.is_finite() { floor } else { 0.0 };
    let mut series = Vec::new();
    for st in [ChildStatus::Ok, ChildStatus::StoppedEarly, ChildStatus::Failed, ChildStatus::Dead] {
        let pts = s
            .children
            .iter()
            .enumerate()
            .filter(|(_, c)| c.status == st)
            .map(|(i, c)| ((i + 1) as f64, c.reward.unwrap_or(floor)))
            .collect();
        series.push((Mark::Points(status_colour(st), if s.children.len() > 5000 { 2 } else { 6 }), pts));
    }
    let mut best = f64::NEG_INFINITY;
    let line = s
        .children
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            best = best.max(c.reward.unwrap_or(f64::NEG_INFINITY));
            best.is_finite().then_some(((i + 1) as f64, best))
        })
        .collect();
    series.push((Mark::Step(RGBColor(29, 35, 48), 3), line));
    let title = format!("{}: reward of each child (green ok, orange failed, red dead, purple stopped early) and best so far", s.name());
    plot(path, &title, "children", "reward", &series)
}

fn plot_curves(s: &RunState, path: &Path) -> Result<(), DashboardError> {
    let mut series = Vec::new();
    let alpha_grey = if s.children.len() > 2000 { RGBColor(222, 226, 230) } else { RGBColor(173, 181, 189) };
    for c in &s.children {
        let pts = c.curve.iter().enumerate().map(|(e, &v)| ((e + 1) as f64, f64::from(v))).collect();
        series.push((Mark::Line(alpha_grey, 1), pts));
    }
    let mut top: Vec<&crate::run::Child> = s.children.iter().filter(|c| c.reward.is_some()).collect();
    top.sort_by(|a, b| b.reward.partial_cmp(&a.reward).unwrap_or(std::cmp::Ordering::Equal));
    let colours = [RGBColor(214, 51, 108), RGBColor(240, 140, 0), RGBColor(16, 152, 173), RGBColor(95, 61, 196), RGBColor(43, 138, 62)];
    for (c, col) in top.iter().take(5).zip(colours) {
        let pts = c.curve.iter().enumerate().map(|(e, &v)| ((e + 1) as f64, f64::from(v))).collect();
        series.push((Mark::Line(col, 3), pts));
    }
    let title = format!("{}: {} per epoch of every child, the 5 best in colour", s.name(), s.metric());
    plot(path, &title, "epoch", s.metric(), &series)
}

fn plot_controller(s: &RunState, path: &Path) -> Result<(), DashboardError> {
    let pts = |f: fn(&crate::run::Update) -> Option<f64>| -> Vec<(f64, f64)> {
        s.updates.iter().enumerate().filter_map(|(i, u)| f(u).map(|v| ((i + 1) as f64, v))).collect()
    };
    let series = vec![
        (Mark::Line(RGBColor(47, 111, 219), 2), pts(|u| u.mean_reward)),
        (Mark::Line(RGBColor(232, 89, 12), 2), pts(|u| u.baseline)),
    ];
    let title = format!("{}: mean reward per update (blue) and the baseline (orange)", s.name());
    plot(path, &title, "update", "reward", &series)
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_keys_are_encoded_as_the_page_encodes_them() {
        assert_eq!(super::uri_component("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(super::uri_component("run-2026_01.x"), "run-2026_01.x");
    }
}
