//! The bench's PNGs: best-so-far curves (mean over seeds, with a ±1 sample
//! standard deviation band, cut at the optimum) per strategy, against samples
//! on a log axis, with the table's optimum as a dashed line
//! ([`plot_curves`]); and the Pareto fronts, value against parameters and
//! against FLOPs, of every strategy's samples and of the whole table
//! ([`plot_pareto`]).
//!
//! plotters draws the shapes. Its text needs a font stack (font-kit and the
//! system's fonts, or a TTF to embed) that these machines and CI may lack, so
//! plotters is built without one and never asked to draw text; the labels are
//! drawn here from font8x8's public-domain 8×8 bitmap glyphs, scaled up. The
//! chart is laid out by hand for the same reason (plotters' mesh draws its
//! own labels).

use std::path::Path;

use font8x8::UnicodeFonts;
use plotters::coord::Shift;
use plotters::prelude::*;
use thiserror::Error;

use nasfleet_core::cost::CostMetric;
use nasfleet_core::pareto::ParetoFronts;

use crate::bench::BenchReport;

/// The PNG could not be drawn or written.
#[derive(Debug, Error)]
#[error("plotting {path}: {message}")]
pub struct PlotError {
    /// The PNG file being written.
    pub path: String,
    /// The drawing backend's message.
    pub message: String,
}

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 760;
/// Plot area in pixels: left, top, right, bottom.
const AREA: (i32, i32, i32, i32) = (110, 70, 1170, 660);
/// Glyph scale: 8×8 glyphs drawn as 16×16.
const SCALE: i32 = 2;

/// A strategy's colour: fixed for the three known names so every plot reads
/// the same, then a fallback palette.
pub fn colour(strategy: &str, index: usize) -> RGBColor {
    match strategy {
        "rl" => RGBColor(214, 39, 40),
        "random" => RGBColor(90, 90, 90),
        "evolution" => RGBColor(31, 119, 180),
        "local" => RGBColor(44, 160, 44),
        "rl-ppo" => RGBColor(255, 127, 14),
        _ => [
            RGBColor(44, 160, 44),
            RGBColor(148, 103, 189),
            RGBColor(255, 127, 14),
            RGBColor(23, 190, 207),
        ][index % 4],
    }
}

/// Draws `text` with its top-left corner at (x, y); `vertical` turns it 90°
/// anticlockwise (reading bottom to top), with (x, y) its bottom-left corner.
fn text(
    area: &DrawingArea<BitMapBackend, Shift>,
    s: &str,
    x: i32,
    y: i32,
    vertical: bool,
    c: &RGBColor,
) {
    for (i, ch) in s.chars().enumerate() {
        // Characters outside font8x8's basic Latin (e.g. '±') are drawn from
        // ASCII stand-ins.
        let ch = match ch {
            '±' => '~',
            '−' | '–' => '-',
            c => c,
        };
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
                        let p = if vertical {
                            (x + v, y - u)
                        } else {
                            (x + u, y + v)
                        };
                        let _ = area.draw_pixel(p, c);
                    }
                }
            }
        }
    }
}

fn text_width(s: &str) -> i32 {
    s.chars().count() as i32 * 8 * SCALE
}

/// A tick step of 1, 2 or 5 times a power of ten giving about `target` ticks.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

/// The y range: from the lowest band edge once every strategy has ten
/// samples (earlier points are clamped to it), up to just above the optimum.
fn y_range(report: &BenchReport) -> (f64, f64) {
    let from = 10.min(report.settings.budget) - 1;
    let lo = report
        .summaries
        .iter()
        .flat_map(|s| {
            s.curve_mean[from..]
                .iter()
                .zip(&s.curve_std[from..])
                .map(|(m, d)| m - d)
        })
        .fold(f64::INFINITY, f64::min);
    let hi = report.table.best;
    let lo = if lo.is_finite() && lo < hi {
        lo
    } else {
        hi - 1.0
    };
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Writes the plot of `report` to `path` (PNG).
pub fn plot_curves(report: &BenchReport, path: &Path) -> Result<(), PlotError> {
    let err = |message: String| PlotError {
        path: path.display().to_string(),
        message,
    };
    let budget = report.settings.budget;
    if budget < 2 || report.summaries.is_empty() {
        return Err(err(format!(
            "nothing to plot: budget {budget} and {} strategies",
            report.summaries.len()
        )));
    }
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (ylo, yhi) = y_range(report);
    let (l, t, r, b) = AREA;
    let plot = root.margin(t as u32, HEIGHT - b as u32, l as u32, WIDTH - r as u32);
    let mut chart = ChartBuilder::on(&plot)
        .build_cartesian_2d((1.0..budget as f64).log_scale(), ylo..yhi)
        .map_err(|e| err(e.to_string()))?;
    let grid = RGBColor(225, 225, 225);
    let black = RGBColor(0, 0, 0);

    // Grid and tick labels.
    let x_ticks: Vec<usize> = [1, 10, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
        .into_iter()
        .filter(|&k| k <= budget)
        .chain(
            (!matches!(
                budget,
                1 | 10 | 50 | 100 | 200 | 500 | 1000 | 2000 | 5000 | 10000
            ))
            .then_some(budget),
        )
        .collect();
    // Labels right to left, so the budget's is always drawn and a label that
    // would touch the one to its right is left out (the grid line stays).
    let mut free_until = i32::MAX;
    for &k in x_ticks.iter().rev() {
        let x = k as f64;
        chart
            .draw_series(LineSeries::new([(x, ylo), (x, yhi)], grid))
            .map_err(|e| err(e.to_string()))?;
        let (px, _) = chart.backend_coord(&(x, ylo));
        let label = k.to_string();
        let left = px - text_width(&label) / 2;
        if left + text_width(&label) + 8 <= free_until {
            text(&root, &label, left, b + 8, false, &black);
            free_until = left;
        }
    }
    let step = nice_step(yhi - ylo, 6.0);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let mut y = (ylo / step).ceil() * step;
    while y <= yhi {
        chart
            .draw_series(LineSeries::new([(1.0, y), (budget as f64, y)], grid))
            .map_err(|e| err(e.to_string()))?;
        let (_, py) = chart.backend_coord(&(1.0, y));
        let label = format!("{y:.decimals$}");
        text(
            &root,
            &label,
            l - 8 - text_width(&label),
            py - 8,
            false,
            &black,
        );
        y += step;
    }

    // Bands, then curves on top, then the optimum. No best-so-far exceeds
    // the optimum, so neither does the drawn band.
    let clamp = |v: f64| v.clamp(ylo, report.table.best);
    for (i, s) in report.summaries.iter().enumerate() {
        let c = colour(&s.strategy, i);
        let upper = s
            .curve_mean
            .iter()
            .zip(&s.curve_std)
            .enumerate()
            .map(|(k, (m, d))| ((k + 1) as f64, clamp(m + d)));
        let lower = s
            .curve_mean
            .iter()
            .zip(&s.curve_std)
            .enumerate()
            .map(|(k, (m, d))| ((k + 1) as f64, clamp(m - d)));
        let mut points: Vec<(f64, f64)> = upper.collect();
        points.extend(lower.collect::<Vec<_>>().into_iter().rev());
        chart
            .draw_series(std::iter::once(Polygon::new(points, c.mix(0.15).filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    for (i, s) in report.summaries.iter().enumerate() {
        let c = colour(&s.strategy, i);
        let line = s
            .curve_mean
            .iter()
            .enumerate()
            .map(|(k, m)| ((k + 1) as f64, clamp(*m)));
        chart
            .draw_series(LineSeries::new(line, c.stroke_width(3)))
            .map_err(|e| err(e.to_string()))?;
    }
    let opt = report.table.best;
    let dashes = (0..60).map(|j| {
        let x0 = (budget as f64).powf(j as f64 / 60.0);
        let x1 = (budget as f64).powf((j as f64 + 0.5) / 60.0);
        PathElement::new(vec![(x0, opt), (x1, opt)], black.stroke_width(2))
    });
    chart.draw_series(dashes).map_err(|e| err(e.to_string()))?;
    let (_, opt_py) = chart.backend_coord(&(1.0, opt));
    text(
        &root,
        &format!("table optimum {opt:.2}"),
        l + 12,
        opt_py + 6,
        false,
        &black,
    );

    // Frame.
    root.draw(&Rectangle::new([(l, t), (r, b)], black.stroke_width(1)))
        .map_err(|e| err(e.to_string()))?;

    // Legend, lower right.
    let n = report.settings.seeds.len();
    let lx = r - 330;
    let mut ly = b - 24 - 26 * report.summaries.len() as i32;
    for (i, s) in report.summaries.iter().enumerate() {
        let c = colour(&s.strategy, i);
        root.draw(&Rectangle::new(
            [(lx, ly + 2), (lx + 36, ly + 14)],
            c.mix(0.15).filled(),
        ))
        .map_err(|e| err(e.to_string()))?;
        root.draw(&PathElement::new(
            vec![(lx, ly + 8), (lx + 36, ly + 8)],
            c.stroke_width(3),
        ))
        .map_err(|e| err(e.to_string()))?;
        let last = s
            .checkpoints
            .last()
            .map(|c| c.best.mean)
            .unwrap_or(f64::NAN);
        text(
            &root,
            &format!("{} ({last:.2})", s.strategy),
            lx + 46,
            ly,
            false,
            &black,
        );
        ly += 26;
    }

    // Titles.
    let title = format!(
        "NAS-Bench-201 {}: best found so far",
        report.table.objective
    );
    text(
        &root,
        &title,
        (WIDTH as i32 - text_width(&title)) / 2,
        12,
        false,
        &black,
    );
    let sub = format!(
        "mean over {n} seeds, band +-1 sample std; batch {}",
        report.settings.batch
    );
    text(
        &root,
        &sub,
        (WIDTH as i32 - text_width(&sub)) / 2,
        38,
        false,
        &black,
    );
    let xl = "samples (log scale)";
    text(
        &root,
        xl,
        (l + r - text_width(xl)) / 2,
        b + 40,
        false,
        &black,
    );
    let yl = "best value found";
    text(&root, yl, 16, (t + b + text_width(yl)) / 2, true, &black);

    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// One panel of [`plot_pareto`]: the fronts for `metric` in the pixel
/// rectangle `(l, t, r, b)` of `root`.
fn pareto_panel(
    root: &DrawingArea<BitMapBackend, Shift>,
    report: &BenchReport,
    metric: CostMetric,
    (l, t, r, b): (i32, i32, i32, i32),
    err: &dyn Fn(String) -> PlotError,
) -> Result<(), PlotError> {
    let front = |f: &ParetoFronts| -> Vec<(f64, f64)> {
        let pts = match metric {
            CostMetric::Params => &f.params,
            CostMetric::Flops => &f.flops,
        };
        pts.iter().map(|p| (p.cost(metric) as f64, p.accuracy)).collect()
    };
    let table = front(&report.table_pareto);
    let all: Vec<(f64, f64)> = table
        .iter()
        .copied()
        .chain(report.summaries.iter().flat_map(|s| front(&s.pareto)))
        .collect();
    let (xmin, xmax) = all.iter().fold((f64::INFINITY, 0.0f64), |(a, z), p| (a.min(p.0), z.max(p.0)));
    let (xlo, xhi) = (xmin.max(1.0) / 1.3, xmax.max(2.0) * 1.3);
    let yhi = report.table.best;
    let ylo = report.table.median.min(yhi - 1e-9);
    let pad = (yhi - ylo) * 0.05;
    let (ylo, yhi) = (ylo - pad, yhi + pad);
    let plot = root.margin(t as u32, (HEIGHT as i32 - b) as u32, l as u32, (WIDTH as i32 - r) as u32);
    let mut chart = ChartBuilder::on(&plot)
        .build_cartesian_2d((xlo..xhi).log_scale(), ylo..yhi)
        .map_err(|e| err(e.to_string()))?;
    let grid = RGBColor(225, 225, 225);
    let black = RGBColor(0, 0, 0);
    // x ticks: 1, 2, 5 × powers of ten, labelled in millions; right to left
    // so labels never overlap.
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(xlo.log10().floor());
    while decade <= xhi {
        for m in [1.0, 2.0, 5.0] {
            let x = m * decade;
            if x >= xlo && x <= xhi {
                ticks.push(x);
            }
        }
        decade *= 10.0;
    }
    let mut free_until = i32::MAX;
    for &x in ticks.iter().rev() {
        chart
            .draw_series(LineSeries::new([(x, ylo), (x, yhi)], grid))
            .map_err(|e| err(e.to_string()))?;
        let (px, _) = chart.backend_coord(&(x, ylo));
        let m = x / 1e6;
        let label = if m >= 1.0 { format!("{m:.0}M") } else { format!("{m}M") };
        let left = px - text_width(&label) / 2;
        if left + text_width(&label) + 8 <= free_until {
            text(root, &label, left, b + 8, false, &black);
            free_until = left;
        }
    }
    let step = nice_step(yhi - ylo, 6.0);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let mut y = (ylo / step).ceil() * step;
    while y <= yhi {
        chart
            .draw_series(LineSeries::new([(xlo, y), (xhi, y)], grid))
            .map_err(|e| err(e.to_string()))?;
        let (_, py) = chart.backend_coord(&(xlo, y));
        let label = format!("{y:.decimals$}");
        text(root, &label, l - 8 - text_width(&label), py - 8, false, &black);
        y += step;
    }
    // Staircases: a front holds its value until the next, dearer, point.
    let stairs = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        for (i, &(x, v)) in pts.iter().enumerate() {
            let v = v.clamp(ylo, yhi);
            if i > 0 {
                out.push((x, out.last().map_or(v, |p: &(f64, f64)| p.1)));
            }
            out.push((x, v));
        }
        if let Some(&(_, v)) = out.last() {
            out.push((xhi, v));
        }
        out
    };
    chart
        .draw_series(LineSeries::new(stairs(&table), black.stroke_width(1)))
        .map_err(|e| err(e.to_string()))?;
    for (i, s) in report.summaries.iter().enumerate() {
        let c = colour(&s.strategy, i);
        let pts = front(&s.pareto);
        chart
            .draw_series(LineSeries::new(stairs(&pts), c.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(
                pts.iter()
                    .filter(|p| p.1 >= ylo)
                    .map(|&p| Circle::new(p, 4, c.filled())),
            )
            .map_err(|e| err(e.to_string()))?;
    }
    root.draw(&Rectangle::new([(l, t), (r, b)], black.stroke_width(1)))
        .map_err(|e| err(e.to_string()))?;
    let xl = match metric {
        CostMetric::Params => "parameters (log scale)",
        CostMetric::Flops => "FLOPs per image (log scale)",
    };
    text(root, xl, (l + r - text_width(xl)) / 2, b + 40, false, &black);
    Ok(())
}

/// Writes the Pareto plot of `report` to `path` (PNG): for every strategy,
/// the front of all its seeds' samples (value against parameters, left, and
/// against FLOPs, right; a staircase with the front's points), and the
/// whole table's front in black. Values below the table's median are
/// clipped to the bottom edge.
pub fn plot_pareto(report: &BenchReport, path: &Path) -> Result<(), PlotError> {
    let err = |message: String| PlotError {
        path: path.display().to_string(),
        message,
    };
    if report.summaries.is_empty() || report.table_pareto.params.is_empty() {
        return Err(err("nothing to plot: no strategies or an empty table".into()));
    }
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    pareto_panel(&root, report, CostMetric::Params, (100, 70, 580, 640), &err)?;
    pareto_panel(&root, report, CostMetric::Flops, (700, 70, 1180, 640), &err)?;
    let black = RGBColor(0, 0, 0);
    let title = format!(
        "NAS-Bench-201 {}: Pareto fronts of the samples",
        report.table.objective
    );
    text(&root, &title, (WIDTH as i32 - text_width(&title)) / 2, 12, false, &black);
    let sub = match report.settings.reward.cost_rule() {
        Some(rule) => format!(
            "all seeds together; black: whole table; reward cost {} target {:.3e}",
            rule.metric.name(),
            rule.target
        ),
        None => "all seeds together; black: whole table".to_string(),
    };
    text(&root, &sub, (WIDTH as i32 - text_width(&sub)) / 2, 38, false, &black);
    let yl = "value";
    text(&root, yl, 16, (70 + 640 + text_width(yl)) / 2, true, &black);
    // Legend, lower right of the right panel.
    let (lx, mut ly) = (1180 - 250, 640 - 24 - 26 * report.summaries.len() as i32);
    for (i, s) in report.summaries.iter().enumerate() {
        let c = colour(&s.strategy, i);
        root.draw(&PathElement::new(vec![(lx, ly + 8), (lx + 36, ly + 8)], c.stroke_width(3)))
            .map_err(|e| err(e.to_string()))?;
        text(&root, &s.strategy, lx + 46, ly, false, &black);
        ly += 26;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{run_bench, BenchSettings};
    use crate::table::Table;
    use nasfleet_core::reward::RewardConfig;
    use nasfleet_core::space::nb201::Nb201Arch;
    use nasfleet_core::strategy::{RandomSearch, SearchStrategy, StrategyError};
    use nasfleet_core::Space;
    use std::sync::Arc;

    #[test]
    fn writes_a_png_of_the_declared_size() {
        // A complete table whose value is the sum of the NASLib op indices.
        let cells = (0..crate::CELLS).map(|i| {
            let t: [u8; 6] = std::array::from_fn(|k| ((i / 5usize.pow(5 - k as u32)) % 5) as u8);
            (
                Nb201Arch::from_naslib_tuple(t).unwrap(),
                60.0 + t.iter().map(|&d| f64::from(d)).sum::<f64>(),
            )
        });
        let table = Arc::new(Table::from_cells("acc", vec![], cells).unwrap());
        let settings = BenchSettings {
            strategies: vec!["random".into(), "other".into()],
            seeds: vec![0, 1, 2],
            budget: 120,
            batch: 4,
            reward: RewardConfig::default(),
        };
        let mut factory =
            |name: &str, seed: u64| -> Result<Box<dyn SearchStrategy>, StrategyError> {
                Ok(Box::new(RandomSearch::new(
                    Space::Nb201,
                    seed + if name == "other" { 100 } else { 0 },
                )))
            };
        let report = run_bench(table, "synthetic", &settings, &mut factory, &mut |_| {}).unwrap();
        let dir = std::env::temp_dir().join(format!("nasfleet-nb201-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("curves.png");
        plot_curves(&report, &path).unwrap();
        let pareto = dir.join("pareto.png");
        plot_pareto(&report, &pareto).unwrap();
        for path in [&path, &pareto] {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
            // IHDR: width and height, big-endian, right after its length and tag.
            assert_eq!(&bytes[12..16], b"IHDR");
            assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), WIDTH);
            assert_eq!(
                u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
                HEIGHT
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();

        let one = BenchSettings {
            budget: 1,
            ..settings
        };
        let tiny = crate::bench::summarise(
            &Table::from_cells(
                "acc",
                vec![],
                vec![(Nb201Arch::from_naslib_tuple([0; 6]).unwrap(), 1.0)],
            )
            .unwrap(),
            "x",
            &one,
            &[],
        );
        assert!(plot_curves(&tiny, &dir.join("none.png"))
            .unwrap_err()
            .to_string()
            .contains("nothing to plot"));
    }

    #[test]
    fn nice_steps() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12 * b;
        assert!(close(nice_step(1.0, 6.0), 0.2));
        assert!(close(nice_step(5.0, 6.0), 1.0));
        assert!(close(nice_step(0.3, 6.0), 0.05));
        assert!(close(nice_step(60.0, 6.0), 10.0));
    }
}
