//! Drawing: state → frame. Nothing here changes the state; the one thing kept
//! between frames, prepared chart curves, lives in [`Screen`], outside `App`.
//! One module per view.

pub(crate) mod charts;
mod compare;
mod config;
mod events;
mod experiments;
pub(crate) mod masks;
mod plugins;
mod runs;
mod sweep;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, TableState, Tabs, Wrap};

use super::app::{App, StartPrompt};
use super::keys::{KEYMAP, Scope, View};
use super::manage::{Confirm, Entry};
use super::workspace::DisplayState;
use crate::run::dir::State;

pub use charts::CurveCache;

/// How many colours the terminal shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorDepth {
    TrueColor,
    Indexed256,
    Basic16,
}

impl ColorDepth {
    /// From COLORTERM and TERM, as terminals advertise it.
    pub fn detect() -> ColorDepth {
        ColorDepth::from_env(
            &std::env::var("TERM").unwrap_or_default(),
            &std::env::var("COLORTERM").unwrap_or_default(),
        )
    }

    /// `xterm-256color`, `screen-256color` and `tmux-256color` get the 256-colour
    /// palette, anything else without COLORTERM the 16 basic colours.
    pub fn from_env(term: &str, colorterm: &str) -> ColorDepth {
        if colorterm.contains("truecolor") || colorterm.contains("24bit") {
            ColorDepth::TrueColor
        } else if term.contains("256color") {
            ColorDepth::Indexed256
        } else {
            ColorDepth::Basic16
        }
    }
}

/// Stable run colours (by position in the overlay), distinguishable in 16 colours.
pub(super) const RUN_COLORS: [Color; 8] = [
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::LightRed,
    Color::LightBlue,
    Color::White,
    Color::LightGreen,
];

/// How a list's selected row is drawn.
pub(super) const SELECTED: Style = Style::new().add_modifier(Modifier::REVERSED);

/// A table's selection. Drawn with it, ratatui scrolls the table so that the
/// selected row is on screen however long the list.
pub(super) fn selection(row: usize) -> TableState {
    TableState::default().with_selected(Some(row))
}

/// A tab's title in the tab bar.
fn tab_title(i: usize, view: View) -> String {
    format!("{} {}", i + 1, view.title())
}

/// The space either side of a tab's title: none below 90 columns, where
/// every title must fit.
fn tab_padding(width: u16) -> &'static str {
    if width < 90 { "" } else { " " }
}

/// The tab bar of a terminal `width` wide, `view`'s tab shown selected.
fn tab_bar(view: View, width: u16) -> Tabs<'static> {
    let titles: Vec<Line> = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| Line::from(tab_title(i, *v)))
        .collect();
    let selected = View::ALL.iter().position(|v| *v == view).unwrap_or(0);
    Tabs::new(titles)
        .padding(tab_padding(width), tab_padding(width))
        .select(selected)
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .divider("│")
}

/// The view whose tab is at `column` of a tab bar `width` wide (for mouse
/// clicks).
pub fn tab_at(column: u16, width: u16) -> Option<View> {
    let mut x = 0;
    let pad = tab_padding(width).len();
    for (i, v) in View::ALL.iter().enumerate() {
        // Each title padded either side, then a divider.
        x += tab_title(i, *v).chars().count() + 2 * pad + 1;
        if usize::from(column) < x {
            return Some(*v);
        }
    }
    None
}

/// What drawing keeps from one frame to the next.
pub struct Screen {
    pub depth: ColorDepth,
    curves: CurveCache,
}

impl Screen {
    pub fn new(depth: ColorDepth) -> Screen {
        Screen {
            depth,
            curves: CurveCache::default(),
        }
    }

    pub fn draw(&mut self, frame: &mut Frame, app: &App) {
        draw_with(frame, app, self.depth, &mut self.curves);
    }
}

/// One frame drawn from nothing kept (what the snapshot tests render).
pub fn draw(frame: &mut Frame, app: &App, depth: ColorDepth) {
    Screen::new(depth).draw(frame, app);
}

fn draw_with(frame: &mut Frame, app: &App, depth: ColorDepth, curves: &mut CurveCache) {
    let area = frame.area();
    if area.width < 20 || area.height < 5 {
        frame.render_widget(Paragraph::new("window too small"), area);
        return;
    }
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(tab_bar(app.view, area.width), tabs);
    if app.help {
        draw_help(frame, body, app.help_page);
    } else if app.config_open && app.view == View::Runs {
        config::draw(frame, app, body);
    } else {
        match app.view {
            View::Runs => runs::draw(frame, app, body),
            View::Charts => charts::draw(frame, app, body, depth, curves),
            View::Masks => masks::draw(frame, app, body, depth),
            View::Plugins => plugins::draw(frame, app, body),
            View::Experiments => experiments::draw(frame, app, body),
            View::Events => events::draw(frame, app, body),
            View::Compare => compare::draw(frame, app, body),
            View::Sweep => sweep::draw(frame, app, body, depth),
        }
    }
    if let Some(c) = &app.confirm {
        draw_confirm(frame, c, body);
    }
    if let Some(e) = &app.entry {
        draw_entry(frame, e, body);
    }
    if let Some(p) = &app.prompt {
        draw_prompt(frame, p, body);
    }
    let hint = if app.message.is_empty() {
        "? help  q quit".to_string()
    } else {
        app.message.clone()
    };
    frame.render_widget(
        Paragraph::new(hint).style(Style::new().add_modifier(Modifier::DIM)),
        status,
    );
}

pub(super) fn state_style(state: DisplayState) -> Style {
    match state {
        DisplayState::Is(State::Training) => Style::new().fg(Color::Green),
        DisplayState::Is(State::Paused) | DisplayState::Is(State::Queued) => {
            Style::new().fg(Color::Yellow)
        }
        DisplayState::Is(State::Done) => Style::new().fg(Color::Cyan),
        DisplayState::Is(State::Failed)
        | DisplayState::Is(State::Diverged)
        | DisplayState::Lost
        | DisplayState::Unheard => Style::new().fg(Color::Red),
        _ => Style::new(),
    }
}

/// A box of at most `width`×`height` in the middle of `area`.
fn popup(area: Rect, width: u16, height: u16) -> Rect {
    let (width, height) = (area.width.min(width), area.height.min(height));
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// A yes/no question about a run, over the middle of the body.
fn draw_confirm(frame: &mut Frame, c: &Confirm, area: Rect) {
    let popup = popup(area, 64, 7);
    let dim = Style::new().add_modifier(Modifier::DIM);
    let [ask, then, keys] = c.lines();
    let lines = vec![
        Line::from(ask),
        Line::from(format!("run {}", c.name)).style(dim),
        Line::from(then),
        Line::from(keys).style(dim),
    ];
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL).title(c.title())),
        popup,
    );
}

/// A line being typed, at the bottom of the body: its end stays in sight.
fn draw_entry(frame: &mut Frame, e: &Entry, area: Rect) {
    let height = 4.min(area.height);
    let rect = Rect {
        y: area.y + area.height - height,
        height,
        ..area
    };
    let room = usize::from(rect.width.saturating_sub(3));
    let chars: Vec<char> = e.text.chars().collect();
    let shown: String = chars[chars.len().saturating_sub(room)..].iter().collect();
    let lines = vec![
        Line::from(format!("{shown}█")),
        Line::from("Enter keep   Esc cancel   Backspace erase")
            .style(Style::new().add_modifier(Modifier::DIM)),
    ];
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(e.title())),
        rect,
    );
}

/// The start prompt, over the middle of the body.
fn draw_prompt(frame: &mut Frame, p: &StartPrompt, area: Rect) {
    let popup = popup(area, 64, 7);
    let mut choices = Vec::new();
    for i in 0..p.choices.len() {
        let style = if i == p.selected {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        choices.push(Span::styled(format!(" {} ", p.choice_label(i)), style));
        choices.push(Span::raw(" "));
    }
    let what = if p.compare {
        format!("compare the strategies of {} over seeds on:", p.name)
    } else {
        format!("{} run(s) of {} on:", p.runs, p.name)
    };
    let mut lines = vec![
        Line::from(what),
        Line::from(choices),
        Line::from("←/→ choose   Enter start   Esc cancel")
            .style(Style::new().add_modifier(Modifier::DIM)),
    ];
    if !crate::experiment::LIBTORCH_BUILT {
        lines.push(
            Line::from("GPUs need a build with --features tch (see README)")
                .style(Style::new().add_modifier(Modifier::DIM)),
        );
    }
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::new().borders(Borders::ALL).title(if p.compare {
                "Start a comparison"
            } else {
                "Start runs"
            }),
        ),
        popup,
    );
}

/// The key map's help lines, by where they apply: (heading, lines).
fn help_groups() -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    let mut last_scope = None;
    for b in KEYMAP.iter().filter(|b| !b.label.is_empty()) {
        if last_scope != Some(b.scope) {
            let heading = match b.scope {
                Scope::Global => "everywhere".to_string(),
                Scope::In(v) => format!("in {}", v.title()),
                Scope::Prompt => "in a question (start, stop, archive…)".to_string(),
            };
            groups.push((heading, Vec::new()));
            last_scope = Some(b.scope);
        }
        if let Some(g) = groups.last_mut() {
            g.1.push(format!("  {:<8} {}", b.label, b.help));
        }
    }
    let marks = [
        (runs::MARKED, "marked (Space)"),
        (runs::CHANGED_MID_RUN, "config/code changed mid-run"),
        (runs::NEEDS_RESTART, "change waits for a restart"),
    ];
    let lines = marks.iter().map(|(m, what)| format!("  {m:<8} {what}"));
    groups.push(("marks in the Runs table".into(), lines.collect()));
    groups
}

/// One help line: a heading (bold) or a key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HelpLine {
    Heading(String),
    Key(String),
}

/// Lays the groups out in columns of `rows` lines, as many as they need. A
/// heading never ends a column: a group that does not fit starts the next
/// one, and a group cut by a column's end is headed again there ("… (cont.)").
fn help_columns(groups: &[(String, Vec<String>)], rows: usize) -> Vec<Vec<HelpLine>> {
    let rows = rows.max(2);
    let mut out: Vec<Vec<HelpLine>> = vec![Vec::new()];
    for (heading, keys) in groups {
        if rows.saturating_sub(out.last().map_or(0, Vec::len)) < 2 {
            out.push(Vec::new());
        }
        if let Some(col) = out.last_mut() {
            col.push(HelpLine::Heading(heading.clone()));
        }
        for key in keys {
            if out.last().map_or(0, Vec::len) >= rows {
                out.push(vec![HelpLine::Heading(format!("{heading} (cont.)"))]);
            }
            if let Some(col) = out.last_mut() {
                col.push(HelpLine::Key(key.clone()));
            }
        }
    }
    out
}

/// The help in columns of 40; pages of them when the terminal is too small
/// (↑/↓ turn them, the title says which).
fn draw_help(frame: &mut Frame, area: Rect, page: usize) {
    let count = usize::from(area.width / 40).max(1);
    let rows = usize::from(area.height.saturating_sub(2));
    let columns = help_columns(&help_groups(), rows);
    let pages = columns.len().div_ceil(count);
    let page = page % pages;
    let areas = Layout::horizontal(vec![Constraint::Ratio(1, count as u32); count]).split(area);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    for (i, area) in areas.iter().enumerate() {
        let lines: Vec<Line> = columns
            .get(page * count + i)
            .into_iter()
            .flatten()
            .map(|l| match l {
                HelpLine::Heading(h) => Line::from(h.clone()).style(bold),
                HelpLine::Key(k) => Line::from(k.clone()),
            })
            .collect();
        let block = Block::new().borders(Borders::ALL);
        let block = match (i, pages) {
            (0, 1) => block.title("Keys (? to close)"),
            (0, _) => block.title(format!("Keys {}/{pages}, ↑/↓ (? to close)", page + 1)),
            _ => block,
        };
        frame.render_widget(Paragraph::new(lines).block(block), *area);
    }
}

/// A message of several lines (a diagnostic: its text, the quoted line, the
/// caret under the column) as lines of its own, never joined: the first after
/// `lead`, the others after `indent`, so the caret stays under its column.
pub(super) fn message_lines(
    lead: Vec<ratatui::text::Span<'static>>,
    message: &str,
    indent: &str,
) -> Vec<Line<'static>> {
    let mut parts = message.lines();
    let mut first = lead;
    first.push(ratatui::text::Span::raw(
        parts.next().unwrap_or("").to_string(),
    ));
    let mut out = vec![Line::from(first)];
    out.extend(parts.map(|l| Line::from(format!("{indent}{l}"))));
    out
}

/// A message's first line, with " …" when it has more (a list row).
pub(super) fn first_line_of(message: &str) -> String {
    let mut parts = message.lines();
    let first = parts.next().unwrap_or("").to_string();
    if parts.next().is_some() {
        format!("{first} …")
    } else {
        first
    }
}

/// A duration as the dashboard writes it: `45s`, `1m23s`, `2h05m`. Rounded
/// to whole seconds (minutes from an hour on) before it is split, so that no
/// part ever reads 60.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        let minutes = (s + 30) / 60;
        format!("{}h{:02}m", minutes / 60, minutes % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// `text` in at most `width` characters: whole if it fits, else its start
/// and end kept around an ellipsis (file names and runs differ at both ends).
pub(super) fn fit_middle(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_string();
    }
    let Some(kept) = width.checked_sub(1) else {
        return String::new();
    };
    // The end gets the odd character: it holds the extension or the seed.
    let head = kept / 2;
    let tail = kept - head;
    let start: String = chars[..head].iter().collect();
    let end: String = chars[chars.len() - tail..].iter().collect();
    format!("{start}…{end}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_on_a_tab_title_opens_that_view() {
        for width in [80, 160] {
            let backend = ratatui::backend::TestBackend::new(width, 1);
            let mut terminal = ratatui::Terminal::new(backend).unwrap();
            let bar = tab_bar(View::Runs, width);
            terminal
                .draw(|frame| frame.render_widget(bar, frame.area()))
                .unwrap();
            let row: String = (0..width)
                .map(|x| terminal.backend().buffer()[(x, 0)].symbol().to_string())
                .collect();
            for (i, v) in View::ALL.iter().enumerate() {
                let title = tab_title(i, *v);
                let at = row.find(&title).expect("every tab drawn");
                // Columns count characters; the dividers are one column each.
                let column = row[..at].chars().count() as u16;
                assert_eq!(tab_at(column, width), Some(*v), "{title} at {width}");
                let last = column + title.len() as u16 - 1;
                assert_eq!(tab_at(last, width), Some(*v), "{title} at {width}");
            }
            assert_eq!(tab_at(width - 1, width), None, "{row}");
        }
    }

    #[test]
    fn a_long_name_keeps_both_ends() {
        assert_eq!(
            fit_middle("compare-cifar10-resnet18.toml", 26),
            "compare-cifa…resnet18.toml"
        );
        assert_eq!(fit_middle("dash.toml", 26), "dash.toml");
        assert_eq!(fit_middle("abcdef", 1), "…");
        assert_eq!(fit_middle("abcdef", 0), "");
    }

    /// Issue 34, item 5: a duration is rounded once, as a whole: never
    /// "1m60s" or "1h60m".
    #[test]
    fn durations_round_before_they_split() {
        let cases = [
            (0.4, "0s"),
            (59.4, "59s"),
            (59.6, "1m00s"),
            (119.7, "2m00s"),
            (83.0, "1m23s"),
            (3599.4, "59m59s"),
            (3599.6, "1h00m"),
            (7170.0, "2h00m"),
            (3929.0, "1h05m"),
            (-3.0, "0s"),
        ];
        for (seconds, want) in cases {
            assert_eq!(duration(seconds), want, "{seconds}");
        }
    }

    #[test]
    fn help_headings_stay_with_their_keys() {
        let groups = help_groups();
        let keys: usize = groups.iter().map(|g| g.1.len()).sum();
        for rows in [20, 44, 5, 3, 1] {
            let laid = help_columns(&groups, rows);
            for col in &laid {
                assert!(col.len() <= rows.max(2), "{rows}: {col:?}");
                assert!(
                    !matches!(col.last(), Some(HelpLine::Heading(_))),
                    "{rows}: a heading ends a column: {col:?}"
                );
                assert!(matches!(col.first(), Some(HelpLine::Heading(_))));
            }
            let shown = laid
                .iter()
                .flatten()
                .filter(|l| matches!(l, HelpLine::Key(_)))
                .count();
            assert_eq!(shown, keys, "{rows}: every key on some page");
        }
    }

    #[test]
    fn colour_depth_from_term_and_colorterm() {
        use ColorDepth::*;
        for (term, colorterm, want) in [
            ("xterm-256color", "", Indexed256),
            ("screen-256color", "", Indexed256),
            ("tmux-256color", "", Indexed256),
            ("xterm-256color", "truecolor", TrueColor),
            ("xterm", "24bit", TrueColor),
            ("xterm", "", Basic16),
            ("screen", "", Basic16),
            ("linux", "", Basic16),
            ("", "", Basic16),
        ] {
            assert_eq!(
                ColorDepth::from_env(term, colorterm),
                want,
                "{term} {colorterm}"
            );
        }
    }
}
