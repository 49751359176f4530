//! Curve preparation for the charts: smoothing, zoom, log scale, and per-column
//! downsampling that keeps each column's minimum and maximum (spikes stay visible).

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

/// Points with x in the last `n` steps (all when `None`).
pub fn zoom(points: &[(f64, f64)], last: Option<f64>) -> &[(f64, f64)] {
    let end = points.last().map(|p| p.0);
    since(points, last.zip(end).map(|(n, end)| end - n))
}

/// Points with x at or after `from` (all when `None`).
pub fn since(points: &[(f64, f64)], from: Option<f64>) -> &[(f64, f64)] {
    let Some(from) = from else { return points };
    &points[points.partition_point(|p| p.0 < from)..]
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

/// Bounds of several curves with a little head-room; a flat curve gets a band.
pub fn bounds<'a>(curves: impl Iterator<Item = &'a [(f64, f64)]>) -> Option<([f64; 2], [f64; 2])> {
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
    // A quantity that is never negative gets no negative head-room.
    let low = if y[0] >= 0.0 {
        (y[0] - pad).max(0.0)
    } else {
        y[0] - pad
    };
    Some((x, [low, y[1] + pad]))
}

/// The y range from the `q`-th to the (1 − q)-th quantile of every point,
/// with a little head-room: a few spikes do not flatten the rest.
pub fn quantile_range<'a>(
    curves: impl Iterator<Item = &'a [(f64, f64)]>,
    q: f64,
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
    Some([lo - pad, hi + pad])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantile_range_leaves_out_a_spike() {
        let mut points: Vec<(f64, f64)> = (0..1000)
            .map(|i| (i as f64, 1.0 + (i % 7) as f64 * 0.1))
            .collect();
        points[500].1 = 1e6;
        let [lo, hi] = quantile_range(std::iter::once(points.as_slice()), 0.01).unwrap();
        assert!(lo < 1.0 && lo > 0.9 && hi > 1.6 && hi < 1.7, "{lo} {hi}");
        assert!(quantile_range(std::iter::empty(), 0.01).is_none());
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
        assert_eq!(zoom(&pts, Some(3.0)).first(), Some(&(6.0, 6.0)));
        assert_eq!(zoom(&pts, None).len(), 10);
    }
}
