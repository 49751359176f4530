//! Figures for a white page, PNG or SVG: a run's loss and accuracy curves,
//! and a comparison's validation accuracy and dropped fraction per strategy
//! (mean over seeds with a ±1 sd band).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::run::dir::metric::{SeriesKey, Split};
use crate::run::dir::{MetricLine, metric};

/// Pixels of a figure: two panels side by side.
pub const SIZE: (u32, u32) = (1200, 480);
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// A named curve: (x, y) points, and an optional ±band (x, low, high).
#[derive(Debug)]
pub struct Curve {
    pub name: String,
    /// Its colour's place in the palette: one strategy keeps its colour
    /// across panels.
    pub colour: usize,
    pub points: Vec<(f64, f64)>,
    pub band: Vec<(f64, f64, f64)>,
    /// Drawn light and left out of the legend (a raw curve beneath its
    /// smoothed one).
    pub faint: bool,
}

/// One panel: a title, axis names, its curves and how its axes read.
#[derive(Debug)]
pub struct Panel {
    pub title: String,
    /// What x counts (step, epoch, minutes).
    pub x: String,
    pub y: String,
    pub curves: Vec<Curve>,
    /// The y range shown, when not every value's.
    pub y_range: Option<(f64, f64)>,
    /// The y values are log10 of what the labels say.
    pub log: bool,
}

impl Panel {
    /// A panel over steps, every value shown on a linear axis.
    pub fn new(title: &str, y: &str, curves: Vec<Curve>) -> Panel {
        Panel {
            title: title.into(),
            x: "step".into(),
            y: y.into(),
            curves,
            y_range: None,
            log: false,
        }
    }
}

/// The low end of a value axis, `pad` below the lowest value, but never
/// below zero for a quantity that is never negative (a loss, a rate, a
/// fraction): its ±sd band or head-room must not suggest it can be.
pub fn axis_low(lowest: f64, pad: f64, never_negative: bool) -> f64 {
    if never_negative {
        (lowest - pad).max(0.0)
    } else {
        lowest - pad
    }
}

/// An axis label: whole numbers without decimals (step 100, not 100.0),
/// others in at most three.
fn tick(v: f64) -> String {
    if v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let text = format!("{v:.3}");
    text.trim_end_matches('0').to_string()
}

fn font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    ok.then_some(())
        .ok_or_else(|| anyhow!("the figure font did not load"))
}

/// What draws itself on a figure's page, whichever the backend.
pub trait Figure {
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Panels side by side.
struct Panels<'a>(&'a [Panel]);

impl Figure for Panels<'_> {
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        draw_on(root, self.0)
    }
}

/// Draws `panels` side by side into `path`, PNG or SVG by its extension.
pub fn draw(path: &Path, panels: &[Panel]) -> Result<()> {
    draw_figure(path, &Panels(panels))
}

/// Draws `figure` into `path`, PNG or SVG by its extension.
pub fn draw_figure(path: &Path, figure: &impl Figure) -> Result<()> {
    let bytes = font().and_then(|()| {
        if is_svg(path) {
            svg(|root| figure.draw_on(root))
        } else {
            png(|root| figure.draw_on(root))
        }
    });
    save(
        path,
        &bytes.with_context(|| format!("drawing {}", path.display()))?,
    )
}

fn is_svg(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "svg")
}

/// A figure as SVG text. Drawn in memory, not by the backend's own file
/// writer, which would open `path` through any link planted there.
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<Vec<u8>> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    Ok(text.into_bytes())
}

/// A figure as PNG bytes (drawn in memory, as [`svg`]).
fn png(draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>) -> Result<Vec<u8>> {
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    let mut bytes = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut bytes),
        &rgb,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(bytes)
}

/// Writes a drawn figure as every export file is written.
fn save(path: &Path, bytes: &[u8]) -> Result<()> {
    super::write_file(path, |out| out.write_all(bytes))
}

fn draw_on<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, panels: &[Panel]) -> Result<()> {
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel).map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

/// The range of every x and y (bands included), padded a little; no y
/// below zero when no curve goes there (its band may); the panel's own y
/// range when it has one.
fn bounds(panel: &Panel) -> ((f64, f64), (f64, f64)) {
    let xs = panel
        .curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.0));
    let ys = panel.curves.iter().flat_map(|c| {
        let band = c.band.iter().flat_map(|b| [b.1, b.2]);
        c.points.iter().map(|p| p.1).chain(band)
    });
    let span = |it: &mut dyn Iterator<Item = f64>| {
        it.filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (x0, x1) = span(&mut xs.into_iter());
    let (y0, y1) = span(&mut ys.into_iter());
    if !x0.is_finite() {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let never_negative = panel
        .curves
        .iter()
        .all(|c| c.points.iter().all(|p| p.1 >= 0.0));
    let y = (axis_low(y0, pad, never_negative), y1 + pad);
    ((x0, x1.max(x0 + 1.0)), panel.y_range.unwrap_or(y))
}

pub(crate) fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let ((x0, x1), (y0, y1)) = bounds(panel);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let y_label = |v: &f64| {
        if panel.log {
            tick(10f64.powf(*v))
        } else {
            tick(*v)
        }
    };
    chart
        .configure_mesh()
        .x_desc(panel.x.as_str())
        .y_desc(panel.y.as_str())
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&y_label)
        .label_style(("sans-serif", 14))
        .draw()?;
    for curve in panel.curves.iter().filter(|c| c.faint) {
        let colour = Palette99::pick(curve.colour).mix(0.35);
        chart.draw_series(LineSeries::new(curve.points.clone(), colour))?;
    }
    for curve in panel.curves.iter().filter(|c| !c.faint) {
        let colour = Palette99::pick(curve.colour).to_rgba();
        if !curve.band.is_empty() {
            let upper = curve.band.iter().map(|b| (b.0, b.2));
            let lower = curve.band.iter().rev().map(|b| (b.0, b.1));
            let outline: Vec<(f64, f64)> = upper.chain(lower).collect();
            chart.draw_series(std::iter::once(Polygon::new(outline, colour.mix(0.2))))?;
        }
        chart
            .draw_series(LineSeries::new(
                curve.points.clone(),
                colour.stroke_width(2),
            ))?
            .label(curve.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

/// (step, value) of one split and metric.
pub fn series(lines: &[MetricLine], split: &str, name: &str) -> Vec<(f64, f64)> {
    lines
        .iter()
        .filter(|l| l.split == split && l.metric == name)
        .map(|l| (l.step as f64, l.value))
        .collect()
}

/// A run's loss and accuracy panels, training and validation.
pub fn run_panels(lines: &[MetricLine]) -> Vec<Panel> {
    let curve = |split: Split, name: &str, colour: usize| Curve {
        name: SeriesKey::new(split, name).to_string(),
        colour,
        points: series(lines, split.name(), name),
        band: Vec::new(),
        faint: false,
    };
    [(metric::LOSS, "loss"), (metric::ACC, "accuracy")]
        .into_iter()
        .map(|(name, title)| {
            let curves = vec![curve(Split::Train, name, 0), curve(Split::Val, name, 1)];
            Panel::new(title, title, curves)
        })
        .collect()
}

/// Mean and ±1 sd over seeds at each step every seed logged.
pub fn mean_band(seeds: &[Vec<(f64, f64)>], name: &str, colour: usize) -> Curve {
    let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for s in seeds {
        for &(x, y) in s {
            at.entry(x as u64).or_default().push(y);
        }
    }
    let (mut points, mut band) = (Vec::new(), Vec::new());
    for (x, ys) in at.into_iter().filter(|(_, ys)| ys.len() == seeds.len()) {
        let n = ys.len() as f64;
        let mean = ys.iter().sum::<f64>() / n;
        let sd = if ys.len() > 1 {
            (ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        points.push((x as f64, mean));
        band.push((x as f64, mean - sd, mean + sd));
    }
    Curve {
        name: format!("{name} (n = {})", seeds.len()),
        colour,
        points,
        band,
        faint: false,
    }
}

/// A comparison's panels: validation accuracy and the dropped fraction of
/// each strategy, mean over its seeds ± 1 sd.
pub fn comparison_panels(runs: &BTreeMap<String, Vec<Vec<MetricLine>>>) -> Vec<Panel> {
    let mut acc = Vec::new();
    let mut dropped = Vec::new();
    for (colour, (label, seeds)) in runs.iter().enumerate() {
        let val: Vec<_> = seeds
            .iter()
            .map(|l| series(l, metric::VAL, metric::ACC))
            .collect();
        acc.push(mean_band(&val, label, colour));
        let drop: Vec<_> = seeds
            .iter()
            .map(|lines| {
                let slot = lines.iter().find(|l| metric::is_dropped(&l.metric));
                slot.map_or(Vec::new(), |s| series(lines, metric::TRAIN, &s.metric))
            })
            .collect();
        if drop.iter().all(|d| !d.is_empty()) {
            dropped.push(mean_band(&drop, label, colour));
        }
    }
    vec![
        Panel::new(
            "validation accuracy (mean ± sd over seeds)",
            "accuracy",
            acc,
        ),
        Panel::new(
            "dropped fraction (mean ± sd over seeds)",
            "fraction dropped",
            dropped,
        ),
    ]
}

/// Blue (low) to yellow (high) for `t` in [0, 1].
fn heat(t: f64) -> HSLColor {
    let t = t.clamp(0.0, 1.0);
    HSLColor(0.66 - 0.5 * t, 0.9, 0.25 + 0.4 * t)
}

/// One map as cells of a `w × h` grid, row 0 at the top.
fn cells<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    (w, h): (usize, usize),
    colour: impl Fn(usize) -> RGBAColor,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .build_cartesian_2d(0..w, 0..h)?;
    chart.draw_series((0..w * h).map(|i| {
        let (row, col) = (i / w, i % w);
        let top = h - row;
        Rectangle::new([(col, top), (col + 1, top - 1)], colour(i).filled())
    }))?;
    // The map's edge, so that an all-white mask still shows its extent.
    chart.draw_series(std::iter::once(Rectangle::new(
        [(0, h), (w, 0)],
        BLACK.stroke_width(1),
    )))?;
    Ok(())
}

/// One channel of a snapshot (`channel`, an index into the snapshot's
/// channels; `None`: the one that shows the most, see
/// [`crate::run::dir::SnapshotLine::most_telling_channel`]): salience
/// `|x|` on a colour scale with its bar, beside the keep-mask (kept white,
/// dropped black). PNG or SVG by the extension.
pub fn draw_snapshot(
    path: &Path,
    s: &crate::run::dir::SnapshotLine,
    channel: Option<usize>,
) -> Result<()> {
    let bytes = font().and_then(|()| {
        if is_svg(path) {
            svg(|root| draw_snapshot_on(root, s, channel).map_err(|e| anyhow!("{e}")))
        } else {
            png(|root| draw_snapshot_on(root, s, channel).map_err(|e| anyhow!("{e}")))
        }
    });
    save(
        path,
        &bytes.with_context(|| format!("drawing {}", path.display()))?,
    )
}

fn draw_snapshot_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: &crate::run::dir::SnapshotLine,
    channel: Option<usize>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (w, h) = (s.width.max(1), s.height.max(1));
    let channels = s.channels.len().max(1);
    let shown = channel.map_or_else(|| s.most_telling_channel(), |c| c % channels);
    let from = shown * w * h;
    let salience: Vec<f64> = s
        .salience
        .iter()
        .skip(from)
        .take(w * h)
        .map(|v| v.abs() as f64)
        .collect();
    let top = salience.iter().cloned().fold(0.0, f64::max).max(1e-12);
    let (maps, bar) = root.split_horizontally((SIZE.0 as f64 * 0.88) as u32);
    let halves = maps.split_evenly((1, 2));
    let channel = s.channels.get(shown).copied().unwrap_or(0);
    let title = format!(
        "salience |x|, {} channel {channel}, step {}",
        s.slot, s.step
    );
    cells(&halves[0], &title, (w, h), |i| {
        heat(salience.get(i).copied().unwrap_or(0.0) / top).to_rgba()
    })?;
    let kept = |i: usize| s.mask.get(from + i).is_some_and(|&m| m != 0.0);
    let title = format!("keep-mask (p = {:.3}): white kept", s.p);
    cells(&halves[1], &title, (w, h), |i| {
        if kept(i) {
            WHITE.to_rgba()
        } else {
            BLACK.to_rgba()
        }
    })?;
    let mut scale = ChartBuilder::on(&bar)
        .margin(20)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..1f64, 0f64..top)?;
    scale
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .label_style(("sans-serif", 14))
        .draw()?;
    let steps = 50;
    scale.draw_series((0..steps).map(|k| {
        let (lo, hi) = (
            top * k as f64 / steps as f64,
            top * (k + 1) as f64 / steps as f64,
        );
        Rectangle::new(
            [(0.0, lo), (1.0, hi)],
            heat(k as f64 / steps as f64).filled(),
        )
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 34, item 12: whole steps read as whole numbers on a figure's
    /// axes, and a fraction's band below zero does not take its axis there.
    #[test]
    fn axes_read_whole_steps_and_stay_at_zero_for_fractions() {
        let read: Vec<String> = [100.0, 0.0, 0.25, 1.5, 0.1234].map(tick).into();
        assert_eq!(read, ["100", "0", "0.25", "1.5", "0.123"]);
        let dropped = Curve {
            name: "dropblock".into(),
            colour: 0,
            points: vec![(1.0, 0.0), (2.0, 0.1)],
            band: vec![(1.0, -0.05, 0.05), (2.0, 0.05, 0.15)],
            faint: false,
        };
        let panel = Panel::new("dropped", "fraction", vec![dropped]);
        let (x, y) = bounds(&panel);
        assert_eq!((x, y.0), ((1.0, 2.0), 0.0));
        let shown = Panel {
            y_range: Some((0.02, 0.08)),
            ..panel
        };
        assert_eq!(bounds(&shown).1, (0.02, 0.08), "the view's range");
    }
}
