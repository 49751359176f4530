//! Dropout2d / SpatialDropout: one Bernoulli(1 - p) draw per (sample, channel),
//! shared by the whole feature map; `m = keep / (1 - p)`, shape `[N, C, 1, ...]`.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Error, Ops, ParamSpec, Params, Result, Strategy, Tensor};

pub struct Dropout2d;

impl Strategy for Dropout2d {
    const NAME: &'static str = "dropout2d";
    const DESCRIPTION: &'static str = "Dropout2d / SpatialDropout: one Bernoulli(1-p) draw per \
        (sample, channel) shared by the whole map; m = keep / (1-p), shape [N, C, 1, 1]. \
        Input [N, C, ...] of rank >= 3.";

    fn params() -> Vec<ParamSpec> {
        Vec::new()
    }

    fn new(_: &Params) -> Result<Self> {
        Ok(Dropout2d)
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        if shape.len() < 3 {
            return Err(Error::new(format!(
                "dropout2d needs [N, C, ...], got {shape:?}"
            )));
        }
        let mut mask_shape = vec![1; shape.len()];
        mask_shape[..2].copy_from_slice(&shape[..2]);
        let keep = ops.bernoulli_scalar(&mask_shape, 1.0 - ctx.p)?;
        if ctx.p >= 1.0 {
            return Ok(keep);
        }
        keep.mul_scalar(1.0 / (1.0 - ctx.p))
    }
}

plugin_api::export_strategy!(Dropout2d);
