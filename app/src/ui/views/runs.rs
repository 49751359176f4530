//! The Runs view: every run directory, its state and progress.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::{SELECTED, selection, state_style};
use crate::ui::app::App;
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
        .map(|r| Row::new(cells(r, app.marked.contains(&r.dir.path), wide)))
        .collect();
    let title = format!("Runs ({})", app.runs.len());
    let table = Table::new(rows, widths(wide))
        .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
        .block(Block::new().borders(Borders::ALL).title(title))
        .row_highlight_style(SELECTED);
    let [list, detail] = Layout::vertical([Constraint::Min(3), Constraint::Length(2)]).areas(area);
    frame.render_stateful_widget(table, list, &mut selection(app.selected.run));
    if let Some(r) = app.selected_run() {
        frame.render_widget(
            Paragraph::new(run_detail(r)).wrap(Wrap { trim: true }),
            detail,
        );
    }
}

/// A run's row: with strategy, device, epoch and ETA when `wide`.
fn cells(r: &RunView, marked: bool, wide: bool) -> Vec<Cell<'static>> {
    let st = r.status.as_ref();
    let step = st.map_or(0, |s| s.step);
    let total = st.map_or(0, |s| s.total_steps);
    let mark = if marked { "●" } else { " " };
    let state = r.state();
    let best = r.best_val_acc().map_or("-".into(), |a| format!("{a:.4}"));
    let name = format!("{} s{}", r.info.experiment, r.info.seed);
    if !wide {
        return vec![
            Cell::from(mark),
            Cell::from(format!("{} {}", r.info.label, name)),
            Cell::from(state.label()).style(state_style(state)),
            Cell::from(format!("{step}/{total}")),
            Cell::from(progress_bar(step, total, 10)),
            Cell::from(best),
        ];
    }
    let strategy = match st.map(|s| s.plugin_version.as_str()) {
        Some(v) if !v.is_empty() => format!("{} {v}", r.info.label),
        _ => r.info.label.clone(),
    };
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
}

fn widths(wide: bool) -> Vec<Constraint> {
    let lengths: &[u16] = if wide {
        &[1, 16, 9, 20, 7, 5, 11, 20, 7, 8]
    } else {
        &[1, 12, 8, 9, 10, 6]
    };
    // The run's name takes what is left.
    lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            if i == 1 {
                Constraint::Min(n)
            } else {
                Constraint::Length(n)
            }
        })
        .collect()
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
