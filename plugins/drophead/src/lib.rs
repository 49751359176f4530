//! DropHead: Bernoulli(1 - p) per (sample, head) on attention outputs, rescaled
//! per sample by `heads / kept_heads`.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Error, Ops, ParamSpec, Params, Reduce, Result, Strategy, Tensor};

pub struct DropHead {
    heads_dim: usize,
}

impl Strategy for DropHead {
    const NAME: &'static str = "drophead";
    const DESCRIPTION: &'static str = "DropHead: one Bernoulli(1-p) per (sample, head) on the \
        attention output [N, heads, T, d] (heads_dim selects the heads dimension); each sample is \
        rescaled by heads / kept_heads. A sample with every head dropped gets an all-zero mask.";

    fn params() -> Vec<ParamSpec> {
        vec![ParamSpec::int("heads_dim", 1)
            .range(1.0, 7.0)
            .help("dimension of the input that indexes attention heads")]
    }

    fn new(params: &Params) -> Result<Self> {
        Ok(DropHead {
            heads_dim: params.usize("heads_dim")?,
        })
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        if self.heads_dim >= shape.len() {
            return Err(Error::new(format!(
                "drophead: heads_dim {} out of range for input {shape:?}",
                self.heads_dim
            )));
        }
        let heads = shape[self.heads_dim];
        let mut mask_shape = vec![1; shape.len()];
        mask_shape[0] = shape[0];
        mask_shape[self.heads_dim] = heads;
        let keep = ops.bernoulli_scalar(&mask_shape, 1.0 - ctx.p)?;
        // heads / max(kept, 1): an all-dropped sample stays all zero instead of NaN.
        let kept = keep.dup()?.reduce(Reduce::Sum, &[self.heads_dim], true)?;
        let scale = kept.clamp(1.0, f64::MAX)?.rdiv_scalar(heads as f64)?;
        keep.mul(scale)
    }
}

plugin_api::export_strategy!(DropHead);
