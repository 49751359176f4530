//! probdrop-tui (issue 35): uniform `f32` tensors drawn in parallel.
//!
//! Upstream draws every element through `rand`'s distribution sampler from
//! one ChaCha generator on one thread: about a third of a DropBlock mask's
//! cost on a small CNN's 64×64×7×7 activations. Here the seeded generator
//! gives one 64-bit key per call, and element `i` is the `i`-th output of
//! SplitMix64 started at that key (its state advanced by the golden-ratio
//! increment, then mixed), so any element can be computed on its own: the
//! tensor is filled in parallel, and its values do not depend on the number
//! of threads. The top 24 bits make a float in `[0, 1)` on the grid of 2⁻²⁴,
//! which is every value an `f32` uniform on `[0, 1)` can take with equal
//! spacing.

use burn_std::rand::RngExt;
use burn_std::{Bytes, Shape};

use super::conv2d_native::unwritten;
use crate::backend::FlexRng;
use crate::{FlexTensor, Layout};
use burn_backend::DType;

/// SplitMix64's state increment.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Elements one parallel task fills.
const CHUNK: usize = 1 << 14;

/// SplitMix64's output function.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th float in `[0, 1)` of the stream keyed by `key`: element `i`
/// of the uniform `[0, 1)` tensor drawn with that key. Public so that a
/// fused kernel draws the same values without the tensor (with
/// [`uniform_key`]).
#[inline(always)]
pub fn unit(key: u64, i: u64) -> f32 {
    let bits = mix(key.wrapping_add(i.wrapping_add(1).wrapping_mul(GOLDEN)));
    (bits >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// The key the next uniform `f32` tensor would be drawn with, taken from the
/// seeded generator as that draw takes it: `unit(key, i)` for every `i` is
/// then the tensor the draw would have given.
pub fn uniform_key() -> u64 {
    let mut seed = crate::backend::SEED.lock();
    let mut rng = seed.take().unwrap_or_else(crate::backend::get_seeded_rng);
    let key: u64 = rng.random();
    *seed = Some(rng);
    key
}

/// A tensor of `shape` uniform on `[low, high)`, drawn from `rng`.
pub(crate) fn uniform_f32(shape: Shape, low: f64, high: f64, rng: &mut FlexRng) -> FlexTensor {
    let key: u64 = rng.random();
    let mut values = unwritten::<f32>(shape.num_elements());
    let (low, span, high) = (low as f32, (high - low) as f32, high as f32);
    let fill = |(c, dst): (usize, &mut [f32])| fill_chunk(key, (c * CHUNK) as u64, dst, low, span, high);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        values.par_chunks_mut(CHUNK).enumerate().for_each(fill);
    }
    #[cfg(not(feature = "rayon"))]
    values.chunks_mut(CHUNK).enumerate().for_each(fill);
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// Elements `first..` of the stream keyed by `key` into `dst`, on `[low,
/// low + span)` below `high`. Compiled for the CPU's widest vectors
/// (macerator's dispatch): with AVX-512 SplitMix64's 64-bit products are
/// vector instructions, elsewhere the same integer arithmetic; the values do
/// not depend on which.
#[allow(clippy::extra_unused_type_parameters)]
#[cfg_attr(feature = "simd", macerator::with_simd)]
fn fill_chunk<#[cfg(feature = "simd")] S: macerator::Simd>(
    key: u64,
    first: u64,
    dst: &mut [f32],
    low: f32,
    span: f32,
    high: f32,
) {
    let below = low.max(prev(high));
    for (i, d) in dst.iter_mut().enumerate() {
        let v = low + span * unit(key, first + i as u64);
        *d = if v < high { v } else { below };
    }
}

/// The largest `f32` below `x` (finite, positive or negative `x`).
fn prev(x: f32) -> f32 {
    if x > 0.0 {
        f32::from_bits(x.to_bits() - 1)
    } else if x == 0.0 {
        -f32::from_bits(1)
    } else {
        f32::from_bits(x.to_bits() + 1)
    }
}
