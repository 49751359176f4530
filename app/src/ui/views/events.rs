//! The Events view: what every trainer logged, newest last.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::run::dir::EventKind;
use crate::ui::app::App;

/// `HH:MM:SS` (UTC) of a Unix time.
fn clock(wall: f64) -> String {
    let s = wall as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let events = app.all_events();
    let height = area.height.saturating_sub(2) as usize;
    let end = (app.selected.event + 1).max(height).min(events.len());
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
