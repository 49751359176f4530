//! probdrop-tui (issue 35): 2-D max pooling (with and without indices) as a
//! 2-D kernel.
//!
//! Upstream pools through its 3-D kernel, which works out each output's valid
//! window with six integer divisions: for a 2×2 pool that costs more than the
//! comparisons (about a fifth of a small-CNN training step). Here the valid
//! window offsets of every output row and column are worked out once per call.

use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};

use super::conv2d_native::{Real, unwritten};
use crate::{FlexTensor, Layout};

/// A pooling window's settings along the two axes.
#[derive(Clone, Copy)]
pub(crate) struct Pool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
}

/// Whether the native kernel takes this input (f32 or f64).
pub(crate) fn supports(x: &FlexTensor) -> bool {
    matches!(x.dtype(), DType::F32 | DType::F64)
}

/// The pooled values and, when asked, each one's flat index in its input plane.
pub(crate) fn max_pool2d(
    x: FlexTensor,
    pool: Pool2d,
    with_indices: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    match x.dtype() {
        DType::F32 => pool_typed::<f32>(x, pool, with_indices),
        DType::F64 => pool_typed::<f64>(x, pool, with_indices),
        dtype => panic!("max_pool2d: unsupported dtype {dtype:?}"),
    }
}

/// For each output position along an axis, its first input index and the
/// kernel taps `lo..hi` that fall inside the input.
fn taps(
    input: usize,
    out: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Vec<(isize, usize, usize)> {
    (0..out)
        .map(|o| {
            let first = (o * stride) as isize - pad as isize;
            let inside = |k: usize| {
                let i = first + (k * dilation) as isize;
                i >= 0 && (i as usize) < input
            };
            let lo = (0..kernel).find(|&k| inside(k)).unwrap_or(kernel);
            let hi = (lo..kernel)
                .take_while(|&k| inside(k))
                .last()
                .map_or(lo, |k| k + 1);
            (first, lo, hi)
        })
        .collect()
}

fn pool_typed<T: Real>(
    x: FlexTensor,
    pool: Pool2d,
    with_indices: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let x = x.into_contiguous();
    let shape = x.layout().shape().clone();
    let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
    let out = |i: usize, len: usize| {
        super::pool::pool_output_size(
            len,
            pool.kernel[i],
            pool.padding[i],
            pool.stride[i],
            pool.dilation[i],
            pool.ceil_mode,
        )
    };
    let (oh, ow) = (out(0, h), out(1, w));
    let rows = taps(
        h,
        oh,
        pool.kernel[0],
        pool.stride[0],
        pool.padding[0],
        pool.dilation[0],
    );
    let cols = taps(
        w,
        ow,
        pool.kernel[1],
        pool.stride[1],
        pool.padding[1],
        pool.dilation[1],
    );
    let xs = x.storage::<T>();
    if !with_indices {
        let values = if pool.stride == [1, 1] {
            stride_one(xs, planes, [h, w], [oh, ow], pool)
        } else {
            separable(xs, planes, [h, w], [oh, ow], pool)
        };
        let out_shape = Shape::from(alloc::vec![shape[0], shape[1], oh, ow]);
        let output = FlexTensor::new(
            Bytes::from_elems(values),
            Layout::contiguous(out_shape),
            T::dtype(),
        );
        return (output, None);
    }
    // Every value of both buffers is written below.
    let mut values = unwritten::<T>(planes * oh * ow);
    let mut indices = if with_indices {
        unwritten::<i64>(planes * oh * ow)
    } else {
        Vec::new()
    };
    let halving = pool.kernel == [2, 2]
        && pool.stride == [2, 2]
        && pool.padding == [0, 0]
        && pool.dilation == [1, 1]
        && 2 * oh <= h
        && 2 * ow <= w;
    let plane_job = |p: usize, vals: &mut [T], idx: &mut [i64]| {
        let input = &xs[p * h * w..][..h * w];
        if halving {
            return halve(input, w, ow, vals, idx);
        }
        let mut at = 0;
        for &(y0, ky0, ky1) in &rows {
            for &(x0, kx0, kx1) in &cols {
                let (mut best, mut best_at) = (T::neg_infinity(), -1i64);
                for ky in ky0..ky1 {
                    let row = (y0 + (ky * pool.dilation[0]) as isize) as usize * w;
                    for kx in kx0..kx1 {
                        let i = row + (x0 + (kx * pool.dilation[1]) as isize) as usize;
                        let v = input[i];
                        // NaN wins (and the last NaN's index), as upstream and PyTorch.
                        // Without branches: on real data which element wins is
                        // unpredictable, and mispredictions cost more than the pool.
                        let take = (best_at < 0) | (v > best) | v.is_nan();
                        best = if take { v } else { best };
                        best_at = if take { i as i64 } else { best_at };
                    }
                }
                vals[at] = best;
                if let Some(slot) = idx.get_mut(at) {
                    *slot = best_at;
                }
                at += 1;
            }
        }
    };
    let len = (oh * ow).max(1);
    for_each_plane(&mut values, &mut indices, len, plane_job);
    let out_shape = Shape::from(alloc::vec![shape[0], shape[1], oh, ow]);
    let output = FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(out_shape.clone()),
        T::dtype(),
    );
    let indices = with_indices.then(|| {
        FlexTensor::new(
            Bytes::from_elems(indices),
            Layout::contiguous(out_shape),
            DType::I64,
        )
    });
    (output, indices)
}

/// `job(plane, values, indices)` for every plane's outputs, in parallel;
/// `indices` is empty when not asked for.
fn for_each_plane<T: Real>(
    values: &mut [T],
    indices: &mut [i64],
    len: usize,
    job: impl Fn(usize, &mut [T], &mut [i64]) + Send + Sync,
) {
    let idx_len = if indices.is_empty() { 0 } else { len };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        if idx_len == 0 {
            values
                .par_chunks_mut(len)
                .enumerate()
                .for_each(|(p, v)| job(p, v, &mut []));
        } else {
            values
                .par_chunks_mut(len)
                .zip(indices.par_chunks_mut(idx_len))
                .enumerate()
                .for_each(|(p, (v, i))| job(p, v, i));
        }
    }
    #[cfg(not(feature = "rayon"))]
    {
        if idx_len == 0 {
            values
                .chunks_mut(len)
                .enumerate()
                .for_each(|(p, v)| job(p, v, &mut []));
        } else {
            values
                .chunks_mut(len)
                .zip(indices.chunks_mut(idx_len))
                .enumerate()
                .for_each(|(p, (v, i))| job(p, v, i));
        }
    }
}

/// The larger of two values, NaN winning (as the windowed loop above).
#[inline(always)]
fn nan_max<T: Real>(a: T, b: T) -> T {
    if (b > a) | b.is_nan() { b } else { a }
}

/// Max pooling without indices as two 1-D passes: the max along each row's
/// windows, then along each column's. The max of a window is the same whatever
/// the order, and each pass runs over contiguous outputs (vectorised for
/// stride 1): a stride-1 3×3 pool (DropBlock's block expansion) reads each
/// input 6 times instead of 9, without a branch.
fn separable<T: Real>(
    xs: &[T],
    planes: usize,
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
    pool: Pool2d,
) -> Vec<T> {
    let mut out = unwritten::<T>(planes * oh * ow);
    let job = |(p, dst): (usize, &mut [T])| {
        let input = &xs[p * h * w..][..h * w];
        let mut rows = alloc::vec![T::neg_infinity(); h * ow];
        for (src, row) in input.chunks_exact(w).zip(rows.chunks_exact_mut(ow)) {
            max_along(
                src,
                row,
                pool.kernel[1],
                pool.stride[1],
                pool.padding[1],
                pool.dilation[1],
            );
        }
        dst.fill(T::neg_infinity());
        for oy in 0..oh {
            let line = &mut dst[oy * ow..][..ow];
            for ky in 0..pool.kernel[0] {
                let iy = (oy * pool.stride[0] + ky * pool.dilation[0]) as isize
                    - pool.padding[0] as isize;
                if iy >= 0 && (iy as usize) < h {
                    let src = &rows[iy as usize * ow..][..ow];
                    line.iter_mut()
                        .zip(src)
                        .for_each(|(d, &v)| *d = nan_max(*d, v));
                }
            }
        }
    };
    let len = (oh * ow).max(1);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(len).enumerate().for_each(job);
    }
    #[cfg(not(feature = "rayon"))]
    out.chunks_mut(len).enumerate().for_each(job);
    out
}

/// Elements of padded planes a stride-1 task pools at once: enough to cover
/// the task's overhead, small enough for its three buffers to stay in L2.
const STRIDE_ONE_BLOCK: usize = 1 << 14;

/// Stride-1 max pooling without indices (a mask's block expansion, a window
/// pool): the planes, framed by −∞ to the padded size, are pooled as one flat
/// array per block of planes, so each tap is one long contiguous loop even on
/// 7×7 planes whose rows are too short to vectorise. A window never reaches
/// past its plane's frame, so the flat loops never mix planes in an output.
fn stride_one<T: Real>(
    xs: &[T],
    planes: usize,
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
    pool: Pool2d,
) -> Vec<T> {
    let [ph, pw] = pool.padding;
    let [dh, dw] = pool.dilation;
    // Stride 1: the frame is exactly the windows' extent.
    let (hp, wp) = (oh + dh * (pool.kernel[0] - 1), ow + dw * (pool.kernel[1] - 1));
    let frame = hp * wp;
    let per_task = (STRIDE_ONE_BLOCK / frame.max(1)).max(1);
    let mut out = unwritten::<T>(planes * oh * ow);
    let job = |(t, dst): (usize, &mut [T])| {
        let count = dst.len() / (oh * ow).max(1);
        let len = count * frame;
        let mut framed = alloc::vec![T::neg_infinity(); len];
        for p in 0..count {
            let src = &xs[(t * per_task + p) * h * w..][..h * w];
            let plane = &mut framed[p * frame..][..frame];
            for (y, row) in src.chunks_exact(w).enumerate() {
                // Rows and columns past the frame (asymmetric padding) are
                // never read by a window.
                let (fy, take) = (y + ph, w.min(wp.saturating_sub(pw)));
                if fy < hp {
                    plane[fy * wp + pw..][..take].copy_from_slice(&row[..take]);
                }
            }
        }
        let rows = flat_max(&framed, pool.kernel[1], dw);
        let cols = flat_max(&rows, pool.kernel[0], dh * wp);
        for (p, out_plane) in dst.chunks_exact_mut(oh * ow).enumerate() {
            for (oy, line) in out_plane.chunks_exact_mut(ow).enumerate() {
                line.copy_from_slice(&cols[p * frame + oy * wp..][..ow]);
            }
        }
    };
    let len = (per_task * oh * ow).max(1);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(len).enumerate().for_each(job);
    }
    #[cfg(not(feature = "rayon"))]
    out.chunks_mut(len).enumerate().for_each(job);
    out
}

/// `out[j] = max over k < kernel of src[j + k·step]`, as long as the last tap
/// is inside `src` (the tail that is not is −∞).
fn flat_max<T: Real>(src: &[T], kernel: usize, step: usize) -> Vec<T> {
    let reach = (kernel - 1) * step;
    let mut out = src.to_vec();
    let valid = src.len().saturating_sub(reach);
    for k in 1..kernel {
        out[..valid]
            .iter_mut()
            .zip(&src[k * step..])
            .for_each(|(d, &v)| *d = nan_max(*d, v));
    }
    out[valid..].fill(T::neg_infinity());
    out
}

/// `out[o] = max over k of src[o·stride + k·dilation − pad]` (taps inside `src`
/// only; `out` starts at −∞), tap by tap so the inner loop is contiguous.
#[allow(clippy::too_many_arguments)]
fn max_along<T: Real>(
    src: &[T],
    out: &mut [T],
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
) {
    for k in 0..kernel {
        let offset = (k * dilation) as isize - pad as isize;
        let lo = if offset >= 0 {
            0
        } else {
            ((-offset) as usize).div_ceil(stride)
        };
        let last = src.len() as isize - 1 - offset;
        if last < 0 {
            continue;
        }
        let hi = (last as usize / stride + 1).min(out.len());
        if lo >= hi {
            continue;
        }
        let first = (lo * stride) as isize + offset;
        let first = first as usize;
        if stride == 1 {
            let taps = &src[first..first + (hi - lo)];
            out[lo..hi]
                .iter_mut()
                .zip(taps)
                .for_each(|(d, &v)| *d = nan_max(*d, v));
        } else {
            for (j, d) in out[lo..hi].iter_mut().enumerate() {
                *d = nan_max(*d, src[first + j * stride]);
            }
        }
    }
}

/// The 2×2, stride-2 pool of one plane (every window inside it): the common
/// case, with no window arithmetic. Same order and rule as the general loop.
fn halve<T: Real>(input: &[T], w: usize, ow: usize, vals: &mut [T], idx: &mut [i64]) {
    for (oy, out) in vals.chunks_exact_mut(ow.max(1)).enumerate() {
        let (top, bottom) = (2 * oy * w, (2 * oy + 1) * w);
        let (r0, r1) = (&input[top..top + 2 * ow], &input[bottom..bottom + 2 * ow]);
        for (ox, v) in out.iter_mut().enumerate() {
            let x = 2 * ox;
            let candidates = [
                (r0[x + 1], top + x + 1),
                (r1[x], bottom + x),
                (r1[x + 1], bottom + x + 1),
            ];
            let (mut best, mut at) = (r0[x], top + x);
            for (c, i) in candidates {
                let take = (c > best) | c.is_nan();
                best = if take { c } else { best };
                at = if take { i } else { at };
            }
            *v = best;
            if let Some(slot) = idx.get_mut(oy * ow + ox) {
                *slot = at as i64;
            }
        }
    }
}
