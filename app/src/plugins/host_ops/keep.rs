//! Interface 1.4's `block_keep`: the two means ProbDropBlock's matched-rate
//! solve needs at each step, in one fused pass on flex (the values read once,
//! products and sums over each window in cache-sized scratch) and composed
//! from burn's ops elsewhere (LibTorch's element-wise ops and pools are fast
//! where they run).

use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};
use plugin_api::abi::{BlockKeepArgs, Handle};
use rayon::prelude::*;

use super::values::Values;
use super::window::Axis;
use super::{Entry, entry_of, run};

pub(super) extern "C" fn op_block_keep(
    s: Handle,
    gamma: Handle,
    valid: Handle,
    args: BlockKeepArgs,
) -> Handle {
    run("block_keep", |a| {
        let s = a.take(s)?;
        let gamma = a.take(gamma)?.tensor;
        let valid = if args.masked {
            Some(a.take(valid)?.tensor.expand(s.tensor.dims()))
        } else {
            None
        };
        let dims: Vec<usize> = (0..s.rank)
            .filter(|d| args.dims & (1 << d) != 0)
            .map(|d| d + 4 - s.rank)
            .collect();
        if dims.is_empty() || args.block == 0 {
            return Err("block_keep needs a block dimension and a block of at least 1".into());
        }
        let job = Job {
            dims,
            b: args.block as usize,
            q_max: args.q_max,
            exact: args.exact,
        };
        let both: Entry = entry_of(job.moments(s.tensor, gamma, valid)?, &[2])?;
        Ok(both)
    })
}

/// One `block_keep` call: the block dimensions (stored, of rank 4), the
/// window, the clamp and which slope.
struct Job {
    dims: Vec<usize>,
    b: usize,
    q_max: f64,
    exact: bool,
}

impl Job {
    /// `[m, fall]` as a tensor on the input's device.
    fn moments(
        &self,
        s: Tensor<4>,
        gamma: Tensor<4>,
        valid: Option<Tensor<4>>,
    ) -> Result<Tensor<4>, String> {
        let device = s.device();
        let [m, fall] = if device == Device::flex() {
            self.on_host(s, gamma, valid)?
        } else {
            self.composed(s, gamma, valid)
        };
        let data = TensorData::new(vec![m as f32, fall as f32], [1, 1, 1, 2]);
        Ok(Tensor::from_data(data, &device))
    }

    /// Both means on the host: the values read once, then each block of
    /// the tensor that holds whole windows (`Chunks`) in cache-sized scratch,
    /// both cores over the blocks. `Π (1 − q)` as products over each window,
    /// not `exp` of summed logs: no transcendental per element, and no
    /// tensor-sized buffer beyond the copy of the values.
    fn on_host(
        &self,
        s: Tensor<4>,
        gamma: Tensor<4>,
        valid: Option<Tensor<4>>,
    ) -> Result<[f64; 2], String> {
        let chunks = Chunks::new(s.dims(), &self.dims, self.b);
        let s = Values::of(s)?;
        let g = Values::of(gamma)?
            .as_slice()
            .first()
            .map_or(0.0, |&g| f64::from(g));
        let weights = valid.map(Values::of).transpose()?;
        let weights = weights.as_ref().map(Values::as_slice);
        let seeds = Seeds {
            gamma: g,
            q_max: self.q_max,
            exact: self.exact,
        };
        let sums = s
            .as_slice()
            .par_chunks(chunks.len)
            .enumerate()
            .with_min_len(64)
            .map_init(
                || Scratch::new(chunks.len),
                |scratch, (i, values)| {
                    let w = weights.map(|w| &w[i * chunks.len..][..chunks.len]);
                    scratch.sums(&chunks, seeds, values, w)
                },
            )
            .reduce(|| [0.0; 3], |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2]]);
        let total = sums[0].max(1.0);
        Ok([sums[1] / total, sums[2] / total])
    }

    /// The same from burn's ops (each window sum as one average pool per
    /// block dim).
    fn composed(&self, s: Tensor<4>, gamma: Tensor<4>, valid: Option<Tensor<4>>) -> [f64; 2] {
        let q = (s.clone() * gamma).clamp(0.0, self.q_max);
        let one_minus = q.clone().neg().add_scalar(1.0);
        let kept = self.pooled(one_minus.clone().log()).exp();
        let rate_of = if self.exact {
            let live = q.lower_elem(self.q_max).float();
            s / one_minus * live
        } else {
            s
        };
        let rate = self.pooled(rate_of);
        let weight = valid.unwrap_or_else(|| kept.ones_like());
        let total = weight.clone().sum().into_scalar::<f32>() as f64;
        let m = (kept.clone() * weight.clone()).sum().into_scalar::<f32>() as f64;
        let fall = (kept * rate * weight).sum().into_scalar::<f32>() as f64;
        [m / total.max(1.0), fall / total.max(1.0)]
    }

    /// Window sums over the block dims: along each, a `b`-tall average pool of
    /// the dim as the height of `[before, 1, len, after]`, cropped to `len`.
    fn pooled(&self, t: Tensor<4>) -> Tensor<4> {
        let shape = t.dims();
        self.dims.iter().fold(t, |t, &d| {
            let before: usize = shape[..d].iter().product();
            let after: usize = shape[d + 1..].iter().product();
            let options = AvgPoolOptions::new([self.b, 1])
                .with_stride([1, 1])
                .with_padding([self.b / 2, 0]);
            let pooled = avg_pool2d(t.reshape([before, 1, shape[d], after]), options).slice([
                0..before,
                0..1,
                0..shape[d],
                0..after,
            ]);
            pooled.mul_scalar(self.b as f64).reshape(shape)
        })
    }
}

/// How the tensor splits into independent blocks: from the first block dim
/// to the last dim, contiguous, so that every window lies inside one.
struct Chunks {
    /// Elements per block.
    len: usize,
    /// Per block dim, its window as `(before, axis, inner)` in the block.
    lines: Vec<(usize, Axis, usize)>,
}

impl Chunks {
    fn new(shape: [usize; 4], dims: &[usize], b: usize) -> Chunks {
        let first = dims.iter().copied().min().unwrap_or(3);
        let lines = dims
            .iter()
            .map(|&d| {
                let before: usize = shape[first..d].iter().product();
                let inner: usize = shape[d + 1..].iter().product();
                (before, Axis::block(shape[d], b), inner)
            })
            .collect();
        Chunks {
            len: shape[first..].iter().product(),
            lines,
        }
    }
}

/// The seed probabilities of one step: `q = clamp(γ · s, 0, q_max)`.
#[derive(Clone, Copy)]
struct Seeds {
    gamma: f64,
    q_max: f64,
    exact: bool,
}

impl Seeds {
    /// `1 − q` and the slope's term `r` (`s / (1 − q)` below `q_max` when
    /// `exact`, else `s`) of every value, in f32 (as the composed ops): two
    /// passes without branches, so that both vectorise.
    fn fill(self, s: &[f32], kept: &mut [f32], rate: &mut [f32]) {
        let (gamma, q_max) = (self.gamma as f32, self.q_max as f32);
        for (k, &v) in kept.iter_mut().zip(s) {
            *k = 1.0 - (gamma * v).clamp(0.0, q_max);
        }
        if !self.exact {
            rate.copy_from_slice(s);
            return;
        }
        let floor = 1.0 - q_max;
        for ((r, &k), &v) in rate.iter_mut().zip(kept.iter()).zip(s) {
            *r = if k > floor { v / k } else { 0.0 };
        }
    }
}

/// One block's working space: the kept products, the slope sums, and the
/// buffer each window pass writes into.
struct Scratch {
    kept: Vec<f32>,
    rate: Vec<f32>,
    next: Vec<f32>,
}

impl Scratch {
    fn new(len: usize) -> Scratch {
        Scratch {
            kept: vec![0.0; len],
            rate: vec![0.0; len],
            next: vec![0.0; len],
        }
    }

    /// `[Σ w, Σ w·k, Σ w·k·R]` over one block (every `w` 1 without weights).
    fn sums(&mut self, chunks: &Chunks, seeds: Seeds, s: &[f32], w: Option<&[f32]>) -> [f64; 3] {
        seeds.fill(s, &mut self.kept, &mut self.rate);
        for &(before, axis, inner) in &chunks.lines {
            along(
                &self.kept,
                &mut self.next,
                (before, axis, inner),
                Combine::Product,
            );
            std::mem::swap(&mut self.kept, &mut self.next);
            along(
                &self.rate,
                &mut self.next,
                (before, axis, inner),
                Combine::Sum,
            );
            std::mem::swap(&mut self.rate, &mut self.next);
        }
        let mut sums = [0.0; 3];
        let kept_and_rate = self.kept.iter().zip(&self.rate);
        match w {
            None => {
                sums[0] = s.len() as f64;
                for (&k, &r) in kept_and_rate {
                    sums[1] += f64::from(k);
                    sums[2] += f64::from(k * r);
                }
            }
            Some(w) => {
                for ((&k, &r), &w) in kept_and_rate.zip(w) {
                    sums[0] += f64::from(w);
                    sums[1] += f64::from(w * k);
                    sums[2] += f64::from(w * k * r);
                }
            }
        }
        sums
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Combine {
    Product,
    Sum,
}

/// `dst` at every position: the product or sum of `src` over the window
/// along one axis of a `[before, axis.len, inner]` layout. Direct, not
/// running (a window is a handful of cells, and a product cannot be undone
/// by division where a factor is 0): one pass per offset in the window, each
/// over contiguous runs so that it vectorises.
fn along(src: &[f32], dst: &mut [f32], (before, axis, inner): (usize, Axis, usize), how: Combine) {
    let line = axis.len * inner;
    let len = axis.len as isize;
    let lines = src.chunks_exact(line).zip(dst.chunks_exact_mut(line));
    for (src, dst) in lines.take(before) {
        dst.fill(if how == Combine::Product { 1.0 } else { 0.0 });
        for shift in axis.shifts() {
            // Outputs j whose cell j + shift is real.
            let (lo, hi) = ((-shift).max(0), (len - shift).min(len));
            if lo >= hi {
                continue;
            }
            let out = &mut dst[lo as usize * inner..hi as usize * inner];
            let cells = &src[(lo + shift) as usize * inner..(hi + shift) as usize * inner];
            match how {
                Combine::Product => out.iter_mut().zip(cells).for_each(|(o, c)| *o *= c),
                Combine::Sum => out.iter_mut().zip(cells).for_each(|(o, c)| *o += c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The brute-force moments in f64: every position's window visited.
    fn reference(s: &[f32], shape: [usize; 4], job: &Job, g: f64, w: &[f32]) -> [f64; 2] {
        let at = |i: [usize; 4]| ((i[0] * shape[1] + i[1]) * shape[2] + i[2]) * shape[3] + i[3];
        let q = |v: f32| (g * f64::from(v)).clamp(0.0, job.q_max);
        let (mut total, mut m, mut fall) = (0.0, 0.0, 0.0);
        for (flat, &weight) in w.iter().enumerate() {
            let mut pos = [0; 4];
            let mut rest = flat;
            for d in (0..4).rev() {
                pos[d] = rest % shape[d];
                rest /= shape[d];
            }
            let (mut log_keep, mut rate) = (0.0, 0.0);
            let mut visit = |p: [usize; 4]| {
                let v = s[at(p)];
                log_keep += (1.0 - q(v)).ln();
                let live = q(v) < job.q_max;
                rate += match (job.exact, live) {
                    (false, _) => f64::from(v),
                    (true, true) => f64::from(v) / (1.0 - q(v)),
                    (true, false) => 0.0,
                };
            };
            let ranges: Vec<std::ops::Range<usize>> = (0..4)
                .map(|d| {
                    if !job.dims.contains(&d) {
                        return pos[d]..pos[d] + 1;
                    }
                    let from = pos[d].saturating_sub(job.b / 2);
                    let to = (pos[d] + job.b - job.b / 2).min(shape[d]);
                    from..to
                })
                .collect();
            for a in ranges[0].clone() {
                for b in ranges[1].clone() {
                    for c in ranges[2].clone() {
                        for d in ranges[3].clone() {
                            visit([a, b, c, d]);
                        }
                    }
                }
            }
            let weight = f64::from(weight);
            total += weight;
            m += log_keep.exp() * weight;
            fall += log_keep.exp() * rate * weight;
        }
        [m / total, fall / total]
    }

    /// On flex's one pass and from burn's ops alike: the brute-force
    /// moments, for 2-D and 1-D blocks, odd and even windows, both slopes,
    /// saturated seeds and a validity mask.
    #[test]
    fn block_keep_moments_equal_a_brute_force_count() {
        let device = Device::flex();
        let shape = [2, 3, 7, 6];
        let s = Tensor::<4>::random(shape, Distribution::Uniform(0.0, 3.0), &device);
        let values = s.clone().into_data().try_to_vec::<f32>().unwrap();
        let valid_values: Vec<f32> = (0..values.len())
            .map(|i| (i % 5 != 0) as u8 as f32)
            .collect();
        let valid = Tensor::<4>::from_data(TensorData::new(valid_values.clone(), shape), &device);
        let ones = vec![1.0; values.len()];
        for (dims, b) in [
            (vec![2, 3], 3),
            (vec![2, 3], 4),
            (vec![3], 5),
            (vec![2], 2),
            (vec![1], 3),
        ] {
            for exact in [false, true] {
                // γ = 0.4 saturates the largest values (q_max 0.9).
                for (masked, g) in [(false, 0.05), (true, 0.05), (false, 0.4)] {
                    let job = Job {
                        dims: dims.clone(),
                        b,
                        q_max: 0.9,
                        exact,
                    };
                    let gamma = Tensor::<4>::full([1, 1, 1, 1], g, &device);
                    let v = masked.then(|| valid.clone());
                    let w = if masked { &valid_values } else { &ones };
                    let want = reference(&values, shape, &job, g, w);
                    let fast = job.on_host(s.clone(), gamma.clone(), v.clone()).unwrap();
                    let composed = job.composed(s.clone(), gamma, v);
                    for (got, how) in [(fast, "one pass"), (composed, "composed")] {
                        for k in 0..2 {
                            let rel = (got[k] - want[k]).abs() / want[k].abs().max(1e-9);
                            assert!(
                                rel < 1e-4,
                                "{how} {dims:?} b={b} exact={exact} masked={masked} g={g}: {got:?} vs {want:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}
