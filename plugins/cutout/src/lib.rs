//! Cutout (DeVries & Taylor, 2017) on feature maps: each sample, with
//! probability p, loses one `size × size` square, the same in every channel,
//! centred on a position drawn uniformly from the map and clipped at its
//! borders. The kept values are rescaled by `numel / kept` over the batch, as
//! DropBlock does.
//!
//! The example of plugins/README.md's recipes for per-sample randomness
//! (`randint` with shape `[N, 1, 1, 1]`), integer coordinates (`arange`) and
//! choosing per sample (`select`), all of interface 1.3.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Error, Ops, ParamSpec, Params, Result, ScalarOp, Strategy, Tensor};

pub struct Cutout {
    size: usize,
}

impl Strategy for Cutout {
    const NAME: &'static str = "cutout";
    const DESCRIPTION: &'static str = "Cutout on feature maps: each sample, with probability \
        p, loses one size x size square (all channels), centred uniformly on the map and \
        clipped at its borders; rows cy - size/2 ..= cy - size/2 + size - 1. \
        m = keep * numel / (sum(keep) + 1e-6), shape [N, 1, H, W]. Input [N, C, H, W].";

    fn params() -> Vec<ParamSpec> {
        vec![ParamSpec::int("size", 4)
            .range(1.0, 1024.0)
            .help("side of the square, in feature-map positions")]
    }

    fn new(params: &Params) -> Result<Self> {
        Ok(Cutout {
            size: params.usize("size")?,
        })
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        let [n, _, h, w] = shape[..] else {
            return Err(Error::new(format!("needs [N, C, H, W], got {shape:?}")));
        };
        // [N, 1, H, 1] and [N, 1, 1, W]: whether each row (column) is inside
        // its sample's square.
        let rows = self.span(ops, n, h, 2)?;
        let cols = self.span(ops, n, w, 3)?;
        let square = rows.mul(cols)?; // [N, 1, H, W]
                                      // Per sample: cut (keep = 1 - square) or leave whole (keep = 1).
        let cut = ops.bernoulli_scalar(&[n, 1, 1, 1], ctx.p)?;
        let keep = ops.select(cut, square.rsub_scalar(1.0)?, ops.full(&[1], 1.0)?)?;
        rescale(keep, (n * h * w) as f64)
    }
}

impl Cutout {
    /// 1.0 where a position along `dim` (length `len`) lies inside its
    /// sample's span `[c - size/2, c - size/2 + size)`, `c` drawn per sample.
    fn span<'a>(&self, ops: &Ops<'a>, n: usize, len: usize, dim: usize) -> Result<Tensor<'a>> {
        let mut line = vec![1; 4];
        line[dim] = len;
        let centre = ops.randint(&[n, 1, 1, 1], 0, len as i64)?;
        // Offset of each position from the span's first one: 0..size inside.
        let offset = ops
            .arange(&line, dim)?
            .sub(centre)?
            .add_scalar((self.size / 2) as f64)?;
        let after_start = offset.dup()?.scalar(ScalarOp::Ge, 0.0)?;
        let before_end = offset.scalar(ScalarOp::Lt, self.size as f64)?;
        after_start.mul(before_end)
    }
}

/// `keep · numel / (Σ keep + 1e-6)`: the batch's mean activation kept.
fn rescale(keep: Tensor<'_>, numel: f64) -> Result<Tensor<'_>> {
    let total = keep.dup()?.sum_all()?.add_scalar(1e-6)?;
    keep.mul_scalar(numel)?.div(total)
}

plugin_api::export_strategy!(Cutout);
