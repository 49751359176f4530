//! Interface 1.5's `block_mask`: ProbDropBlock's seeds drawn, grown into
//! blocks and rescaled. On flex one pass over cache-sized chunks (the
//! uniforms are the values the `bernoulli` op would draw, so the seeds are
//! the same); elsewhere composed from burn's ops, left on the device.

use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Distribution, Tensor};
use plugin_api::abi::{BlockMaskArgs, Handle};
use rayon::prelude::*;

use super::keep::{Chunks, Combine, along, block_dims, lane_sum};
use super::values::{Values, Writable};
use super::{Entry, run};

pub(super) extern "C" fn op_block_mask(s: Handle, gamma: Handle, args: BlockMaskArgs) -> Handle {
    run("block_mask", |a| {
        let s = a.take(s)?;
        let gamma = a.take(gamma)?.tensor;
        let job = Job {
            dims: block_dims(args.dims, args.block, s.rank)?,
            b: args.block as usize,
            eps: args.eps,
        };
        let tensor = if s.tensor.device() == Device::flex() {
            job.on_host(s.tensor, gamma)?
        } else {
            job.composed(s.tensor, gamma)
        };
        Ok(Entry {
            tensor,
            rank: s.rank,
        })
    })
}

/// One `block_mask` call: the block dimensions (of the stored rank 4), the
/// block and the rescale's constant.
struct Job {
    dims: Vec<usize>,
    b: usize,
    eps: f64,
}

impl Job {
    /// On flex: each chunk's uniforms (flex's stream for one draw, made in
    /// place: no tensor of them), seeds, blocks (window maxima along each
    /// block dim) and `1 − dropped` in scratch, written once; then the
    /// rescale, both cores over the chunks.
    fn on_host(&self, s: Tensor<4>, gamma: Tensor<4>) -> Result<Tensor<4>, String> {
        self.fused(s, gamma, burn_flex::uniform_key())
    }

    /// [`Job::on_host`] with the uniforms of stream `key`.
    fn fused(&self, s: Tensor<4>, gamma: Tensor<4>, key: u64) -> Result<Tensor<4>, String> {
        let chunks = Chunks::cached(s.dims(), &self.dims, self.b);
        let g = Values::first_of(gamma)?;
        // Each chunk's rates are read into scratch before its keep is written
        // over them: the mask takes the rates' buffer.
        let mut mask = Writable::of(s)?;
        let kept: f64 = mask
            .values()
            .par_chunks_mut(chunks.len)
            .enumerate()
            .map_init(
                || Scratch::new(chunks.len),
                |scratch, (i, values)| {
                    pulp::Arch::new().dispatch(ChunkKeep {
                        scratch,
                        chunks: &chunks,
                        seeds: Seeds {
                            key,
                            first: (i * chunks.len) as u64,
                            g,
                        },
                        values,
                    })
                },
            )
            .sum();
        let values = mask.values();
        let factor = (values.len() as f64 / (kept + self.eps)) as f32;
        values
            .par_chunks_mut(chunks.len)
            .for_each(|part| part.iter_mut().for_each(|k| *k *= factor));
        Ok(mask.into_tensor())
    }

    /// The same from burn's ops, in the order the `bernoulli`, pool and
    /// rescale ops would run them.
    fn composed(&self, s: Tensor<4>, gamma: Tensor<4>) -> Tensor<4> {
        let uniform = s.random_like(Distribution::Uniform(0.0, 1.0));
        self.composed_with(s, gamma, uniform)
    }

    /// [`Job::composed`] with these uniforms.
    fn composed_with(&self, s: Tensor<4>, gamma: Tensor<4>, uniform: Tensor<4>) -> Tensor<4> {
        let q = (s * gamma).clamp(0.0, 1.0);
        let seeds = uniform.lower(q).float();
        let keep = self.expanded(seeds).neg().add_scalar(1.0);
        let numel = keep.shape().num_elements() as f64;
        let factor = keep
            .clone()
            .sum()
            .add_scalar(self.eps)
            .recip()
            .mul_scalar(numel);
        keep * factor.reshape([1, 1, 1, 1])
    }

    /// Each seed grown into a block: a stride-1 max pool of `b` along each
    /// block dim (as the height of `[before, 1, len, after]`, padding
    /// `b / 2`), cropped to `len`.
    fn expanded(&self, seeds: Tensor<4>) -> Tensor<4> {
        let shape = seeds.dims();
        self.dims.iter().fold(seeds, |t, &d| {
            let before: usize = shape[..d].iter().product();
            let after: usize = shape[d + 1..].iter().product();
            let options = MaxPoolOptions::new([self.b, 1])
                .with_stride([1, 1])
                .with_padding([self.b / 2, 0]);
            let pooled = max_pool2d(t.reshape([before, 1, shape[d], after]), options);
            pooled
                .slice([0..before, 0..1, 0..shape[d], 0..after])
                .reshape(shape)
        })
    }
}

/// One chunk's [`Scratch::keep`] as a `pulp` operation, compiled for the
/// CPU's widest vectors (as `keep::ChunkSums`).
struct ChunkKeep<'s> {
    scratch: &'s mut Scratch,
    chunks: &'s Chunks,
    seeds: Seeds,
    /// The rates `s` in, `1 − dropped` out.
    values: &'s mut [f32],
}

/// Where a chunk's uniforms come from and the rate: element `first + j` of
/// the stream `key`, against `clamp(g · s, 0, 1)`.
#[derive(Clone, Copy)]
struct Seeds {
    key: u64,
    first: u64,
    g: f32,
}

impl pulp::WithSimd for ChunkKeep<'_> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> f64 {
        let ChunkKeep {
            scratch,
            chunks,
            seeds,
            values,
        } = self;
        scratch.keep(chunks, seeds, values)
    }
}

/// One chunk's working space: the seeds, then their blocks.
struct Scratch {
    dropped: Vec<f32>,
    next: Vec<f32>,
}

impl Scratch {
    fn new(len: usize) -> Scratch {
        Scratch {
            dropped: vec![0.0; len],
            next: vec![0.0; len],
        }
    }

    /// Overwrites one chunk's rates `s` with its `1 − dropped`; returns
    /// their sum. Seeds compare as `bernoulli` does: `u < clamp(γ · s, 0, 1)`
    /// in f32.
    #[inline(always)] // inside `pulp` dispatch: compiled for its vectors
    fn keep(&mut self, chunks: &Chunks, seeds: Seeds, values: &mut [f32]) -> f64 {
        let Seeds { key, first, g } = seeds;
        for (j, (d, &v)) in self.dropped.iter_mut().zip(values.iter()).enumerate() {
            let u = burn_flex::uniform_unit(key, first + j as u64);
            *d = f32::from(u8::from(u < (g * v).clamp(0.0, 1.0)));
        }
        for passes in &chunks.passes {
            along(&self.dropped, &mut self.next, passes, Combine::Max);
            std::mem::swap(&mut self.dropped, &mut self.next);
        }
        for (k, &d) in values.iter_mut().zip(&self.dropped) {
            *k = 1.0 - d;
        }
        lane_sum([values])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// Flex's one pass draws the uniforms of its key and gives the composed
    /// ops' mask for them: 2-D and 1-D blocks, odd and even windows, rates
    /// that saturate, the rates' buffer its own or shared.
    #[test]
    fn one_pass_equals_the_composed_ops_on_the_same_uniforms() {
        let device = Device::flex();
        let shape = [2, 3, 7, 6];
        let n: usize = shape.iter().product();
        let rates: Vec<f32> = (0..n).map(|i| (i * 37 % 101) as f32 / 10.0).collect();
        let fresh = || Tensor::<4>::from_data(TensorData::new(rates.clone(), shape), &device);
        let key = 0x5EED;
        let uniform: Vec<f32> = (0..n as u64)
            .map(|i| burn_flex::uniform_unit(key, i))
            .collect();
        let uniform = Tensor::<4>::from_data(TensorData::new(uniform, shape), &device);
        for (dims, b) in [(vec![2, 3], 3), (vec![2, 3], 4), (vec![3], 5), (vec![2], 2)] {
            let job = Job { dims, b, eps: 1e-6 };
            for g in [0.02, 0.3] {
                let gamma = Tensor::<4>::full([1, 1, 1, 1], g, &device);
                let want = job.composed_with(fresh(), gamma.clone(), uniform.clone());
                let want = want.into_data().try_to_vec::<f32>().unwrap();
                let shared = fresh();
                let _holder = shared.clone();
                for s in [fresh(), shared.clone()] {
                    let got = job.fused(s, gamma.clone(), key).unwrap();
                    let got = got.into_data().try_to_vec::<f32>().unwrap();
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!((g - w).abs() <= 1e-6 * w.abs(), "{i}: {g} vs {w}");
                    }
                    assert!(got.contains(&0.0), "some block dropped");
                }
                // The shared buffer was copied, not overwritten.
                let kept = _holder.into_data().try_to_vec::<f32>().unwrap();
                assert_eq!(kept, rates);
            }
        }
    }
}
