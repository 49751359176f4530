//! Per-view state: what each view's keys change, apart from the data every view
//! shares. Each part takes the actions that are its own and says whether it did.

use super::keys::Action;
use crate::run::comparison::grid::{Arm, Grid, Hold, Measure};

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

/// What the Sweep view's places show beside each mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spread {
    #[default]
    Nothing,
    Sd,
    /// Half the 95 % CI of the mean.
    Ci,
}

impl Spread {
    pub fn next(self) -> Spread {
        match self {
            Spread::Nothing => Spread::Sd,
            Spread::Sd => Spread::Ci,
            Spread::Ci => Spread::Nothing,
        }
    }
}

/// The Sweep view's choices. Its cursor and counters are taken against the
/// selected comparison's arms as they are when a key is pressed (`arms`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepCursor {
    /// Which sweeping arm.
    pub arm: usize,
    /// The place the cursor is on: column, row.
    pub x: usize,
    pub y: usize,
    /// Which pair of the arm's keys is on the axes (see [`key_pairs`]).
    pub axes: usize,
    /// How each key on no axis is taken, by key index.
    pub held: Vec<Hold>,
    pub measure: Measure,
    pub spread: Spread,
    /// The hparams table's sort column (taken modulo the columns) and order.
    pub sort: usize,
    pub descending: bool,
}

/// The axes a sweep over `n` keys can show: the one key, or each pair.
pub fn key_pairs(n: usize) -> Vec<(usize, Option<usize>)> {
    if n <= 1 {
        return vec![(0, None)];
    }
    (0..n)
        .flat_map(|x| (x + 1..n).map(move |y| (x, Some(y))))
        .collect()
}

impl SweepCursor {
    /// The keys on the axes for an arm of `n` keys.
    pub fn axes_of(&self, n: usize) -> (usize, Option<usize>) {
        let pairs = key_pairs(n);
        pairs[self.axes % pairs.len()]
    }

    /// Takes the Sweep view's keys, over `arms` (the selected comparison's).
    pub fn apply(&mut self, action: Action, arms: &[Arm]) -> bool {
        let arm = arms.get(self.arm % arms.len().max(1));
        let n = arm.map_or(0, |a| a.keys.len());
        let (x_key, y_key) = self.axes_of(n);
        let len = |k: Option<usize>| k.and_then(|k| Some(arm?.values.get(k)?.len())).unwrap_or(1);
        let (w, h) = (len(Some(x_key)), len(y_key));
        match action {
            Action::SweepLeft => self.x = self.x.saturating_sub(1),
            Action::SweepRight => self.x = (self.x + 1).min(w - 1),
            Action::Up => self.y = self.y.saturating_sub(1),
            Action::Down => self.y = (self.y + 1).min(h - 1),
            Action::Top => self.y = 0,
            Action::Bottom => self.y = h - 1,
            Action::NextArm => {
                *self = SweepCursor {
                    arm: cycle(self.arm, arms.len(), true),
                    ..self.keeping_choices()
                }
            }
            Action::NextAxes => {
                *self = SweepCursor {
                    axes: cycle(self.axes, key_pairs(n).len(), true),
                    ..self.keeping_choices()
                }
            }
            Action::CycleHold => return self.cycle_hold(arm, (x_key, y_key)),
            Action::ToggleBest => {
                self.measure = match self.measure {
                    Measure::Final => Measure::Best,
                    Measure::Best => Measure::Final,
                }
            }
            Action::CycleSpread => self.spread = self.spread.next(),
            Action::SortSweep => self.sort += 1,
            Action::ReverseSweep => self.descending = !self.descending,
            _ => return false,
        }
        true
    }

    /// The place the cursor is on in `g` (kept inside it).
    pub fn at(&self, g: &Grid) -> (usize, usize) {
        (
            self.x.min(g.xs.len().saturating_sub(1)),
            self.y.min(g.ys.len().saturating_sub(1)),
        )
    }

    /// A fresh cursor keeping what is shown beside the means and the sort.
    fn keeping_choices(&self) -> SweepCursor {
        SweepCursor {
            arm: self.arm,
            axes: self.axes,
            measure: self.measure,
            spread: self.spread,
            sort: self.sort,
            descending: self.descending,
            ..SweepCursor::default()
        }
    }

    /// The keys on no axis, as an odometer: the first goes averaged, at its
    /// first value, …, at its last, then averaged again and carries to the
    /// next. False if every key is on an axis.
    fn cycle_hold(&mut self, arm: Option<&Arm>, (x, y): (usize, Option<usize>)) -> bool {
        let Some(arm) = arm else { return false };
        let off: Vec<usize> = (0..arm.keys.len())
            .filter(|k| *k != x && Some(*k) != y)
            .collect();
        if off.is_empty() {
            return false;
        }
        self.held.resize(arm.keys.len(), Hold::Averaged);
        for k in off {
            let next = match self.held[k] {
                Hold::Averaged => Hold::At(0),
                Hold::At(i) if i + 1 < arm.values[k].len() => Hold::At(i + 1),
                Hold::At(_) => Hold::Averaged,
            };
            self.held[k] = next;
            if next != Hold::Averaged {
                break;
            }
        }
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

    /// An arm over `values.len()` keys k0, k1, … with these values.
    fn arm(values: &[&[&str]]) -> Arm {
        Arm {
            name: "dropblock".into(),
            keys: (0..values.len()).map(|k| format!("k{k}")).collect(),
            values: values
                .iter()
                .map(|v| v.iter().map(|s| s.to_string()).collect())
                .collect(),
            cells: Vec::new(),
        }
    }

    #[test]
    fn the_sweep_cursor_stays_on_the_grid_and_a_new_pair_starts_it_over() {
        let arms = [arm(&[&["3", "5", "7"], &["0.1", "0.2"]]), arm(&[&["a"]])];
        let mut c = SweepCursor::default();
        for _ in 0..5 {
            c.apply(Action::SweepRight, &arms);
            c.apply(Action::Down, &arms);
        }
        assert_eq!((c.x, c.y), (2, 1), "the last column and row");
        c.apply(Action::SweepLeft, &arms);
        c.apply(Action::Top, &arms);
        assert_eq!((c.x, c.y), (1, 0));
        c.apply(Action::CycleSpread, &arms);
        c.apply(Action::NextArm, &arms);
        assert_eq!((c.arm, c.x, c.y, c.spread), (1, 0, 0, Spread::Sd));
        assert!(
            !c.apply(Action::CycleHold, &arms),
            "one key: nothing to hold"
        );
        assert!(!c.apply(Action::Quit, &arms));
    }

    #[test]
    fn keys_off_the_axes_go_through_every_holding_like_an_odometer() {
        assert_eq!(key_pairs(1), [(0, None)]);
        assert_eq!(key_pairs(3), [(0, Some(1)), (0, Some(2)), (1, Some(2))]);
        let arms = [arm(&[&["3"], &["1"], &["0.1", "0.2"], &["x", "y"]])];
        let mut c = SweepCursor::default();
        let mut seen = vec![c.held.clone()];
        for _ in 0..9 {
            assert!(c.apply(Action::CycleHold, &arms));
            seen.push(c.held.clone());
        }
        // Keys 2 and 3 each averaged or at one of two values: 3 × 3 holdings,
        // then the first again.
        use Hold::{At, Averaged as Avg};
        assert_eq!(seen[1], [Avg, Avg, At(0), Avg]);
        assert_eq!(seen[3], [Avg, Avg, Avg, At(0)]);
        assert_eq!(seen[8], [Avg, Avg, At(1), At(1)]);
        assert_eq!(seen[9], [Avg; 4]);
        let distinct: std::collections::BTreeSet<String> =
            seen[1..].iter().map(|h| format!("{h:?}")).collect();
        assert_eq!(distinct.len(), 9);
        c.apply(Action::NextAxes, &arms);
        assert_eq!(c.axes_of(4), (0, Some(2)));
    }
}
