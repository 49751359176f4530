//! Drawing: state → frame. Nothing here changes the state; the one thing kept
//! between frames, prepared chart curves, lives in [`Screen`], outside `App`.
//! One module per view.

mod charts;
mod compare;
mod events;
mod experiments;
mod masks;
mod plugins;
mod runs;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, TableState, Tabs, Wrap};

use super::app::{App, ConfirmStop, StartPrompt};
use super::keys::{KEYMAP, Scope, View};
use super::workspace::{DisplayState, RunView};
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

/// The view whose tab is at `column` of the tab bar (for mouse clicks).
pub fn tab_at(column: u16) -> Option<View> {
    let mut x = 0;
    for (i, v) in View::ALL.iter().enumerate() {
        // The tab bar pads each title with a space either side, then a divider.
        x += tab_title(i, *v).chars().count() + 3;
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
    let titles: Vec<Line> = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| Line::from(tab_title(i, *v)))
        .collect();
    let selected = View::ALL.iter().position(|v| *v == app.view).unwrap_or(0);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .divider("│"),
        tabs,
    );
    if app.help {
        draw_help(frame, body);
    } else {
        match app.view {
            View::Runs => runs::draw(frame, app, body),
            View::Charts => charts::draw(frame, app, body, curves),
            View::Masks => masks::draw(frame, app, body, depth),
            View::Plugins => plugins::draw(frame, app, body),
            View::Experiments => experiments::draw(frame, app, body),
            View::Events => events::draw(frame, app, body),
            View::Compare => compare::draw(frame, app, body),
        }
    }
    if let Some(c) = &app.confirm_stop {
        draw_confirm_stop(frame, c, body);
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
        | DisplayState::Lost => Style::new().fg(Color::Red),
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

/// The stop question, over the middle of the body.
fn draw_confirm_stop(frame: &mut Frame, c: &ConfirmStop, area: Rect) {
    let popup = popup(area, 64, 7);
    let lines = vec![
        Line::from(format!("Stop {}?", c.question)),
        Line::from(format!("run {}", c.name)).style(Style::new().add_modifier(Modifier::DIM)),
        Line::from("It keeps its checkpoint; R continues it later."),
        Line::from("y/Enter stop   n/Esc keep it running")
            .style(Style::new().add_modifier(Modifier::DIM)),
    ];
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL).title("Stop the run")),
        popup,
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
    let mut lines = vec![
        Line::from(format!("{} run(s) of {} on:", p.runs, p.name)),
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
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL).title("Start runs")),
        popup,
    );
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    let mut last_scope = None;
    for b in KEYMAP.iter().filter(|b| !b.label.is_empty()) {
        if last_scope != Some(b.scope) {
            let heading = match b.scope {
                Scope::Global => "everywhere".to_string(),
                Scope::In(v) => format!("in {}", v.title()),
                Scope::Prompt => "in a prompt (start runs, stop a run)".to_string(),
            };
            lines.push(Line::from(heading).style(Style::new().add_modifier(Modifier::BOLD)));
            last_scope = Some(b.scope);
        }
        lines.push(Line::from(format!("  {:<8} {}", b.label, b.help)));
    }
    let [a, b] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let half = lines.len().div_ceil(2);
    let right: Vec<Line> = lines.split_off(half);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::ALL)
                .title("Keys (? to close)"),
        ),
        a,
    );
    frame.render_widget(
        Paragraph::new(right).block(Block::new().borders(Borders::ALL)),
        b,
    );
}

/// The runs view's one-line summary of a run (for logs and tests).
pub fn run_summary(r: &RunView) -> String {
    let st = r.status.as_ref();
    format!(
        "{} {} {}/{}",
        r.name(),
        r.state().label(),
        st.map_or(0, |s| s.step),
        st.map_or(0, |s| s.total_steps)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_on_a_tab_title_opens_that_view() {
        let backend = ratatui::backend::TestBackend::new(160, 10);
        let mut terminal = ratatui::Terminal::new(backend).unwrap();
        let f = crate::ui::keys::View::ALL;
        terminal
            .draw(|frame| {
                let titles: Vec<Line> = f
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Line::from(tab_title(i, *v)))
                    .collect();
                frame.render_widget(Tabs::new(titles).divider("│"), frame.area());
            })
            .unwrap();
        let row: String = (0..160)
            .map(|x| terminal.backend().buffer()[(x, 0)].symbol().to_string())
            .collect();
        for (i, v) in f.iter().enumerate() {
            let title = tab_title(i, *v);
            let at = row.find(&title).expect("drawn") as u16;
            // Columns count characters; the dividers are one column each.
            let column = row[..at as usize].chars().count() as u16;
            assert_eq!(tab_at(column), Some(*v), "{title}");
            assert_eq!(tab_at(column + title.len() as u16 - 1), Some(*v), "{title}");
        }
        assert_eq!(tab_at(159), None);
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
