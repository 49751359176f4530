//! Dropout (unstructured): every element kept independently with probability
//! `1 - p`; `m = keep / (1 - p)`.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Ops, ParamSpec, Params, Result, Strategy, Tensor};

pub struct Dropout;

impl Strategy for Dropout {
    const NAME: &'static str = "dropout";
    const DESCRIPTION: &'static str = "Unstructured dropout: each element is kept independently \
        with probability 1-p; m = keep / (1-p) (all zeros at p = 1).";

    fn params() -> Vec<ParamSpec> {
        Vec::new()
    }

    fn new(_: &Params) -> Result<Self> {
        Ok(Dropout)
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        let keep = ops.bernoulli_scalar(&shape, 1.0 - ctx.p)?;
        if ctx.p >= 1.0 {
            return Ok(keep);
        }
        keep.mul_scalar(1.0 / (1.0 - ctx.p))
    }
}

plugin_api::export_strategy!(Dropout);
