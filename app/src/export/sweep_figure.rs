//! A sweep's figure, `sweep.png` / `sweep.svg` beside compare.csv, a panel
//! per sweeping arm: one numeric swept key as a line of the mean final
//! validation accuracy over seeds with its ±1 sd band, the baseline as a
//! band across; two or more keys as a heatmap over the first two (the others
//! averaged, as the title says), each cell's mean and sd written in it and
//! marked `*` when it differs from the baseline after Holm.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::figures::{self, Curve, Panel};
use crate::run::comparison::{Row, Table, significance};

/// Holm-adjusted p below which a cell is marked.
const ALPHA: f64 = 0.05;

/// One arm's panel.
#[derive(Debug)]
pub enum SweepPanel {
    Line(Panel),
    Heat(Heat),
}

/// Mean final accuracy (%) over a grid of two keys' values.
#[derive(Debug)]
pub struct Heat {
    pub title: String,
    pub x_key: String,
    pub y_key: String,
    pub xs: Vec<String>,
    pub ys: Vec<String>,
    /// `[y][x]`: mean and sd in percent, and whether it is marked.
    pub cells: Vec<Vec<Option<(f64, f64, bool)>>>,
}

/// The panels of `t`'s sweeping arms, in the table's order.
pub fn sweep_panels(t: &Table) -> Vec<SweepPanel> {
    let marked: BTreeMap<&str, bool> = t
        .rows
        .iter()
        .zip(significance(t))
        .map(|(r, s)| (r.label.as_str(), s.holm.is_some_and(|p| p < ALPHA)))
        .collect();
    let mut arms: Vec<&str> = Vec::new();
    for r in &t.rows {
        if let Some(c) = t.cells.get(&r.label)
            && !arms.contains(&c.arm.as_str())
        {
            arms.push(&c.arm);
        }
    }
    arms.into_iter()
        .map(|arm| arm_panel(t, arm, &marked))
        .collect()
}

/// The rows of `arm`, each with its swept values in key order.
fn arm_rows<'a>(t: &'a Table, arm: &str) -> Vec<(&'a Row, Vec<&'a String>)> {
    t.rows
        .iter()
        .filter_map(|r| {
            let c = t.cells.get(&r.label).filter(|c| c.arm == arm)?;
            Some((r, c.values.values().collect()))
        })
        .collect()
}

fn arm_panel(t: &Table, arm: &str, marked: &BTreeMap<&str, bool>) -> SweepPanel {
    let rows = arm_rows(t, arm);
    let keys: Vec<String> = t
        .cells
        .values()
        .find(|c| c.arm == arm)
        .map(|c| c.values.keys().cloned().collect())
        .unwrap_or_default();
    let numeric = rows.iter().all(|(_, v)| v[0].parse::<f64>().is_ok());
    if keys.len() == 1 && numeric {
        return SweepPanel::Line(line(t, arm, &keys[0], &rows));
    }
    SweepPanel::Heat(heat(arm, &keys, &rows, marked))
}

/// Mean final accuracy (%) against the one swept key, the baseline's mean
/// ±1 sd as a band across.
fn line(t: &Table, arm: &str, key: &str, rows: &[(&Row, Vec<&String>)]) -> Panel {
    let mut at: Vec<(f64, f64, f64)> = rows
        .iter()
        .filter_map(|(r, v)| {
            let s = r.final_acc?;
            let sd = if s.sd.is_nan() { 0.0 } else { s.sd };
            Some((v[0].parse().ok()?, 100.0 * s.mean, 100.0 * sd))
        })
        .collect();
    at.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut curves = vec![Curve {
        name: format!("{arm} (mean ± sd over seeds)"),
        colour: 1,
        points: at.iter().map(|p| (p.0, p.1)).collect(),
        band: at.iter().map(|p| (p.0, p.1 - p.2, p.1 + p.2)).collect(),
        faint: false,
    }];
    let base = t.rows.iter().find(|r| r.label == t.baseline);
    if let (Some(s), Some(first), Some(last)) =
        (base.and_then(|r| r.final_acc), at.first(), at.last())
    {
        let (m, sd) = (
            100.0 * s.mean,
            if s.sd.is_nan() { 0.0 } else { 100.0 * s.sd },
        );
        curves.push(Curve {
            name: format!("{} (baseline)", t.baseline),
            colour: 0,
            points: vec![(first.0, m), (last.0, m)],
            band: vec![(first.0, m - sd, m + sd), (last.0, m - sd, m + sd)],
            faint: false,
        });
    }
    Panel {
        x: key.to_string(),
        ..Panel::new(arm, "final validation accuracy (%)", curves)
    }
}

/// The first two keys as a grid, the others averaged.
fn heat(
    arm: &str,
    keys: &[String],
    rows: &[(&Row, Vec<&String>)],
    marked: &BTreeMap<&str, bool>,
) -> Heat {
    let distinct = |i: usize| {
        let mut seen: Vec<String> = Vec::new();
        for (_, v) in rows {
            let value = v.get(i).map_or(String::new(), |s| (*s).clone());
            if !seen.contains(&value) {
                seen.push(value);
            }
        }
        seen
    };
    let (xs, ys) = (distinct(0), distinct(1));
    let mut sums = vec![vec![Vec::new(); xs.len()]; ys.len()];
    for (r, v) in rows {
        let Some(s) = r.final_acc else { continue };
        let x = xs.iter().position(|x| x == v[0]).unwrap_or(0);
        let y = v
            .get(1)
            .map_or(0, |y| ys.iter().position(|u| u == *y).unwrap_or(0));
        let mark = marked.get(r.label.as_str()).copied().unwrap_or(false);
        let sd = if s.sd.is_nan() { 0.0 } else { s.sd };
        sums[y][x].push((100.0 * s.mean, 100.0 * sd, mark));
    }
    let cells = sums
        .into_iter()
        .map(|row| row.into_iter().map(|c| average(&c)).collect())
        .collect();
    let title = match keys.len() {
        0..=2 => arm.to_string(),
        _ => format!("{arm}, averaged over {}", keys[2..].join(", ")),
    };
    Heat {
        title,
        x_key: keys.first().cloned().unwrap_or_default(),
        y_key: keys.get(1).cloned().unwrap_or_default(),
        xs,
        ys,
        cells,
    }
}

/// One cell from the cells it stands for: the mean of their means and sds,
/// marked only when it stands for one marked cell.
fn average(cells: &[(f64, f64, bool)]) -> Option<(f64, f64, bool)> {
    let n = cells.len() as f64;
    (!cells.is_empty()).then(|| {
        let mean = cells.iter().map(|c| c.0).sum::<f64>() / n;
        let sd = cells.iter().map(|c| c.1).sum::<f64>() / n;
        (mean, sd, cells.len() == 1 && cells[0].2)
    })
}

/// Draws the panels side by side into `path` (PNG or SVG by its extension).
pub fn draw(path: &Path, panels: &[SweepPanel]) -> Result<()> {
    figures::draw_figure(path, &SweepFigure(panels))
}

struct SweepFigure<'a>(&'a [SweepPanel]);

impl figures::Figure for SweepFigure<'_> {
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let areas = root.split_evenly((1, self.0.len().max(1)));
        for (area, panel) in areas.iter().zip(self.0) {
            match panel {
                SweepPanel::Line(p) => figures::draw_panel(area, p),
                SweepPanel::Heat(h) => draw_heat(area, h),
            }
            .map_err(|e| anyhow!("{e}"))?;
        }
        Ok(())
    }
}

/// From dark blue (lowest) through teal to yellow (highest).
fn shade(t: f64) -> RGBColor {
    let stops = [
        (68.0, 1.0, 84.0),
        (33.0, 145.0, 140.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * 2.0;
    let (a, b, f) = if t < 1.0 {
        (stops[0], stops[1], t)
    } else {
        (stops[1], stops[2], t - 1.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * f) as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw_heat<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    h: &Heat,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let values: Vec<f64> = h.cells.iter().flatten().flatten().map(|c| c.0).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let caption = if values.is_empty() {
        h.title.clone()
    } else {
        format!(
            "{}: final accuracy % ({lo:.2} dark to {hi:.2} bright; * ≠ baseline, Holm)",
            h.title
        )
    };
    let (nx, ny) = (h.xs.len(), h.ys.len().max(1));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)?;
    let at =
        |labels: &[String], v: f64| labels.get(v.floor() as usize).cloned().unwrap_or_default();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(h.x_key.as_str())
        .y_desc(h.y_key.as_str())
        .x_labels(nx * 2 + 1)
        .y_labels(ny * 2 + 1)
        .x_label_formatter(&|v| {
            if v.fract() == 0.5 {
                at(&h.xs, *v)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| {
            if v.fract() == 0.5 {
                at(&h.ys, *v)
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 14))
        .draw()?;
    for (y, row) in h.cells.iter().enumerate() {
        for (x, cell) in row.iter().enumerate() {
            let (x0, y0) = (x as f64, y as f64);
            let Some((mean, sd, mark)) = *cell else {
                continue;
            };
            let t = if hi > lo {
                (mean - lo) / (hi - lo)
            } else {
                0.5
            };
            let fill = shade(t);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, y0), (x0 + 1.0, y0 + 1.0)],
                fill.filled(),
            )))?;
            let ink = if t > 0.6 { BLACK } else { WHITE };
            let text = format!("{mean:.2}{}", if mark { "*" } else { "" });
            let style = ("sans-serif", 15).into_font().color(&ink);
            chart.draw_series(std::iter::once(Text::new(
                text,
                (x0 + 0.3, y0 + 0.6),
                style.clone(),
            )))?;
            let spread = format!("±{sd:.2}");
            chart.draw_series(std::iter::once(Text::new(
                spread,
                (x0 + 0.3, y0 + 0.35),
                style,
            )))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::comparison::{SweepCell, stats};

    fn row(label: &str, accs: &[f64]) -> Row {
        Row {
            label: label.into(),
            seeds_total: accs.len(),
            finished: Vec::new(),
            pending: Vec::new(),
            excluded: Vec::new(),
            final_acc: stats::summarize(accs),
            best_acc: stats::summarize(accs),
            delta_final: None,
            delta_best: None,
            dropping: None,
        }
    }

    /// A cell of arm `arm`: its `key=value` pairs and its seeds' accuracies.
    struct Given {
        arm: &'static str,
        values: Vec<(&'static str, &'static str)>,
        accs: Vec<f64>,
    }

    fn table(cells: &[Given]) -> Table {
        let mut rows = vec![row("none", &[0.80, 0.82])];
        let mut map = BTreeMap::new();
        for c in cells {
            let pairs: Vec<String> = c.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let label = format!("{} {}", c.arm, pairs.join(" "));
            rows.push(row(&label, &c.accs));
            let values = c
                .values
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let arm = c.arm.to_string();
            map.insert(label, SweepCell { arm, values });
        }
        Table {
            experiment: "x".into(),
            baseline: "none".into(),
            rows,
            cells: map,
        }
    }

    #[test]
    fn one_numeric_key_is_a_line_over_its_values_with_the_baseline_across() {
        let given = |p, accs: &[f64]| Given {
            arm: "dropout",
            values: vec![("p", p)],
            accs: accs.to_vec(),
        };
        let t = table(&[given("0.2", &[0.84, 0.86]), given("0.05", &[0.81, 0.83])]);
        let [SweepPanel::Line(panel)] = &sweep_panels(&t)[..] else {
            panic!("not one line panel");
        };
        assert_eq!(panel.x, "p");
        let points = &panel.curves[0].points;
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].0, 0.05);
        assert!((points[1].1 - 85.0).abs() < 1e-9, "{points:?}");
        assert_eq!(panel.curves[1].points, [(0.05, 81.0), (0.2, 81.0)]);
    }

    #[test]
    fn three_keys_are_a_grid_of_the_first_two_averaged_over_the_third() {
        let given = |b, g, p, acc| Given {
            arm: "dropblock",
            values: vec![("block_size", b), ("gamma_scale", g), ("p", p)],
            accs: vec![acc],
        };
        let t = table(&[
            given("3", "1", "0.1", 0.80),
            given("3", "1", "0.2", 0.84),
            given("5", "0.5", "0.1", 0.90),
        ]);
        let [SweepPanel::Heat(h)] = &sweep_panels(&t)[..] else {
            panic!("not one heatmap");
        };
        assert_eq!(
            (h.x_key.as_str(), h.y_key.as_str()),
            ("block_size", "gamma_scale")
        );
        assert!(h.title.ends_with("averaged over p"), "{}", h.title);
        assert_eq!(h.xs, ["3", "5"]);
        assert_eq!(h.ys, ["1", "0.5"]);
        let mean = |x: usize, y: usize| h.cells[y][x].map(|c| c.0);
        // Two cells of p averaged into one.
        assert!((mean(0, 0).unwrap() - 82.0).abs() < 1e-9);
        assert!((mean(1, 1).unwrap() - 90.0).abs() < 1e-9);
        assert_eq!(mean(0, 1), None);
    }
}
