//! The config panel (Runs, `c`): the selected run's resolved experiment, or,
//! with two or more runs marked, only what differs between them.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::RUN_COLORS;
use crate::ui::app::App;
use crate::ui::identity;
use crate::ui::workspace::RunView;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
    let marked: Vec<&RunView> = app
        .runs
        .iter()
        .filter(|r| app.marked.contains(&r.dir.path))
        .collect();
    frame.render_widget(Clear, area);
    if marked.len() >= 2 {
        draw_diff(frame, &marked, area);
    } else if let Some(r) = app.selected_run() {
        draw_one(frame, r, area);
    }
}

/// Every key of one run, a paragraph per section (`train: epochs=3
/// batch_size=32 …`), wrapped: a whole experiment fits 80×24.
fn draw_one(frame: &mut Frame, r: &RunView, area: Rect) {
    let tail = " (c closes; mark runs to compare)";
    let room =
        usize::from(area.width.saturating_sub(2)).saturating_sub("Config of ".len() + tail.len());
    let title = format!("Config of {}{tail}", super::fit_middle(&r.name(), room));
    // Top-level keys ("") first, then each section in order.
    let mut sections: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (key, value) in &r.config {
        let (section, rest) = key.split_once('.').unwrap_or(("", key));
        sections
            .entry(section)
            .or_default()
            .push(format!("{rest}={value}"));
    }
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let lines: Vec<Line> = sections
        .into_iter()
        .map(|(section, pairs)| {
            let head = if section.is_empty() {
                String::new()
            } else {
                format!("{section}: ")
            };
            Line::from(vec![Span::styled(head, bold), Span::raw(pairs.join("  "))])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::new().borders(Borders::ALL).title(title)),
        area,
    );
}

/// The keys in which the marked runs differ: one row per key, one column per
/// run (in its chart colour).
fn draw_diff(frame: &mut Frame, runs: &[&RunView], area: Rect) {
    let keys = identity::differing(runs.iter().map(|r| &r.config));
    let same = runs
        .iter()
        .flat_map(|r| r.config.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        - keys.len();
    let title = format!(
        "What differs between the {} marked runs ({same} keys alike; c closes)",
        runs.len()
    );
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut header = vec![Cell::from("key").style(bold)];
    for (i, r) in runs.iter().enumerate() {
        let colour = RUN_COLORS[i % RUN_COLORS.len()];
        // Two lines, so that narrow columns cut neither the name nor the time.
        let name = Text::from(vec![
            Line::from(format!("{} s{}", r.info.label, r.info.seed)),
            Line::from(r.started.clone()),
        ]);
        header.push(Cell::from(name).style(bold.fg(colour)));
    }
    let rows: Vec<Row> = keys
        .iter()
        .map(|k| {
            let mut cells = vec![Cell::from(k.clone())];
            cells.extend(
                runs.iter()
                    .map(|r| Cell::from(r.config.get(k).cloned().unwrap_or("-".into()))),
            );
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![Constraint::Length(
        keys.iter().map(|k| k.len()).max().unwrap_or(3) as u16,
    )];
    widths.extend(std::iter::repeat_n(Constraint::Fill(1), runs.len()));
    let table = Table::new(rows, widths)
        .header(Row::new(header).height(2))
        .block(Block::new().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}
