//! Block-dropping building blocks shared by the DropBlock and ProbDropBlock
//! families (2-D and 1-D), written once over the plugin API's host ops.
//!
//! Kept apart from `plugin-api`, whose version is the plugin interface
//! version: changing an algorithm here changes no interface. It needs
//! interface 1.2 (top-k ranking and validity maps).
//!
//! "Block dims" are the dimensions a block extends along: `[H, W]` (2 and 3 of
//! `[N, C, H, W]`) for 2-D, one axis for 1-D. Every helper takes them explicitly so
//! the same code serves both.

use plugin_api::{BinaryOp, Ops, Pool, Reduce, Result, ScalarOp, Tensor};

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
    let padded_axis = axis == 1;
    // Along the hidden axis a token is all real or all padding: its centres are
    // the usual ones, no erosion needed. They are cut from a `[1, 1, D]` row and
    // broadcast, so the slice and pad run on one row, not the whole batch.
    let centres = if padded_axis {
        valid_centres(valid.dup()?, axis, b)?
    } else {
        centre_map(ops, seed_shape, &[axis], b)?.mul(valid.dup()?)?
    };
    let q = if padded_axis {
        let gamma = ghiasi_gamma_per_sample(valid.dup()?, axis, p, b)?.mul_scalar(gamma_scale)?;
        centres.mul(gamma)?
    } else {
        centres.mul_scalar(gamma_scale * ghiasi_gamma(p, b, &[seed_shape[axis]]))?
    };
    let seeds = q.clamp(0.0, 1.0)?.bernoulli()?;
    let keep = expand_blocks(seeds, &[axis], b)?.rsub_scalar(1.0)?;
    rescale_valid(keep, Some(valid))
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
    let to_mean_one = |t: Tensor<'a>| -> Result<Tensor<'a>> {
        let mean = t.dup()?.reduce(Reduce::Mean, &group, true)?;
        let empty = mean.dup()?.scalar(ScalarOp::Eq, 0.0)?;
        t.div(mean.add_scalar(NORM_EPS)?)?.add(empty)
    };
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
            let sum = e.dup()?.reduce(Reduce::Sum, &group, true)?;
            e.div(sum)?.mul(real)
        }
    }
}

/// ProbDropBlock's mask from a seed probability map `q = clamp(gamma · ŝ, 0, 1)`:
/// Bernoulli seeds (optionally only at valid centres), expanded and rescaled.
pub fn prob_block_mask<'a>(
    s_hat: Tensor<'a>,
    gamma: f64,
    block_dims: &[usize],
    b: usize,
    valid_only: bool,
) -> Result<Tensor<'a>> {
    let q = s_hat.mul_scalar(gamma)?.clamp(0.0, 1.0)?;
    let mut seeds = q.bernoulli()?;
    if valid_only {
        seeds = restrict_valid(seeds, block_dims, b)?;
    }
    keep_rescaled(expand_blocks(seeds, block_dims, b)?)
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
            ParamSpec::choice("gamma", &["ghiasi", "simple"])
                .help("seed rate: DropBlock's p*H*W/(b^2 (H-b+1)(W-b+1)), or p/b^2 (author code)"),
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
            gamma: [GammaKind::Ghiasi, GammaKind::Simple][pick("gamma", &["ghiasi", "simple"])?],
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
        let axis = block_dims[0];
        let q = match self.gamma {
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
        let allowed = if self.valid_only {
            valid_centres(valid.dup()?, axis, b)?
        } else {
            valid.dup()?
        };
        let seeds = q.clamp(0.0, 1.0)?.mul(allowed)?.bernoulli()?;
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
        let lens: Vec<usize> = block_dims.iter().map(|&d| shape[d]).collect();
        let gamma = self.gamma_scale
            * match self.gamma {
                GammaKind::Ghiasi => ghiasi_gamma(p, b, &lens),
                GammaKind::Simple => simple_gamma(p, b, block_dims.len()),
            };
        prob_block_mask(s_hat, gamma, block_dims, b, self.valid_only)
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
    fn block_size_is_clipped_to_the_smallest_block_dim() {
        assert_eq!(clip_block(7, &[2, 3, 5, 9], &[2, 3]), 5);
        assert_eq!(clip_block(7, &[2, 3, 32, 32], &[2, 3]), 7);
        assert_eq!(clip_block(0, &[2, 3, 32, 32], &[2, 3]), 1);
    }
}
