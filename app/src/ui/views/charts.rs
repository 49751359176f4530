//! The Charts view: loss, accuracy or drop rate of the overlaid runs.

use std::collections::HashMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas::{Canvas, Context, Line as CanvasLine, Points};
use ratatui::widgets::{Axis, Chart};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::{ColorDepth, RUN_COLORS};
use crate::run::dir::EventKind;
use crate::run::dir::metric::{self, SeriesKey, Split};
use crate::ui::app::App;
use crate::ui::identity;
use crate::ui::series;
use crate::ui::state::{ChartOptions, XAxis};
use crate::ui::workspace::{RunView, Series};

/// Every metric the runs logged, by name (`loss`, `dropped/block2`): loss,
/// accuracy and drop rate first, then the others in name order.
fn metric_choices(runs: &[&RunView]) -> Vec<String> {
    let first = [metric::LOSS, metric::ACC, metric::P];
    let mut rest: Vec<String> = runs
        .iter()
        .flat_map(|r| r.series.keys())
        .map(|k| k.metric.clone())
        .filter(|n| !first.contains(&n.as_str()))
        .collect();
    rest.sort();
    rest.dedup();
    first.iter().map(|s| s.to_string()).chain(rest).collect()
}

/// What the chart calls a metric.
pub(crate) fn metric_label(name: &str) -> String {
    match name {
        metric::LOSS => "loss".into(),
        metric::ACC => "accuracy".into(),
        metric::P => "drop rate".into(),
        metric::TOP5 => "top-5 accuracy".into(),
        metric::LR => "learning rate".into(),
        metric::STEP_TIME => "step time (s)".into(),
        metric::SAMPLES_PER_S => "samples/s".into(),
        other => match other.strip_prefix("dropped/") {
            Some(slot) => format!("dropped at {slot}"),
            None => other.replace('_', " "),
        },
    }
}

/// The metric a chart shows (a counter through the choices): its name, its
/// place and how many there are.
pub(crate) fn chosen(counter: usize, runs: &[&RunView]) -> (String, usize, usize) {
    let choices = metric_choices(runs);
    let i = counter % choices.len();
    (choices[i].clone(), i, choices.len())
}

/// What a prepared curve depends on: new points, another width or other chart
/// options make a new one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CurveKey {
    /// The runs it is made of, each with its series' version then.
    members: Vec<(std::path::PathBuf, u64)>,
    /// The series, and for seeds averaged which curve of it (mean, band edge).
    series: SeriesKey,
    part: Part,
    columns: usize,
    /// The zoom window's first and last step, as bits (`None`: no zoom).
    window: Option<(u64, u64)>,
    log: bool,
    alpha: usize,
}

/// Zoomed, smoothed, downsampled curves, reused until their data or options
/// change (drawing 8 × 100k points from scratch costs several ms a frame).
#[derive(Default)]
pub struct CurveCache(HashMap<CurveKey, Vec<(f64, f64)>>);

/// How a curve is drawn: validation curves with dots, so that they read apart
/// from the training curve of the same run (same colour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Look {
    Train,
    /// The raw training curve beneath its smoothed one, or an edge of the
    /// band of seeds averaged.
    Faint,
    Val,
}

/// One prepared curve of a chart, as drawn.
#[derive(Clone, Debug)]
pub(crate) struct Curve {
    /// Its group of runs (its colour and name).
    pub group: usize,
    /// A validation curve (else training).
    pub val: bool,
    pub part: Part,
    pub look: Look,
    pub points: Vec<(f64, f64)>,
}

impl Curve {
    fn color(&self) -> Color {
        RUN_COLORS[self.group % RUN_COLORS.len()]
    }
}

/// From this size on, four charts side by side (the chosen metric and the
/// three after it) under one legend.
const GRID: (u16, u16) = (160, 40);

pub(super) fn draw(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    depth: ColorDepth,
    cache: &mut CurveCache,
) {
    let runs = app.chart_runs();
    let groups = sources(app, &runs);
    let marked = runs
        .iter()
        .any(|r| r.events.iter().any(|e| is_mark(&e.kind)));
    let names = app.names_of_groups(&groups);
    let legend = (!app.charts.legend_hidden).then(|| legend(&names, marked));
    let count = metric_choices(&runs).len().min(4);
    if area.width < GRID.0 || area.height < GRID.1 {
        let pane = Pane {
            groups: &groups,
            names: &names,
            metric: app.charts.metric,
            legend,
        };
        draw_chart(frame, app, pane, area, depth, cache);
    } else {
        let height = legend.as_ref().map_or(0, |l| legend_height(l, area.width));
        let [top, grid] =
            Layout::vertical([Constraint::Length(height), Constraint::Min(3)]).areas(area);
        if let Some(legend) = legend {
            frame.render_widget(Paragraph::new(legend).wrap(Wrap { trim: true }), top);
        }
        let rows = Layout::vertical([Constraint::Ratio(1, 2); 2]).split(grid);
        let cells = rows.iter().flat_map(|row| {
            Layout::horizontal([Constraint::Ratio(1, 2); 2])
                .split(*row)
                .to_vec()
        });
        for (k, cell) in cells.take(count).enumerate() {
            let pane = Pane {
                groups: &groups,
                names: &names,
                metric: app.charts.metric + k,
                legend: None,
            };
            draw_chart(frame, app, pane, cell, depth, cache);
        }
    }
    // Curves of data no longer shown (or superseded by newer points) go.
    cache.0.retain(|k, _| {
        k.members.iter().all(|(path, version)| {
            runs.iter().any(|r| {
                &r.dir.path == path
                    && r.series
                        .get(&k.series)
                        .is_some_and(|s| s.version() == *version)
            })
        })
    });
}

/// One chart: which runs, which metric (a counter through the choices), and
/// the legend when it has its own.
struct Pane<'a> {
    groups: &'a [Vec<&'a RunView>],
    /// What each group is called (the cursor's read-out names them).
    names: &'a [String],
    metric: usize,
    legend: Option<Line<'static>>,
}

fn draw_chart(
    frame: &mut Frame,
    app: &App,
    pane: Pane,
    area: Rect,
    depth: ColorDepth,
    cache: &mut CurveCache,
) {
    let groups = pane.groups;
    let runs: Vec<&RunView> = groups.iter().flatten().copied().collect();
    let o = &app.charts;
    let (name, at, of) = chosen(pane.metric, &runs);
    let label = metric_label(&name);
    let columns = area.width.saturating_sub(10) as usize;
    let curves = curves(o, groups, &name, columns, cache);
    let bounds = y_bounds(o, &curves);
    let averaged = if o.average_seeds {
        ", seeds averaged ±sd"
    } else {
        ""
    };
    let clipped = if o.clip { " y 1–99 %" } else { "" };
    let x_label = o.x_axis.label();
    let title = format!(
        "{label} ({}/{of}, m){}{clipped}  smoothing {}  zoom {}  ({} run{}{averaged})",
        at + 1,
        if o.log_scale { " (log10)" } else { "" },
        o.alpha(),
        o.last_steps().map_or("all".into(), |z| format!("last {z}")),
        runs.len(),
        if runs.len() == 1 { "" } else { "s" }
    );
    let block = Block::new().borders(Borders::ALL).title(title);
    let Some((xb, yb)) = bounds else {
        frame.render_widget(Paragraph::new("no metrics yet").block(block), area);
        return;
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let marks = marks(groups, o.x_axis, xb);
    let cursor = o.cursor.map(|c| xb[0] + c * (xb[1] - xb[0]));
    let height = pane
        .legend
        .as_ref()
        .map_or(0, |l| legend_height(l, inner.width));
    let readout = cursor.map(|x| read_out(&curves, pane.names, o.x_axis, x));
    let [legend_area, area, readout_area] = Layout::vertical([
        Constraint::Length(height),
        Constraint::Min(3),
        Constraint::Length(
            readout
                .as_ref()
                .map_or(0, |l| legend_height(l, inner.width)),
        ),
    ])
    .areas(inner);
    if let Some(legend) = pane.legend {
        frame.render_widget(
            Paragraph::new(legend).wrap(Wrap { trim: true }),
            legend_area,
        );
    }
    if let Some(line) = readout {
        frame.render_widget(Paragraph::new(line).wrap(Wrap { trim: true }), readout_area);
    }
    let plot = Plot {
        curves: &curves,
        marks: &marks,
        cursor,
        depth,
    };
    let axes = Axes {
        x: (x_label.to_string(), xb, x_labels(o.x_axis, xb)),
        y: (label, yb, value_labels(yb, o.log_scale)),
    };
    draw_plot(frame, area, plot, axes);
}

/// The x and y ranges of the curves as the chart shows them: every point,
/// or with `o` the 1st to 99th percentile of the values. A quantity its
/// curves never take below zero (a rate, a fraction) gets no negative axis,
/// whatever its ±sd band or percentile range reaches.
pub(crate) fn y_bounds(o: &ChartOptions, curves: &[Curve]) -> Option<([f64; 2], [f64; 2])> {
    let never_negative = curves
        .iter()
        .filter(|c| c.part == Part::Line)
        .all(|c| c.points.iter().all(|p| p.1 >= 0.0));
    let all = || curves.iter().map(|c| c.points.as_slice());
    let (xb, yb) = series::bounds(all(), never_negative)?;
    let clipped = o
        .clip
        .then(|| series::quantile_range(all(), 0.01, never_negative))
        .flatten();
    Some((xb, clipped.unwrap_or(yb)))
}

/// Each axis: its title, bounds and labels (low, middle, high).
struct Axes {
    x: (String, [f64; 2], [String; 3]),
    y: (String, [f64; 2], [String; 3]),
}

/// What one chart draws inside its axes.
struct Plot<'a> {
    curves: &'a [Curve],
    marks: &'a [Mark],
    /// The cursor's x.
    cursor: Option<f64>,
    depth: ColorDepth,
}

/// The curves on one canvas in three layers, however many runs (braille
/// lines, dotted validation curves, the cursor), reload marks in the cells
/// they leave empty, under the axes of a
/// `Chart` without datasets: as Chart datasets each curve was a cell grid of
/// its own, and 50 overlaid runs took 2.9 ms a frame (BENCHMARKS.md).
fn draw_plot(frame: &mut Frame, area: Rect, plot: Plot, axes: Axes) {
    let graph = graph_area(area, &axes);
    let (xb, yb) = (axes.x.1, axes.y.1);
    let depth = plot.depth;
    let canvas = Canvas::default()
        .x_bounds(xb)
        .y_bounds(yb)
        .marker(Marker::Braille)
        .paint(|ctx| {
            for c in plot.curves.iter().filter(|c| c.look != Look::Val) {
                draw_curve(ctx, curve_color(c, depth), &c.points);
            }
            ctx.marker(Marker::Dot);
            for c in plot.curves.iter().filter(|c| c.look == Look::Val) {
                draw_curve(ctx, c.color(), &c.points);
            }
            if let Some(x) = plot.cursor {
                ctx.marker(Marker::Braille);
                ctx.draw(&line(Color::Gray, (x, yb[0]), (x, yb[1])));
            }
        });
    frame.render_widget(canvas, graph);
    draw_marks(frame.buffer_mut(), graph, xb, plot.marks);
    // The axes, their labels and titles over the curves.
    let axis = |(title, bounds, labels): (String, [f64; 2], [String; 3])| {
        Axis::default().title(title).bounds(bounds).labels(labels)
    };
    let chart = Chart::new(Vec::new())
        .x_axis(axis(axes.x))
        .y_axis(axis(axes.y));
    frame.render_widget(chart, area);
}

fn line(color: Color, (x1, y1): (f64, f64), (x2, y2): (f64, f64)) -> CanvasLine {
    CanvasLine {
        x1,
        y1,
        x2,
        y2,
        color,
    }
}

/// A curve's points joined by lines.
fn draw_curve(ctx: &mut Context, color: Color, points: &[(f64, f64)]) {
    ctx.draw(&Points {
        coords: points,
        color,
    });
    for w in points.windows(2) {
        ctx.draw(&line(color, w[0], w[1]));
    }
}

/// Where `Chart` puts the plot inside `area`: above its x labels and x axis,
/// right of its y labels and y axis (the labels take at most a third of the
/// width; the first x label may reach left of the axis).
fn graph_area(area: Rect, axes: &Axes) -> Rect {
    let width = |s: &String| Line::from(s.as_str()).width() as u16;
    let rows_below = u16::from(area.height > 1) + u16::from(area.height > 2);
    let widest_y = axes.y.2.iter().map(width).max().unwrap_or(0);
    let first_x = width(&axes.x.2[0]);
    let left = widest_y.max(first_x.saturating_sub(1)).min(area.width / 3);
    let axis = u16::from(area.x + left + 1 < area.right());
    Rect {
        x: area.x + left + axis,
        y: area.y,
        width: area.width.saturating_sub(left + axis),
        height: area.height - rows_below,
    }
}

fn is_mark(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Reload | EventKind::ConfigApplied)
}

/// How a reload or config change is drawn: a column of these from the
/// bottom of the plot to the top (the legend shows it), unlike any curve.
const MARK: &str = "⋮";

/// A reload or config change of one run: its x, and the run's colour.
type Mark = (Color, f64);

/// Every overlaid run's reloads and config changes inside the x range, in
/// its group's colour.
fn marks(groups: &[Vec<&RunView>], axis: XAxis, [x0, x1]: [f64; 2]) -> Vec<Mark> {
    let mut out = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let color = RUN_COLORS[i % RUN_COLORS.len()];
        let steps = g
            .iter()
            .flat_map(|r| r.events.iter().map(move |e| (r, e)))
            .filter(|(_, e)| is_mark(&e.kind))
            .map(|(r, e)| r.x_of(axis, e.step as f64))
            .filter(|x| (x0..=x1).contains(x));
        out.extend(steps.map(|x| (color, x)));
    }
    out
}

/// The marks as columns of [`MARK`] in the plot's empty cells (curves stay
/// whole), at the column the canvas puts their x in.
fn draw_marks(buf: &mut ratatui::buffer::Buffer, graph: Rect, [x0, x1]: [f64; 2], marks: &[Mark]) {
    if graph.width == 0 || x1 <= x0 {
        return;
    }
    for &(color, x) in marks {
        let column = ((x - x0) / (x1 - x0) * f64::from(graph.width - 1)).round() as u16;
        for y in graph.top()..graph.bottom() {
            if let Some(cell) = buf.cell_mut((graph.x + column, y))
                && cell.symbol() == " "
            {
                cell.set_symbol(MARK).set_fg(color);
            }
        }
    }
}

/// The legend above the plot (never over the data, never hidden): each run in
/// its colour by the name that tells it from the others, then how train and
/// validation curves and markers look.
fn legend(names: &[String], marks: bool) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let style = Style::new().fg(RUN_COLORS[i % RUN_COLORS.len()]);
        // Non-breaking spaces: a wrapped legend breaks between names only.
        let name = name.replace(' ', "\u{a0}");
        spans.push(Span::styled(format!("━\u{a0}{name}  "), style));
    }
    let dim = Style::new().add_modifier(Modifier::DIM);
    spans.push(Span::styled("━ train  • val", dim));
    if marks {
        spans.push(Span::styled(format!("  {MARK} reload/config change"), dim));
    }
    Line::from(spans)
}

/// Rows the legend takes at `width` (wrapped; at most three).
fn legend_height(legend: &Line, width: u16) -> u16 {
    let chars = legend.width() as u16;
    chars.div_ceil(width.max(1)).clamp(1, 3)
}

/// The runs each curve stands for: one run each, or with seeds averaged the
/// runs that differ in their seed only.
pub(crate) fn sources<'a>(app: &App, runs: &[&'a RunView]) -> Vec<Vec<&'a RunView>> {
    if !app.charts.average_seeds {
        return runs.iter().map(|r| vec![*r]).collect();
    }
    identity::seed_groups(runs, |r| &r.config)
        .into_iter()
        .map(|g| g.into_iter().copied().collect())
        .collect()
}

/// Which curve of a series a cache entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    /// The series itself, or the mean of a group's.
    Line,
    /// A group's mean minus / plus one standard deviation.
    Low,
    High,
}

/// The curves of `groups` for the metric `name`, prepared for `columns`
/// columns: train then validation per group; with smoothing, the raw train
/// curve too, faint; a group of several seeds as its mean between faint
/// curves one standard deviation below and above.
pub(crate) fn curves(
    o: &ChartOptions,
    groups: &[Vec<&RunView>],
    name: &str,
    columns: usize,
    cache: &mut CurveCache,
) -> Vec<Curve> {
    let runs: Vec<&RunView> = groups.iter().flatten().copied().collect();
    let window = zoom_window(&runs, name, o.last_steps());
    let mut curves: Vec<Curve> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let Some(first) = g.first() else { continue };
        let along = |pts: Vec<(f64, f64)>| along(o.x_axis, first, pts);
        for split in Split::ALL {
            let key = SeriesKey::new(split, name);
            let members: Vec<(&RunView, &Series)> = g
                .iter()
                .filter_map(|r| Some((*r, r.series.get(&key)?)))
                .collect();
            if members.is_empty() {
                continue;
            }
            let look = match split {
                Split::Train => Look::Train,
                Split::Val => Look::Val,
            };
            let mut cached = |part: Part, smoothed: bool| -> Vec<(f64, f64)> {
                let key = CurveKey {
                    members: members
                        .iter()
                        .map(|(r, s)| (r.dir.path.clone(), s.version()))
                        .collect(),
                    series: key.clone(),
                    part,
                    columns,
                    window: window.map(|(a, b)| (a.to_bits(), b.to_bits())),
                    log: o.log_scale,
                    alpha: if smoothed { o.smoothing } else { 0 },
                };
                let alpha = if smoothed { o.alpha() } else { 0.0 };
                cache
                    .0
                    .entry(key)
                    .or_insert_with(|| {
                        let points = part_points(&members, part, window);
                        prepare(&points, o, alpha, columns)
                    })
                    .clone()
            };
            let smooth = o.alpha() > 0.0 && look == Look::Train;
            let val = split == Split::Val;
            let mut push = |part: Part, look: Look, points: Vec<(f64, f64)>| {
                curves.push(Curve {
                    group: i,
                    val,
                    part,
                    look,
                    points: along(points),
                })
            };
            if members.len() > 1 {
                push(Part::Low, Look::Faint, cached(Part::Low, smooth));
                push(Part::High, Look::Faint, cached(Part::High, smooth));
            } else if smooth {
                push(Part::Line, Look::Faint, cached(Part::Line, false));
            }
            push(Part::Line, look, cached(Part::Line, smooth));
        }
    }
    curves
}

/// The points of one part of a curve: a run's own within the zoom window, or
/// for several runs their mean (or a band edge) over the steps all have.
fn part_points<'a>(
    members: &[(&RunView, &'a Series)],
    part: Part,
    window: Option<(f64, f64)>,
) -> std::borrow::Cow<'a, [(f64, f64)]> {
    // One run's points are borrowed: a copy of them would cost a frame.
    if let [(_, s)] = members {
        return series::within(s.points(), window).into();
    }
    let windows: Vec<&[(f64, f64)]> = members
        .iter()
        .map(|(_, s)| series::within(s.points(), window))
        .collect();
    series::mean_sd(&windows)
        .into_iter()
        .map(|(x, mean, sd)| match part {
            Part::Line => (x, mean),
            Part::Low => (x, mean - sd),
            Part::High => (x, mean + sd),
        })
        .collect::<Vec<_>>()
        .into()
}

/// The zoom window: the last `last` steps up to the newest step of the run
/// furthest behind (a live run beside finished ones), the same steps for
/// every overlaid run, so that each of them stays in sight.
fn zoom_window(runs: &[&RunView], name: &str, last: Option<f64>) -> Option<(f64, f64)> {
    let end = runs
        .iter()
        .filter_map(|r| {
            Split::ALL
                .into_iter()
                .filter_map(|split| r.series.get(&SeriesKey::new(split, name))?.last())
                .map(|p| p.0)
                .reduce(f64::max)
        })
        .reduce(f64::min)?;
    Some((end - last?, end))
}

/// Maybe in log10, smoothed with `alpha` (0: not), and downsampled to
/// `columns`.
fn prepare(pts: &[(f64, f64)], o: &ChartOptions, alpha: f64, columns: usize) -> Vec<(f64, f64)> {
    let pts = if o.log_scale {
        series::log10(pts)
    } else {
        pts.to_vec()
    };
    let (x0, x1) = (
        pts.first().map_or(0.0, |p| p.0),
        pts.last().map_or(1.0, |p| p.0),
    );
    let pts = if alpha > 0.0 {
        series::ema(&pts, alpha)
    } else {
        pts
    };
    series::downsample(&pts, x0, x1, columns)
}

/// A curve's colour: a faint curve in the darker partner of its run's.
fn curve_color(curve: &Curve, depth: ColorDepth) -> Color {
    match curve.look {
        Look::Faint => faint(curve.color(), depth),
        Look::Train | Look::Val => curve.color(),
    }
}

/// The darker partner of a run colour, for its raw curve beneath the smoothed
/// one: a dark shade of the same hue on 256 colours and more, dark grey on 16.
pub(super) fn faint(color: Color, depth: ColorDepth) -> Color {
    if depth == ColorDepth::Basic16 {
        return Color::DarkGray;
    }
    let index = RUN_COLORS.iter().position(|c| *c == color).unwrap_or(0);
    // Dark cyan, olive, purple, green, dark red, navy, grey, dark green.
    Color::Indexed([30, 100, 90, 28, 88, 25, 244, 22][index])
}

/// A prepared curve's steps as places on the x axis (a group is placed by
/// its first run: the seeds of one configuration share their epochs).
fn along(axis: XAxis, run: &RunView, mut pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if axis != XAxis::Step {
        for p in &mut pts {
            p.0 = run.x_of(axis, p.0);
        }
    }
    pts
}

/// What the cursor reads at `x`: each group's train and validation value
/// there (the drawn curve's last point at or before it), in its colour.
fn read_out(curves: &[Curve], names: &[String], axis: XAxis, x: f64) -> Line<'static> {
    let at = match axis {
        // The step whose point is read.
        XAxis::Step => format!("{:.0}", x.floor()),
        XAxis::Epoch => format!("{x:.2}"),
        XAxis::Minutes => format!("{x:.1}"),
    };
    let mut spans = vec![Span::styled(
        format!("{} {at}:", axis.label()),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    for (i, name) in names.iter().enumerate() {
        let color = RUN_COLORS[i % RUN_COLORS.len()];
        let at = |look: Look| {
            curves
                .iter()
                .filter(|c| c.group == i && c.look == look)
                .find_map(|c| value_at(&c.points, x))
        };
        let mut text = format!(" ━\u{a0}{}", name.replace(' ', "\u{a0}"));
        if let Some(v) = at(Look::Train) {
            text.push_str(&format!("\u{a0}{}", short(v)));
        }
        if let Some(v) = at(Look::Val) {
            text.push_str(&format!("\u{a0}•{}", short(v)));
        }
        spans.push(Span::styled(text, Style::new().fg(color)));
    }
    Line::from(spans)
}

/// The value of the last point at or before `x` (points in x order).
fn value_at(points: &[(f64, f64)], x: f64) -> Option<f64> {
    let i = points.partition_point(|p| p.0 <= x);
    points.get(i.checked_sub(1)?).map(|p| p.1)
}

/// A number in four significant digits (whole above 1000).
fn short(v: f64) -> String {
    let magnitude = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    let decimals = (3 - magnitude).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// Low, middle and high labels of the x axis: whole steps, or epochs and
/// minutes with a decimal when the range is short.
fn x_labels(axis: XAxis, [lo, hi]: [f64; 2]) -> [String; 3] {
    let decimals = match axis {
        XAxis::Step => 0,
        _ if hi - lo >= 20.0 => 0,
        _ => 1,
    };
    [lo, (lo + hi) / 2.0, hi].map(|v| format!("{v:.decimals$}"))
}

/// Low, middle and high labels of the value axis, with the decimals its range
/// needs; on a log axis the values themselves, not their exponents.
fn value_labels([lo, hi]: [f64; 2], log: bool) -> [String; 3] {
    let values = [lo, (lo + hi) / 2.0, hi].map(|v| if log { 10f64.powf(v) } else { v });
    let span = (values[2] - values[0]).abs().max(1e-12);
    let decimals = if span >= 100.0 {
        0
    } else {
        (2 - span.log10().floor() as i32).clamp(1, 6) as usize
    };
    values.map(|v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_read_as_steps_and_values() {
        assert_eq!(x_labels(XAxis::Step, [10.0, 52.0]), ["10", "31", "52"]);
        assert_eq!(x_labels(XAxis::Epoch, [0.0, 3.0]), ["0.0", "1.5", "3.0"]);
        assert_eq!(x_labels(XAxis::Minutes, [0.0, 90.0]), ["0", "45", "90"]);
        assert_eq!(value_labels([0.0, 0.2], false), ["0.000", "0.100", "0.200"]);
        assert_eq!(value_labels([0.3, 2.4], false), ["0.30", "1.35", "2.40"]);
        assert_eq!(value_labels([0.0, 800.0], false), ["0", "400", "800"]);
        let read: Vec<String> = [1.19954, 0.05123, 123.45, 4567.8, 0.0].map(short).into();
        assert_eq!(read, ["1.200", "0.05123", "123.5", "4568", "0.000"]);
        // log10 of 0.1 and 10: the labels are the values.
        assert_eq!(value_labels([-1.0, 1.0], true), ["0.10", "1.00", "10.00"]);
    }
}
