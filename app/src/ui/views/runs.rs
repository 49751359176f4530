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
    match seconds {
        None => "-".into(),
        Some(s) if s >= 3600.0 => {
            format!("{:.0}h{:02.0}m", (s / 3600.0).floor(), (s % 3600.0) / 60.0)
        }
        Some(s) if s >= 60.0 => format!("{:.0}m{:02.0}s", (s / 60.0).floor(), s % 60.0),
        Some(s) => format!("{s:.0}s"),
    }
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
    let rows: Vec<Row> = order
        .iter()
        .map(|&i| &app.runs[i])
        .map(|r| Row::new(cells(r, app.marked.contains(&r.dir.path), wide)))
        .collect();
    let title = app.run_list.title(order.len(), app.runs.len());
    let at = order.iter().position(|&i| i == app.selected.run);
    let table = Table::new(rows, widths(columns))
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
        frame.render_widget(Paragraph::new(run_detail(r, gpu_memory)), detail);
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

/// (header, width) of each column; the run's name (index 2) takes what is left.
/// At 80 columns there is no bar (the step of the total says as much), and the
/// run is named by strategy, experiment and seed in one cell.
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

/// Before a marked run (for the chart overlay).
pub const MARKED: &str = "●";
/// Before the name of a run whose configuration or strategy code changed
/// while it trained (a live edit, a hot reload): its numbers are not those
/// of one configuration.
pub const CHANGED_MID_RUN: &str = "✎";

/// A run's name in the table, marked when it changed mid-run.
fn run_name(r: &RunView, name: String) -> String {
    if r.provenance.changed_mid_run() {
        format!("{CHANGED_MID_RUN} {name}")
    } else {
        name
    }
}

/// A run's row, in the columns of [`NARROW`] or [`WIDE`].
fn cells(r: &RunView, marked: bool, wide: bool) -> Vec<Cell<'static>> {
    let st = r.status.as_ref();
    let step = st.map_or(0, |s| s.step);
    let total = st.map_or(0, |s| s.total_steps);
    let mark = if marked { MARKED } else { " " };
    let state = r.state();
    let best = r.best_val_acc().map_or("-".into(), |a| format!("{a:.4}"));
    let device = st.map_or(String::new(), |s| s.device.clone());
    let epoch = st.map_or(String::new(), |s| (s.epoch + 1).to_string());
    let eta = eta_text(r.eta_seconds());
    if !wide {
        return vec![
            Cell::from(mark),
            Cell::from(r.started.clone()),
            // Cut at its end when narrow: strategy and seed tell runs apart more.
            Cell::from(run_name(
                r,
                format!("{} s{} {}", r.info.label, r.info.seed, r.info.experiment),
            )),
            Cell::from(state.label()).style(state_style(state)),
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
        Cell::from(run_name(
            r,
            format!("{} s{}", r.info.experiment, r.info.seed),
        )),
        Cell::from(state.label()).style(state_style(state)),
        Cell::from(strategy),
        Cell::from(device),
        Cell::from(epoch),
        Cell::from(format!("{step}/{total}")),
        Cell::from(progress_bar(step, total, 20)),
        Cell::from(eta),
        Cell::from(best),
    ]
}

fn widths(columns: &[(&str, u16)]) -> Vec<Constraint> {
    columns
        .iter()
        .enumerate()
        .map(|(i, &(_, n))| {
            if i == 2 {
                Constraint::Min(n)
            } else {
                Constraint::Length(n)
            }
        })
        .collect()
}

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
fn run_detail(r: &RunView, gpu_memory: Option<u64>) -> Vec<Line<'static>> {
    let state = r.state();
    let st = r.status.as_ref();
    let mut facts = vec![r.name()];
    if let Some(s) = st {
        facts.push(format!("step {}/{}", s.step, s.total_steps));
        if let Some(speed) = s.samples_per_s.filter(|_| s.state == State::Training) {
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
    let said = match state {
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
    vec![facts, Line::from(said).style(state_style(state))]
}
