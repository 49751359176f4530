//! The Sweep view: a sweeping arm's cells as a heatmap over two swept keys
//! (a line over one), the place under the cursor in words, and the hparams
//! table of every run of the comparison, live as runs finish.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Cell, Chart, Dataset, GraphType, Paragraph, Row, Table, TableState, Wrap,
};

use super::{ColorDepth, masks::heat, state_style};
use crate::run::comparison::grid::{ALPHA, Grid, Place, Stat};
use crate::run::comparison::{self, Table as Comparison, significance};
use crate::ui::app::{App, ComparisonView};
use crate::ui::state::{Spread, SweepCursor};
use crate::ui::workspace::DisplayState;

/// Columns of one place of the heatmap.
const PLACE_WIDTH: u16 = 15;

pub(super) fn draw(frame: &mut Frame, app: &App, area: Rect, depth: ColorDepth) {
    let Some((c, t, g)) = app.sweep_grid() else {
        draw_nothing(frame, app, area);
        return;
    };
    // Borders, the x values, a row per y value, the scale.
    let top_height = if g.is_line() {
        11
    } else {
        g.ys.len() as u16 + 4
    };
    let [top, detail, table] = Layout::vertical([
        Constraint::Length(top_height.min(area.height / 2 + 2)),
        Constraint::Length(2),
        Constraint::Min(3),
    ])
    .areas(area);
    let block = Block::new().borders(Borders::ALL).title(title(app, c, &g));
    if g.is_line() {
        draw_line(frame, &app.sweep, &g, block, top);
    } else {
        draw_heat(frame, &app.sweep, &g, depth, block, top);
    }
    frame.render_widget(
        Paragraph::new(describe_place(app, &t, &g)).wrap(Wrap { trim: true }),
        detail,
    );
    draw_hparams(frame, app, (c, &t), &g, table);
}

fn draw_nothing(frame: &mut Frame, app: &App, area: Rect) {
    let text = match app.comparison_table() {
        None => format!(
            "No comparisons in {}. A [[strategy]] with `sweep = {{ p = [0.05, 0.1] }}` \
             runs one arm per value through `probdrop-tui compare FILE`; its cells show here.",
            app.compare_dir.display()
        ),
        Some((c, _)) => format!(
            "{} sweeps no key. A [[strategy]] with `sweep = {{ block_size = [3, 5], p = [0.05, \
             0.1] }}` compares every cell over seeds; [/] goes to another comparison.",
            c.name()
        ),
    };
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(Block::new().borders(Borders::ALL).title("Sweep")),
        area,
    );
}

fn title(app: &App, c: &ComparisonView, g: &Grid) -> String {
    format!(
        "Sweep {}/{}: {} · {} · {} acc %  [/] a x h b e",
        app.selected.comparison + 1,
        app.comparisons.len(),
        c.name(),
        g.title(),
        g.measure.label()
    )
}

/// A place's text: its mean, its spread if asked, `*` if it differs from the
/// baseline after Holm.
fn place_text(stat: Option<&Stat>, spread: Spread) -> String {
    let Some(s) = stat else {
        return "–".into();
    };
    let mark = if s.marked { "*" } else { "" };
    match spread {
        Spread::Nothing => format!("{:.2}{mark}", s.mean),
        Spread::Sd => format!("{:.2}±{:.2}{mark}", s.mean, s.sd),
        Spread::Ci => format!("{:.2}±{:.2}{mark}", s.mean, s.ci),
    }
}

/// The lowest and highest mean shown.
fn range(g: &Grid) -> Option<(f64, f64)> {
    let means: Vec<f64> = (g.places.iter().flatten())
        .filter_map(|p| p.stat.as_ref().map(|s| s.mean))
        .collect();
    let lo = means.iter().copied().reduce(f64::min)?;
    Some((lo, means.iter().copied().fold(lo, f64::max)))
}

fn draw_heat(
    frame: &mut Frame,
    cursor: &SweepCursor,
    g: &Grid,
    depth: ColorDepth,
    block: Block,
    area: Rect,
) {
    let range = range(g).unwrap_or((0.0, 0.0));
    let corner = format!("{} ↓ {} →", g.y_key.as_deref().unwrap_or(""), g.x_key);
    // A place's text starts one column in (its cursor bracket goes there).
    let header =
        std::iter::once(Cell::from(corner)).chain(g.xs.iter().map(|x| Cell::from(format!(" {x}"))));
    let rows = (g.ys.iter().zip(&g.places).enumerate()).map(|(y, (value, row))| {
        let places = (row.iter().enumerate()).map(|(x, place)| {
            place_cell(place, (x, y) == cursor.at(g), cursor.spread, range, depth)
        });
        Row::new(std::iter::once(Cell::from(value.as_str())).chain(places))
    });
    let key_width =
        (g.y_key.as_deref().unwrap_or("").chars().count() + g.x_key.chars().count() + 5) as u16;
    let widths = std::iter::once(Constraint::Length(key_width.max(8) + 1))
        .chain(g.xs.iter().map(|_| Constraint::Length(PLACE_WIDTH)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [grid_area, scale_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
            .column_spacing(0),
        grid_area,
    );
    frame.render_widget(scale_line(g, depth), scale_area);
}

/// One place of the heatmap: its text (bracketed under the cursor) on its
/// shade of the scale from `lo` to `hi`, in ink that reads on it.
fn place_cell(
    place: &Place,
    under_cursor: bool,
    spread: Spread,
    (lo, hi): (f64, f64),
    depth: ColorDepth,
) -> Cell<'static> {
    let text = place_text(place.stat.as_ref(), spread);
    let text = if under_cursor {
        format!("[{text}]")
    } else {
        format!(" {text}")
    };
    let Some(s) = &place.stat else {
        return Cell::from(text);
    };
    let v = if hi > lo {
        (s.mean - lo) / (hi - lo)
    } else {
        0.5
    } as f32;
    let ink = if v > 0.6 { Color::Black } else { Color::White };
    Cell::from(text).style(Style::new().bg(heat(v, depth)).fg(ink))
}

/// The colour scale with its end values, what `*` means, and the baseline.
fn scale_line(g: &Grid, depth: ColorDepth) -> Line<'static> {
    let mut spans = match range(g) {
        Some((lo, hi)) => {
            let mut ramp = vec![Span::raw(format!("{lo:.2} "))];
            for i in 0..8 {
                let colour = heat(i as f32 / 7.0, depth);
                ramp.push(Span::styled("█", Style::new().fg(colour)));
            }
            ramp.push(Span::raw(format!(" {hi:.2}  * ≠ baseline (Holm {ALPHA})")));
            ramp
        }
        None => vec![Span::raw("no place has a finished run yet")],
    };
    if let Some(b) = &g.baseline {
        spans.push(Span::raw(format!("  baseline {:.2} ± {:.2}", b.mean, b.sd)));
    }
    Line::from(spans)
}

/// What the line draws, in (x, accuracy %) points.
struct LineSeries {
    mean: Vec<(f64, f64)>,
    low: Vec<(f64, f64)>,
    high: Vec<(f64, f64)>,
    /// The baseline's mean, mean − sd and mean + sd, across.
    base: Vec<Vec<(f64, f64)>>,
    /// The cursor's point.
    here: Vec<(f64, f64)>,
}

impl LineSeries {
    fn of(g: &Grid, cx: usize) -> LineSeries {
        let xs: Vec<f64> = g.xs.iter().map(|x| x.parse().unwrap_or(0.0)).collect();
        let at = |f: fn(&Stat) -> f64| -> Vec<(f64, f64)> {
            (xs.iter().zip(&g.places[0]))
                .filter_map(|(x, p)| Some((*x, f(p.stat.as_ref()?))))
                .collect()
        };
        let (x0, x1) = (xs[0], xs[xs.len() - 1]);
        let across = |y: f64| vec![(x0, y), (x1, y)];
        let mean = at(|s| s.mean);
        LineSeries {
            here: mean.iter().filter(|p| p.0 == xs[cx]).copied().collect(),
            mean,
            low: at(|s| s.mean - s.sd),
            high: at(|s| s.mean + s.sd),
            base: (g.baseline.iter())
                .flat_map(|b| [across(b.mean), across(b.mean - b.sd), across(b.mean + b.sd)])
                .collect(),
        }
    }

    /// The accuracy range drawn, with a margin.
    fn y_bounds(&self) -> [f64; 2] {
        let all =
            (self.mean.iter().chain(&self.low).chain(&self.high)).chain(self.base.iter().flatten());
        let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
        if lo < hi {
            [lo - 0.5, hi + 0.5]
        } else if lo.is_finite() {
            [lo - 1.0, lo + 1.0]
        } else {
            [0.0, 100.0]
        }
    }
}

/// One numeric key: the mean with ± sd lines, the baseline's band across,
/// the cursor's value marked; a line under it says which is which.
fn draw_line(frame: &mut Frame, cursor: &SweepCursor, g: &Grid, block: Block, area: Rect) {
    let series = LineSeries::of(g, cursor.at(g).0);
    let line = |data, colour| {
        Dataset::default()
            .data(data)
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(colour))
    };
    let mut sets = vec![
        line(&series.mean, Color::Cyan),
        line(&series.low, Color::DarkGray),
        line(&series.high, Color::DarkGray),
    ];
    for (i, b) in series.base.iter().enumerate() {
        sets.push(line(
            b,
            if i == 0 {
                Color::Yellow
            } else {
                Color::DarkGray
            },
        ));
    }
    sets.push(
        line(&series.here, Color::White)
            .graph_type(GraphType::Scatter)
            .marker(Marker::Block),
    );
    let [x0, x1] = [0, g.xs.len() - 1].map(|i| g.xs[i].parse::<f64>().unwrap_or(0.0));
    let [y0, y1] = series.y_bounds();
    // Labels sit evenly along an axis: only its ends and middle are exact.
    let ends = |a: f64, b: f64| {
        vec![
            format!("{a:.3}"),
            format!("{:.3}", (a + b) / 2.0),
            format!("{b:.3}"),
        ]
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [plot, key] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(inner);
    let chart = Chart::new(sets)
        .x_axis(
            Axis::default()
                .title(g.x_key.clone())
                .bounds([x0, x1])
                .labels(ends(x0, x1)),
        )
        .y_axis(Axis::default().bounds([y0, y1]).labels(ends(y0, y1)));
    frame.render_widget(chart, plot);
    let baseline = g.baseline.as_ref().map_or(String::new(), |b| {
        format!("; yellow: baseline {:.2} ± {:.2} sd", b.mean, b.sd)
    });
    let text = format!("cyan: {} mean, grey: ± sd{baseline}; █ the cursor", g.arm);
    frame.render_widget(
        Paragraph::new(text).style(Style::new().add_modifier(Modifier::DIM)),
        key,
    );
}

/// The place under the cursor in words: its cells, seeds, mean and spread,
/// and for one cell its difference from the baseline with its tests.
fn describe_place(app: &App, t: &Comparison, g: &Grid) -> String {
    let (x, y) = app.sweep.at(g);
    let place: &Place = &g.places[y][x];
    let at = match &g.y_key {
        Some(k) => format!("{}={} {k}={}", g.x_key, g.xs[x], g.ys[y]),
        None => format!("{}={}", g.x_key, g.xs[x]),
    };
    let Some(s) = &place.stat else {
        return format!("{at}: no finished run yet. Space marks its runs for the charts.");
    };
    let numbers = format!("{:.2} ± {:.2} sd, 95 % CI ± {:.2}", s.mean, s.sd, s.ci);
    match place.labels.as_slice() {
        [label] => format!(
            "{at}: {numbers} over {} seed(s){}",
            s.seeds,
            versus_baseline(t, label)
        ),
        many => format!(
            "{at}: {numbers}, each the mean of {} cells' ({} runs)",
            many.len(),
            s.seeds
        ),
    }
}

/// ", Δ final +0.74 (paired p 0.167, Holm 0.501)" for one cell.
fn versus_baseline(t: &Comparison, label: &str) -> String {
    let Some(i) = t.rows.iter().position(|r| r.label == label) else {
        return String::new();
    };
    let cells = comparison::row_cells(&t.rows[i]);
    let holm = significance(t)[i]
        .holm
        .map_or("–".to_string(), |p| format!("{p:.3}"));
    format!(
        "; Δ final vs {} {} (p {}, Holm {holm})",
        t.baseline, cells[5], cells[6]
    )
}

/// One run of the hparams table: its cells, its cell's label and its state.
struct HRow {
    cells: Vec<String>,
    label: String,
    state: DisplayState,
}

/// The header and rows of the hparams table: every run of the comparison,
/// the swept keys of every arm as columns.
fn hparams(app: &App, c: &ComparisonView, t: &Comparison) -> (Vec<String>, Vec<HRow>) {
    let mut keys: Vec<String> = Vec::new();
    for cell in t.cells.values() {
        for k in cell.values.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let pct = |a: Option<f64>| a.map_or("–".into(), |a| format!("{:.2}", 100.0 * a));
    let rows: Vec<HRow> = (c.manifest.current())
        .map(|e| {
            let cell = t.cells.get(&e.label);
            let run = app.runs.iter().find(|r| r.dir.path == e.dir);
            let state = run.map_or(DisplayState::Unknown, |r| r.state());
            let o = app.outcome(&e.dir);
            let mut cells = vec![cell.map_or(e.label.clone(), |c| c.arm.clone())];
            cells.extend(keys.iter().map(|k| {
                cell.and_then(|c| c.values.get(k))
                    .cloned()
                    .unwrap_or_default()
            }));
            cells.extend([
                e.seed.to_string(),
                state.label().to_string(),
                pct(o.final_acc),
                pct(o.best_acc),
                pct(o.dropping.map(|d| d.dropped)),
            ]);
            HRow {
                cells,
                label: e.label.clone(),
                state,
            }
        })
        .collect();
    let mut header = vec!["strategy".to_string()];
    header.extend(keys);
    header.extend(["seed", "state", "final %", "best %", "dropped %"].map(String::from));
    (header, rows)
}

/// Numbers by value, words by spelling, blanks and dashes last.
fn compare_cells(a: &str, b: &str) -> std::cmp::Ordering {
    let blank = |s: &str| s.is_empty() || s == "–";
    match (blank(a), blank(b), a.parse::<f64>(), b.parse::<f64>()) {
        (true, false, ..) => std::cmp::Ordering::Greater,
        (false, true, ..) => std::cmp::Ordering::Less,
        (_, _, Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

fn draw_hparams(
    frame: &mut Frame,
    app: &App,
    (c, t): (&ComparisonView, &Comparison),
    g: &Grid,
    area: Rect,
) {
    let (header, mut rows) = hparams(app, c, t);
    let column = app.sweep.sort % header.len();
    rows.sort_by(|a, b| {
        let o = compare_cells(&a.cells[column], &b.cells[column]);
        if app.sweep.descending { o.reverse() } else { o }
    });
    let (x, y) = app.sweep.at(g);
    let here = &g.places[y][x].labels;
    let first = rows.iter().position(|r| here.contains(&r.label));
    let widths = column_widths(&header, &rows);
    let order = if app.sweep.descending { "↓" } else { "↑" };
    let title = format!(
        "hparams: {} runs by {} {order} (S column, r reverse; bold: the place's)",
        rows.len(),
        header[column]
    );
    let state_column = header.len() - 4;
    let table_rows = rows.into_iter().map(|r| hparams_row(r, state_column, here));
    let header_row =
        Row::new(header).style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let mut state = TableState::default().with_selected(first);
    frame.render_stateful_widget(
        Table::new(table_rows, widths)
            .header(header_row)
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .block(Block::new().borders(Borders::ALL).title(title)),
        area,
        &mut state,
    );
}

/// Each column as wide as its widest cell or its header, and a space.
fn column_widths(header: &[String], rows: &[HRow]) -> Vec<Constraint> {
    (header.iter().enumerate())
        .map(|(i, h)| {
            let widest = rows.iter().map(|r| r.cells[i].chars().count()).max();
            Constraint::Length(widest.unwrap_or(0).max(h.chars().count()) as u16 + 1)
        })
        .collect()
}

/// A run's row: its state coloured as in Runs, bold when it is one of the
/// place's under the cursor.
fn hparams_row(r: HRow, state_column: usize, here: &[String]) -> Row<'static> {
    let ours = here.contains(&r.label);
    let state = state_style(r.state);
    let cells = r.cells.into_iter().enumerate().map(|(i, text)| {
        let cell = Cell::from(text);
        if i == state_column {
            cell.style(state)
        } else {
            cell
        }
    });
    let row = Row::new(cells);
    if ours {
        row.style(Style::new().add_modifier(Modifier::BOLD))
    } else {
        row
    }
}
