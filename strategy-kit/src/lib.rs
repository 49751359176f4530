//! Block-dropping building blocks shared by the DropBlock and ProbDropBlock
//! families (2-D and 1-D), written once over the plugin API's host ops.
//!
//! Kept apart from `plugin-api`, whose version is the plugin interface
//! version: changing an algorithm here changes no interface. It needs
//! interface 1.5 (top-k ranking and validity maps from 1.2, ProbDropBlock's
//! `block_keep` from 1.4, `block_mask` and `mean_one` from 1.5).
//!
//! "Block dims" are the dimensions a block extends along: `[H, W]` (2 and 3 of
//! `[N, C, H, W]`) for 2-D, one axis for 1-D. Every helper takes them explicitly so
//! the same code serves both.

#![forbid(unsafe_code)]

use plugin_api::{BinaryOp, Ops, Pool, Reduce, Result, ScalarOp, Tensor, Unary};

/// Small constant of the DropBlock rescale, `numel / (sum + EPS)`.
pub const RESCALE_EPS: f64 = 1e-6;
/// Small constant of the salience normalisation, `s / (mean + EPS)`.
pub const NORM_EPS: f64 = 1e-12;

/// DropBlock's seed rate (Ghiasi et al. 2018) for a block of `b` over the block
/// dims `lens`: `p · Πlen / (b^k · Π(len - b + 1))`, `k = lens.len()`.
pub fn ghiasi_gamma(p: f64, b: usize, lens: &[usize]) -> f64 {
    let mut gamma = p;
    for &len in lens {
        gamma *= len as f64 / (b as f64 * (len - b + 1) as f64);
    }
    gamma
}

/// The author code's seed rate: `p / b^k`.
pub fn simple_gamma(p: f64, b: usize, block_dims: usize) -> f64 {
    p / (b as f64).powi(block_dims as i32)
}

/// How many of DropBlock's seed places (the valid centres, see [`pad_valid`])
/// have a block that covers each position of a block dim of `len`, for the
/// expansion's window (`b / 2` before, see [`window_pool`]). `b <= len`.
pub fn centre_cover(len: usize, b: usize) -> Vec<usize> {
    let (first, last) = ((b / 2) as i64, (len - 1 - (b - 1) / 2) as i64);
    (0..len as i64)
        .map(|j| {
            let from = (j - (b / 2) as i64).max(first);
            let to = (j - (b / 2) as i64 + b as i64 - 1).min(last);
            (to - from + 1).max(0) as usize
        })
        .collect()
}

/// DropBlock's expected dropped fraction over block dims `lens` with seeds
/// at rate `gamma` at the valid centres: the mean over positions of
/// `1 − (1 − γ)^c`, `c` the seeds whose block covers the position (a product
/// of [`centre_cover`] over the dims).
pub fn dropblock_expected_fraction(lens: &[usize], b: usize, gamma: f64) -> f64 {
    let keep = 1.0 - gamma.clamp(0.0, 1.0);
    let mut counts = vec![1usize];
    for &len in lens {
        let cover = centre_cover(len, b);
        counts = counts
            .iter()
            .flat_map(|&c| cover.iter().map(move |&d| c * d))
            .collect();
    }
    let kept: f64 = counts.iter().map(|&c| keep.powi(c as i32)).sum();
    1.0 - kept / counts.len() as f64
}

/// Clips the block size to the smallest block dim (and to at least 1).
pub fn clip_block(b: usize, shape: &[usize], block_dims: &[usize]) -> usize {
    block_dims
        .iter()
        .map(|&d| shape[d])
        .fold(b, usize::min)
        .max(1)
}

/// Pads a seed map drawn over the valid centres back to full size: `b / 2` before
/// and `(b - 1) / 2` after each block dim, with zeros.
pub fn pad_valid<'a>(seeds: Tensor<'a>, block_dims: &[usize], b: usize) -> Result<Tensor<'a>> {
    let rank = seeds.shape()?.len();
    let mut before = vec![0; rank];
    let mut after = vec![0; rank];
    for &d in block_dims {
        before[d] = b / 2;
        after[d] = (b - 1) / 2;
    }
    seeds.pad(&before, &after, 0.0)
}

/// Zeroes seeds outside the valid centres (where a whole block fits).
pub fn restrict_valid<'a>(seeds: Tensor<'a>, block_dims: &[usize], b: usize) -> Result<Tensor<'a>> {
    let shape = seeds.shape()?;
    let mut start = vec![0; shape.len()];
    let mut end = shape.clone();
    for &d in block_dims {
        start[d] = b / 2;
        end[d] = shape[d] - (b - 1) / 2;
    }
    pad_valid(seeds.slice(&start, &end)?, block_dims, b)
}

/// A stride-1 pool of window `b` (padding `b / 2`) over the block dims, cropped back
/// to size when `b` is even. Over the last two dims it is one `b x b` pool (the
/// fastest exact form on flex, measured in BENCHMARKS.md); otherwise one 1-D pool
/// per dim (max and mean are separable, so that is exact too).
pub fn window_pool<'a>(
    t: Tensor<'a>,
    kind: Pool,
    block_dims: &[usize],
    b: usize,
) -> Result<Tensor<'a>> {
    let shape = t.shape()?;
    let rank = shape.len();
    let out = if rank >= 2 && block_dims == [rank - 2, rank - 1] {
        t.pool2d(kind, [b, b], [1, 1], [b / 2, b / 2])?
    } else {
        let mut out = t;
        for &d in block_dims {
            out = out.pool1d(kind, d, b, 1, b / 2)?;
        }
        out
    };
    crop_even(out, &shape, block_dims, b)
}

/// Grows each seed into a `b`-wide block along every block dim (a stride-1 max-pool
/// of window `b`, see [`window_pool`]).
pub fn expand_blocks<'a>(seeds: Tensor<'a>, block_dims: &[usize], b: usize) -> Result<Tensor<'a>> {
    window_pool(seeds, Pool::Max, block_dims, b)
}

/// The author code's expansion: average pool of kernel `b` (padding counted), a
/// position is dropped when any seed falls in its window.
pub fn expand_blocks_avg<'a>(
    seeds: Tensor<'a>,
    block_dims: &[usize],
    b: usize,
) -> Result<Tensor<'a>> {
    window_pool(seeds, Pool::Avg, block_dims, b)?.scalar(ScalarOp::Gt, 0.0)
}

fn crop_even<'a>(
    t: Tensor<'a>,
    shape: &[usize],
    block_dims: &[usize],
    b: usize,
) -> Result<Tensor<'a>> {
    if b % 2 == 1 || block_dims.is_empty() {
        return Ok(t);
    }
    t.slice(&vec![0; shape.len()], shape)
}

/// `keep · numel(keep) / (sum(keep) + 1e-6)`: the expectation-preserving rescale.
pub fn rescale<'a>(keep: Tensor<'a>) -> Result<Tensor<'a>> {
    let numel: usize = keep.shape()?.iter().product();
    let factor = keep
        .dup()?
        .sum_all()?
        .add_scalar(RESCALE_EPS)?
        .rdiv_scalar(numel as f64)?;
    keep.mul(factor)
}

/// `1 - dropped`, rescaled.
pub fn keep_rescaled<'a>(dropped: Tensor<'a>) -> Result<Tensor<'a>> {
    rescale(dropped.rsub_scalar(1.0)?)
}

/// DropBlock's mask for an input of `shape`: uniform seeds at rate `gamma` over the
/// valid centres of `seed_shape` (which may have size-1 batch/channel dims for the
/// batch-wise and shared-channel switches), expanded into blocks.
pub fn dropblock_mask<'a>(
    ops: &Ops<'a>,
    seed_shape: &[usize],
    block_dims: &[usize],
    b: usize,
    gamma: f64,
) -> Result<Tensor<'a>> {
    let seeds = ops
        .bernoulli_scalar(seed_shape, gamma)?
        .mul(centre_map(ops, seed_shape, block_dims, b)?)?;
    keep_rescaled(expand_blocks(seeds, block_dims, b)?)
}

/// 1.0 at the valid centres of `shape` along the block dims ([`pad_valid`]'s
/// placement), size 1 along every other dim. Seeds drawn over the whole map
/// times this are distributed exactly as seeds drawn over the valid centres and
/// padded, but the slice and pad run on one small map: padding a whole
/// activation tensor cost LibTorch CUDA about 15 ms per ResNet-18 step
/// (BENCHMARKS.md).
pub fn centre_map<'a>(
    ops: &Ops<'a>,
    shape: &[usize],
    block_dims: &[usize],
    b: usize,
) -> Result<Tensor<'a>> {
    let mut row = vec![1; shape.len()];
    for &d in block_dims {
        row[d] = shape[d];
    }
    restrict_valid(ops.full(&row, 1.0)?, block_dims, b)
}

/// The validity map of this call's input (see [`Ops::valid`]); `None` without
/// padding.
pub fn input_validity<'a>(ops: &Ops<'a>) -> Option<Tensor<'a>> {
    ops.valid()
}

/// The valid centres along `axis` given a validity map `valid` of the seed
/// map's shape: positions whose whole block (`b // 2` before, `(b - 1) // 2`
/// after, as [`pad_valid`]) is real. Consumes `valid`.
pub fn valid_centres<'a>(valid: Tensor<'a>, axis: usize, b: usize) -> Result<Tensor<'a>> {
    // A position is a centre when no padding falls in its window: erode the real
    // positions with a max-pool of the padding, then drop the tensor's own edges.
    let padding = valid.rsub_scalar(1.0)?;
    let eroded = window_pool(padding, Pool::Max, &[axis], b)?.rsub_scalar(1.0)?;
    restrict_valid(eroded, &[axis], b)
}

/// [`rescale`] over the real positions only: `keep · n_real / (Σ_real keep + 1e-6)`,
/// with `valid` broadcastable to `keep`.
pub fn rescale_valid<'a>(keep: Tensor<'a>, valid: Option<Tensor<'a>>) -> Result<Tensor<'a>> {
    let Some(valid) = valid else {
        return rescale(keep);
    };
    let shape = keep.shape()?;
    let valid = valid.expand(&shape)?;
    let real = valid.dup()?.sum_all()?;
    let kept = keep.dup()?.mul(valid)?.sum_all()?.add_scalar(RESCALE_EPS)?;
    keep.mul(real.div(kept)?)
}

/// DropBlock's seed rate per sample when the block axis is padded: each
/// sample's real length `L` (`Σ valid` along `axis`, dims kept) in
/// `p · L / (b (L - b + 1))`, `L` taken as at least `b`.
pub fn ghiasi_gamma_per_sample<'a>(
    valid: Tensor<'a>,
    axis: usize,
    p: f64,
    b: usize,
) -> Result<Tensor<'a>> {
    let len = valid
        .reduce(Reduce::Sum, &[axis], true)?
        .clamp(b as f64, f64::MAX)?;
    let free = len.dup()?.add_scalar(1.0 - b as f64)?;
    len.div(free)?.mul_scalar(p / b as f64)
}

/// DropBlock1D's mask for seed maps of `seed_shape` (`[N, T, D]`, or `[N, T, 1]`
/// for whole tokens) with blocks along `axis`. With a validity map (`[N, T, 1]`),
/// seeds fall only where a whole block is real, the seed rate uses each sample's
/// real length when `axis` is the padded one, and the rescale counts real
/// positions only; without one it is exactly [`dropblock_mask`].
pub fn dropblock1d_mask<'a>(
    ops: &Ops<'a>,
    seed_shape: &[usize],
    axis: usize,
    b: usize,
    p: f64,
    gamma_scale: f64,
    valid: Option<Tensor<'a>>,
) -> Result<Tensor<'a>> {
    let Some(valid) = valid else {
        let gamma = gamma_scale * ghiasi_gamma(p, b, &[seed_shape[axis]]);
        return dropblock_mask(ops, seed_shape, &[axis], b, gamma);
    };
    let valid = valid.expand(seed_shape)?;
    let q = dropblock1d_seed_rates(ops, seed_shape, axis, b, p * gamma_scale, &valid)?;
    let seeds = q.clamp(0.0, 1.0)?.bernoulli()?;
    let keep = expand_blocks(seeds, &[axis], b)?.rsub_scalar(1.0)?;
    rescale_valid(keep, Some(valid))
}

/// DropBlock1D's seed probability at each position of a padded input (`valid`
/// of `seed_shape`): the rate for `p` (Ghiasi's, per sample along the padded
/// token axis) where a whole block is real, 0 elsewhere.
pub fn dropblock1d_seed_rates<'a>(
    ops: &Ops<'a>,
    seed_shape: &[usize],
    axis: usize,
    b: usize,
    p: f64,
    valid: &Tensor<'a>,
) -> Result<Tensor<'a>> {
    if axis == 1 {
        let centres = valid_centres(valid.dup()?, axis, b)?;
        return centres.mul(ghiasi_gamma_per_sample(valid.dup()?, axis, p, b)?);
    }
    // Along the hidden axis a token is all real or all padding: its centres are
    // the usual ones, no erosion needed. They are cut from a `[1, 1, D]` row and
    // broadcast, so the slice and pad run on one row, not the whole batch.
    centre_map(ops, seed_shape, &[axis], b)?
        .mul(valid.dup()?)?
        .mul_scalar(ghiasi_gamma(p, b, &[seed_shape[axis]]))
}

/// How ProbDropBlock measures salience.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Salience {
    /// `|x|` per position.
    Abs,
    /// `|x|` averaged over a `b`-window around each position (padding excluded).
    BlockMean,
}

/// Over which elements salience is normalised to mean 1: every dim from
/// `group_from` on (a trailing group), per index of the dims before it.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Normalize {
    Mean,
    Max,
    Softmax { tau: f64 },
}

/// Which positions ProbDropBlock favours.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Salient positions are dropped more often.
    High,
    /// The least salient are dropped more often (as the author's pre-paper code).
    Low,
}

/// Salience `s` of `x` (consumes `x`).
pub fn salience<'a>(
    x: Tensor<'a>,
    how: Salience,
    block_dims: &[usize],
    b: usize,
) -> Result<Tensor<'a>> {
    let s = x.abs()?;
    match how {
        Salience::Abs => Ok(s),
        Salience::BlockMean => window_pool(s, Pool::AvgExcludePad, block_dims, b),
    }
}

/// Normalises `s` so every group (dims `group_from..`) has mean 1, after turning it
/// around for [`Direction::Low`] (`max_group(s) - s`). A group with nothing to tell
/// apart (all zero after the direction) becomes uniform, 1 everywhere, instead of
/// `0 / 0`.
pub fn normalised_salience<'a>(
    s: Tensor<'a>,
    group_from: usize,
    normalize: Normalize,
    direction: Direction,
) -> Result<Tensor<'a>> {
    let shape = s.shape()?;
    let group: Vec<usize> = (group_from..shape.len()).collect();
    let s = match direction {
        Direction::High => s,
        Direction::Low => s.dup()?.reduce(Reduce::Max, &group, true)?.sub(s)?,
    };
    let to_mean_one = |t: Tensor<'a>| t.mean_one(group_from, NORM_EPS);
    match normalize {
        Normalize::Mean => to_mean_one(s),
        Normalize::Max => {
            let max = s.dup()?.reduce(Reduce::Max, &group, true)?;
            to_mean_one(s.div(max.add_scalar(NORM_EPS)?)?)
        }
        Normalize::Softmax { tau } => {
            let lead = &shape[..group_from];
            let numel_group: usize = shape[group_from..].iter().product();
            let mut flat = lead.to_vec();
            flat.push(numel_group);
            s.mul_scalar(1.0 / tau)?
                .reshape(&flat)?
                .softmax(group_from)?
                .mul_scalar(numel_group as f64)?
                .reshape(&shape)
        }
    }
}

/// [`normalised_salience`] when some positions are padding: `s` is zero there
/// already, and `valid` (of `s`'s shape) keeps padding out of every group's mean,
/// maximum and softmax, and out of the result (zero at padding).
pub fn normalised_salience_valid<'a>(
    s: Tensor<'a>,
    group_from: usize,
    normalize: Normalize,
    direction: Direction,
    valid: Tensor<'a>,
) -> Result<Tensor<'a>> {
    let shape = s.shape()?;
    let group: Vec<usize> = (group_from..shape.len()).collect();
    let real = valid
        .dup()?
        .reduce(Reduce::Sum, &group, true)?
        .clamp(1.0, f64::MAX)?;
    // s >= 0 and 0 at padding, so padding never raises a group's maximum.
    let s = match direction {
        Direction::High => s,
        Direction::Low => s
            .dup()?
            .reduce(Reduce::Max, &group, true)?
            .sub(s)?
            .mul(valid.dup()?)?,
    };
    let to_mean_one = |t: Tensor<'a>, valid: Tensor<'a>| -> Result<Tensor<'a>> {
        let mean = t
            .dup()?
            .reduce(Reduce::Sum, &group, true)?
            .div(real.dup()?)?;
        let empty = mean.dup()?.scalar(ScalarOp::Eq, 0.0)?.mul(valid)?;
        t.div(mean.add_scalar(NORM_EPS)?)?.add(empty)
    };
    match normalize {
        Normalize::Mean => to_mean_one(s, valid),
        Normalize::Max => {
            let max = s.dup()?.reduce(Reduce::Max, &group, true)?;
            to_mean_one(s.div(max.add_scalar(NORM_EPS)?)?, valid)
        }
        Normalize::Softmax { tau } => {
            let t = s.mul_scalar(1.0 / tau)?;
            let max = t.dup()?.reduce(Reduce::Max, &group, true)?;
            let e = t.sub(max)?.unary(plugin_api::Unary::Exp)?.mul(valid)?;
            // A group of padding only sums to 0: 0 / eps, not NaN (real
            // groups sum to at least 1, their maximum's exp(0)).
            let sum = e.dup()?.reduce(Reduce::Sum, &group, true)?;
            e.div(sum.add_scalar(NORM_EPS)?)?.mul(real)
        }
    }
}

/// Newton steps of the matched seed rate (see [`matched_gamma`]).
pub const MATCH_STEPS: usize = 2;
/// Seed probabilities are kept below 1 while solving (`log(1 − q)` finite).
const Q_MAX: f64 = 1.0 - 1e-6;
/// How far one Newton step may move `log γ`: up by 5 (keeps `γ` finite where
/// the kept fraction cannot move, salience zero everywhere), down by 1 (past
/// the root, where every seed saturates, the slope is 0 and an unbounded step
/// would fall far below the root).
const LOG_STEP: (f64, f64) = (-5.0, 1.0);

/// The sum of `t` over the expansion's window at every position: an average
/// pool that counts padding, times the window's size.
fn window_sum<'a>(t: Tensor<'a>, block_dims: &[usize], b: usize) -> Result<Tensor<'a>> {
    let cells = (b as f64).powi(block_dims.len() as i32);
    window_pool(t, Pool::Avg, block_dims, b)?.mul_scalar(cells)
}

/// The mean of `t` over every position, or over the real ones of `valid`
/// (broadcastable to `t`); a one-element tensor with all dims kept.
fn mean_over<'a>(t: Tensor<'a>, valid: Option<&Tensor<'a>>) -> Result<Tensor<'a>> {
    let shape = t.shape()?;
    let all: Vec<usize> = (0..shape.len()).collect();
    let Some(valid) = valid else {
        return t.reduce(Reduce::Mean, &all, true);
    };
    let valid = valid.dup()?.expand(&shape)?;
    let real = valid
        .dup()?
        .reduce(Reduce::Sum, &all, true)?
        .clamp(1.0, f64::MAX)?;
    t.mul(valid)?.reduce(Reduce::Sum, &all, true)?.div(real)
}

/// The probability that each position is kept when independent seeds with
/// probabilities `q` grow into blocks: `Π (1 − q_s)` over the seeds whose
/// block covers it, `exp` of the window sum of `log(1 − q)`.
pub fn kept_probability<'a>(q: Tensor<'a>, block_dims: &[usize], b: usize) -> Result<Tensor<'a>> {
    let log_keep = q.clamp(0.0, Q_MAX)?.rsub_scalar(1.0)?.unary(Unary::Log)?;
    window_sum(log_keep, block_dims, b)?.unary(Unary::Exp)
}

/// `log(−log(m))` of a one-element kept fraction `m` (kept inside (0, 1)).
fn log_neg_log<'a>(m: Tensor<'a>) -> Result<Tensor<'a>> {
    m.clamp(1e-30, 1.0 - 1e-7)?
        .unary(Unary::Log)?
        .mul_scalar(-1.0)?
        .unary(Unary::Log)
}

/// One seed rate `γ` (a one-element tensor) for the whole of `s_hat` such that
/// seeds with probabilities `q = clamp(γ · ŝ, 0, 1)` drop, in expectation, the
/// fraction whose complement is `kept_target` (a one-element tensor), over
/// the real positions of `valid`.
///
/// The mean kept probability `m(γ)` is about `exp(−γ · P)` averaged, `P` the
/// window sum of `ŝ`, so `log(−log m)` is close to linear in `log γ` with
/// slope 1: Newton steps in those coordinates, from `γ0 = −log(kept) / mean(P)`.
/// The first step takes the slope for small `q`, `m' ≈ −mean(kept · P)` (no
/// window sum); the last the exact one, `−mean(kept · window_sum(ŝ / (1 − q)))`
/// (a seed at `Q_MAX` adds nothing). Each step's two means are one host call
/// (`Tensor::block_keep`, interface 1.4). `bench/matched_solver.py` measures the
/// result within 0.01 % of the root on dense and clustered salience, and
/// within 0.8 % on softmax-peaked salience (`tau = 0.2`) up to `p = 0.4`,
/// and with 95 % of the salience zero, within 0.01 % up to `p = 0.2` and 6 %
/// at `p = 0.4` (a target 98 % of what its few seeds can drop at all).
pub fn matched_gamma<'a>(
    s_hat: &Tensor<'a>,
    kept_target: Tensor<'a>,
    block_dims: &[usize],
    b: usize,
    valid: Option<&Tensor<'a>>,
) -> Result<Tensor<'a>> {
    // At γ = 0 every seed is off and the slope's mean is mean(window_sum(ŝ)).
    let zero = kept_target.dup()?.mul_scalar(0.0)?;
    let (_, mean_reach) = s_hat.block_keep(&zero, valid, block_dims, b, Q_MAX, false)?;
    let target = log_neg_log(kept_target.dup()?)?;
    let mut gamma = kept_target
        .clamp(1e-30, 1.0)?
        .unary(Unary::Log)?
        .mul_scalar(-1.0)?
        .div(mean_reach.add_scalar(1e-12)?)?;
    for step in 0..MATCH_STEPS {
        let exact = step + 1 == MATCH_STEPS;
        // m(γ) and −m'(γ), in one host pass.
        let (m, fall) = s_hat.block_keep(&gamma, valid, block_dims, b, Q_MAX, exact)?;
        let m = m.clamp(1e-30, 1.0 - 1e-7)?;
        // d log(−log m) / d log γ = γ · (−m') / (m · (−log m)).
        let neg_log_m = m.dup()?.unary(Unary::Log)?.mul_scalar(-1.0)?;
        let dphi = gamma
            .dup()?
            .mul(fall)?
            .div(m.dup()?.mul(neg_log_m)?)?
            .add_scalar(1e-12)?;
        let step = log_neg_log(m)?
            .sub(target.dup()?)?
            .div(dphi)?
            .clamp(LOG_STEP.0, LOG_STEP.1)?;
        gamma = gamma.mul(step.mul_scalar(-1.0)?.unary(Unary::Exp)?)?;
    }
    Ok(gamma)
}

/// The author code's top-k reading: rank `s + 0.1 · U(0,1) · mean(s)` over the
/// whole tensor; the `floor(numel · p / b^k)` lowest (or, for [`Direction::High`],
/// highest) positions are seeds; expand with an average pool; rescale.
pub fn topk_block_mask<'a>(
    ops: &Ops<'a>,
    s: Tensor<'a>,
    p: f64,
    block_dims: &[usize],
    b: usize,
    direction: Direction,
) -> Result<Tensor<'a>> {
    let shape = s.shape()?;
    let numel: usize = shape.iter().product();
    let k = (numel as f64 * p / (b as f64).powi(block_dims.len() as i32)).floor() as usize;
    if k == 0 {
        return ops.full(&vec![1; shape.len()], 1.0);
    }
    let all: Vec<usize> = (0..shape.len()).collect();
    let mean = s.dup()?.reduce(Reduce::Mean, &all, true)?;
    let noise = ops.uniform(&shape)?.mul_scalar(0.1)?.mul(mean)?;
    let ranked = s.add(noise)?;
    // Highest k of r are the lowest k of -r.
    let ranked = match direction {
        Direction::Low => ranked,
        Direction::High => ranked.mul_scalar(-1.0)?,
    };
    let threshold = ranked.dup()?.reshape(&[numel])?.kth_smallest(k, 0)?;
    let threshold = threshold.reshape(&vec![1; shape.len()])?;
    let seeds = ranked.binary(BinaryOp::Le, threshold)?;
    let dropped = expand_blocks_avg(seeds, block_dims, b)?;
    keep_rescaled(dropped)
}

/// Which elements share one salience normalisation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Group {
    /// Per sample and channel (2-D) or per sample and token (1-D, hidden axis).
    Channel,
    /// Per sample.
    Sample,
    /// The whole tensor (as the author code).
    Batch,
}

/// Which seed rate ProbDropBlock uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GammaKind {
    /// One rate per call that drops DropBlock's expected fraction.
    Matched,
    Ghiasi,
    Simple,
}

/// ProbDropBlock's switches (shared by the 2-D and 1-D strategies).
#[derive(Clone, Debug, PartialEq)]
pub struct ProbConfig {
    pub block_size: usize,
    pub gamma_scale: f64,
    pub salience: Salience,
    pub group: Group,
    pub normalize: Normalize,
    pub direction: Direction,
    pub gamma: GammaKind,
    pub valid_only: bool,
    /// `mode = "topk"`: the author code's deterministic-rank reading.
    pub topk: bool,
}

impl ProbConfig {
    /// The parameter schema, with `default_block` as the block size default.
    pub fn schema(default_block: i64) -> Vec<plugin_api::ParamSpec> {
        use plugin_api::ParamSpec;
        vec![
            ParamSpec::int("block_size", default_block)
                .range(1.0, 1024.0)
                .help("block width b (clipped to the feature size)"),
            ParamSpec::float("gamma_scale", 1.0)
                .range(0.0, 1000.0)
                .help("multiplies the seed rate gamma"),
            ParamSpec::choice("mode", &["sample", "topk"])
                .help("sample: Bernoulli seeds with salience-weighted rate; topk: the author code's ranking"),
            ParamSpec::choice("salience", &["abs", "block_mean"])
                .help("s = |x|, or |x| averaged over a b-window"),
            ParamSpec::choice("group", &["channel", "sample", "batch"])
                .help("normalise salience to mean 1 per (sample, channel), per sample, or over the batch"),
            ParamSpec::choice("normalize", &["mean", "max", "softmax"])
                .help("s/mean(s); s/max(s) rescaled to mean 1; or softmax(s/tau) * group size"),
            ParamSpec::float("tau", 1.0)
                .range(1e-6, 1e6)
                .help("softmax temperature (normalize = \"softmax\")"),
            ParamSpec::choice("drop", &["high", "low"])
                .help("high: salient positions dropped more often; low: the least salient (author code)"),
            ParamSpec::choice("gamma", &["matched", "ghiasi", "simple"])
                .help("seed rate: matched (drops DropBlock's expected fraction), DropBlock's p*H*W/(b^2 (H-b+1)(W-b+1)) at every position, or p/b^2 (author code)"),
            ParamSpec::bool("valid_only", false)
                .help("restrict seeds to positions where a whole block fits"),
        ]
    }

    /// Reads validated parameters.
    pub fn from_params(params: &plugin_api::Params) -> Result<Self> {
        let pick = |name: &str, choices: &[&str]| -> Result<usize> {
            let value = params.choice(name)?;
            choices.iter().position(|c| *c == value).ok_or_else(|| {
                plugin_api::Error::new(format!("parameter `{name}`: unexpected {value:?}"))
            })
        };
        Ok(Self {
            block_size: params.usize("block_size")?,
            gamma_scale: params.f64("gamma_scale")?,
            topk: pick("mode", &["sample", "topk"])? == 1,
            salience: [Salience::Abs, Salience::BlockMean]
                [pick("salience", &["abs", "block_mean"])?],
            group: [Group::Channel, Group::Sample, Group::Batch]
                [pick("group", &["channel", "sample", "batch"])?],
            normalize: match pick("normalize", &["mean", "max", "softmax"])? {
                0 => Normalize::Mean,
                1 => Normalize::Max,
                _ => Normalize::Softmax {
                    tau: params.f64("tau")?,
                },
            },
            direction: [Direction::High, Direction::Low][pick("drop", &["high", "low"])?],
            gamma: [GammaKind::Matched, GammaKind::Ghiasi, GammaKind::Simple]
                [pick("gamma", &["matched", "ghiasi", "simple"])?],
            valid_only: params.bool("valid_only")?,
        })
    }

    /// The mask for `x` (of the mask's shape; its salience is taken here), with
    /// blocks along `block_dims`. The channel group starts at the first block dim.
    /// A padded input (see [`input_validity`]) goes to [`ProbConfig::mask_valid`].
    pub fn mask<'a>(
        &self,
        ops: &Ops<'a>,
        x: Tensor<'a>,
        p: f64,
        block_dims: &[usize],
    ) -> Result<Tensor<'a>> {
        match input_validity(ops) {
            Some(valid) => self.mask_valid(ops, x, p, block_dims, valid),
            None => self.mask_dense(ops, x, p, block_dims),
        }
    }

    /// The mask of a padded 1-D input (`x` `[N, T, D]` or token salience
    /// `[N, T, 1]`, `valid` broadcastable to it). Padding has zero salience and
    /// counts in no group's normalisation, gets no seeds, and is left out of the
    /// rescale; along the token axis the Ghiasi seed rate uses each sample's real
    /// length, and `valid_only` means "the whole block is real". In `topk` mode
    /// padding is never ranked among the seeds, while the seed count stays the
    /// author code's `floor(numel · p / b)` over the whole tensor.
    pub fn mask_valid<'a>(
        &self,
        ops: &Ops<'a>,
        x: Tensor<'a>,
        p: f64,
        block_dims: &[usize],
        valid: Tensor<'a>,
    ) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        let b = clip_block(self.block_size, &shape, block_dims);
        let valid = valid.expand(&shape)?;
        let s = salience(x, self.salience, block_dims, b)?.mul(valid.dup()?)?;
        if self.topk {
            // Padding ranks after every real position in either direction.
            let s = match self.direction {
                Direction::Low => s.add(valid.dup()?.rsub_scalar(1.0)?.mul_scalar(1e30)?)?,
                Direction::High => s,
            };
            let keep = topk_block_mask(ops, s, p, block_dims, b, self.direction)?;
            // topk rescaled over everything; redo it over the real positions.
            let kept = keep.expand(&shape)?.scalar(ScalarOp::Gt, 0.0)?;
            return rescale_valid(kept, Some(valid));
        }
        let group_from = match self.group {
            Group::Channel => block_dims[0],
            Group::Sample => 1,
            Group::Batch => 0,
        };
        let s_hat =
            normalised_salience_valid(s, group_from, self.normalize, self.direction, valid.dup()?)?;
        let allowed = if self.valid_only {
            valid_centres(valid.dup()?, block_dims[0], b)?
        } else {
            valid.dup()?
        };
        let s_hat = s_hat.mul(allowed)?;
        let q = match self.gamma {
            GammaKind::Matched => {
                let reference = p * self.gamma_scale;
                let db = dropblock1d_seed_rates(ops, &shape, block_dims[0], b, reference, &valid)?;
                let kept = mean_over(kept_probability(db, block_dims, b)?, Some(&valid))?;
                let gamma = matched_gamma(&s_hat, kept, block_dims, b, Some(&valid))?;
                s_hat.mul(gamma)?
            }
            GammaKind::Ghiasi if block_dims == [1] => {
                let gamma = ghiasi_gamma_per_sample(valid.dup()?, 1, p, b)?;
                s_hat.mul(gamma)?.mul_scalar(self.gamma_scale)?
            }
            GammaKind::Ghiasi => {
                let lens: Vec<usize> = block_dims.iter().map(|&d| shape[d]).collect();
                s_hat.mul_scalar(self.gamma_scale * ghiasi_gamma(p, b, &lens))?
            }
            GammaKind::Simple => {
                s_hat.mul_scalar(self.gamma_scale * simple_gamma(p, b, block_dims.len()))?
            }
        };
        let seeds = q.clamp(0.0, 1.0)?.bernoulli()?;
        let keep = expand_blocks(seeds, block_dims, b)?.rsub_scalar(1.0)?;
        rescale_valid(keep, Some(valid))
    }

    fn mask_dense<'a>(
        &self,
        ops: &Ops<'a>,
        x: Tensor<'a>,
        p: f64,
        block_dims: &[usize],
    ) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        let b = clip_block(self.block_size, &shape, block_dims);
        let s = salience(x, self.salience, block_dims, b)?;
        if self.topk {
            return topk_block_mask(ops, s, p, block_dims, b, self.direction);
        }
        let group_from = match self.group {
            Group::Channel => block_dims[0],
            Group::Sample => 1,
            Group::Batch => 0,
        };
        let s_hat = normalised_salience(s, group_from, self.normalize, self.direction)?;
        // Seeds only where a whole block fits: zero salience elsewhere, before
        // the solve, so that it counts only those seeds.
        let s_hat = if self.valid_only {
            s_hat.mul(centre_map(ops, &shape, block_dims, b)?)?
        } else {
            s_hat
        };
        let lens: Vec<usize> = block_dims.iter().map(|&d| shape[d]).collect();
        let ghiasi = self.gamma_scale * ghiasi_gamma(p, b, &lens);
        let one = vec![1; shape.len()];
        let gamma = match self.gamma {
            GammaKind::Matched => {
                let kept = 1.0 - dropblock_expected_fraction(&lens, b, ghiasi);
                matched_gamma(&s_hat, ops.full(&one, kept)?, block_dims, b, None)?
            }
            GammaKind::Ghiasi => ops.full(&one, ghiasi)?,
            GammaKind::Simple => ops.full(
                &one,
                self.gamma_scale * simple_gamma(p, b, block_dims.len()),
            )?,
        };
        s_hat.block_mask(&gamma, block_dims, b, RESCALE_EPS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghiasi_gamma_matches_the_formula() {
        // p * H * W / (b^2 (H - b + 1)(W - b + 1))
        let g = ghiasi_gamma(0.1, 5, &[16, 16]);
        assert!((g - 0.1 * 256.0 / (25.0 * 144.0)).abs() < 1e-15);
        let g1 = ghiasi_gamma(0.1, 4, &[128]);
        assert!((g1 - 0.1 * 128.0 / (4.0 * 125.0)).abs() < 1e-15);
        assert_eq!(simple_gamma(0.1, 5, 2), 0.1 / 25.0);
    }

    #[test]
    fn dropblock_expected_fraction_counts_the_seeds_over_each_position() {
        // One dim of 5, b = 3: centres 1..=3; position 0 is covered by centre
        // 1 only, 1 by 1 and 2, 2 by all three, 3 by 2 and 3, 4 by 3.
        assert_eq!(centre_cover(5, 3), [1, 2, 3, 2, 1]);
        // Even b: the window is b / 2 before and b / 2 - 1 after (the
        // specification's padding and crop), so position 0 has no cover.
        assert_eq!(centre_cover(6, 4), [0, 1, 2, 3, 3, 2]);
        assert_eq!(centre_cover(4, 1), [1, 1, 1, 1]);
        let g: f64 = 0.1;
        let want = 1.0
            - [1, 2, 3, 2, 1]
                .map(|c| (1.0 - g).powi(c))
                .iter()
                .sum::<f64>()
                / 5.0;
        assert!((dropblock_expected_fraction(&[5], 3, g) - want).abs() < 1e-15);
        // 2-D: the cover count is the product of the dims' counts.
        let two = dropblock_expected_fraction(&[5, 5], 3, g);
        let mut kept = 0.0;
        for a in [1, 2, 3, 2, 1] {
            for b in [1, 2, 3, 2, 1] {
                kept += (1.0 - g).powi(a * b);
            }
        }
        assert!((two - (1.0 - kept / 25.0)).abs() < 1e-15);
        // Sparse seeds: about p (slightly less, blocks overlap).
        let f = dropblock_expected_fraction(&[32, 32], 5, ghiasi_gamma(0.1, 5, &[32, 32]));
        assert!(f < 0.1 && f > 0.09, "{f}");
    }

    #[test]
    fn block_size_is_clipped_to_the_smallest_block_dim() {
        assert_eq!(clip_block(7, &[2, 3, 5, 9], &[2, 3]), 5);
        assert_eq!(clip_block(7, &[2, 3, 32, 32], &[2, 3]), 7);
        assert_eq!(clip_block(0, &[2, 3, 32, 32], &[2, 3]), 1);
    }
}
