//! Drawing: state → frame. Nothing here changes the state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Cell, Chart, Clear, Dataset, GraphType, Paragraph, Row, Table, Tabs, Wrap,
};

use super::app::{App, Metric, SMOOTHING, ZOOM};
use super::keys::{KEYMAP, Scope, View};
use super::series;
use super::workspace::{DisplayState, RunView};
use crate::run::dir::metric::{self, val_acc};
use crate::run::dir::{EventKind, SnapshotLine, State};

/// How many colours the terminal shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorDepth {
    TrueColor,
    Indexed256,
    Basic16,
}

impl ColorDepth {
    /// From COLORTERM and TERM, as terminals advertise it.
    pub fn detect() -> ColorDepth {
        ColorDepth::from_env(
            &std::env::var("TERM").unwrap_or_default(),
            &std::env::var("COLORTERM").unwrap_or_default(),
        )
    }

    /// `xterm-256color`, `screen-256color` and `tmux-256color` get the 256-colour
    /// palette, anything else without COLORTERM the 16 basic colours.
    pub fn from_env(term: &str, colorterm: &str) -> ColorDepth {
        if colorterm.contains("truecolor") || colorterm.contains("24bit") {
            ColorDepth::TrueColor
        } else if term.contains("256color") {
            ColorDepth::Indexed256
        } else {
            ColorDepth::Basic16
        }
    }
}

/// Stable run colours (by position in the overlay), distinguishable in 16 colours.
const RUN_COLORS: [Color; 8] = [
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::LightRed,
    Color::LightBlue,
    Color::White,
    Color::LightGreen,
];

pub fn draw(frame: &mut Frame, app: &App, depth: ColorDepth) {
    let area = frame.area();
    if area.width < 20 || area.height < 5 {
        frame.render_widget(Paragraph::new("window too small"), area);
        return;
    }
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let titles: Vec<Line> = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| Line::from(format!("{} {}", i + 1, v.title())))
        .collect();
    let selected = View::ALL.iter().position(|v| *v == app.view).unwrap_or(0);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .divider("│"),
        tabs,
    );
    if app.help {
        draw_help(frame, body);
    } else {
        match app.view {
            View::Runs => draw_runs(frame, app, body),
            View::Charts => draw_charts(frame, app, body),
            View::Masks => draw_masks(frame, app, body, depth),
            View::Plugins => draw_plugins(frame, app, body),
            View::Experiments => draw_experiments(frame, app, body),
            View::Events => draw_events(frame, app, body),
            View::Compare => draw_compare(frame, app, body),
        }
    }
    if let Some(p) = &app.prompt {
        draw_prompt(frame, p, body);
    }
    let hint = if app.message.is_empty() {
        "? help  q quit".to_string()
    } else {
        app.message.clone()
    };
    frame.render_widget(
        Paragraph::new(hint).style(Style::new().add_modifier(Modifier::DIM)),
        status,
    );
}

fn state_style(state: DisplayState) -> Style {
    match state {
        DisplayState::Is(State::Training) => Style::new().fg(Color::Green),
        DisplayState::Is(State::Paused) | DisplayState::Is(State::Queued) => {
            Style::new().fg(Color::Yellow)
        }
        DisplayState::Is(State::Done) => Style::new().fg(Color::Cyan),
        DisplayState::Is(State::Failed)
        | DisplayState::Is(State::Diverged)
        | DisplayState::Lost => Style::new().fg(Color::Red),
        _ => Style::new(),
    }
}

fn progress_bar(step: u64, total: u64, width: usize) -> String {
    let frac = if total == 0 {
        0.0
    } else {
        (step as f64 / total as f64).min(1.0)
    };
    let full = (frac * width as f64).round() as usize;
    format!(
        "{}{}",
        "█".repeat(full),
        "·".repeat(width.saturating_sub(full))
    )
}

fn eta_text(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s >= 3600.0 => {
            format!("{:.0}h{:02.0}m", (s / 3600.0).floor(), (s % 3600.0) / 60.0)
        }
        Some(s) if s >= 60.0 => format!("{:.0}m{:02.0}s", (s / 60.0).floor(), s % 60.0),
        Some(s) => format!("{s:.0}s"),
    }
}

fn draw_runs(frame: &mut Frame, app: &App, area: Rect) {
    let wide = area.width >= 120;
    let header = if wide {
        vec![
            "", "run", "state", "strategy", "device", "epoch", "step", "progress", "eta",
            "best acc",
        ]
    } else {
        vec!["", "run", "state", "step", "progress", "best"]
    };
    let rows: Vec<Row> = app
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let st = r.status.as_ref();
            let step = st.map_or(0, |s| s.step);
            let total = st.map_or(0, |s| s.total_steps);
            let mark = if app.marked.contains(&r.dir.path) {
                "●"
            } else {
                " "
            };
            let state = r.state();
            let best = r.best_val_acc().map_or("-".into(), |a| format!("{a:.4}"));
            let strategy = match st.map(|s| s.plugin_version.as_str()) {
                Some(v) if !v.is_empty() => format!("{} {v}", r.info.label),
                _ => r.info.label.clone(),
            };
            let name = format!("{} s{}", r.info.experiment, r.info.seed);
            let cells = if wide {
                vec![
                    Cell::from(mark),
                    Cell::from(name),
                    Cell::from(state.label()).style(state_style(state)),
                    Cell::from(strategy),
                    Cell::from(st.map_or(String::new(), |s| s.device.clone())),
                    Cell::from(st.map_or(String::new(), |s| (s.epoch + 1).to_string())),
                    Cell::from(format!("{step}/{total}")),
                    Cell::from(progress_bar(step, total, 20)),
                    Cell::from(eta_text(r.eta_seconds())),
                    Cell::from(best),
                ]
            } else {
                vec![
                    Cell::from(mark),
                    Cell::from(format!("{} {}", r.info.label, name)),
                    Cell::from(state.label()).style(state_style(state)),
                    Cell::from(format!("{step}/{total}")),
                    Cell::from(progress_bar(step, total, 10)),
                    Cell::from(best),
                ]
            };
            let row = Row::new(cells);
            if i == app.selected_run {
                row.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(1),
            Constraint::Min(16),
            Constraint::Length(9),
            Constraint::Length(20),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(11),
            Constraint::Length(20),
            Constraint::Length(7),
            Constraint::Length(8),
        ]
    } else {
        vec![
            Constraint::Length(1),
            Constraint::Min(12),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(6),
        ]
    };
    let title = format!("Runs ({})", app.runs.len());
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
        .block(Block::new().borders(Borders::ALL).title(title));
    if app.runs.is_empty() {
        let text = "No runs yet. Press 5 for experiments, select one and press n to start it.";
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .block(Block::new().borders(Borders::ALL).title("Runs")),
            area,
        );
    } else {
        let [list, detail] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(area);
        frame.render_widget(table, list);
        if let Some(r) = app.selected_run() {
            frame.render_widget(
                Paragraph::new(run_detail(r)).wrap(Wrap { trim: true }),
                detail,
            );
        }
    }
}

/// One or two lines about the selected run: what its trainer last said, or why
/// it is not running.
fn run_detail(r: &RunView) -> Line<'static> {
    let state = r.state();
    let message = r
        .status
        .as_ref()
        .map(|s| s.message.clone())
        .unwrap_or_default();
    let text = match state {
        DisplayState::Lost => {
            "its trainer is gone without a word (killed, or the machine restarted); R continues it from the checkpoint".to_string()
        }
        _ => message,
    };
    Line::from(text).style(state_style(state))
}

/// The chart's label, and the metric it reads from each split.
fn metric_names(metric: Metric) -> (&'static str, [Option<&'static str>; 2]) {
    match metric {
        Metric::Loss => ("loss", [Some(metric::LOSS), Some(metric::LOSS)]),
        Metric::Accuracy => ("accuracy", [Some(metric::ACC), Some(metric::ACC)]),
        Metric::DropRate => ("drop rate", [Some(metric::P), None]),
    }
}

/// What a prepared curve depends on: new points, another width or other chart
/// options make a new one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CurveKey {
    pub run: std::path::PathBuf,
    pub series: String,
    pub len: usize,
    pub columns: usize,
    pub zoom: usize,
    pub log: bool,
    pub alpha: usize,
}

/// (legend label, colour, points, drawn faint)
type Curve = (String, Color, Vec<(f64, f64)>, bool);

fn draw_charts(frame: &mut Frame, app: &App, area: Rect) {
    let runs = app.chart_runs();
    let (name, [train_name, val_name]) = metric_names(app.metric);
    let alpha = SMOOTHING[app.smoothing];
    let zoom = ZOOM[app.zoom];
    let columns = area.width.saturating_sub(10) as usize;
    let mut curves: Vec<Curve> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let color = RUN_COLORS[i % RUN_COLORS.len()];
        for (split, metric_name) in [(metric::TRAIN, train_name), (metric::VAL, val_name)] {
            let Some(key) = metric_name.map(|n| metric::series(split, n)) else {
                continue;
            };
            let Some(s) = r.series.get(&key) else {
                continue;
            };
            let label = format!("{} s{} {split}", r.info.label, r.info.seed);
            let key_of = |smoothed: bool| CurveKey {
                run: r.dir.path.clone(),
                series: key.clone(),
                len: s.points.len(),
                columns,
                zoom: app.zoom,
                log: app.log_scale,
                alpha: if smoothed { app.smoothing } else { 0 },
            };
            let prepare = |smoothed: bool| -> Vec<(f64, f64)> {
                let pts = series::zoom(&s.points, zoom);
                let pts = if app.log_scale {
                    series::log10(pts)
                } else {
                    pts.to_vec()
                };
                let (x0, x1) = (
                    pts.first().map_or(0.0, |p| p.0),
                    pts.last().map_or(1.0, |p| p.0),
                );
                let pts = if smoothed {
                    series::ema(&pts, alpha)
                } else {
                    pts
                };
                series::downsample(&pts, x0, x1, columns)
            };
            let cached = |smoothed: bool| -> Vec<(f64, f64)> {
                let mut cache = app.curve_cache.borrow_mut();
                cache
                    .entry(key_of(smoothed))
                    .or_insert_with(|| prepare(smoothed))
                    .clone()
            };
            if alpha > 0.0 && split == metric::TRAIN {
                curves.push((String::new(), color, cached(false), true));
                curves.push((label, color, cached(true), false));
            } else {
                curves.push((label, color, cached(false), false));
            }
        }
    }
    // Curves of data no longer shown (or superseded by newer points) go.
    app.curve_cache.borrow_mut().retain(|k, _| {
        runs.iter().any(|r| {
            r.dir.path == k.run
                && r.series
                    .get(&k.series)
                    .is_some_and(|s| s.points.len() == k.len)
        })
    });
    let title = format!(
        "{name}{}  smoothing {}  zoom {}  ({} run{})",
        if app.log_scale { " (log10)" } else { "" },
        alpha,
        zoom.map_or("all".into(), |z| format!("last {z}")),
        runs.len(),
        if runs.len() == 1 { "" } else { "s" }
    );
    let block = Block::new().borders(Borders::ALL).title(title);
    let Some((xb, yb)) = series::bounds(curves.iter().map(|c| c.2.as_slice())) else {
        frame.render_widget(Paragraph::new("no metrics yet").block(block), area);
        return;
    };
    // Reload events on the time axis of the first run.
    let marks: Vec<(f64, f64)> = runs
        .first()
        .map(|r| {
            r.events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Reload | EventKind::ConfigApplied))
                .map(|e| (e.step as f64, yb[1]))
                .collect()
        })
        .unwrap_or_default();
    let mut datasets: Vec<Dataset> = curves
        .iter()
        .map(|(label, color, pts, faint)| {
            let style = if *faint {
                Style::new().fg(*color).add_modifier(Modifier::DIM)
            } else {
                Style::new().fg(*color)
            };
            let d = Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(style)
                .data(pts);
            if label.is_empty() {
                d
            } else {
                d.name(label.clone())
            }
        })
        .collect();
    if !marks.is_empty() {
        datasets.push(
            Dataset::default()
                .name("reload/config")
                .marker(Marker::Dot)
                .graph_type(GraphType::Scatter)
                .style(Style::new().fg(Color::Red))
                .data(&marks),
        );
    }
    let fmt = |v: f64| {
        if v.abs() >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        }
    };
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(Axis::default().title("step").bounds(xb).labels([
            fmt(xb[0]),
            fmt((xb[0] + xb[1]) / 2.0),
            fmt(xb[1]),
        ]))
        .y_axis(Axis::default().bounds(yb).labels([
            fmt(yb[0]),
            fmt((yb[0] + yb[1]) / 2.0),
            fmt(yb[1]),
        ]))
        .legend_position(Some(ratatui::widgets::LegendPosition::TopRight))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)));
    frame.render_widget(chart, area);
}

/// A value in [0, 1] as a colour of a dark-to-bright ramp.
fn heat(v: f32, depth: ColorDepth) -> Color {
    let v = v.clamp(0.0, 1.0);
    match depth {
        ColorDepth::TrueColor => {
            let r = (255.0 * v.powf(0.8)) as u8;
            let g = (255.0 * v.powi(2)) as u8;
            let b = (80.0 * (1.0 - v)) as u8 + 20;
            Color::Rgb(r, g, b)
        }
        // The 24-step grey ramp of the 256-colour palette.
        ColorDepth::Indexed256 => Color::Indexed(232 + (v * 23.0).round() as u8),
        ColorDepth::Basic16 => match (v * 3.0).round() as u8 {
            0 => Color::Black,
            1 => Color::DarkGray,
            2 => Color::Gray,
            _ => Color::White,
        },
    }
}

/// Rows of half-block cells: each cell shows two pixels (upper as foreground);
/// each pixel is repeated `scale` times in both directions (two columns per
/// scale step, since cells are about twice as tall as wide).
fn heatmap_lines(
    values: &[f32],
    h: usize,
    w: usize,
    scale: usize,
    depth: ColorDepth,
) -> Vec<Line<'static>> {
    let max = values.iter().copied().fold(0f32, f32::max).max(1e-12);
    let scale = scale.max(1);
    let (sh, sw) = (h * scale, w * scale * 2);
    let at = |y: usize, x: usize| {
        values
            .get((y / scale) * w + x / (2 * scale))
            .copied()
            .unwrap_or(0.0)
            / max
    };
    (0..sh.div_ceil(2))
        .map(|row| {
            let spans: Vec<Span> = (0..sw)
                .map(|x| {
                    let top = heat(at(2 * row, x), depth);
                    let bottom = if 2 * row + 1 < sh {
                        heat(at(2 * row + 1, x), depth)
                    } else {
                        Color::Reset
                    };
                    Span::styled("▀", Style::new().fg(top).bg(bottom))
                })
                .collect();
            Line::from(spans)
        })
        .collect()
}

fn draw_masks(frame: &mut Frame, app: &App, area: Rect, depth: ColorDepth) {
    let block = Block::new().borders(Borders::ALL);
    let Some(run) = app.selected_run() else {
        frame.render_widget(
            Paragraph::new("no run selected").block(block.title("Masks")),
            area,
        );
        return;
    };
    let mut slots: Vec<&String> = run.snapshots.keys().map(|(slot, _)| slot).collect();
    slots.dedup();
    if slots.is_empty() {
        let text = format!(
            "{}: no mask snapshots yet (train.snapshot_every)",
            run.name()
        );
        frame.render_widget(Paragraph::new(text).block(block.title("Masks")), area);
        return;
    }
    let slot = slots[app.slot % slots.len()];
    let samples: Vec<&SnapshotLine> = run
        .snapshots
        .range((slot.clone(), 0)..=(slot.clone(), usize::MAX))
        .map(|(_, s)| s)
        .collect();
    let snap = samples[app.sample % samples.len()];
    let channels = snap.channels.len().max(1);
    let ci = app.channel % channels;
    let plane = snap.height * snap.width;
    let sal = snap
        .salience
        .get(ci * plane..(ci + 1) * plane)
        .unwrap_or(&[]);
    let mask = snap.mask.get(ci * plane..(ci + 1) * plane).unwrap_or(&[]);
    let dropped = mask.iter().filter(|v| **v == 0.0).count() as f64 / mask.len().max(1) as f64;
    let info = format!(
        "slot {} ({}/{})  sample {} ({}/{})  channel {} ({}/{})  step {}  p {:.3}  dropped {:.1} %",
        slot,
        app.slot % slots.len() + 1,
        slots.len(),
        snap.sample,
        app.sample % samples.len() + 1,
        samples.len(),
        snap.channels.get(ci).copied().unwrap_or(0),
        ci + 1,
        channels,
        snap.step,
        snap.p,
        100.0 * dropped
    );
    let outer = block.title(format!("Masks: {} s{}", run.info.label, run.info.seed));
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    // The selectors and the fraction dropped, wrapped onto two lines when narrow.
    let info_lines = if info.chars().count() <= inner.width as usize {
        1
    } else {
        2
    };
    let [info_area, inner] =
        Layout::vertical([Constraint::Length(info_lines), Constraint::Min(1)]).areas(inner);
    frame.render_widget(Paragraph::new(info).wrap(Wrap { trim: true }), info_area);
    if !snap.tokens.is_empty() {
        draw_token_maps(frame, snap, sal, mask, inner, depth);
        return;
    }
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
    let sal_block = Block::new().title("salience |x|");
    let mask_block = Block::new().title("keep-mask (black: dropped)");
    // The largest whole-number scale that fits both maps under their titles.
    let scale = (left.width as usize / (2 * snap.width).max(1))
        .min(2 * left.height.saturating_sub(1) as usize / snap.height.max(1))
        .max(1);
    frame.render_widget(
        Paragraph::new(heatmap_lines(sal, snap.height, snap.width, scale, depth)).block(sal_block),
        left,
    );
    frame.render_widget(
        Paragraph::new(heatmap_lines(mask, snap.height, snap.width, scale, depth))
            .block(mask_block),
        right,
    );
}

/// Columns of `w` values squeezed into `cols` buckets, each the mean of its
/// values: a row of `cols` shades.
fn bucket_row(row: &[f32], cols: usize) -> Vec<f32> {
    let w = row.len();
    (0..cols)
        .map(|c| {
            let (a, b) = (c * w / cols, ((c + 1) * w / cols).max(c * w / cols + 1));
            let part = &row[a.min(w)..b.min(w)];
            part.iter().sum::<f32>() / part.len().max(1) as f32
        })
        .collect()
}

/// Text snapshots: one line per token, its label on the left, then the salience
/// and the keep-mask of its hidden units (averaged into the columns there are).
fn draw_token_maps(
    frame: &mut Frame,
    snap: &SnapshotLine,
    sal: &[f32],
    mask: &[f32],
    area: Rect,
    depth: ColorDepth,
) {
    const LABEL: usize = 12;
    let (h, w) = (snap.height, snap.width);
    let room = (area.width as usize).saturating_sub(LABEL + 3) / 2;
    let cols = room.min(w).max(1);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{:<LABEL$} ", "token"), bold),
        Span::styled(format!("{:<cols$.cols$} ", "salience |x|"), bold),
        Span::styled(format!("{:.cols$}", "keep-mask (black: dropped)"), bold),
    ])];
    let rows_shown = (area.height as usize).saturating_sub(2).min(h);
    let units = if cols < w {
        format!("{w} hidden units in {cols} columns (means)")
    } else {
        format!("{w} hidden units")
    };
    let max_sal = sal.iter().copied().fold(0f32, f32::max).max(1e-12);
    let max_mask = mask.iter().copied().fold(0f32, f32::max).max(1e-12);
    for (t, token) in snap.tokens.iter().enumerate().take(rows_shown) {
        let label: String = token.chars().take(LABEL).collect();
        let mut spans = vec![Span::raw(format!("{label:<LABEL$} "))];
        let row = |v: &[f32]| v.get(t * w..(t + 1) * w).unwrap_or(&[]).to_vec();
        for c in bucket_row(&row(sal), cols) {
            spans.push(Span::styled(" ", Style::new().bg(heat(c / max_sal, depth))));
        }
        spans.push(Span::raw(" "));
        for c in bucket_row(&row(mask), cols) {
            spans.push(Span::styled(
                " ",
                Style::new().bg(heat(c / max_mask, depth)),
            ));
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(if rows_shown < h {
        format!("… {} more tokens · {units}", h - rows_shown)
    } else {
        format!("{h} tokens · {units}")
    }));
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_plugins(frame: &mut Frame, app: &App, area: Rect) {
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let rows: Vec<Row> = app
        .plugins
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (status, style) = match &p.status {
                Ok(s) => (s.clone(), Style::new().fg(Color::Green)),
                Err(e) => (
                    format!("refused: {}", e.lines().next().unwrap_or("")),
                    Style::new().fg(Color::Red),
                ),
            };
            let row = Row::new(vec![
                Cell::from(p.name.clone()),
                Cell::from(p.version.clone()),
                Cell::from(p.source.clone()),
                Cell::from(status).style(style),
            ]);
            if i == app.selected_plugin {
                row.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(vec!["strategy", "version", "source", "status"])
            .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .block(
        Block::new()
            .borders(Borders::ALL)
            .title(format!("Plugins ({})", app.plugins.len())),
    );
    frame.render_widget(table, top);
    let reloads: Vec<Line> = app
        .all_events()
        .into_iter()
        .filter(|e| matches!(e.2, EventKind::Reload | EventKind::ReloadRefused))
        .map(|e| Line::from(format!("{} {}: {}", e.1, e.2, e.3)))
        .chain(
            app.build_log
                .iter()
                .rev()
                .take(50)
                .rev()
                .map(|l| Line::from(l.clone())),
        )
        .collect();
    let height = bottom.height.saturating_sub(2) as usize;
    let skip = reloads.len().saturating_sub(height);
    frame.render_widget(
        Paragraph::new(reloads.into_iter().skip(skip).collect::<Vec<_>>()).block(
            Block::new()
                .borders(Borders::ALL)
                .title("Reloads and build output"),
        ),
        bottom,
    );
}

fn draw_experiments(frame: &mut Frame, app: &App, area: Rect) {
    let [list, detail] =
        Layout::horizontal([Constraint::Length(area.width.min(36)), Constraint::Min(10)])
            .areas(area);
    let rows: Vec<Row> = app
        .experiments
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (mark, style) = match &e.result {
                Ok(exp) if exp.data_missing.is_some() => {
                    ("no data", Style::new().fg(Color::Yellow))
                }
                Ok(_) => ("ok", Style::new().fg(Color::Green)),
                Err(_) => ("error", Style::new().fg(Color::Red)),
            };
            let row = Row::new(vec![Cell::from(e.name()), Cell::from(mark).style(style)]);
            if i == app.selected_experiment {
                row.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    frame.render_widget(
        Table::new(rows, [Constraint::Min(10), Constraint::Length(7)]).block(
            Block::new()
                .borders(Borders::ALL)
                .title(format!("Experiments ({})", app.experiments.len())),
        ),
        list,
    );
    let text: Vec<Line> = match app.experiments.get(app.selected_experiment) {
        None => vec![Line::from("no experiment files (*.toml)")],
        Some(e) => match &e.result {
            Ok(exp) => {
                let mut lines = vec![
                    Line::from(format!("{}: valid", exp.file.name)),
                    Line::from(exp.file.description.clone().unwrap_or_default()),
                    Line::from(format!(
                        "model {:?}, data {} ({:?}), {} epochs, batch {}, device {}",
                        exp.file.model.kind,
                        exp.file.data.path.display(),
                        exp.file.data.format,
                        exp.file.train.epochs,
                        exp.file.train.batch_size,
                        exp.file.device
                    )),
                ];
                for r in exp.runs() {
                    lines.push(Line::from(format!("  run: {} seed {}", r.label, r.seed)));
                }
                for w in &exp.warnings {
                    lines.push(
                        Line::from(format!("warning: {w}")).style(Style::new().fg(Color::Yellow)),
                    );
                }
                if let Some(d) = &exp.data_missing {
                    let mut d = d.clone();
                    d.file = d.file.file_name().map(Into::into).unwrap_or(d.file);
                    lines.push(
                        Line::from("no run can start here until the data is there:")
                            .style(Style::new().fg(Color::Yellow)),
                    );
                    for l in d.to_string().lines() {
                        lines.push(Line::from(l.to_string()).style(Style::new().fg(Color::Yellow)));
                    }
                }
                lines.extend(config_outcomes(app, &e.path));
                lines.push(Line::from(""));
                lines.push(Line::from(
                    "n: start its runs (asks which device)   e: edit",
                ));
                lines
            }
            Err(errors) => errors
                .iter()
                .map(|d| {
                    // Named as in the list: where the directory is does not matter here.
                    let mut d = d.clone();
                    d.file = d.file.file_name().map(Into::into).unwrap_or(d.file);
                    d
                })
                .flat_map(|d| {
                    d.to_string()
                        .lines()
                        .map(|l| Line::from(l.to_string()))
                        .collect::<Vec<_>>()
                })
                .map(|l| l.style(Style::new().fg(Color::Red)))
                .collect(),
        },
    };
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL).title("Details")),
        detail,
    );
}

/// `HH:MM:SS` (UTC) of a Unix time.
fn clock(wall: f64) -> String {
    let s = wall as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

fn draw_events(frame: &mut Frame, app: &App, area: Rect) {
    let events = app.all_events();
    let height = area.height.saturating_sub(2) as usize;
    let end = (app.event_scroll + 1).max(height).min(events.len());
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = events[start..end]
        .iter()
        .map(|(wall, run, kind, message)| {
            let style = match kind {
                k if k.is_trouble() => Style::new().fg(Color::Red),
                EventKind::Reload | EventKind::ConfigApplied => Style::new().fg(Color::Cyan),
                _ => Style::new(),
            };
            Line::from(vec![
                Span::raw(format!("{} ", clock(*wall))),
                Span::styled(format!("{kind:<14} "), style),
                Span::raw(format!("{run}: {message}")),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::ALL)
                .title(format!("Events ({})", events.len())),
        ),
        area,
    );
}

/// The selected comparison's table, as `compare.md` has it, live as runs finish.
fn draw_compare(frame: &mut Frame, app: &App, area: Rect) {
    let Some((c, table)) = app.comparison_table() else {
        let text = format!(
            "No comparisons in {}. `probdrop-tui compare FILE` runs every strategy × seed \
             of an experiment and tabulates them here.",
            app.compare_dir.display()
        );
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .block(Block::new().borders(Borders::ALL).title("Compare")),
            area,
        );
        return;
    };
    let wide = area.width >= 120;
    // Narrow: strategy, seeds, final acc, Δ final, p.
    let columns: Vec<usize> = if wide {
        (0..crate::compare::HEADER.len()).collect()
    } else {
        vec![0, 1, 2, 5, 6]
    };
    let header = Row::new(
        columns
            .iter()
            .map(|&i| Cell::from(crate::compare::HEADER[i]))
            .collect::<Vec<_>>(),
    )
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = table
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let cells = crate::compare::row_cells(r);
            let marked = c
                .manifest
                .current()
                .filter(|e| e.label == r.label)
                .any(|e| app.marked.contains(&e.dir));
            let mut row_cells: Vec<Cell> = columns
                .iter()
                .map(|&k| Cell::from(cells[k].clone()))
                .collect();
            if marked {
                row_cells[0] = Cell::from(format!("*{}", cells[0]));
            }
            let row = Row::new(row_cells);
            if i == app.selected_strategy {
                row.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    let label_width = table
        .rows
        .iter()
        .map(|r| r.label.chars().count() + 1)
        .max()
        .unwrap_or(8)
        .max(8) as u16;
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|&i| match i {
            0 => Constraint::Length(label_width),
            1 => Constraint::Length(5),
            3 => Constraint::Length(16),
            2 | 4 => Constraint::Length(13),
            _ => Constraint::Length(9),
        })
        .collect();
    let pending: usize = table.rows.iter().map(|r| r.pending.len()).sum();
    let title = format!(
        "Compare {}/{}: {} ({} strategies × {} seeds, {} not finished)  ←/→ other",
        app.selected_comparison + 1,
        app.comparisons.len(),
        c.name(),
        c.manifest.strategies.len(),
        c.manifest.seeds.len(),
        pending
    );
    let [top, legend_area, runs_area] = Layout::vertical([
        Constraint::Length(table.rows.len() as u16 + 3),
        Constraint::Length(if wide { 2 } else { 4 }),
        Constraint::Min(0),
    ])
    .areas(area);
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::new().borders(Borders::ALL).title(title)),
        top,
    );
    // Every run of the comparison, as it stands.
    let run_rows: Vec<Row> = c
        .manifest
        .current()
        .map(|e| {
            let run = app.runs.iter().find(|r| r.dir.path == e.dir);
            let state = run.map_or(DisplayState::Unknown, |r| r.state());
            let o = crate::compare::Outcome::from_val_acc(
                None,
                &run.and_then(|r| r.series.get(&val_acc()))
                    .map(|s| s.points.iter().map(|p| p.1).collect::<Vec<_>>())
                    .unwrap_or_default(),
            );
            let pct = |a: Option<f64>| a.map_or("–".to_string(), |a| format!("{:.2}", 100.0 * a));
            let step = run
                .and_then(|r| r.status.as_ref())
                .map_or(String::new(), |s| format!("{}/{}", s.step, s.total_steps));
            Row::new(vec![
                Cell::from(e.label.clone()),
                Cell::from(e.seed.to_string()),
                Cell::from(state.label()).style(state_style(state)),
                Cell::from(step),
                Cell::from(pct(o.final_acc)),
                Cell::from(pct(o.best_acc)),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            run_rows,
            [
                Constraint::Length(label_width),
                Constraint::Length(5),
                Constraint::Length(9),
                Constraint::Length(12),
                Constraint::Length(9),
                Constraint::Length(9),
            ],
        )
        .header(
            Row::new(vec![
                "strategy", "seed", "state", "step", "final %", "best %",
            ])
            .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .block(
            Block::new()
                .borders(Borders::ALL)
                .title("Runs of this comparison"),
        ),
        runs_area,
    );
    let legend = format!(
        "Validation accuracy % over seeds: mean ± sd; 95 % CI of the mean; Δ vs {} in points \
         (paired by seed); p: Welch t-test of final accuracy. Only finished runs count. \
         Space marks a strategy's runs for the charts.{}",
        table.baseline,
        if wide {
            ""
        } else {
            " Wider than 120 columns: CI and best accuracy too."
        }
    );
    frame.render_widget(
        Paragraph::new(legend)
            .wrap(Wrap { trim: true })
            .style(Style::new().add_modifier(Modifier::DIM)),
        legend_area,
    );
}

/// What the last saved change of `file` did to each run started from it that is
/// still going: applied live, needs a restart, or refused.
fn config_outcomes(app: &App, file: &std::path::Path) -> Vec<Line<'static>> {
    let file = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    let mut lines = Vec::new();
    for r in app.runs.iter().filter(|r| r.info.source == file) {
        let state = r.state();
        if !matches!(
            state,
            DisplayState::Is(State::Training) | DisplayState::Is(State::Paused)
        ) {
            continue;
        }
        if lines.is_empty() {
            lines.push(Line::from(""));
            lines.push(
                Line::from("running from this file (last saved change):")
                    .style(Style::new().add_modifier(Modifier::BOLD)),
            );
        }
        lines.push(Line::from(format!(
            "  {} s{} ({}):",
            r.info.label,
            r.info.seed,
            state.label()
        )));
        // One save can both apply live fields and leave others for a restart:
        // its events share a step.
        let Some(last) = r.events.iter().rev().find(|e| e.kind.is_config()) else {
            lines.push(Line::from("    no change since it started"));
            continue;
        };
        for e in r
            .events
            .iter()
            .filter(|e| e.step == last.step && e.kind.is_config())
        {
            let (what, color) = match e.kind {
                EventKind::ConfigApplied => ("applied live", Color::Green),
                EventKind::NeedsRestart => ("needs restart", Color::Yellow),
                _ => ("refused", Color::Red),
            };
            lines.push(Line::from(vec![
                Span::styled(format!("    {what}: "), Style::new().fg(color)),
                Span::raw(e.message.clone()),
            ]));
        }
    }
    lines
}

/// The start prompt, over the middle of the body.
fn draw_prompt(frame: &mut Frame, p: &super::app::StartPrompt, area: Rect) {
    let width = area.width.min(64);
    let height = area.height.min(7);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let mut choices = Vec::new();
    for i in 0..p.choices.len() {
        let style = if i == p.selected {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        choices.push(Span::styled(format!(" {} ", p.choice_label(i)), style));
        choices.push(Span::raw(" "));
    }
    let mut lines = vec![
        Line::from(format!("{} run(s) of {} on:", p.runs, p.name)),
        Line::from(choices),
        Line::from("←/→ choose   Enter start   Esc cancel")
            .style(Style::new().add_modifier(Modifier::DIM)),
    ];
    if !crate::experiment::LIBTORCH_BUILT {
        lines.push(
            Line::from("GPUs need a build with --features tch (see README)")
                .style(Style::new().add_modifier(Modifier::DIM)),
        );
    }
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL).title("Start runs")),
        popup,
    );
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    let mut last_scope = None;
    for b in KEYMAP.iter().filter(|b| !b.label.is_empty()) {
        if last_scope != Some(b.scope) {
            let heading = match b.scope {
                Scope::Global => "everywhere".to_string(),
                Scope::In(v) => format!("in {}", v.title()),
                Scope::Prompt => "in the start prompt".to_string(),
            };
            lines.push(Line::from(heading).style(Style::new().add_modifier(Modifier::BOLD)));
            last_scope = Some(b.scope);
        }
        lines.push(Line::from(format!("  {:<8} {}", b.label, b.help)));
    }
    let [a, b] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let half = lines.len().div_ceil(2);
    let right: Vec<Line> = lines.split_off(half);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::ALL)
                .title("Keys (? to close)"),
        ),
        a,
    );
    frame.render_widget(
        Paragraph::new(right).block(Block::new().borders(Borders::ALL)),
        b,
    );
}

/// The runs view's one-line summary of a run (for logs and tests).
pub fn run_summary(r: &RunView) -> String {
    let st = r.status.as_ref();
    format!(
        "{} {} {}/{}",
        r.name(),
        r.state().label(),
        st.map_or(0, |s| s.step),
        st.map_or(0, |s| s.total_steps)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_depth_from_term_and_colorterm() {
        use ColorDepth::*;
        for (term, colorterm, want) in [
            ("xterm-256color", "", Indexed256),
            ("screen-256color", "", Indexed256),
            ("tmux-256color", "", Indexed256),
            ("xterm-256color", "truecolor", TrueColor),
            ("xterm", "24bit", TrueColor),
            ("xterm", "", Basic16),
            ("screen", "", Basic16),
            ("linux", "", Basic16),
            ("", "", Basic16),
        ] {
            assert_eq!(
                ColorDepth::from_env(term, colorterm),
                want,
                "{term} {colorterm}"
            );
        }
    }

    #[test]
    fn heat_ramps_stay_in_the_palette_and_rise() {
        let lum = |c: Color| match c {
            Color::Rgb(r, g, b) => r as u32 + g as u32 + b as u32,
            Color::Indexed(i) => i as u32,
            Color::Black => 0,
            Color::DarkGray => 1,
            Color::Gray => 2,
            Color::White => 3,
            other => panic!("{other:?} is not on a ramp"),
        };
        for depth in [
            ColorDepth::TrueColor,
            ColorDepth::Indexed256,
            ColorDepth::Basic16,
        ] {
            let ramp: Vec<Color> = (0..=20).map(|i| heat(i as f32 / 20.0, depth)).collect();
            for w in ramp.windows(2) {
                assert!(lum(w[0]) <= lum(w[1]), "{depth:?}: {w:?}");
            }
            assert_ne!(ramp[0], ramp[20], "{depth:?}: the ends differ");
            for c in &ramp {
                match depth {
                    ColorDepth::Basic16 => {
                        assert!(!matches!(c, Color::Rgb(..) | Color::Indexed(_)))
                    }
                    ColorDepth::Indexed256 => assert!(matches!(c, Color::Indexed(232..=255))),
                    ColorDepth::TrueColor => assert!(matches!(c, Color::Rgb(..))),
                }
            }
        }
    }
}
