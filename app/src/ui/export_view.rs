//! The `w` key: what the current view shows — the chart, the comparison, the
//! mask snapshot — as a PNG and an SVG figure (the same drawings as
//! `probdrop-tui export`). [`figure`] says what to draw from the view alone;
//! [`write`] draws it under the exports folder, through `Effects::export`.

use std::path::{Path, PathBuf};

use super::app::App;
use super::keys::View;
use super::views::charts::{self, Look, Part};
use super::views::masks;
use crate::export::figures::{self, Curve, Panel};
use crate::export::sweep_figure::{self, SweepPanel};
use crate::run::comparison::Manifest;
use crate::run::dir::{self, SnapshotLine, metric};

/// The figure formats one press writes.
const FORMATS: [&str; 2] = ["png", "svg"];

/// What `w` draws: one view's figure, and the file name it goes under.
#[derive(Debug)]
pub enum Figure {
    /// The chart as shown, as `<stem>.png` and `.svg`.
    Chart { stem: String, panel: Panel },
    /// The mask snapshot shown, in the channel shown.
    Mask {
        stem: String,
        snapshot: SnapshotLine,
        channel: usize,
    },
    /// A comparison's figure, in a folder of its name.
    Comparison { name: String, manifest: Manifest },
    /// The sweep's grid or line as shown.
    Sweep { stem: String, panel: SweepPanel },
}

/// The current view's figure, or why it has none.
pub fn figure(app: &App) -> Result<Figure, String> {
    let stamp = dir::timestamp(app.now as u64);
    match app.view {
        View::Charts => chart(app, &stamp),
        View::Masks => mask(app, &stamp),
        View::Compare => comparison(app),
        View::Sweep => sweep(app, &stamp),
        _ => Err("w writes the Charts, Masks, Compare and Sweep views as figures".into()),
    }
}

/// Draws `figure` into `out`; the paths written, or why nothing was.
pub fn write(figure: &Figure, out: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    match figure {
        Figure::Chart { stem, panel } => {
            both(out, stem, |p| figures::draw(p, std::slice::from_ref(panel)))
        }
        Figure::Mask {
            stem,
            snapshot,
            channel,
        } => both(out, stem, |p| {
            figures::draw_snapshot(p, snapshot, Some(*channel))
        }),
        Figure::Sweep { stem, panel } => both(out, stem, |p| {
            sweep_figure::draw(p, std::slice::from_ref(panel))
        }),
        Figure::Comparison { name, manifest } => {
            let dir = out.join(name);
            let mut written = Vec::new();
            for format in [crate::export::Format::Png, crate::export::Format::Svg] {
                let paths = crate::export::comparison_figure(&dir, manifest, format)
                    .map_err(|e| format!("cannot draw {name}: {e:#}"))?;
                written.extend(paths);
            }
            Ok(written)
        }
    }
}

/// Both formats of one figure, drawn by `draw`, as `<stem>.png` and `.svg`.
fn both(
    out: &Path,
    stem: &str,
    draw: impl Fn(&Path) -> anyhow::Result<()>,
) -> Result<Vec<PathBuf>, String> {
    FORMATS
        .iter()
        .map(|ext| {
            let path = out.join(format!("{}.{ext}", stem.replace('/', "_")));
            // The figures say which file they could not write, and why.
            draw(&path).map_err(|e| format!("{e:#}"))?;
            Ok(path)
        })
        .collect()
}

/// The chart as the view draws it: its metric for the runs it shows, zoomed,
/// smoothed (the raw curve faint beneath), seeds averaged with their band,
/// over its x axis, in its y range and scale; only not downsampled.
fn chart(app: &App, stamp: &str) -> Result<Figure, String> {
    let runs = app.chart_runs();
    if runs.is_empty() {
        return Err("no run to chart".into());
    }
    let o = &app.charts;
    let (name, _, _) = charts::chosen(o.metric, &runs);
    let groups = charts::sources(app, &runs);
    let names = app.names_of_groups(&groups);
    let drawn = charts::curves(o, &groups, &name, 0, &mut Default::default());
    let y_range = charts::y_bounds(o, &drawn).map(|(_, [lo, hi])| (lo, hi));
    let curves = drawn
        .iter()
        .filter(|c| c.part == Part::Line)
        .map(|c| figure_curve(c, &drawn, &names[c.group]))
        .collect();
    let label = charts::metric_label(&name);
    let panel = Panel {
        x: o.x_axis.label().into(),
        y_range,
        log: o.log_scale,
        ..Panel::new(&label, &label, curves)
    };
    Ok(Figure::Chart {
        stem: format!("chart-{name}-{stamp}"),
        panel,
    })
}

/// One drawn line as a figure's curve, with the band its group's edges make.
fn figure_curve(line: &charts::Curve, drawn: &[charts::Curve], group: &str) -> Curve {
    let edge = |part: Part| {
        drawn
            .iter()
            .find(|c| c.group == line.group && c.val == line.val && c.part == part)
    };
    let band = match (edge(Part::Low), edge(Part::High)) {
        (Some(low), Some(high)) => low
            .points
            .iter()
            .zip(&high.points)
            .map(|(l, h)| (l.0, l.1, h.1))
            .collect(),
        _ => Vec::new(),
    };
    let split = if line.val { metric::VAL } else { metric::TRAIN };
    let faint = line.look == Look::Faint;
    let raw = if faint { " (raw)" } else { "" };
    Curve {
        name: format!("{group} {split}{raw}"),
        colour: 2 * line.group + usize::from(line.val),
        points: line.points.clone(),
        band,
        faint,
    }
}

/// The snapshot the Masks view shows, in the channel it shows.
fn mask(app: &App, stamp: &str) -> Result<Figure, String> {
    let run = app.selected_run().ok_or("no run selected")?;
    let shown = masks::shown(run, &app.masks).ok_or("no mask snapshot to draw yet")?;
    let s = shown.snap;
    let stem = format!(
        "mask-{}-s{}-{}-step{}-{stamp}",
        run.info.label, run.info.seed, s.slot, s.step
    );
    Ok(Figure::Mask {
        stem,
        snapshot: s.clone(),
        channel: app.masks.channel,
    })
}

/// The selected comparison's figure, beside the one `compare` wrote.
fn comparison(app: &App) -> Result<Figure, String> {
    let c = app
        .comparisons
        .get(app.selected.comparison)
        .ok_or("no comparison to draw")?;
    Ok(Figure::Comparison {
        name: c.name(),
        manifest: c.manifest.clone(),
    })
}

/// The Sweep view's grid (or line) as shown.
fn sweep(app: &App, stamp: &str) -> Result<Figure, String> {
    let (c, t, g) = app.sweep_grid().ok_or("no sweep to draw")?;
    let stem = format!("sweep-{}-{}-{stamp}", c.name(), g.arm.replace(' ', "_"));
    let panel = if g.is_line() {
        SweepPanel::Line(sweep_figure::line(&g, &t.baseline))
    } else {
        SweepPanel::Heat(g)
    };
    Ok(Figure::Sweep { stem, panel })
}
