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
    // Every value of both buffers is written below.
    let mut values = unwritten::<T>(planes * oh * ow);
    let mut indices = if with_indices {
        unwritten::<i64>(planes * oh * ow)
    } else {
        Vec::new()
    };
    let plane_job = |p: usize, vals: &mut [T], idx: &mut [i64]| {
        let input = &xs[p * h * w..][..h * w];
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
                        if best_at < 0 || v > best || v.is_nan() {
                            best = v;
                            best_at = i as i64;
                        }
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
