//! The Experiments view: each file, valid or its errors, and what its last
//! saved change did to the runs started from it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::{SELECTED, selection};
use crate::experiment::{Diagnostic, Experiment};
use crate::run::dir::{EventKind, State};
use crate::ui::app::App;
use crate::ui::workspace::{DisplayState, ExperimentView};

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let [list, detail] = Layout::horizontal([
        Constraint::Length(list_width(app, area.width)),
        Constraint::Min(10),
    ])
    .areas(area);
    // The borders, the status column and the gap before it.
    let name_width = usize::from(list.width.saturating_sub(2 + STATUS_WIDTH + 1));
    let rows: Vec<Row> = app
        .experiments
        .iter()
        .map(|e| {
            let (mark, style) = match &e.result {
                Ok(exp) if exp.data_missing.is_some() => {
                    ("no data", Style::new().fg(Color::Yellow))
                }
                Ok(_) => ("ok", Style::new().fg(Color::Green)),
                Err(_) => ("error", Style::new().fg(Color::Red)),
            };
            let name = super::fit_middle(&e.name(), name_width);
            Row::new(vec![Cell::from(name), Cell::from(mark).style(style)])
        })
        .collect();
    frame.render_stateful_widget(
        Table::new(
            rows,
            [Constraint::Min(10), Constraint::Length(STATUS_WIDTH)],
        )
        .block(
            Block::new()
                .borders(Borders::ALL)
                .title(format!("Experiments ({})", app.experiments.len())),
        )
        .row_highlight_style(SELECTED),
        list,
        &mut selection(app.selected.experiment),
    );
    let text: Vec<Line> = match app.experiments.get(app.selected.experiment) {
        None => vec![Line::from("no experiment files (*.toml)")],
        Some(e) => match &e.result {
            Ok(exp) => valid_details(app, e, exp),
            Err(errors) => invalid_details(app, e, errors),
        },
    };
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL).title("Details")),
        detail,
    );
}

/// A broken file: every error with its position, then the runs still going
/// from it, which keep the last valid configuration until it is fixed.
fn invalid_details(app: &App, e: &ExperimentView, errors: &[Diagnostic]) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = errors
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
        .collect();
    let running = config_outcomes(app, &e.path);
    if !running.is_empty() {
        lines.extend(running);
        lines.push(
            Line::from("they keep their last valid configuration until the file is fixed")
                .style(Style::new().fg(Color::Yellow)),
        );
    }
    lines
}

/// The file list's status column ("no data" at most).
const STATUS_WIDTH: u16 = 7;

/// The file list's width: every name whole when the terminal is wide, a
/// third of it at most (36 columns at 80).
fn list_width(app: &App, width: u16) -> u16 {
    let longest = app
        .experiments
        .iter()
        .map(|e| e.name().chars().count())
        .max()
        .unwrap_or(0) as u16;
    // The status column, its gap, the borders and a space to spare.
    let wanted = longest + STATUS_WIDTH + 4;
    wanted.clamp(20, (width * 2 / 5).max(36)).min(width)
}

/// A valid file: what it trains, its runs, warnings, missing data, and what its
/// last saved change did to the runs started from it.
fn valid_details(app: &App, e: &ExperimentView, exp: &Experiment) -> Vec<Line<'static>> {
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
        lines.push(Line::from(format!("warning: {w}")).style(Style::new().fg(Color::Yellow)));
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
    lines.push(Line::from("n start its runs  C compare over seeds  e edit"));
    lines
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
            let lead = vec![Span::styled(
                format!("    {what}: "),
                Style::new().fg(color),
            )];
            lines.extend(super::message_lines(lead, &e.message, "      "));
        }
    }
    lines
}
