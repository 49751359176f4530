//! The key map: one table that both dispatches keys and writes the help view.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The dashboard's views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    Runs,
    Charts,
    Masks,
    Plugins,
    Experiments,
    Events,
    Compare,
    Sweep,
}

impl View {
    pub const ALL: [View; 8] = [
        View::Runs,
        View::Charts,
        View::Masks,
        View::Plugins,
        View::Experiments,
        View::Events,
        View::Compare,
        View::Sweep,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Runs => "Runs",
            View::Charts => "Charts",
            View::Masks => "Masks",
            View::Plugins => "Plugins",
            View::Experiments => "Experiments",
            View::Events => "Events",
            View::Compare => "Compare",
            View::Sweep => "Sweep",
        }
    }
}

/// Everything a key can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    ToggleHelp,
    NextView,
    PrevView,
    Go(View),
    Up,
    Down,
    Top,
    Bottom,
    /// Runs: mark the selected run for the chart overlay.
    Mark,
    /// Compare: mark (or unmark) every run of the selected strategy.
    MarkStrategy,
    NextComparison,
    PrevComparison,
    Pause,
    Resume,
    Stop,
    /// Runs: start the trainer again on a stopped or failed run (from its checkpoint).
    Restart,
    /// Experiments: ask which device, then start every run of the selected experiment.
    StartRuns,
    /// Start prompt: next / previous device choice, start, cancel.
    PromptNext,
    PromptPrev,
    PromptConfirm,
    PromptCancel,
    /// Experiments: open the file in $EDITOR.
    Edit,
    /// Runs: show the selected run's config, or what differs between the marked runs.
    ToggleConfig,
    /// Runs: show the end of the selected run's trainer.log under the table.
    ToggleLogPane,
    /// Runs: type words that the listed runs must match.
    FilterRuns,
    /// Runs: the next sort column.
    SortRuns,
    /// Runs: edit the selected run's tags / note.
    TagRun,
    NoteRun,
    /// Runs: move a finished run to runs/archive/, or delete it (both ask).
    Archive,
    Delete,
    /// Runs: start the run again from its experiment file as saved now (asks).
    Rerun,
    /// Experiments: ask which device, then start a comparison over seeds.
    StartCompare,
    /// Events: open the selected entry in full (or close it).
    OpenEvent,
    /// Events: only the selected entry's run (or every run again).
    FilterEvents,
    CycleSmoothing,
    ToggleLog,
    CycleZoom,
    CycleMetric,
    CycleMetricBack,
    /// Charts: average the seeds of each configuration (mean ± sd band).
    AverageSeeds,
    /// Charts: the y axis over the 1st to 99th percentile (spikes cut off).
    ClipOutliers,
    /// Charts: x in steps, epochs or minutes since the start.
    CycleXAxis,
    /// Charts: the legend shown or hidden.
    ToggleLegend,
    /// Charts: move the cursor that reads every curve's value at one x;
    /// hide it.
    CursorLeft,
    CursorRight,
    HideCursor,
    NextSlot,
    PrevSlot,
    NextSample,
    PrevSample,
    NextChannel,
    PrevChannel,
    /// Masks: the next channel with a dropped position (then the next
    /// sample's).
    NextDropped,
    /// Masks: the snapshot before / after the one shown (the newest at first).
    OlderSnapshot,
    NewerSnapshot,
    /// Charts, Masks, Compare, Sweep: what the view shows, as PNG and SVG figures.
    ExportView,
    /// Sweep: move over the places of the grid (up and down are Up, Down).
    SweepLeft,
    SweepRight,
    /// Sweep: the next sweeping arm of the comparison.
    NextArm,
    /// Sweep: the next pair of swept keys on the axes.
    NextAxes,
    /// Sweep: the keys on no axis averaged over or held at one value (in turn).
    CycleHold,
    /// Sweep: best accuracy instead of final, or back.
    ToggleBest,
    /// Sweep: nothing, ± sd or ± 95 % CI beside each mean.
    CycleSpread,
    /// Sweep: mark (or unmark) the runs of the place under the cursor.
    MarkCell,
    /// Sweep: the hparams table's next sort column; its order reversed.
    SortSweep,
    ReverseSweep,
}

/// Where a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Global,
    In(View),
    /// While the start prompt is open (it takes every key).
    Prompt,
}

pub struct Binding {
    pub code: KeyCode,
    pub label: &'static str,
    pub scope: Scope,
    pub action: Action,
    pub help: &'static str,
}

const fn b(
    code: KeyCode,
    label: &'static str,
    scope: Scope,
    action: Action,
    help: &'static str,
) -> Binding {
    Binding {
        code,
        label,
        scope,
        action,
        help,
    }
}

use Action as A;
use KeyCode as K;
use Scope::{Global as G, In};

/// Every key the dashboard knows. Mouse: click a tab, scroll lists. A binding
/// with an empty label shares the help line of the one before it (the help
/// must fit 80×24).
pub const KEYMAP: &[Binding] = &[
    b(K::Char('q'), "q", G, A::Quit, "quit (runs keep training)"),
    b(
        K::Char('?'),
        "?",
        G,
        A::ToggleHelp,
        "show or hide this help",
    ),
    b(
        K::Char('1'),
        "1…8 Tab",
        G,
        A::Go(View::Runs),
        "views (S-Tab: back)",
    ),
    b(K::Tab, "", G, A::NextView, ""),
    b(K::BackTab, "", G, A::PrevView, ""),
    b(K::Char('2'), "", G, A::Go(View::Charts), ""),
    b(K::Char('3'), "", G, A::Go(View::Masks), ""),
    b(K::Char('4'), "", G, A::Go(View::Plugins), ""),
    b(K::Char('5'), "", G, A::Go(View::Experiments), ""),
    b(K::Char('6'), "", G, A::Go(View::Events), ""),
    b(K::Char('7'), "", G, A::Go(View::Compare), ""),
    b(K::Char('8'), "", G, A::Go(View::Sweep), ""),
    b(K::Up, "↑/↓ k/j", G, A::Up, "select previous / next"),
    b(K::Char('k'), "", G, A::Up, ""),
    b(K::Down, "", G, A::Down, ""),
    b(K::Char('j'), "", G, A::Down, ""),
    b(K::Char('g'), "g/G", G, A::Top, "first / last (Home/End)"),
    b(
        K::Char('w'),
        "w",
        G,
        A::ExportView,
        "view as PNG+SVG (exports/)",
    ),
    b(K::Home, "", G, A::Top, ""),
    b(K::Char('G'), "", G, A::Bottom, ""),
    b(K::End, "", G, A::Bottom, ""),
    b(
        K::Char(' '),
        "Space",
        In(View::Runs),
        A::Mark,
        "mark for the chart overlay",
    ),
    b(
        K::Char('p'),
        "p",
        In(View::Runs),
        A::Pause,
        "pause the selected run",
    ),
    b(
        K::Char('r'),
        "r",
        In(View::Runs),
        A::Resume,
        "resume a paused run",
    ),
    b(
        K::Char('s'),
        "s",
        In(View::Runs),
        A::Stop,
        "stop (asks; R resumes)",
    ),
    b(
        K::Char('R'),
        "R",
        In(View::Runs),
        A::Restart,
        "restart from the checkpoint",
    ),
    b(
        K::Char('c'),
        "c",
        In(View::Runs),
        A::ToggleConfig,
        "config (marked runs: diff)",
    ),
    b(
        K::Char('l'),
        "l",
        In(View::Runs),
        A::ToggleLogPane,
        "its trainer.log, following",
    ),
    b(
        K::Char('/'),
        "/",
        In(View::Runs),
        A::FilterRuns,
        "filter (words, s7, #tag)",
    ),
    b(
        K::Char('S'),
        "S",
        In(View::Runs),
        A::SortRuns,
        "sort: started, strategy…",
    ),
    b(
        K::Char('t'),
        "t/N",
        In(View::Runs),
        A::TagRun,
        "tags / note of the run",
    ),
    b(K::Char('N'), "", In(View::Runs), A::NoteRun, ""),
    b(
        K::Char('A'),
        "A/D",
        In(View::Runs),
        A::Archive,
        "archive / delete (asks)",
    ),
    b(K::Char('D'), "", In(View::Runs), A::Delete, ""),
    b(
        K::Char('u'),
        "u",
        In(View::Runs),
        A::Rerun,
        "rerun with the saved file",
    ),
    b(
        K::Char('n'),
        "n/C",
        In(View::Experiments),
        A::StartRuns,
        "start runs / compare",
    ),
    b(K::Char('C'), "", In(View::Experiments), A::StartCompare, ""),
    b(
        K::Char('e'),
        "e",
        In(View::Experiments),
        A::Edit,
        "edit in $EDITOR",
    ),
    b(
        K::Char('s'),
        "s",
        In(View::Charts),
        A::CycleSmoothing,
        "smoothing: 0, .6, .9, .98",
    ),
    b(
        K::Char('l'),
        "l",
        In(View::Charts),
        A::ToggleLog,
        "log scale",
    ),
    b(
        K::Char('z'),
        "z",
        In(View::Charts),
        A::CycleZoom,
        "zoom: all, last 1k, 100",
    ),
    b(
        K::Char('m'),
        "m/M",
        In(View::Charts),
        A::CycleMetric,
        "next / previous metric",
    ),
    b(K::Char('M'), "", In(View::Charts), A::CycleMetricBack, ""),
    b(
        K::Char('a'),
        "a",
        In(View::Charts),
        A::AverageSeeds,
        "average seeds (band: ±1 sd)",
    ),
    b(
        K::Char('o'),
        "o",
        In(View::Charts),
        A::ClipOutliers,
        "y: 1st–99th percentile",
    ),
    b(
        K::Char('x'),
        "x",
        In(View::Charts),
        A::CycleXAxis,
        "x: step, epoch, minutes",
    ),
    b(
        K::Left,
        "←/→ Esc",
        In(View::Charts),
        A::CursorLeft,
        "cursor: values at an x",
    ),
    b(K::Right, "", In(View::Charts), A::CursorRight, ""),
    b(K::Esc, "", In(View::Charts), A::HideCursor, ""),
    b(
        K::Char('L'),
        "L",
        In(View::Charts),
        A::ToggleLegend,
        "legend shown / hidden",
    ),
    b(
        K::Left,
        "←/→",
        In(View::Masks),
        A::PrevSlot,
        "previous / next slot",
    ),
    b(K::Right, "", In(View::Masks), A::NextSlot, ""),
    b(
        K::Char(','),
        ",/.",
        In(View::Masks),
        A::PrevSample,
        "previous / next sample",
    ),
    b(K::Char('.'), "", In(View::Masks), A::NextSample, ""),
    b(
        K::Char('['),
        "[/]",
        In(View::Masks),
        A::PrevChannel,
        "previous / next channel",
    ),
    b(K::Char(']'), "", In(View::Masks), A::NextChannel, ""),
    b(
        K::Char('d'),
        "d",
        In(View::Masks),
        A::NextDropped,
        "next channel with drops",
    ),
    b(
        K::Char('<'),
        "</>",
        In(View::Masks),
        A::OlderSnapshot,
        "older / newer snapshot",
    ),
    b(K::Char('>'), "", In(View::Masks), A::NewerSnapshot, ""),
    b(
        K::Enter,
        "Enter",
        In(View::Events),
        A::OpenEvent,
        "the entry in full",
    ),
    b(
        K::Char('f'),
        "f",
        In(View::Events),
        A::FilterEvents,
        "only its run (again: all)",
    ),
    b(
        K::Char(' '),
        "Space",
        In(View::Compare),
        A::MarkStrategy,
        "mark its runs for charts",
    ),
    b(
        K::Left,
        "←/→",
        In(View::Compare),
        A::PrevComparison,
        "previous / next comparison",
    ),
    b(K::Right, "", In(View::Compare), A::NextComparison, ""),
    b(
        K::Left,
        "arrows",
        In(View::Sweep),
        A::SweepLeft,
        "move over the places",
    ),
    b(K::Right, "", In(View::Sweep), A::SweepRight, ""),
    b(
        K::Char(' '),
        "Space",
        In(View::Sweep),
        A::MarkCell,
        "mark its runs for charts",
    ),
    b(
        K::Char('['),
        "[/]",
        In(View::Sweep),
        A::PrevComparison,
        "previous / next comparison",
    ),
    b(K::Char(']'), "", In(View::Sweep), A::NextComparison, ""),
    b(
        K::Char('a'),
        "a",
        In(View::Sweep),
        A::NextArm,
        "next swept strategy",
    ),
    b(
        K::Char('x'),
        "x",
        In(View::Sweep),
        A::NextAxes,
        "next pair of keys",
    ),
    b(
        K::Char('h'),
        "h",
        In(View::Sweep),
        A::CycleHold,
        "other keys: averaged / held",
    ),
    b(
        K::Char('b'),
        "b",
        In(View::Sweep),
        A::ToggleBest,
        "best accuracy / final",
    ),
    b(
        K::Char('e'),
        "e",
        In(View::Sweep),
        A::CycleSpread,
        "± sd / ± 95 % CI / none",
    ),
    b(
        K::Char('S'),
        "S/r",
        In(View::Sweep),
        A::SortSweep,
        "table: sort by / reverse",
    ),
    b(K::Char('r'), "", In(View::Sweep), A::ReverseSweep, ""),
    b(
        K::Left,
        "←/→ Tab",
        Scope::Prompt,
        A::PromptPrev,
        "previous / next device",
    ),
    b(K::Right, "", Scope::Prompt, A::PromptNext, ""),
    b(K::Tab, "", Scope::Prompt, A::PromptNext, ""),
    b(
        K::Enter,
        "Enter/y",
        Scope::Prompt,
        A::PromptConfirm,
        "yes: go ahead",
    ),
    b(K::Char('y'), "", Scope::Prompt, A::PromptConfirm, ""),
    b(
        K::Esc,
        "Esc/n",
        Scope::Prompt,
        A::PromptCancel,
        "no: cancel",
    ),
    b(K::Char('n'), "", Scope::Prompt, A::PromptCancel, ""),
];

/// The action of `key` in `view`: a binding of the view wins over a global one.
/// An open prompt takes every key (only its own bindings act).
pub fn action_for(key: KeyEvent, view: View, prompt_open: bool) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return (key.code == K::Char('c')).then_some(A::Quit);
    }
    let matches = |b: &&Binding| b.code == key.code;
    if prompt_open {
        return KEYMAP
            .iter()
            .filter(matches)
            .find(|b| b.scope == Scope::Prompt)
            .map(|b| b.action);
    }
    KEYMAP
        .iter()
        .filter(matches)
        .find(|b| b.scope == In(view))
        .or_else(|| KEYMAP.iter().filter(matches).find(|b| b.scope == G))
        .map(|b| b.action)
}
