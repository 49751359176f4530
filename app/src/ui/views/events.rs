//! The Events view: what every trainer logged, newest last.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::SELECTED;
use crate::run::dir::EventKind;
use crate::ui::app::App;
use crate::ui::state::FOLLOW_NEWEST;

/// `HH:MM:SS` (UTC) of a Unix time.
fn clock(wall: f64) -> String {
    let s = wall as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let events = app.all_events();
    let height = area.height.saturating_sub(2) as usize;
    let following = app.selected.event == FOLLOW_NEWEST;
    let selected = app.selected.event.min(events.len().saturating_sub(1));
    let end = (selected + 1).max(height).min(events.len());
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = events[start..end]
        .iter()
        .enumerate()
        .map(|(i, (wall, run, kind, message))| {
            let style = match kind {
                k if k.is_trouble() => Style::new().fg(Color::Red),
                EventKind::Reload | EventKind::ConfigApplied => Style::new().fg(Color::Cyan),
                _ => Style::new(),
            };
            let line = Line::from(vec![
                Span::raw(format!("{} ", clock(*wall))),
                Span::styled(format!("{kind:<14} "), style),
                Span::raw(format!("{run}: {message}")),
            ]);
            if !following && start + i == selected {
                line.style(SELECTED)
            } else {
                line
            }
        })
        .collect();
    let title = if following {
        format!("Events ({}, following the newest; ↑ older)", events.len())
    } else {
        format!(
            "Events ({}, {} of them; G follows the newest)",
            events.len(),
            selected + 1
        )
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(title)),
        area,
    );
}
