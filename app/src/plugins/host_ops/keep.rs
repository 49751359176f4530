//! Interface 1.4's `block_keep`: the two means ProbDropBlock's matched-rate
//! solve needs at each step, in one fused pass on the CPU (the values read
//! once, in place on flex; products and sums over each window in cache-sized
//! scratch) and composed from burn's ops on a GPU.

use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};
use plugin_api::abi::{BlockKeepArgs, Handle};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

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
        let job = Job {
            dims: block_dims(args.dims, args.block, s.rank)?,
            b: args.block as usize,
            q_max: args.q_max,
            exact: args.exact,
        };
        let both: Entry = entry_of(job.moments(s.tensor, gamma, valid)?, &[2])?;
        Ok(both)
    })
}

/// The block dimensions of a bit mask of logical ones, as dimensions of the
/// stored rank-4 tensor; refused when there is none or the block is empty.
pub(super) fn block_dims(mask: u32, block: u32, rank: usize) -> Result<Vec<usize>, String> {
    let dims: Vec<usize> = (0..rank)
        .filter(|d| mask & (1 << d) != 0)
        .map(|d| d + 4 - rank)
        .collect();
    if dims.is_empty() || block == 0 {
        return Err("needs a block dimension and a block of at least 1".into());
    }
    Ok(dims)
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
        if !on_cpu(&device) {
            return Ok(self.composed(s, gamma, valid));
        }
        let [m, fall] = self.on_host(s, gamma, valid)?;
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
        let device = s.device();
        let chunks = Chunks::cached(s.dims(), &self.dims, self.b);
        let s = Values::of(s)?;
        let g = f64::from(Values::first_of(gamma)?);
        let weights = valid.map(Values::of).transpose()?;
        let weights = weights.as_ref().map(Values::as_slice);
        let seeds = Seeds {
            gamma: g,
            q_max: self.q_max,
            exact: self.exact,
        };
        // At γ = 0 without weights a chunk is one weighted sum (`Scratch::sums`):
        // waking the other core would cost more than the sum.
        let light = seeds.gamma <= 0.0 && weights.is_none();
        let sums = if !light && parallel_pays(&device, s.as_slice().len()) {
            s.as_slice()
                .par_chunks(chunks.len)
                .enumerate()
                .map_init(
                    || Scratch::new(chunks.len),
                    |scratch, (i, values)| chunks.sums(scratch, seeds, values, weights, i),
                )
                .reduce(|| [0.0; 3], add)
        } else {
            let mut scratch = Scratch::new(chunks.len);
            s.as_slice()
                .chunks(chunks.len)
                .enumerate()
                .map(|(i, values)| chunks.sums(&mut scratch, seeds, values, weights, i))
                .fold([0.0; 3], add)
        };
        let total = sums[0].max(1.0);
        Ok([sums[1] / total, sums[2] / total])
    }

    /// The same from burn's ops (each window sum as one average pool per
    /// block dim), left on the device: nothing is read back, so a GPU is
    /// never made to wait.
    fn composed(&self, s: Tensor<4>, gamma: Tensor<4>, valid: Option<Tensor<4>>) -> Tensor<4> {
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
        let (m, fall) = match valid {
            Some(weight) => {
                let total = weight.clone().sum().clamp_min(1.0);
                let m = (kept.clone() * weight.clone()).sum() / total.clone();
                (m, (kept * rate * weight).sum() / total)
            }
            // Every position counts: means over the known count, with no map
            // of ones to build and multiply (each a kernel on a GPU).
            None => {
                let n = kept.shape().num_elements() as f64;
                let m = kept.clone().sum().div_scalar(n);
                (m, (kept * rate).sum().div_scalar(n))
            }
        };
        Tensor::cat(vec![m, fall], 0).reshape([1, 1, 1, 2])
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

/// Whether `device` computes on this machine's CPU: there the fused host
/// pass wins (on LibTorch's CPU too, after one copy of the values: the
/// composed ops took 6× DropBlock's mask time there); a GPU keeps the
/// composed ops on the device.
fn on_cpu(device: &Device) -> bool {
    *device == Device::flex() || is_libtorch_cpu(device)
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn-tch, kept on purpose (architecture.md)
fn is_libtorch_cpu(device: &Device) -> bool {
    *device == Device::libtorch()
}

#[cfg(not(feature = "tch"))]
fn is_libtorch_cpu(_: &Device) -> bool {
    false
}

/// How the tensor splits into independent blocks: from the first block dim
/// to the last dim, contiguous, so that every window lies inside one.
pub(super) struct Chunks {
    /// Elements per block.
    pub(super) len: usize,
    /// Per block dim, one pass per offset in its window.
    pub(super) passes: Vec<Vec<Pass>>,
    /// How many windows hold each cell: at `γ = 0` the slope's sum of window
    /// sums is one weighted sum.
    cover: Vec<f32>,
}

/// One offset of a window over a block taken as flat: output `i` combines
/// cell `i + step` where `real` (the cell lies on the output's own line):
/// all bits set there, none elsewhere, so that the choice is two bitwise
/// operations in the vectorised loop (a `bool` costs byte unpacking).
/// Flat runs vectorise where a line of 14 cells would not.
pub(super) struct Pass {
    step: isize,
    lo: usize,
    hi: usize,
    real: Vec<u32>,
}

/// What a [`Chunks`] layout depends on.
type Layout = ([usize; 4], Vec<usize>, usize);

/// Layouts already worked out: a mask's shapes repeat every step, and a
/// layout costs as much as a pass (a division per cell of every window pass).
static LAYOUTS: Mutex<Option<HashMap<Layout, Arc<Chunks>>>> = Mutex::new(None);

/// Enough for every slot of a model; past it the map starts again.
const LAYOUTS_KEPT: usize = 32;

impl Chunks {
    /// The layout for this shape, window and block dims, made once.
    pub(super) fn cached(shape: [usize; 4], dims: &[usize], b: usize) -> Arc<Chunks> {
        let key = (shape, dims.to_vec(), b);
        let mut guard = LAYOUTS.lock().unwrap_or_else(PoisonError::into_inner);
        let map = guard.get_or_insert_with(HashMap::new);
        if let Some(chunks) = map.get(&key) {
            return Arc::clone(chunks);
        }
        if map.len() >= LAYOUTS_KEPT {
            map.clear();
        }
        let chunks = Arc::new(Chunks::new(shape, dims, b));
        map.insert(key, Arc::clone(&chunks));
        chunks
    }

    fn new(shape: [usize; 4], dims: &[usize], b: usize) -> Chunks {
        let first = dims.iter().copied().min().unwrap_or(3);
        let block: usize = shape[first..].iter().product();
        let len = block * blocks_per_chunk(shape[..first].iter().product(), block);
        let passes = dims
            .iter()
            .map(|&d| {
                let inner: usize = shape[d + 1..].iter().product();
                let axis = Axis::block(shape[d], b);
                axis.shifts()
                    .map(|shift| Pass::new(len, axis.len, inner, shift))
                    .collect()
            })
            .collect::<Vec<Vec<Pass>>>();
        let mut cover = vec![1.0; len];
        for dim in &passes {
            let mut count = vec![0.0; len];
            for pass in dim {
                for (i, _) in (pass.lo..pass.hi).zip(&pass.real).filter(|(_, r)| **r != 0) {
                    count[(i as isize + pass.step) as usize] += 1.0;
                }
            }
            cover.iter_mut().zip(&count).for_each(|(c, n)| *c *= n);
        }
        Chunks { len, passes, cover }
    }

    /// Block `i`'s sums (see [`Scratch::sums`]), its weights cut from `weights`.
    fn sums(
        &self,
        scratch: &mut Scratch,
        seeds: Seeds,
        values: &[f32],
        weights: Option<&[f32]>,
        i: usize,
    ) -> [f64; 3] {
        let w = weights.map(|w| &w[i * self.len..][..self.len]);
        pulp::Arch::new().dispatch(ChunkSums {
            scratch,
            chunks: self,
            seeds,
            s: values,
            w,
        })
    }
}

/// One chunk's [`Scratch::sums`] as a `pulp` operation: inlined into its
/// dispatch (no closure, whose body would be compiled apart), the loops are
/// compiled for the CPU's widest vectors, AVX2 or AVX-512.
struct ChunkSums<'s> {
    scratch: &'s mut Scratch,
    chunks: &'s Chunks,
    seeds: Seeds,
    s: &'s [f32],
    w: Option<&'s [f32]>,
}

impl pulp::WithSimd for ChunkSums<'_> {
    type Output = [f64; 3];

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> [f64; 3] {
        self.scratch.sums(self.chunks, self.seeds, self.s, self.w)
    }
}

/// Elements a chunk should hold: its passes run as flat loops this long
/// (a 7×7 plane alone is too short to vectorise or to pay for its task),
/// and its three scratch buffers stay in L1/L2.
const CHUNK_TARGET: usize = 4096;

/// How many of the `count` independent blocks of `block` elements make one
/// chunk: the most that fit [`CHUNK_TARGET`] and divide `count`, so that
/// every chunk has the same length (the passes are laid out for one length).
/// A window never crosses into another block: each pass's `real` flags are
/// worked out per line, whatever block the line is in.
fn blocks_per_chunk(count: usize, block: usize) -> usize {
    let most = (CHUNK_TARGET / block.max(1)).clamp(1, count.max(1));
    (1..=most)
        .rev()
        .find(|&k| count.is_multiple_of(k))
        .unwrap_or(1)
}

fn add(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// Whether both cores beat one for a pass over `n` values. Always on flex
/// (whose own ops share rayon's pool); on LibTorch's CPU only for long
/// passes: LibTorch's OpenMP workers keep spinning for a while after each of
/// its ops, and a rayon pass shorter than that competes with them (measured:
/// [32, 64, 16, 16] 22 ms one thread against 26 ms two, [128, 256, 14, 14]
/// 342 ms against 299 ms, the whole matched mask).
fn parallel_pays(device: &Device, n: usize) -> bool {
    const LIBTORCH_PARALLEL_FROM: usize = 1 << 22;
    *device == Device::flex() || n >= LIBTORCH_PARALLEL_FROM
}

impl Pass {
    fn new(len: usize, axis_len: usize, inner: usize, shift: isize) -> Pass {
        let step = shift * inner as isize;
        let lo = (-step).max(0) as usize;
        let hi = (len as isize - step.max(0)).max(lo as isize) as usize;
        let real = (lo..hi)
            .map(|i| {
                let j = ((i / inner) % axis_len) as isize + shift;
                if (0..axis_len as isize).contains(&j) {
                    u32::MAX
                } else {
                    0
                }
            })
            .collect();
        Pass { step, lo, hi, real }
    }

    /// `dst` combined with the cells this pass reaches in `src`.
    #[inline(always)] // inside `pulp` dispatch: compiled for its vectors
    fn apply(&self, src: &[f32], dst: &mut [f32], how: Combine) {
        let out = &mut dst[self.lo..self.hi];
        let from = (self.lo as isize + self.step) as usize;
        let cells = &src[from..from + out.len()];
        let run = out.iter_mut().zip(cells).zip(&self.real);
        let pick =
            |c: f32, r: u32, other: f32| f32::from_bits(c.to_bits() & r | other.to_bits() & !r);
        match how {
            Combine::Product => run.for_each(|((o, &c), &r)| *o *= pick(c, r, 1.0)),
            Combine::Sum => run.for_each(|((o, &c), &r)| *o += pick(c, r, 0.0)),
            Combine::Max => run.for_each(|((o, &c), &r)| *o = o.max(pick(c, r, 0.0))),
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
    #[inline(always)] // inside `pulp` dispatch: compiled for its vectors
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
    #[inline(always)] // inside `pulp` dispatch: compiled for its vectors
    fn sums(&mut self, chunks: &Chunks, seeds: Seeds, s: &[f32], w: Option<&[f32]>) -> [f64; 3] {
        // At γ = 0 (the solve's start) every `1 − q` is 1 and so is each product.
        let seeded = seeds.gamma > 0.0;
        if !seeded && w.is_none() {
            let reach = lane_sum([s, &chunks.cover]);
            return [s.len() as f64, s.len() as f64, reach];
        }
        seeds.fill(s, &mut self.kept, &mut self.rate);
        for passes in &chunks.passes {
            if seeded {
                along(&self.kept, &mut self.next, passes, Combine::Product);
                std::mem::swap(&mut self.kept, &mut self.next);
            }
            along(&self.rate, &mut self.next, passes, Combine::Sum);
            std::mem::swap(&mut self.rate, &mut self.next);
        }
        let (kept, rate) = (&self.kept[..], &self.rate[..]);
        match w {
            None => [s.len() as f64, lane_sum([kept]), lane_sum([kept, rate])],
            Some(w) => [
                lane_sum([w]),
                lane_sum([w, kept]),
                lane_sum([w, kept, rate]),
            ],
        }
    }
}

/// Lanes of [`lane_sum`]: wide enough to fill the vector registers, each
/// lane a short sum of one chunk (at most [`CHUNK_TARGET`] / 16 terms).
const LANES: usize = 16;

/// `Σ_i Π_k parts[k][i]` (the parts of equal length), in f32 lanes side by
/// side, vectorised, their total in f64: a chunk's lanes hold a few hundred
/// terms each (f32 is exact enough there), the chunks add up in f64.
#[inline(always)] // inside `pulp` dispatch: compiled for its vectors
pub(super) fn lane_sum<const N: usize>(parts: [&[f32]; N]) -> f64 {
    let len = parts[0].len();
    let whole = len - len % LANES;
    let mut lanes = [0.0f32; LANES];
    for base in (0..whole).step_by(LANES) {
        let cells: [&[f32; LANES]; N] = parts.map(|p| {
            p[base..base + LANES]
                .try_into()
                .expect("a slice of LANES cells")
        });
        for (j, lane) in lanes.iter_mut().enumerate() {
            *lane += cells.iter().map(|c| c[j]).product::<f32>();
        }
    }
    let tail: f64 = (whole..len)
        .map(|i| f64::from(parts.iter().map(|p| p[i]).product::<f32>()))
        .sum();
    lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + tail
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Combine {
    Product,
    Sum,
    /// Of values `>= 0` (seeds): 0 where the window holds none.
    Max,
}

/// `dst` at every position: the product, sum or maximum of `src` over the
/// window along one block dim (its `passes`). Direct, not running: a window
/// is a handful of cells, and a product cannot be undone by division where
/// a factor is 0. Every window holds its own cell (offset 0, on every
/// line), so `dst` starts as a copy of `src` and the other offsets follow.
#[inline(always)] // inside `pulp` dispatch: compiled for its vectors
pub(super) fn along(src: &[f32], dst: &mut [f32], passes: &[Pass], how: Combine) {
    debug_assert!(passes.iter().any(|p| p.step == 0));
    dst.copy_from_slice(src);
    for pass in passes.iter().filter(|p| p.step != 0) {
        pass.apply(src, dst, how);
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
                for (masked, g) in [(false, 0.05), (true, 0.05), (false, 0.4), (false, 0.0)] {
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
                    let composed = job.composed(s.clone(), gamma, v).into_data();
                    let composed = composed.try_to_vec::<f32>().unwrap();
                    let composed = [f64::from(composed[0]), f64::from(composed[1])];
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
