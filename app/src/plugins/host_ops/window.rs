//! Stride-1 average pools on the flex device as running window sums.
//!
//! flex 0.22.1 pools every output over its whole window (about 10 ms for a
//! 5×5 pool of [32, 64, 16, 16] on the 2-core VM, half a DropBlock mask), while
//! a stride-1 window sum is two running sums, one per axis (under 1 ms; see
//! BENCHMARKS.md). The strategies' window sums (ProbDropBlock's matched seed
//! rate, block-mean salience, the author code's expansion) are all stride 1.
//! LibTorch's own pools are fast, so only flex takes this path.

use burn::tensor::{Device, Tensor, TensorData};
use plugin_api::Pool;
use rayon::prelude::*;

use super::values::Values;

/// `t` pooled with `kind` (an average), stride 1, window `kernel` and
/// symmetric `padding`, or `None` when this path does not apply (not flex,
/// not f32, or a padding that leaves windows without a real cell).
pub(super) fn stride1_average(
    t: &Tensor<4>,
    kind: Pool,
    kernel: [usize; 2],
    padding: [usize; 2],
) -> Option<Tensor<4>> {
    let applies = kind != Pool::Max
        && padding[0] < kernel[0]
        && padding[1] < kernel[1]
        && t.device() == Device::flex();
    if !applies {
        return None;
    }
    let [n, c, h, w] = t.dims();
    let values = Values::of(t.clone()).ok()?;
    let values = values.as_slice();
    let rows = Axis {
        len: h,
        k: kernel[0],
        pad: padding[0],
        crop: false,
    };
    let cols = Axis {
        len: w,
        k: kernel[1],
        pad: padding[1],
        crop: false,
    };
    let (oh, ow) = (rows.out_len(), cols.out_len());
    let summed = window_sum(values, n * c, rows, w);
    let mut out = window_sum(&summed, n * c * oh, cols, 1);
    scale(&mut out, kind, rows, cols, ow);
    let data = TensorData::new(out, [n, c, oh, ow]);
    Some(Tensor::from_data(data, &t.device()))
}

/// One pooled axis: its length, window and padding on each side.
#[derive(Clone, Copy)]
pub(super) struct Axis {
    pub(super) len: usize,
    k: usize,
    pad: usize,
    /// Only the first `len` outputs (the expansion's crop of an even window).
    crop: bool,
}

impl Axis {
    /// The expansion's window of `b` along an axis of `len`: `b / 2` before,
    /// cropped to `len` outputs (the crop of an even `b`).
    pub(super) fn block(len: usize, b: usize) -> Axis {
        Axis {
            len,
            k: b,
            pad: b / 2,
            crop: true,
        }
    }

    /// Where output `j`'s window cells lie relative to `j` (`j + shift`);
    /// for an axis whose outputs are as many as its cells (`block`).
    pub(super) fn shifts(self) -> impl Iterator<Item = isize> {
        debug_assert!(self.crop);
        (0..self.k as isize).map(move |o| o - self.pad as isize)
    }

    fn out_len(self) -> usize {
        if self.crop {
            return self.len;
        }
        self.len + 2 * self.pad + 1 - self.k
    }

    /// The input range of output `j`'s window, clipped to the real cells.
    fn window(self, j: usize) -> std::ops::Range<usize> {
        let start = j as isize - self.pad as isize;
        let from = start.max(0) as usize;
        let to = ((start + self.k as isize) as usize).min(self.len);
        from..to
    }
}

/// Sums of `src`, laid out as `[outer, axis.len, inner]`, over each output's
/// window along the middle axis: running sums (each cell added and removed
/// once), kept in f64 so that adding and removing cells leaves no
/// drift.
fn window_sum(src: &[f32], outer: usize, axis: Axis, inner: usize) -> Vec<f32> {
    let out_len = axis.out_len();
    let mut out = vec![0f32; outer * out_len * inner];
    let lines = src.par_chunks_exact(axis.len * inner);
    let dsts = out.par_chunks_exact_mut(out_len * inner);
    if inner == 1 {
        lines
            .zip(dsts)
            .for_each(|(line, dst)| line_sum(line, axis, dst));
        return out;
    }
    lines.zip(dsts).for_each_init(
        || vec![0f64; inner],
        |acc, (line, dst)| {
            acc.fill(0.0);
            let mut held = 0..0;
            for (j, dst) in dst.chunks_exact_mut(inner).enumerate() {
                let want = axis.window(j);
                while held.end < want.end {
                    add_cells(acc, &line[held.end * inner..][..inner], 1.0);
                    held.end += 1;
                }
                while held.start < want.start {
                    add_cells(acc, &line[held.start * inner..][..inner], -1.0);
                    held.start += 1;
                }
                for (d, a) in dst.iter_mut().zip(acc.iter()) {
                    *d = *a as f32;
                }
            }
        },
    );
    out
}

/// [`window_sum`] of one contiguous line (the last axis).
fn line_sum(line: &[f32], axis: Axis, dst: &mut [f32]) {
    let (mut acc, mut from, mut to) = (0f64, 0, 0);
    for (j, d) in dst.iter_mut().enumerate() {
        let want = axis.window(j);
        for &v in &line[to..want.end] {
            acc += f64::from(v);
        }
        for &v in &line[from..want.start] {
            acc -= f64::from(v);
        }
        (from, to) = (want.start, want.end);
        *d = acc as f32;
    }
}

fn add_cells(acc: &mut [f64], cells: &[f32], sign: f64) {
    for (a, &v) in acc.iter_mut().zip(cells) {
        *a += sign * f64::from(v);
    }
}

/// Window sums to averages: over the whole window (`Avg`), or over its real
/// cells only (`AvgExcludePad`).
fn scale(out: &mut [f32], kind: Pool, rows: Axis, cols: Axis, ow: usize) {
    if kind == Pool::Avg {
        let cells = (rows.k * cols.k) as f32;
        out.iter_mut().for_each(|v| *v /= cells);
        return;
    }
    let col_counts: Vec<f32> = (0..ow).map(|j| cols.window(j).len() as f32).collect();
    let oh = rows.out_len();
    for (r, row) in out.chunks_mut(ow).enumerate() {
        let row_count = rows.window(r % oh).len() as f32;
        for (v, c) in row.iter_mut().zip(&col_counts) {
            *v /= row_count * c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use burn::tensor::module::avg_pool2d;
    use burn::tensor::ops::AvgPoolOptions;

    /// Every stride-1 window (odd, even, one-sided, padding 0 to k − 1) gives
    /// flex's own average pool, with and without the padding counted.
    #[test]
    fn running_sums_equal_flexs_average_pool() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 9, 7], Distribution::Uniform(-3.0, 3.0), &device);
        let windows = [
            ([5, 5], [2, 2]),
            ([4, 4], [2, 2]),
            ([3, 1], [1, 0]),
            ([1, 7], [0, 3]),
            ([2, 3], [0, 2]),
            ([7, 7], [6, 6]),
        ];
        for (kernel, padding) in windows {
            for kind in [Pool::Avg, Pool::AvgExcludePad] {
                let fast = stride1_average(&x, kind, kernel, padding).expect("flex, f32");
                let options = AvgPoolOptions::new(kernel)
                    .with_stride([1, 1])
                    .with_padding(padding)
                    .with_count_include_pad(kind == Pool::Avg);
                let reference = avg_pool2d(x.clone(), options);
                assert_eq!(fast.dims(), reference.dims(), "{kernel:?} {padding:?}");
                let gap = (fast - reference).abs().max().into_scalar::<f32>();
                assert!(gap < 1e-5, "{kind:?} {kernel:?} {padding:?}: off by {gap}");
            }
        }
    }

    #[test]
    fn max_pools_and_windows_of_padding_only_take_the_general_path() {
        let x = Tensor::<4>::ones([1, 1, 4, 4], &Device::flex());
        assert!(stride1_average(&x, Pool::Max, [3, 3], [1, 1]).is_none());
        assert!(stride1_average(&x, Pool::Avg, [3, 3], [3, 0]).is_none());
    }
}
