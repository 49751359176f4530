//! Per-view state: what each view's keys change, apart from the data every view
//! shares. Each part takes the actions that are its own and says whether it did.

use super::keys::Action;

pub const SMOOTHING: [f64; 4] = [0.0, 0.6, 0.9, 0.98];
pub const ZOOM: [Option<f64>; 3] = [None, Some(1000.0), Some(100.0)];

/// The Events cursor that follows the newest event as events arrive.
pub const FOLLOW_NEWEST: usize = usize::MAX;

/// The selected row of each list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selected {
    /// In Runs, and the run Charts and Masks show.
    pub run: usize,
    pub experiment: usize,
    pub plugin: usize,
    /// The selected event in Events (oldest first), or [`FOLLOW_NEWEST`].
    pub event: usize,
    pub comparison: usize,
    /// A row of the selected comparison's table.
    pub strategy: usize,
}

impl Default for Selected {
    fn default() -> Selected {
        Selected {
            run: 0,
            experiment: 0,
            plugin: 0,
            event: FOLLOW_NEWEST,
            comparison: 0,
            strategy: 0,
        }
    }
}

/// Moves a list cursor for Up, Down, Top and Bottom; false for other actions.
pub fn move_cursor(cursor: &mut usize, action: Action, len: usize) -> bool {
    let last = len.saturating_sub(1);
    *cursor = match action {
        Action::Up => cursor.saturating_sub(1),
        Action::Down => (*cursor + 1).min(last),
        Action::Top => 0,
        Action::Bottom => last,
        _ => return false,
    };
    true
}

/// Steps `i` forward or back through `n` places, wrapping around.
pub fn cycle(i: usize, n: usize, forward: bool) -> usize {
    let n = n.max(1);
    if forward {
        (i + 1) % n
    } else {
        (i + n - 1) % n
    }
}

/// What the charts' x axis counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum XAxis {
    #[default]
    Step,
    Epoch,
    /// Wall-clock minutes since the run's first logged point.
    Minutes,
}

impl XAxis {
    pub fn next(self) -> XAxis {
        match self {
            XAxis::Step => XAxis::Epoch,
            XAxis::Epoch => XAxis::Minutes,
            XAxis::Minutes => XAxis::Step,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Epoch => "epoch",
            XAxis::Minutes => "minutes",
        }
    }
}

/// How far one press moves the chart cursor, as a fraction of the x range.
pub const CURSOR_STEP: f64 = 1.0 / 40.0;

/// How Charts draws its curves (remembered between sessions: see `saved`).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ChartOptions {
    /// Index into [`SMOOTHING`].
    pub smoothing: usize,
    /// Index into [`ZOOM`].
    pub zoom: usize,
    pub log_scale: bool,
    /// Which logged metric, counted through the charts' list of them (taken
    /// modulo its length, which depends on the runs shown).
    pub metric: usize,
    /// Runs that differ in their seed only drawn as one mean curve with a
    /// band of ±1 standard deviation.
    pub average_seeds: bool,
    /// The y axis from the 1st to the 99th percentile of what is drawn.
    pub clip: bool,
    pub x_axis: XAxis,
    pub legend_hidden: bool,
    /// Where the cursor is, as a fraction of the x range (not kept between
    /// sessions).
    #[serde(skip)]
    pub cursor: Option<f64>,
}

impl ChartOptions {
    pub fn apply(&mut self, action: Action) -> bool {
        match action {
            Action::CycleSmoothing => self.smoothing = cycle(self.smoothing, SMOOTHING.len(), true),
            Action::ToggleLog => self.log_scale = !self.log_scale,
            Action::CycleZoom => self.zoom = cycle(self.zoom, ZOOM.len(), true),
            Action::CycleMetric => self.metric += 1,
            Action::AverageSeeds => self.average_seeds = !self.average_seeds,
            Action::ClipOutliers => self.clip = !self.clip,
            Action::CycleMetricBack => self.metric = self.metric.saturating_sub(1),
            Action::CycleXAxis => self.x_axis = self.x_axis.next(),
            Action::ToggleLegend => self.legend_hidden = !self.legend_hidden,
            Action::CursorLeft | Action::CursorRight => {
                let by = if action == Action::CursorLeft {
                    -CURSOR_STEP
                } else {
                    CURSOR_STEP
                };
                // It appears at the newest point, then moves.
                self.cursor = Some(self.cursor.map_or(1.0, |c| (c + by).clamp(0.0, 1.0)));
            }
            Action::HideCursor => self.cursor = None,
            _ => return false,
        }
        true
    }

    /// The EMA weight of the smoothing chosen.
    pub fn alpha(&self) -> f64 {
        SMOOTHING[self.smoothing]
    }

    /// Only the last this many steps, if zoomed.
    pub fn last_steps(&self) -> Option<f64> {
        ZOOM[self.zoom]
    }
}

/// Which snapshot Masks shows. Counters only grow or shrink; the view takes
/// them modulo what the run has, so they survive runs with fewer slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaskCursor {
    pub slot: usize,
    pub sample: usize,
    pub channel: usize,
    /// How many snapshots back from the newest (0: the newest, following).
    pub back: usize,
}

impl MaskCursor {
    pub fn apply(&mut self, action: Action) -> bool {
        let (field, up) = match action {
            Action::NextSlot => (&mut self.slot, true),
            Action::PrevSlot => (&mut self.slot, false),
            Action::NextSample => (&mut self.sample, true),
            Action::PrevSample => (&mut self.sample, false),
            Action::NextChannel => (&mut self.channel, true),
            Action::PrevChannel => (&mut self.channel, false),
            Action::OlderSnapshot => (&mut self.back, true),
            Action::NewerSnapshot => (&mut self.back, false),
            _ => return false,
        };
        *field = if up {
            *field + 1
        } else {
            field.saturating_sub(1)
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_stay_in_their_list() {
        let mut c = 0;
        assert!(move_cursor(&mut c, Action::Up, 3));
        assert_eq!(c, 0);
        move_cursor(&mut c, Action::Bottom, 3);
        assert_eq!(c, 2);
        move_cursor(&mut c, Action::Down, 3);
        assert_eq!(c, 2);
        move_cursor(&mut c, Action::Down, 0);
        assert_eq!(c, 0, "an empty list has its cursor at 0");
        assert!(!move_cursor(&mut c, Action::Quit, 3));
        assert_eq!(
            (cycle(2, 3, true), cycle(0, 3, false), cycle(0, 0, true)),
            (0, 2, 0)
        );
    }

    #[test]
    fn chart_options_cycle_back_to_where_they_began() {
        let mut o = ChartOptions::default();
        for _ in 0..SMOOTHING.len() {
            assert!(o.apply(Action::CycleSmoothing));
        }
        for _ in 0..ZOOM.len() {
            o.apply(Action::CycleZoom);
        }
        o.apply(Action::CycleMetric);
        o.apply(Action::CycleMetricBack);
        o.apply(Action::CycleMetricBack);
        for _ in 0..3 {
            o.apply(Action::CycleXAxis);
        }
        o.apply(Action::ToggleLegend);
        o.apply(Action::ToggleLegend);
        o.apply(Action::CursorLeft);
        assert_eq!(o.cursor, Some(1.0), "the cursor starts at the newest point");
        o.apply(Action::CursorLeft);
        assert_eq!(o.cursor, Some(1.0 - CURSOR_STEP));
        for _ in 0..100 {
            o.apply(Action::CursorLeft);
        }
        assert_eq!(o.cursor, Some(0.0), "and stays on the chart");
        o.apply(Action::HideCursor);
        assert_eq!(o, ChartOptions::default());
        assert!(!o.apply(Action::NextSlot));
    }

    #[test]
    fn mask_cursor_never_goes_below_zero() {
        let mut m = MaskCursor::default();
        m.apply(Action::PrevChannel);
        m.apply(Action::NextSlot);
        m.apply(Action::NextSlot);
        m.apply(Action::PrevSlot);
        m.apply(Action::NewerSnapshot);
        m.apply(Action::OlderSnapshot);
        assert_eq!((m.slot, m.sample, m.channel, m.back), (1, 0, 0, 1));
        assert!(!m.apply(Action::Up));
    }
}
