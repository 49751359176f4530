//! probdrop-tui (issue 35): batch norm as per-channel kernels.
//!
//! burn-backend's defaults compose batch norm from elementary ops: the training
//! forward swaps the batch and channel axes (a copy) for each of its two means,
//! and the backward makes about twenty tensor-sized passes. Here the training
//! forward reads the input once for both statistics (sums in f64) and once to
//! normalise; the backward reads `x` and `dy` once for the two sums all three
//! gradients need, and once to write the input gradient. A channel's planes are
//! `[batch]` runs of `H·W` values, so every pass is over contiguous planes, in
//! parallel over channels (reductions) or planes (element-wise).

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape, bf16, f16};

use super::conv2d_native::{Real, unwritten};
use crate::{FlexTensor, Layout};

/// The normalised input and the batch's mean and biased variance per channel.
pub(crate) struct Normalised {
    pub output: FlexTensor,
    pub mean: FlexTensor,
    pub variance: FlexTensor,
}

/// The gradients of the input, `gamma` and `beta`.
pub(crate) struct Gradients {
    pub x: FlexTensor,
    pub gamma: FlexTensor,
    pub beta: FlexTensor,
}

/// Training forward: normalise with the batch's own statistics.
pub(crate) fn train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> Normalised {
    match x.dtype() {
        DType::F32 => train_typed::<f32>(x, gamma, beta, epsilon),
        DType::F64 => train_typed::<f64>(x, gamma, beta, epsilon),
        dtype => {
            let up = |t| to_f32(t, dtype);
            let r = train_typed::<f32>(up(x), up(gamma), up(beta), epsilon);
            let down = |t| from_f32(t, dtype);
            Normalised {
                output: down(r.output),
                mean: down(r.mean),
                variance: down(r.variance),
            }
        }
    }
}

/// Training backward, given the statistics [train] returned.
pub(crate) fn train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> Gradients {
    match x.dtype() {
        DType::F32 => backward_typed::<f32>(x, gamma, mean, variance, epsilon, output_grad),
        DType::F64 => backward_typed::<f64>(x, gamma, mean, variance, epsilon, output_grad),
        dtype => {
            let up = |t| to_f32(t, dtype);
            let r = backward_typed::<f32>(
                up(x),
                up(gamma),
                up(mean),
                up(variance),
                epsilon,
                up(output_grad),
            );
            let down = |t| from_f32(t, dtype);
            Gradients {
                x: down(r.x),
                gamma: down(r.gamma),
                beta: down(r.beta),
            }
        }
    }
}

/// Inference: normalise with given statistics.
pub(crate) fn infer(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => infer_typed::<f32>(x, gamma, beta, mean, variance, epsilon),
        DType::F64 => infer_typed::<f64>(x, gamma, beta, mean, variance, epsilon),
        dtype => {
            let up = |t| to_f32(t, dtype);
            let y = infer_typed::<f32>(up(x), up(gamma), up(beta), up(mean), up(variance), epsilon);
            from_f32(y, dtype)
        }
    }
}

/// Per-channel sums of `[batch, channels, ...]`: the bias gradient of a convolution.
pub(crate) fn channel_sums(t: FlexTensor) -> FlexTensor {
    match t.dtype() {
        DType::F32 => channel_sums_typed::<f32>(t),
        DType::F64 => channel_sums_typed::<f64>(t),
        dtype => from_f32(channel_sums_typed::<f32>(to_f32(t, dtype)), dtype),
    }
}

fn to_f32(t: FlexTensor, dtype: DType) -> FlexTensor {
    use super::module::cast_to_f32;
    match dtype {
        DType::F16 => cast_to_f32(t, f16::to_f32),
        DType::BF16 => cast_to_f32(t, bf16::to_f32),
        dtype => panic!("batch_norm: unsupported dtype {dtype:?}"),
    }
}

fn from_f32(t: FlexTensor, dtype: DType) -> FlexTensor {
    use super::module::cast_from_f32;
    match dtype {
        DType::F16 => cast_from_f32(t, f16::from_f32),
        _ => cast_from_f32(t, bf16::from_f32),
    }
}

/// `[batch, channels, spatial...]` as counts: channels, and values per plane.
#[derive(Clone, Copy)]
struct Planes {
    channels: usize,
    plane: usize,
    batch: usize,
}

impl Planes {
    fn of(t: &FlexTensor) -> Self {
        let shape = t.layout().shape();
        let (batch, channels) = (shape[0], shape[1]);
        let plane = shape.iter().skip(2).product();
        Self {
            channels,
            plane,
            batch,
        }
    }
    /// Values per channel.
    fn count(&self) -> f64 {
        (self.batch * self.plane) as f64
    }
    /// Channel `c`'s planes, one per sample.
    fn of_channel<'a, T>(
        &self,
        data: &'a [T],
        c: usize,
    ) -> impl Iterator<Item = &'a [T]> + use<'a, T> {
        let (channels, plane) = (self.channels, self.plane);
        (0..self.batch).map(move |b| &data[(b * channels + c) * plane..][..plane])
    }
}

fn values<T: Real>(t: FlexTensor) -> Vec<T> {
    let t = t.into_contiguous();
    t.storage::<T>().to_vec()
}

fn tensor<T: Real>(data: Vec<T>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        T::dtype(),
    )
}

fn per_channel<T: Real>(data: Vec<T>) -> FlexTensor {
    let len = data.len();
    tensor(data, Shape::from(vec![len]))
}

/// `f(c)` for every channel, in parallel.
fn map_channels<R: Send>(channels: usize, f: impl Fn(usize) -> R + Send + Sync) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        (0..channels).map(f).collect()
    }
}

/// `out = x·scale[c] + shift[c]` plane by plane, in parallel, into a new buffer.
fn affine<T: Real>(x: &[T], planes: Planes, scale: &[T], shift: &[T]) -> Vec<T> {
    let mut out = unwritten::<T>(x.len());
    let plane_job = |(i, (dst, src)): (usize, (&mut [T], &[T]))| {
        let c = i % planes.channels;
        let (a, b) = (scale[c], shift[c]);
        dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v * a + b);
    };
    let len = planes.plane.max(1);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(len)
            .zip(x.par_chunks(len))
            .enumerate()
            .for_each(plane_job);
    }
    #[cfg(not(feature = "rayon"))]
    out.chunks_mut(len)
        .zip(x.chunks(len))
        .enumerate()
        .for_each(plane_job);
    out
}

/// Channel `c`'s sum and sum of squares (f64).
fn moments<T: Real>(x: &[T], planes: Planes, c: usize) -> (f64, f64) {
    let mut sum = 0.0;
    let mut squares = 0.0;
    for plane in planes.of_channel(x, c) {
        let (s, q) = plane.iter().fold((0.0f64, 0.0f64), |(s, q), &v| {
            let v = v.wide();
            (s + v, q + v * v)
        });
        sum += s;
        squares += q;
    }
    (sum, squares)
}

fn cast<T: Real>(v: f64) -> T {
    T::from(v).unwrap_or_else(T::nan)
}

fn train_typed<T: Real>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> Normalised {
    let x = x.into_contiguous();
    let planes = Planes::of(&x);
    let shape = x.layout().shape().clone();
    let (gamma, beta) = (values::<T>(gamma), values::<T>(beta));
    let xs = x.storage::<T>();
    let n = planes.count();
    let stats = map_channels(planes.channels, |c| {
        let (sum, squares) = moments(xs, planes, c);
        let mean = sum / n;
        (mean, (squares / n - mean * mean).max(0.0))
    });
    let scale: Vec<T> = stats
        .iter()
        .zip(&gamma)
        .map(|(&(_, var), &g)| cast::<T>(g.wide() / (var + epsilon).sqrt()))
        .collect();
    let shift: Vec<T> = stats
        .iter()
        .zip(scale.iter().zip(&beta))
        .map(|(&(mean, _), (&a, &b))| b - cast::<T>(mean) * a)
        .collect();
    let output = affine(xs, planes, &scale, &shift);
    Normalised {
        output: tensor(output, shape),
        mean: per_channel(stats.iter().map(|s| cast::<T>(s.0)).collect()),
        variance: per_channel(stats.iter().map(|s| cast::<T>(s.1)).collect()),
    }
}

fn backward_typed<T: Real>(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> Gradients {
    let (x, dy) = (x.into_contiguous(), output_grad.into_contiguous());
    let planes = Planes::of(&x);
    let shape = x.layout().shape().clone();
    let as_f64 = |t: FlexTensor| -> Vec<f64> { values::<T>(t).iter().map(|v| v.wide()).collect() };
    let (gamma, mean, variance) = (as_f64(gamma), as_f64(mean), as_f64(variance));
    let (xs, dys) = (x.storage::<T>(), dy.storage::<T>());
    // Σ dy and Σ dy·(x − mean), per channel.
    let sums = map_channels(planes.channels, |c| {
        let m = mean[c];
        planes
            .of_channel(xs, c)
            .zip(planes.of_channel(dys, c))
            .fold((0.0, 0.0), |acc, (xp, gp)| {
                xp.iter().zip(gp).fold(acc, |(s, sx), (&v, &g)| {
                    let (v, g) = (v.wide(), g.wide());
                    (s + g, sx + g * (v - m))
                })
            })
    });
    let n = planes.count();
    let mut dgamma = Vec::with_capacity(planes.channels);
    let mut dbeta = Vec::with_capacity(planes.channels);
    let mut k_dy = Vec::with_capacity(planes.channels);
    let mut k_x = Vec::with_capacity(planes.channels);
    let mut k_1 = Vec::with_capacity(planes.channels);
    for c in 0..planes.channels {
        let inv_std = 1.0 / (variance[c] + epsilon).sqrt();
        let (sum_dy, sum_dy_centred) = sums[c];
        let dg = sum_dy_centred * inv_std;
        let a = gamma[c] * inv_std;
        // dx = a·(dy − Σdy/n − x̂·dγ/n), x̂ = (x − mean)·inv_std, as dy·k_dy + x·k_x + k_1.
        let k = a * inv_std * dg / n;
        dgamma.push(cast::<T>(dg));
        dbeta.push(cast::<T>(sum_dy));
        k_dy.push(cast::<T>(a));
        k_x.push(cast::<T>(-k));
        k_1.push(cast::<T>(-a * sum_dy / n + k * mean[c]));
    }
    let dx = input_gradient(xs, dys, planes, [&k_dy, &k_x, &k_1]);
    Gradients {
        x: tensor(dx, shape),
        gamma: per_channel(dgamma),
        beta: per_channel(dbeta),
    }
}

/// `dx = dy·k_dy[c] + x·k_x[c] + k_1[c]`, plane by plane, in parallel.
fn input_gradient<T: Real>(
    xs: &[T],
    dys: &[T],
    planes: Planes,
    [k_dy, k_x, k_1]: [&[T]; 3],
) -> Vec<T> {
    let mut dx = unwritten::<T>(xs.len());
    let len = planes.plane.max(1);
    let job = |(i, (dst, (xp, gp))): (usize, (&mut [T], (&[T], &[T])))| {
        let c = i % planes.channels;
        let (a, b, k) = (k_dy[c], k_x[c], k_1[c]);
        for ((d, &v), &g) in dst.iter_mut().zip(xp).zip(gp) {
            *d = g * a + v * b + k;
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        dx.par_chunks_mut(len)
            .zip(xs.par_chunks(len).zip(dys.par_chunks(len)))
            .enumerate()
            .for_each(job);
    }
    #[cfg(not(feature = "rayon"))]
    dx.chunks_mut(len)
        .zip(xs.chunks(len).zip(dys.chunks(len)))
        .enumerate()
        .for_each(job);
    dx
}

fn infer_typed<T: Real>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let x = x.into_contiguous();
    let planes = Planes::of(&x);
    let shape = x.layout().shape().clone();
    let (gamma, beta) = (values::<T>(gamma), values::<T>(beta));
    let (mean, variance) = (values::<T>(mean), values::<T>(variance));
    let eps = cast::<T>(epsilon);
    let scale: Vec<T> = gamma
        .iter()
        .zip(&variance)
        .map(|(&g, &v)| g / (v + eps).sqrt())
        .collect();
    let shift: Vec<T> = beta
        .iter()
        .zip(mean.iter().zip(&scale))
        .map(|(&b, (&m, &a))| b - m * a)
        .collect();
    tensor(affine(x.storage::<T>(), planes, &scale, &shift), shape)
}

fn channel_sums_typed<T: Real>(t: FlexTensor) -> FlexTensor {
    let t = t.into_contiguous();
    let planes = Planes::of(&t);
    let data = t.storage::<T>();
    let sums = map_channels(planes.channels, |c| {
        let total: f64 = planes
            .of_channel(data, c)
            .map(|p| p.iter().map(|v| v.wide()).sum::<f64>())
            .sum();
        cast::<T>(total)
    });
    per_channel(sums)
}
