//! Statistics of a sampled keep-mask, as `probdrop-tui mask` reports them.

use serde::Serialize;

/// What a researcher reads off one mask.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaskStats {
    pub elements: usize,
    /// Fraction of elements whose mask value is 0.
    pub dropped_fraction: f64,
    /// 4-connected dropped regions, counted in each 2-D map of the last two dims.
    pub dropped_blocks: usize,
    /// Mean of the mask over kept elements (the rescale factor).
    pub mean_rescale: f64,
    /// Mean of the mask over all elements (≈ 1 when expectation is preserved).
    pub mean: f64,
}

/// Computes [`MaskStats`] of a mask already broadcast to the input's `shape`.
pub fn mask_stats(shape: &[usize], mask: &[f32]) -> MaskStats {
    let elements = mask.len();
    let dropped = mask.iter().filter(|&&m| m == 0.0).count();
    let kept_sum: f64 = mask.iter().filter(|&&m| m != 0.0).map(|&m| m as f64).sum();
    let kept = elements - dropped;
    MaskStats {
        elements,
        dropped_fraction: dropped as f64 / elements.max(1) as f64,
        dropped_blocks: count_regions(shape, mask),
        mean_rescale: if kept > 0 {
            kept_sum / kept as f64
        } else {
            0.0
        },
        mean: kept_sum / elements.max(1) as f64,
    }
}

/// Counts 4-connected regions of zeros per 2-D map (last two dims; a 1-D shape is
/// one row).
pub fn count_regions(shape: &[usize], mask: &[f32]) -> usize {
    let (h, w) = match shape.len() {
        0 => return 0,
        1 => (1, shape[0]),
        n => (shape[n - 2], shape[n - 1]),
    };
    let map = h * w;
    if map == 0 {
        return 0;
    }
    let mut seen = vec![false; map];
    let mut stack = Vec::new();
    let mut regions = 0;
    for plane in mask.chunks(map) {
        seen.iter_mut().for_each(|s| *s = false);
        for start in 0..map {
            if plane[start] != 0.0 || seen[start] {
                continue;
            }
            regions += 1;
            seen[start] = true;
            stack.push(start);
            while let Some(i) = stack.pop() {
                let (r, c) = (i / w, i % w);
                let mut visit = |j: usize| {
                    if plane[j] == 0.0 && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                };
                if r > 0 {
                    visit(i - w);
                }
                if r + 1 < h {
                    visit(i + w);
                }
                if c > 0 {
                    visit(i - 1);
                }
                if c + 1 < w {
                    visit(i + 1);
                }
            }
        }
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_four_connected_per_map() {
        // Two maps of 3x3; the first has two regions (diagonal does not connect).
        let mask = [
            0.0, 1.0, 1.0, //
            1.0, 0.0, 0.0, //
            1.0, 0.0, 1.0, //
            1.0, 1.0, 1.0, //
            1.0, 1.0, 1.0, //
            1.0, 1.0, 0.0, //
        ];
        assert_eq!(count_regions(&[2, 1, 3, 3], &mask), 3);
    }

    #[test]
    fn stats_of_a_simple_mask() {
        let s = mask_stats(&[4], &[0.0, 2.0, 2.0, 0.0]);
        assert_eq!(s.dropped_fraction, 0.5);
        assert_eq!(s.dropped_blocks, 2);
        assert_eq!(s.mean_rescale, 2.0);
        assert_eq!(s.mean, 1.0);
    }
}
