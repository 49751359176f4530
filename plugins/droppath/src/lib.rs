//! DropPath / stochastic depth: one Bernoulli(1 - p) per sample on a residual
//! branch's output; `m = keep / (1 - p)`, shape `[N, 1, 1, ...]`.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Ops, ParamSpec, Params, Result, Strategy, Tensor};

pub struct DropPath;

impl Strategy for DropPath {
    const NAME: &'static str = "droppath";
    const DESCRIPTION: &'static str = "DropPath / stochastic depth: one Bernoulli(1-p) per sample \
        on a residual branch; m = keep / (1-p), shape [N, 1, 1, 1].";

    fn params() -> Vec<ParamSpec> {
        Vec::new()
    }

    fn new(_: &Params) -> Result<Self> {
        Ok(DropPath)
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        let mut mask_shape = vec![1; shape.len()];
        mask_shape[0] = shape[0];
        let keep = ops.bernoulli_scalar(&mask_shape, 1.0 - ctx.p)?;
        if ctx.p >= 1.0 {
            return Ok(keep);
        }
        keep.mul_scalar(1.0 / (1.0 - ctx.p))
    }
}

plugin_api::export_strategy!(DropPath);
