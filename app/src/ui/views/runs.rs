//! The Runs view: every run directory, its state and progress.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::{SELECTED, selection, state_style};
use crate::run::dir::{self, State};
use crate::ui::app::App;
use crate::ui::identity;
use crate::ui::system::{Sample, describe, gib};
use crate::ui::workspace::{DisplayState, RunView};

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
    seconds.map_or("-".into(), super::duration)
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    if app.runs.is_empty() {
        let text = "No runs yet. Press 5 for experiments, select one and press n to start it.";
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .block(Block::new().borders(Borders::ALL).title("Runs")),
            area,
        );
        return;
    }
    let wide = area.width >= 120;
    let columns = if wide { WIDE } else { NARROW };
    let header: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let order = app.shown_runs();
    let shown: Vec<Shown> = order
        .iter()
        .map(|&i| Shown::of(&app.runs[i], app))
        .collect();
    let layout = ColumnLayout::new(columns, &shown, area.width);
    let rows: Vec<Row> = shown
        .iter()
        .map(|s| Row::new(cells(s, &layout, wide)))
        .collect();
    let title = app.run_list.title(order.len(), app.runs.len());
    let at = order.iter().position(|&i| i == app.selected.run);
    let table = Table::new(rows, layout.widths.clone())
        .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
        .block(Block::new().borders(Borders::ALL).title(title.clone()))
        .row_highlight_style(SELECTED);
    let log_rows = if app.log_open { area.height / 2 } else { 0 };
    let machine = app.system.as_ref().map(machine_lines).unwrap_or_default();
    let [top, list, detail, log] = Layout::vertical([
        Constraint::Length(machine.len() as u16),
        Constraint::Min(3),
        Constraint::Length(2),
        Constraint::Length(log_rows),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(machine), top);
    if order.is_empty() {
        let text = "No run matches the filter: / changes it (an empty filter lists every run).";
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .block(Block::new().borders(Borders::ALL).title(title)),
            list,
        );
        return;
    }
    frame.render_stateful_widget(table, list, &mut selection(at.unwrap_or(0)));
    if let Some(r) = at.and_then(|_| app.selected_run()) {
        let gpu_memory = app
            .system
            .as_ref()
            .zip(r.status.as_ref().filter(|_| r.alive))
            .and_then(|(s, st)| s.gpu_memory_of(st.pid));
        let stall = r.stalled_for(app.now);
        frame.render_widget(Paragraph::new(run_detail(r, gpu_memory, stall)), detail);
        if app.log_open {
            draw_log(frame, r, log);
        }
    }
}

/// The end of the run's trainer.log, newest line last.
fn draw_log(frame: &mut Frame, r: &RunView, area: Rect) {
    let rows = usize::from(area.height.saturating_sub(2));
    let skip = r.log.lines.len().saturating_sub(rows);
    let lines: Vec<Line> = r
        .log
        .lines
        .iter()
        .skip(skip)
        .map(|l| Line::from(l.clone()))
        .collect();
    let title = if lines.is_empty() {
        format!("{} of {}: empty (l closes)", dir::TRAINER_LOG, r.name())
    } else {
        format!("{} of {} (l closes)", dir::TRAINER_LOG, r.name())
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(title)),
        area,
    );
}

/// (header, width) of each column; the run's name ([`NAME`]) takes what
/// is left, the state ([`STATE`]) what its longest needs. At 80 columns
/// there is no bar (the step of the total says as much), and the run is
/// named by strategy, seed and experiment in one cell.
const NARROW: &[(&str, u16)] = &[
    ("", 1),
    ("started", 8),
    ("run", 12),
    ("state", 8),
    ("ep", 3),
    ("step", 9),
    ("eta", 6),
    ("best", 6),
    ("device", 6),
];
const WIDE: &[(&str, u16)] = &[
    ("", 1),
    ("started", 11),
    ("run", 16),
    ("state", 9),
    ("strategy", 20),
    ("device", 7),
    ("epoch", 5),
    ("step", 11),
    ("progress", 20),
    ("eta", 7),
    ("best acc", 8),
];
/// The columns of the name and the state, in both tables.
const NAME: usize = 2;
const STATE: usize = 3;

/// Before a marked run (for the chart overlay).
pub const MARKED: &str = "●";
/// Before the name of a run whose configuration or strategy code changed
/// while it trained (a live edit, a hot reload): its numbers are not those
/// of one configuration.
pub const CHANGED_MID_RUN: &str = "✎";
/// Before the name of a run with a saved change it cannot take live: it
/// waits for the run's next start.
pub const NEEDS_RESTART: &str = "↻";
/// A name part shortened below this many characters says nothing: it goes.
const SHORTEST_PART: usize = 10;

/// One listed run and what its row says beyond its status.
struct Shown<'a> {
    run: &'a RunView,
    marked: bool,
    /// Seconds since its last step, when it has stalled.
    stall: Option<f64>,
    state: String,
}

impl<'a> Shown<'a> {
    fn of(run: &'a RunView, app: &App) -> Shown<'a> {
        let stall = run.stalled_for(app.now);
        let state = match stall {
            Some(s) => format!("{STALLED} {}", super::duration(s)),
            None => run.state().label().to_string(),
        };
        Shown {
            run,
            marked: app.marked.contains(&run.dir.path),
            stall,
            state,
        }
    }
}

/// A stalled run's state.
const STALLED: &str = "stalled";

/// The columns' widths for the runs shown at `width`.
struct ColumnLayout {
    widths: Vec<Constraint>,
    /// Characters the name cell has.
    name: usize,
}

impl ColumnLayout {
    fn new(columns: &[(&str, u16)], shown: &[Shown], width: u16) -> ColumnLayout {
        let longest = shown.iter().map(|s| s.state.chars().count()).max();
        let state = longest.map_or(0, |n| n as u16).max(columns[STATE].1);
        let fixed: u16 = columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != NAME)
            .map(|(i, c)| if i == STATE { state } else { c.1 })
            .sum();
        // Borders, and a space between columns.
        let gaps = 2 + columns.len() as u16 - 1;
        let name = width.saturating_sub(fixed + gaps).max(columns[NAME].1);
        let widths = columns
            .iter()
            .enumerate()
            .map(|(i, c)| match i {
                NAME => Constraint::Min(c.1),
                STATE => Constraint::Length(state),
                _ => Constraint::Length(c.1),
            })
            .collect();
        ColumnLayout {
            widths,
            name: usize::from(name),
        }
    }
}

/// The marks before a run's name (see the help's list of them).
fn marks_of(r: &RunView) -> String {
    let mut marks = String::new();
    if r.provenance.changed_mid_run() {
        marks.push_str(CHANGED_MID_RUN);
    }
    if r.needs_restart() {
        marks.push_str(NEEDS_RESTART);
    }
    if !marks.is_empty() {
        marks.push(' ');
    }
    marks
}

/// A run's name in `width` characters after its marks: at 80 columns its
/// strategy, seed and experiment, the experiment shortened (or left out)
/// first, then the strategy, the seed always whole; wide, the experiment
/// and seed (the strategy has a column).
fn run_name(r: &RunView, width: usize, wide: bool) -> String {
    let marks = marks_of(r);
    let room = width.saturating_sub(marks.chars().count());
    let seed = format!("s{}", r.info.seed);
    let (first, last) = if wide {
        (r.info.experiment.as_str(), None)
    } else {
        (r.info.label.as_str(), Some(r.info.experiment.as_str()))
    };
    let first_room = room.saturating_sub(seed.len() + 1);
    let rest = first_room.saturating_sub(first.chars().count() + 1);
    let name = match last {
        Some(last) if rest >= SHORTEST_PART.min(last.chars().count()) => {
            format!("{first} {seed} {}", super::fit_middle(last, rest))
        }
        _ => format!("{} {seed}", super::fit_middle(first, first_room)),
    };
    format!("{marks}{name}")
}

/// A run's row, in the columns of [`NARROW`] or [`WIDE`].
fn cells(shown: &Shown, layout: &ColumnLayout, wide: bool) -> Vec<Cell<'static>> {
    let r = shown.run;
    let st = r.status.as_ref();
    let step = st.map_or(0, |s| s.step);
    let total = st.map_or(0, |s| s.total_steps);
    let mark = if shown.marked { MARKED } else { " " };
    let state = match shown.stall {
        Some(_) => Cell::from(shown.state.clone()).style(STALL_STYLE),
        None => Cell::from(shown.state.clone()).style(state_style(r.state())),
    };
    let best = r.best_val_acc().map_or("-".into(), |a| format!("{a:.4}"));
    let device = st.map_or(String::new(), |s| s.device.clone());
    let epoch = st.map_or(String::new(), |s| (s.epoch + 1).to_string());
    let eta = eta_text(r.eta_seconds().filter(|_| shown.stall.is_none()));
    let name = Cell::from(run_name(r, layout.name, wide));
    if !wide {
        return vec![
            Cell::from(mark),
            Cell::from(r.started.clone()),
            name,
            state,
            Cell::from(epoch),
            Cell::from(format!("{step}/{total}")),
            Cell::from(eta),
            Cell::from(best),
            Cell::from(device),
        ];
    }
    let strategy = match st.map(|s| s.plugin_version.as_str()) {
        Some(v) if !v.is_empty() => format!("{} {v}", r.info.label),
        _ => r.info.label.clone(),
    };
    vec![
        Cell::from(mark),
        Cell::from(identity::date_of(&r.info.created)),
        name,
        state,
        Cell::from(strategy),
        Cell::from(device),
        Cell::from(epoch),
        Cell::from(format!("{step}/{total}")),
        Cell::from(progress_bar(step, total, 20)),
        Cell::from(eta),
        Cell::from(best),
    ]
}

/// How a stalled run's state and detail are drawn.
const STALL_STYLE: Style = Style::new().fg(Color::Red);

/// The machine above the table (see [`describe`]), dimmed.
fn machine_lines(s: &Sample) -> Vec<Line<'static>> {
    let dim = Style::new().add_modifier(Modifier::DIM);
    describe(s)
        .into_iter()
        .map(|l| Line::from(l).style(dim))
        .collect()
}

/// Two lines about the selected run: which directory it is and where it
/// stands (with the GPU memory its trainer holds, when NVML says), then what
/// its trainer last said (or why it is not running), after which of its
/// files are not read and why.
fn run_detail(r: &RunView, gpu_memory: Option<u64>, stall: Option<f64>) -> Vec<Line<'static>> {
    let state = r.state();
    let st = r.status.as_ref();
    let mut facts = vec![r.name()];
    if let Some(s) = st {
        facts.push(format!("step {}/{}", s.step, s.total_steps));
        let going = s.state == State::Training && stall.is_none();
        if let Some(speed) = s.samples_per_s.filter(|_| going) {
            facts.push(format!("{speed:.0} samples/s"));
        }
        if !s.plugin_version.is_empty() {
            facts.push(format!("{} {}", r.info.label, s.plugin_version));
        }
    }
    if let Some(bytes) = gpu_memory {
        facts.push(format!("{} GiB on the GPU", gib(bytes)));
    }
    if let Some(task) = &r.info.slurm_job {
        let host = st.map(|s| s.host.as_str()).filter(|h| !h.is_empty());
        facts.push(match host {
            Some(h) => format!("Slurm {task} on {h}"),
            None => format!("Slurm {task}"),
        });
    }
    if !r.notes.tags.is_empty() {
        let tags: Vec<String> = r.notes.tags.iter().map(|t| format!("#{t}")).collect();
        facts.push(tags.join(" "));
    }
    if !r.notes.note.is_empty() {
        facts.push(format!("note: {}", r.notes.note));
    }
    let message = st.map(|s| s.message.clone()).unwrap_or_default();
    let said = if let Some(since) = stall {
        format!(
            "{STALLED}: no step for {} (a hung mask() or data read?); s stops it",
            super::duration(since)
        )
    } else {
        match state {
            DisplayState::Lost => {
                "its trainer is gone without a word (killed, or the machine restarted); R continues it from the checkpoint".to_string()
            }
            DisplayState::Unheard => {
                let (host, silent) = st.map_or((String::new(), 0.0), |s| (s.host.clone(), crate::run::dir::unheard_for(&r.dir.path, s).as_secs_f64()));
                format!(
                    "no heartbeat from {host} for {silent:.0} s (its node is down or its job was killed); R continues it from the checkpoint here"
                )
            }
            _ if message.is_empty() => match r.eta_seconds() {
                Some(eta) => format!("{}, about {} left", state.label(), eta_text(Some(eta))),
                None => state.label().to_string(),
            },
            _ => message,
        }
    };
    // First, where the line is not cut: the mark in the row needs it.
    let said = if r.needs_restart() {
        format!("{NEEDS_RESTART} saved change: u restarts · {said}")
    } else {
        said
    };
    let facts = Line::from(facts.join(" · ")).style(Style::new().add_modifier(Modifier::DIM));
    // Files of the run it refuses to read (a FIFO, an oversized notes.json)
    // come first: the rest of what it shows may lack them.
    let problems = r.problems();
    if !problems.is_empty() {
        let text = format!("{} · {said}", problems.join(" · "));
        return vec![
            facts,
            Line::from(text).style(Style::new().fg(Color::Yellow)),
        ];
    }
    let style = if stall.is_some() {
        STALL_STYLE
    } else {
        state_style(state)
    };
    vec![facts, Line::from(said).style(style)]
}
