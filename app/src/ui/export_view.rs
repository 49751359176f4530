//! The `w` key: what the current view shows — the chart, the comparison, the
//! mask snapshot — as a PNG and an SVG figure (the same drawings as
//! `probdrop-tui export`), written under the exports folder.

use std::path::{Path, PathBuf};

use super::app::App;
use super::keys::View;
use super::views::{charts, masks};
use crate::export::figures::{self, Curve, Panel};
use crate::run::dir::{self, metric};

/// The figure formats one press writes.
const FORMATS: [&str; 2] = ["png", "svg"];

/// Writes the current view's figure into `out`; the paths written, or why
/// nothing was.
pub fn export_view(app: &App, out: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let stamp = dir::timestamp(dir::now() as u64);
    match app.view {
        View::Charts => chart(app, out, &stamp),
        View::Masks => mask(app, out, &stamp),
        View::Compare => comparison(app, out),
        _ => Err("w writes the Charts, Masks and Compare views as figures".into()),
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

/// The chart's metric for the runs it shows (seeds averaged when it averages
/// them): training and validation curves over steps.
fn chart(app: &App, out: &Path, stamp: &str) -> Result<Vec<PathBuf>, String> {
    let runs = app.chart_runs();
    if runs.is_empty() {
        return Err("no run to chart".into());
    }
    let (name, _, _) = charts::chosen(app.charts.metric, &runs);
    let groups = charts::sources(app, &runs);
    let names = app.names_of_groups(&groups);
    let mut curves = Vec::new();
    for (i, (group, label)) in groups.iter().zip(&names).enumerate() {
        for (k, split) in [metric::TRAIN, metric::VAL].into_iter().enumerate() {
            let key = metric::series(split, &name);
            let seeds: Vec<Vec<(f64, f64)>> = group
                .iter()
                .filter_map(|r| Some(r.series.get(&key)?.points().to_vec()))
                .collect();
            if !seeds.is_empty() {
                curves.push(curve(&seeds, &format!("{label} {split}"), 2 * i + k));
            }
        }
    }
    let label = charts::metric_label(&name);
    let panel = Panel {
        title: label.clone(),
        y: label,
        curves,
    };
    both(out, &format!("chart-{name}-{stamp}"), |p| {
        figures::draw(p, std::slice::from_ref(&panel))
    })
}

/// One run's curve as it is; several seeds' as their mean ± 1 sd.
fn curve(seeds: &[Vec<(f64, f64)>], name: &str, colour: usize) -> Curve {
    match seeds {
        [one] => Curve {
            name: name.into(),
            colour,
            points: one.clone(),
            band: Vec::new(),
        },
        _ => figures::mean_band(seeds, name, colour),
    }
}

/// The snapshot the Masks view shows, in the channel it shows.
fn mask(app: &App, out: &Path, stamp: &str) -> Result<Vec<PathBuf>, String> {
    let run = app.selected_run().ok_or("no run selected")?;
    let shown = masks::shown(run, &app.masks).ok_or("no mask snapshot to draw yet")?;
    let s = shown.snap;
    let stem = format!(
        "mask-{}-s{}-{}-step{}-{stamp}",
        run.info.label, run.info.seed, s.slot, s.step
    );
    both(out, &stem, |p| {
        figures::draw_snapshot(p, s, Some(app.masks.channel))
    })
}

/// The selected comparison's figure, beside the one `compare` wrote.
fn comparison(app: &App, out: &Path) -> Result<Vec<PathBuf>, String> {
    let c = app
        .comparisons
        .get(app.selected.comparison)
        .ok_or("no comparison to draw")?;
    let dir = out.join(c.name());
    let mut written = Vec::new();
    for format in [crate::export::Format::Png, crate::export::Format::Svg] {
        let paths = crate::export::comparison_figure(&dir, &c.manifest, format)
            .map_err(|e| format!("cannot draw {}: {e:#}", c.name()))?;
        written.extend(paths);
    }
    Ok(written)
}
