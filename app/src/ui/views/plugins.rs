//! The Plugins view: each strategy library, and reload and build output.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::{SELECTED, selection};
use crate::run::dir::EventKind;
use crate::ui::app::App;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let rows: Vec<Row> = app
        .plugins
        .iter()
        .map(|p| {
            let (status, style) = match (&p.status, &p.last_build) {
                (Ok(_), Some(why)) => (
                    format!("last build refused: {}", first_line(why)),
                    Style::new().fg(Color::Yellow),
                ),
                (Ok(s), None) => (s.clone(), Style::new().fg(Color::Green)),
                (Err(e), _) => (
                    format!("refused: {}", first_line(e)),
                    Style::new().fg(Color::Red),
                ),
            };
            Row::new(vec![
                Cell::from(p.name.clone()),
                Cell::from(p.version.clone()),
                Cell::from(p.source.clone()),
                Cell::from(in_use(app, &p.name)),
                Cell::from(status).style(style),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(14),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(vec![
            "strategy",
            "version",
            "source",
            "live runs use",
            "status",
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .block(
        Block::new()
            .borders(Borders::ALL)
            .title(format!("Plugins ({})", app.plugins.len())),
    )
    .row_highlight_style(SELECTED);
    frame.render_stateful_widget(table, top, &mut selection(app.selected.plugin));
    let reloads: Vec<Line> = app
        .all_events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Reload | EventKind::ReloadRefused))
        .map(|e| Line::from(format!("{} {}: {}", e.name, e.kind, e.message)))
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

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The versions of `name` the live runs train with, as their provenance
/// says (a run may have refused the version loaded here): "0.1.3 ×2".
fn in_use(app: &App, name: &str) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in app.runs.iter().filter(|r| r.alive) {
        if let Some(lib) = r.provenance.current_library().filter(|l| l.name == name) {
            *counts.entry(lib.version.as_str()).or_default() += 1;
        }
    }
    let used: Vec<String> = counts
        .iter()
        .map(|(v, n)| {
            if *n == 1 {
                v.to_string()
            } else {
                format!("{v} ×{n}")
            }
        })
        .collect();
    used.join(", ")
}
