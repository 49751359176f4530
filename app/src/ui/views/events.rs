//! The Events view: what every trainer logged, newest last.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::SELECTED;
use crate::run::dir::EventKind;
use crate::ui::app::{App, EventRow};
use crate::ui::state::FOLLOW_NEWEST;

/// `HH:MM:SS` (UTC) of a Unix time.
fn clock(wall: f64) -> String {
    let s = wall as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let events = app.events();
    let height = area.height.saturating_sub(2) as usize;
    let following = app.selected.event == FOLLOW_NEWEST;
    let selected = app.selected.event.min(events.len().saturating_sub(1));
    let end = (selected + 1).max(height).min(events.len());
    let start = end.saturating_sub(height);
    // As wide as the longest kind listed (a newer trainer's too).
    let kind_width = events
        .iter()
        .map(|e| e.kind.name().chars().count())
        .max()
        .unwrap_or(0);
    let lines: Vec<Line> = events[start..end]
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let line = Line::from(vec![
                Span::raw(format!("{} ", clock(e.wall))),
                Span::styled(
                    format!("{:<kind_width$} ", e.kind.name()),
                    kind_style(&e.kind),
                ),
                Span::raw(format!("{}: {}", e.name, super::first_line_of(&e.message))),
            ]);
            if !following && start + i == selected {
                line.style(SELECTED)
            } else {
                line
            }
        })
        .collect();
    let head = match events.first() {
        Some(e) if app.events_of.is_some() => {
            format!("Events of {} ({}; f: all)", e.name, events.len())
        }
        _ => format!("Events ({})", events.len()),
    };
    let title = if following {
        format!("{head} · following the newest, ↑ older")
    } else {
        format!("{head} · {} of them; G follows the newest", selected + 1)
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(title)),
        area,
    );
    if app.event_open
        && let Some(e) = events.get(selected)
    {
        draw_entry(frame, e, area);
    }
}

fn kind_style(kind: &EventKind) -> Style {
    match kind {
        k if k.is_trouble() => Style::new().fg(Color::Red),
        EventKind::Reload | EventKind::ConfigApplied => Style::new().fg(Color::Cyan),
        _ => Style::new(),
    }
}

/// The selected entry in full, wrapped, over the lower part of the list.
fn draw_entry(frame: &mut Frame, e: &EventRow, area: Rect) {
    let height = (area.height / 2).max(6).min(area.height);
    let popup = Rect {
        y: area.y + area.height - height,
        height,
        ..area
    };
    let dim = Style::new().add_modifier(Modifier::DIM);
    let run = e
        .run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lines = vec![
        Line::from(vec![
            Span::styled(format!("{} ", e.kind), kind_style(&e.kind)),
            Span::raw(format!("at step {}, {} UTC", e.step, clock(e.wall))),
        ]),
        Line::from(format!("run {run}")).style(dim),
    ];
    let lines = [lines, super::message_lines(Vec::new(), &e.message, "")].concat();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::new()
                .borders(Borders::ALL)
                .title("Entry (Enter closes; ↑/↓ the others)"),
        ),
        popup,
    );
}
