//! The Compare view: a comparison's table over seeds, live as runs finish.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::state_style;
use crate::run::comparison::Table as Comparison;
use crate::run::dir::State;
use crate::run::dir::metric::SeriesKey;
use crate::ui::app::{App, ComparisonView};
use crate::ui::workspace::DisplayState;

/// The selected comparison's table, as `compare.md` has it, live as runs finish.
pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect) {
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
    let label_width = table
        .rows
        .iter()
        .map(|r| r.label.chars().count() + 1)
        .max()
        .unwrap_or(8)
        .max(8) as u16;
    let [top, legend_area, runs_area] = Layout::vertical([
        Constraint::Length(table.rows.len() as u16 + 3),
        // The legend's rows at 80 and at 160 columns: all of it.
        Constraint::Length(if wide { 2 } else { 5 }),
        Constraint::Min(0),
    ])
    .areas(area);
    draw_table(frame, app, (c, &table), label_width, wide, top);
    draw_runs(frame, app, c, label_width, runs_area);
    let legend = format!(
        "Validation accuracy % over seeds: mean ± sd; 95 % CI of the mean; Δ vs {} in points \
         (paired by seed); p: paired t-test (Welch's where seeds do not pair; each cell says \
         which). Only finished runs count, not those marked ✎ (changed mid-run). Space marks \
         a strategy's runs for the charts.{}",
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

/// The table over seeds, one row per strategy; narrow: strategy, seeds, final
/// accuracy, Δ final and p only.
fn draw_table(
    frame: &mut Frame,
    app: &App,
    (c, table): (&ComparisonView, &Comparison),
    label_width: u16,
    wide: bool,
    area: Rect,
) {
    let columns: Vec<usize> = if wide {
        (0..crate::run::comparison::HEADER.len()).collect()
    } else {
        vec![0, 1, 2, 5, 6]
    };
    let header = Row::new(
        columns
            .iter()
            .map(|&i| Cell::from(crate::run::comparison::HEADER[i]))
            .collect::<Vec<_>>(),
    )
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = table
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let cells = crate::run::comparison::row_cells(r);
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
            if i == app.selected.strategy {
                row.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|&i| match i {
            0 => Constraint::Length(label_width),
            1 => Constraint::Length(5),
            3 => Constraint::Length(16),
            2 | 4 => Constraint::Length(13),
            8 => Constraint::Length(18),
            _ => Constraint::Length(9),
        })
        .collect();
    let pending: usize = table.rows.iter().map(|r| r.pending.len()).sum();
    let title = format!(
        "Compare {}/{}: {} ({} strategies × {} seeds, {} not finished)  ←/→ other",
        app.selected.comparison + 1,
        app.comparisons.len(),
        c.name(),
        c.manifest.strategies.len(),
        c.manifest.seeds.len(),
        pending
    );
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::new().borders(Borders::ALL).title(title)),
        area,
    );
}

/// A run's state in the list, marked when the table leaves it out because it
/// changed mid-run.
fn state_text(run: Option<&crate::ui::workspace::RunView>, state: DisplayState) -> String {
    match run {
        Some(r) if r.provenance.changed_mid_run() => {
            format!("{} {}", super::runs::CHANGED_MID_RUN, state.label())
        }
        _ => state.label().to_string(),
    }
}

/// Before the last accuracy of a run that is not done: the value now of one
/// still going, the last of one that ended early; a done run's is final.
fn not_final(state: DisplayState) -> &'static str {
    match state {
        DisplayState::Is(State::Done) => "",
        DisplayState::Is(State::Training | State::Paused | State::Queued) => "now ",
        _ => "last ",
    }
}

/// Every run of the comparison, as it stands.
fn draw_runs(frame: &mut Frame, app: &App, c: &ComparisonView, label_width: u16, area: Rect) {
    let run_rows: Vec<Row> = c
        .manifest
        .current()
        .map(|e| {
            let run = app.runs.iter().find(|r| r.dir.path == e.dir);
            let state = run.map_or(DisplayState::Unknown, |r| r.state());
            let o = crate::run::comparison::Outcome::from_val_acc(
                None,
                &run.and_then(|r| r.series.get(&SeriesKey::val_acc()))
                    .map(|s| s.points().iter().map(|p| p.1).collect::<Vec<_>>())
                    .unwrap_or_default(),
            );
            let pct = |a: Option<f64>| a.map_or("–".to_string(), |a| format!("{:.2}", 100.0 * a));
            let last = o
                .final_acc
                .map(|a| format!("{}{}", not_final(state), pct(Some(a))));
            let step = run
                .and_then(|r| r.status.as_ref())
                .map_or(String::new(), |s| format!("{}/{}", s.step, s.total_steps));
            Row::new(vec![
                Cell::from(e.label.clone()),
                Cell::from(e.seed.to_string()),
                Cell::from(state_text(run, state)).style(state_style(state)),
                Cell::from(step),
                Cell::from(last.unwrap_or_else(|| pct(None))),
                Cell::from(pct(o.best_acc)),
            ])
        })
        .collect();
    let widths = [label_width, 5, 9, 12, 10, 9].map(Constraint::Length);
    frame.render_widget(
        Table::new(run_rows, widths)
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
        area,
    );
}
