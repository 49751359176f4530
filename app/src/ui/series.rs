//! A metric's points as the dashboard keeps them ([`Series`]: bounded however
//! long the run), and curve preparation for the charts: smoothing, zoom, log
//! scale, and per-column downsampling that keeps each column's minimum and
//! maximum (spikes stay visible).

use std::sync::atomic::{AtomicU64, Ordering};

/// Points kept as logged at the end of a series (what zooming in shows).
pub const RECENT_POINTS: usize = 2048;
/// Buckets the older points are folded into, each keeping its minimum and
/// maximum: at most `2 × BUCKETS` points, more than any chart has columns.
pub const BUCKETS: usize = 1024;

/// One bucket of older points: steps `[start, start + width)`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bucket {
    start: u64,
    /// The last step folded in (a resumed run drops buckets after its step).
    last: u64,
    lo: f64,
    hi: f64,
    /// Whether the minimum came before the maximum (the curve's shape).
    lo_first: bool,
    sum: f64,
    count: u64,
}

impl Bucket {
    fn new(start: u64, step: u64, y: f64) -> Bucket {
        Bucket {
            start,
            last: step,
            lo: y,
            hi: y,
            lo_first: true,
            sum: y,
            count: 1,
        }
    }

    /// Folds in `later`, whose points all come after this one's.
    fn absorb(&mut self, later: &Bucket) {
        let lo_later = later.lo < self.lo;
        let hi_later = later.hi > self.hi;
        self.lo_first = match (lo_later, hi_later) {
            (false, false) => self.lo_first,
            (true, true) => later.lo_first,
            (true, false) => false,
            (false, true) => true,
        };
        if lo_later {
            self.lo = later.lo;
        }
        if hi_later {
            self.hi = later.hi;
        }
        self.last = later.last;
        self.sum += later.sum;
        self.count += later.count;
    }

    /// Its points on the chart, at fixed places in the bucket (the start and
    /// the middle, or its last step if sooner), so that runs logging the same
    /// steps share their x and seeds still average.
    fn points(&self, width: u64, out: &mut Vec<(f64, f64)>) {
        let x = self.start as f64;
        if self.count == 1 || self.lo == self.hi {
            out.push((x, self.lo));
            return;
        }
        let (a, b) = if self.lo_first {
            (self.lo, self.hi)
        } else {
            (self.hi, self.lo)
        };
        out.push((x, a));
        out.push(((self.start + width / 2).min(self.last) as f64, b));
    }
}

/// A metric over steps in bounded memory: the last [`RECENT_POINTS`] as
/// logged, before them at most [`BUCKETS`] buckets of a power-of-two width in
/// steps keeping each bucket's minimum, maximum, sum and count. The width
/// doubles (pairs of buckets merge) as the run grows, so minima and maxima
/// stay exact per bucket, and the last value, the maximum and the mean exact
/// over the whole run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// The buckets' points, then the recent points as logged; x increasing.
    points: Vec<(f64, f64)>,
    /// How many of `points` come from buckets.
    coarse: usize,
    buckets: Vec<Bucket>,
    width: u64,
    version: u64,
}

/// Versions are unique in the process: a series emptied and read again never
/// repeats one (curve caches key on it).
static VERSIONS: AtomicU64 = AtomicU64::new(1);

impl Series {
    /// What the charts draw, in x order.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// Changes whenever the points do.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn last(&self) -> Option<(f64, f64)> {
        self.points.last().copied()
    }

    /// The largest value logged.
    pub fn max(&self) -> Option<f64> {
        let old = self.buckets.iter().map(|b| b.hi);
        let recent = self.points[self.coarse..].iter().map(|p| p.1);
        old.chain(recent).reduce(f64::max)
    }

    /// The sum and the number of the values logged.
    pub fn sum_count(&self) -> (f64, u64) {
        let recent = &self.points[self.coarse..];
        let (sum, count) = self
            .buckets
            .iter()
            .fold((0.0, 0), |(s, n), b| (s + b.sum, n + b.count));
        (
            sum + recent.iter().map(|p| p.1).sum::<f64>(),
            count + recent.len() as u64,
        )
    }

    /// Adds the value logged at `step`. A step at or before the last one (a
    /// resumed run logs again from its checkpoint) first drops what it
    /// replaces, so steps keep increasing.
    pub fn push(&mut self, step: u64, value: f64) {
        self.version = VERSIONS.fetch_add(1, Ordering::Relaxed);
        let x = step as f64;
        while self.points.len() > self.coarse && self.points.last().is_some_and(|p| p.0 >= x) {
            self.points.pop();
        }
        if self.points.len() == self.coarse {
            self.drop_buckets_from(step);
        }
        self.points.push((x, value));
        if self.points.len() - self.coarse > RECENT_POINTS {
            self.compact();
        }
    }

    fn drop_buckets_from(&mut self, step: u64) {
        let before = self.buckets.len();
        while self.buckets.last().is_some_and(|b| b.last >= step) {
            self.buckets.pop();
        }
        if self.buckets.len() != before {
            self.rebuild(self.coarse);
        }
    }

    /// Folds the older half of the recent points into buckets, widening them
    /// until at most [`BUCKETS`] remain.
    fn compact(&mut self) {
        let moved = (self.points.len() - self.coarse) / 2;
        self.width = self.width.max(1);
        for &(x, y) in &self.points[self.coarse..self.coarse + moved] {
            let step = x as u64;
            let start = step - step % self.width;
            match self.buckets.last_mut() {
                Some(b) if b.start == start => b.absorb(&Bucket::new(start, step, y)),
                _ => self.buckets.push(Bucket::new(start, step, y)),
            }
        }
        while self.buckets.len() > BUCKETS {
            self.widen();
        }
        self.rebuild(self.coarse + moved);
    }

    /// Doubles the width: each pair of buckets becomes one.
    fn widen(&mut self) {
        self.width *= 2;
        let width = self.width;
        let mut merged: Vec<Bucket> = Vec::with_capacity(self.buckets.len() / 2 + 1);
        for b in &self.buckets {
            let start = b.start - b.start % width;
            match merged.last_mut() {
                Some(m) if m.start == start => m.absorb(b),
                _ => merged.push(Bucket { start, ..*b }),
            }
        }
        self.buckets = merged;
    }

    /// The buckets' points, then the points from `recent` on as they are.
    fn rebuild(&mut self, recent: usize) {
        let mut points = Vec::with_capacity(2 * self.buckets.len() + RECENT_POINTS + 1);
        for b in &self.buckets {
            b.points(self.width, &mut points);
        }
        let coarse = points.len();
        points.extend_from_slice(&self.points[recent..]);
        self.points = points;
        self.coarse = coarse;
    }
}

/// Exponential moving average with weight `alpha` on the history (0: raw),
/// bias-corrected so the first points are not pulled towards 0.
pub fn ema(points: &[(f64, f64)], alpha: f64) -> Vec<(f64, f64)> {
    if alpha <= 0.0 {
        return points.to_vec();
    }
    let mut avg = 0.0;
    let mut weight = 0.0;
    points
        .iter()
        .map(|&(x, y)| {
            avg = alpha * avg + (1.0 - alpha) * y;
            weight = alpha * weight + (1.0 - alpha);
            (x, avg / weight)
        })
        .collect()
}

/// At most `2 × columns` points: for each of `columns` equal bins of x in
/// `[x0, x1]`, the bin's minimum and maximum in x order.
pub fn downsample(points: &[(f64, f64)], x0: f64, x1: f64, columns: usize) -> Vec<(f64, f64)> {
    if columns == 0 || points.len() <= 2 * columns || x1 <= x0 {
        return points.to_vec();
    }
    let width = (x1 - x0) / columns as f64;
    let mut out = Vec::with_capacity(2 * columns);
    let mut bin = usize::MAX;
    let mut lo = (0.0, f64::INFINITY);
    let mut hi = (0.0, f64::NEG_INFINITY);
    let flush = |out: &mut Vec<(f64, f64)>, lo: (f64, f64), hi: (f64, f64)| {
        if lo.1.is_finite() {
            if lo.0 <= hi.0 {
                out.push(lo);
                if hi != lo {
                    out.push(hi);
                }
            } else {
                out.push(hi);
                out.push(lo);
            }
        }
    };
    for &(x, y) in points {
        let b = (((x - x0) / width) as usize).min(columns - 1);
        if b != bin {
            flush(&mut out, lo, hi);
            bin = b;
            lo = (x, f64::INFINITY);
            hi = (x, f64::NEG_INFINITY);
        }
        if y < lo.1 {
            lo = (x, y);
        }
        if y > hi.1 {
            hi = (x, y);
        }
    }
    flush(&mut out, lo, hi);
    out
}

/// Points with x in `[from, to]` (all when `None`); points in x order.
pub fn within(points: &[(f64, f64)], window: Option<(f64, f64)>) -> &[(f64, f64)] {
    let Some((from, to)) = window else {
        return points;
    };
    let start = points.partition_point(|p| p.0 < from);
    let end = points.partition_point(|p| p.0 <= to).max(start);
    &points[start..end]
}

/// The mean and standard deviation (over curves, n − 1 in the denominator)
/// at each x that every curve has: (x, mean, sd). Curves are in x order.
pub fn mean_sd(curves: &[&[(f64, f64)]]) -> Vec<(f64, f64, f64)> {
    let Some((first, rest)) = curves.split_first() else {
        return Vec::new();
    };
    let n = curves.len() as f64;
    let mut at = vec![0usize; rest.len()];
    let mut out = Vec::with_capacity(first.len());
    'points: for &(x, y) in *first {
        let mut values = vec![y];
        for (c, i) in rest.iter().zip(at.iter_mut()) {
            while *i < c.len() && c[*i].0 < x {
                *i += 1;
            }
            match c.get(*i) {
                Some(&(cx, cy)) if cx == x => values.push(cy),
                _ => continue 'points,
            }
        }
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        out.push((x, mean, var.sqrt()));
    }
    out
}

/// log10 of positive values; others dropped.
pub fn log10(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|p| p.1 > 0.0)
        .map(|&(x, y)| (x, y.log10()))
        .collect()
}

/// Bounds of several curves with a little head-room (none below zero for a
/// quantity that is `never_negative`); a flat curve gets a band.
pub fn bounds<'a>(
    curves: impl Iterator<Item = &'a [(f64, f64)]>,
    never_negative: bool,
) -> Option<([f64; 2], [f64; 2])> {
    let mut x = [f64::INFINITY, f64::NEG_INFINITY];
    let mut y = [f64::INFINITY, f64::NEG_INFINITY];
    for c in curves {
        for &(px, py) in c {
            if py.is_finite() {
                x = [x[0].min(px), x[1].max(px)];
                y = [y[0].min(py), y[1].max(py)];
            }
        }
    }
    if !x[0].is_finite() {
        return None;
    }
    if x[1] <= x[0] {
        x[1] = x[0] + 1.0;
    }
    let pad = ((y[1] - y[0]) * 0.05).max(1e-9);
    let low = axis_low(y[0], pad, never_negative || y[0] >= 0.0);
    Some((x, [low, y[1] + pad]))
}

/// The y range from the `q`-th to the (1 − q)-th quantile of every point,
/// with a little head-room: a few spikes do not flatten the rest.
pub fn quantile_range<'a>(
    curves: impl Iterator<Item = &'a [(f64, f64)]>,
    q: f64,
    never_negative: bool,
) -> Option<[f64; 2]> {
    let mut ys: Vec<f64> = curves
        .flat_map(|c| c.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .collect();
    if ys.is_empty() {
        return None;
    }
    ys.sort_by(f64::total_cmp);
    let at = |f: f64| ys[((ys.len() - 1) as f64 * f).round() as usize];
    let (lo, hi) = (at(q), at(1.0 - q));
    let pad = ((hi - lo) * 0.05).max(1e-9);
    Some([axis_low(lo, pad, never_negative), hi + pad])
}

pub use crate::export::figures::axis_low;

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 32, case 13: however many points, a series holds at most
    /// `2 × BUCKETS + RECENT_POINTS`; each bucket's minimum and maximum, the
    /// recent points, the last value, the maximum and the mean are exact.
    #[test]
    fn a_series_stays_bounded_and_keeps_each_buckets_extremes() {
        let value =
            |step: u64| ((step * 7919) % 1000) as f64 + if step == 123_457 { 5e3 } else { 0.0 };
        let n = 1_000_000u64;
        let mut s = Series::default();
        for step in 1..=n {
            s.push(step, value(step));
        }
        assert!(
            s.points().len() <= 2 * BUCKETS + RECENT_POINTS,
            "{}",
            s.points().len()
        );
        assert!(s.buckets.len() <= BUCKETS);
        assert!(
            s.points().windows(2).all(|w| w[0].0 < w[1].0),
            "x increasing"
        );
        assert_eq!(s.last(), Some((n as f64, value(n))));
        assert_eq!(s.max(), Some(value(123_457)));
        let (sum, count) = s.sum_count();
        assert_eq!(count, n);
        let exact: f64 = (1..=n).map(value).sum();
        assert!((sum - exact).abs() < 1e-6 * exact, "{sum} {exact}");
        // Every bucket holds the minimum and maximum of its steps.
        for b in &s.buckets {
            let steps = b.start.max(1)..(b.start + s.width).min(b.last + 1);
            let lo = steps.clone().map(value).fold(f64::INFINITY, f64::min);
            let hi = steps.map(value).fold(f64::NEG_INFINITY, f64::max);
            assert_eq!((b.lo, b.hi), (lo, hi), "bucket at {}", b.start);
        }
        // The recent points are as logged.
        let recent = &s.points()[s.coarse..];
        assert!(recent.len() >= RECENT_POINTS / 2);
        assert!(recent.iter().all(|&(x, y)| y == value(x as u64)));
        // The drawn curve still shows the spike.
        let drawn = downsample(s.points(), 1.0, n as f64, 80);
        assert!(drawn.iter().any(|p| p.1 == value(123_457)));
    }

    #[test]
    fn a_resumed_run_replaces_its_steps_and_seeds_still_average() {
        let mut a = Series::default();
        let mut b = Series::default();
        for step in 1..=100_000 {
            a.push(step, step as f64);
            b.push(step, 2.0 * step as f64);
        }
        // Both have the same places on x: their mean is over every point.
        let m = mean_sd(&[a.points(), b.points()]);
        assert_eq!(m.len(), a.points().len());
        let before = a.version();
        a.push(99_000, -1.0);
        assert_ne!(a.version(), before);
        assert_eq!(a.last(), Some((99_000.0, -1.0)));
        assert!(a.points().windows(2).all(|w| w[0].0 < w[1].0));
        // Back into the buckets: those after the step go.
        a.push(10, 5.0);
        assert_eq!(a.last(), Some((10.0, 5.0)));
        assert!(a.points().iter().all(|p| p.0 <= 10.0));
    }

    #[test]
    fn the_quantile_range_leaves_out_a_spike() {
        let mut points: Vec<(f64, f64)> = (0..1000)
            .map(|i| (i as f64, 1.0 + (i % 7) as f64 * 0.1))
            .collect();
        points[500].1 = 1e6;
        let [lo, hi] = quantile_range(std::iter::once(points.as_slice()), 0.01, false).unwrap();
        assert!(lo < 1.0 && lo > 0.9 && hi > 1.6 && hi < 1.7, "{lo} {hi}");
        assert!(quantile_range(std::iter::empty(), 0.01, false).is_none());
    }

    /// Issue 34, item 12: a drop rate that starts at 0 keeps its axis at 0
    /// with the percentile range (`o`) and under a ±sd band reaching below.
    #[test]
    fn a_quantity_never_negative_gets_no_negative_axis() {
        let rate: Vec<(f64, f64)> = (0..200).map(|i| (i as f64, i as f64 / 1000.0)).collect();
        let [lo, _] = quantile_range(std::iter::once(rate.as_slice()), 0.01, true).unwrap();
        assert_eq!(lo, 0.0);
        let band = [(0.0, -0.05), (1.0, 0.01)];
        let (_, [lo, _]) = bounds([rate.as_slice(), &band[..]].into_iter(), true).unwrap();
        assert_eq!(lo, 0.0);
        let (_, [lo, _]) = bounds([rate.as_slice(), &band[..]].into_iter(), false).unwrap();
        assert!(
            lo < -0.05,
            "a quantity that goes negative keeps its head-room"
        );
    }

    #[test]
    fn downsampling_keeps_a_single_spike() {
        let mut points: Vec<(f64, f64)> = (0..100_000).map(|i| (i as f64, 1.0)).collect();
        points[54_321].1 = 50.0;
        let out = downsample(&points, 0.0, 99_999.0, 80);
        assert!(out.len() <= 160);
        assert!(out.iter().any(|p| p.1 == 50.0));
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0), "x order kept");
    }

    #[test]
    fn seeds_average_over_the_steps_every_run_has() {
        let a = [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)];
        let b = [(2.0, 4.0), (3.0, 5.0), (4.0, 9.0)];
        let c = [(1.0, 0.0), (2.0, 0.0), (3.0, 1.0)];
        let m = mean_sd(&[&a, &b, &c]);
        assert_eq!(m.len(), 2, "steps 2 and 3 only");
        assert_eq!((m[0].0, m[0].1), (2.0, 2.0));
        assert!((m[0].2 - 2.0).abs() < 1e-12, "sd of 2, 4, 0 is 2");
        assert_eq!((m[1].0, m[1].1), (3.0, 3.0));
        assert_eq!(
            mean_sd(&[&a]),
            vec![(1.0, 1.0, 0.0), (2.0, 2.0, 0.0), (3.0, 3.0, 0.0)]
        );
        assert!(mean_sd(&[]).is_empty());
    }

    #[test]
    fn ema_is_bias_corrected_and_zoom_keeps_the_tail() {
        let pts = [(1.0, 10.0), (2.0, 10.0), (3.0, 10.0)];
        assert!(ema(&pts, 0.9).iter().all(|p| (p.1 - 10.0).abs() < 1e-9));
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, i as f64)).collect();
        assert_eq!(within(&pts, Some((6.0, 8.0))), &pts[6..=8]);
        assert_eq!(within(&pts, Some((20.0, 30.0))), &[]);
        assert_eq!(within(&pts, None).len(), 10);
    }
}
