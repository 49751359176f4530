//! A sweep's figure, `sweep.png` / `sweep.svg` beside compare.csv, a panel
//! per sweeping arm: one numeric swept key as a line of the mean final
//! validation accuracy over seeds with its ±1 sd band, the baseline as a
//! band across; two or more keys as a heatmap over the first two (the others
//! averaged, as the title says), each cell's mean and sd written in it and
//! marked `*` when it differs from the baseline after Holm.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::figures::{self, Curve, Panel};
use crate::run::comparison::Table;
use crate::run::comparison::grid::{self, Grid, Measure};

/// One arm's panel.
#[derive(Debug)]
pub enum SweepPanel {
    Line(Panel),
    Heat(Grid),
}

/// The panels of `t`'s sweeping arms, in the table's order: each over its
/// first two keys, the others averaged.
pub fn sweep_panels(t: &Table) -> Vec<SweepPanel> {
    grid::arms(t)
        .iter()
        .map(|arm| {
            let axes = (0, (arm.keys.len() > 1).then_some(1));
            let g = grid::grid(t, arm, axes, &[], Measure::Final);
            if g.is_line() {
                SweepPanel::Line(line(&g, &t.baseline))
            } else {
                SweepPanel::Heat(g)
            }
        })
        .collect()
}

/// Mean accuracy (%) against the one swept key, the baseline's mean ±1 sd
/// as a band across.
pub fn line(g: &Grid, baseline: &str) -> Panel {
    let at: Vec<(f64, f64, f64)> = (g.xs.iter().zip(&g.places[0]))
        .filter_map(|(x, place)| {
            let s = place.stat.as_ref()?;
            Some((x.parse().ok()?, s.mean, s.sd))
        })
        .collect();
    let mut curves = vec![Curve {
        name: format!("{} (mean ± sd over seeds)", g.arm),
        colour: 1,
        points: at.iter().map(|p| (p.0, p.1)).collect(),
        band: at.iter().map(|p| (p.0, p.1 - p.2, p.1 + p.2)).collect(),
        faint: false,
    }];
    if let (Some(b), Some(first), Some(last)) = (&g.baseline, at.first(), at.last()) {
        let across = |y: f64| vec![(first.0, y), (last.0, y)];
        curves.push(Curve {
            name: format!("{baseline} (baseline)"),
            colour: 0,
            points: across(b.mean),
            band: vec![
                (first.0, b.mean - b.sd, b.mean + b.sd),
                (last.0, b.mean - b.sd, b.mean + b.sd),
            ],
            faint: false,
        });
    }
    Panel {
        x: g.x_key.clone(),
        ..Panel::new(
            &g.title(),
            &format!("{} validation accuracy (%)", g.measure.label()),
            curves,
        )
    }
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
    h: &Grid,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let values: Vec<f64> = (h.places.iter().flatten())
        .filter_map(|p| p.stat.as_ref().map(|s| s.mean))
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let caption = if values.is_empty() {
        h.title()
    } else {
        format!(
            "{}: {} accuracy % ({lo:.2} dark to {hi:.2} bright; * ≠ baseline, Holm)",
            h.title(),
            h.measure.label()
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
        .y_desc(h.y_key.as_deref().unwrap_or(""))
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
    for (y, row) in h.places.iter().enumerate() {
        for (x, place) in row.iter().enumerate() {
            let (x0, y0) = (x as f64, y as f64);
            let Some(grid::Stat {
                mean, sd, marked, ..
            }) = place.stat.clone()
            else {
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
            let text = format!("{mean:.2}{}", if marked { "*" } else { "" });
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
