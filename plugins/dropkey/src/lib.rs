//! DropKey (Li et al., CVPR 2023): each attention logit kept independently
//! with probability `1 - p`, as a 0/1 keep-mask and never rescaled; the host
//! sets a dropped logit to a large negative value before the softmax, so the
//! softmax spreads the weight over the kept keys.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Ops, ParamSpec, Params, Result, Strategy, Tensor};

pub struct DropKey;

impl Strategy for DropKey {
    const NAME: &'static str = "dropkey";
    const DESCRIPTION: &'static str = "DropKey: each attention logit [N, heads, queries, keys] \
        is kept independently with probability 1-p; the mask is 0/1, not rescaled. Meant for the \
        transformer's `layerN.keys` slots (slots = [\"layer*.keys\"], depth_rule = \
        \"linear-down\" for the paper's rate falling with depth); elsewhere it is dropout without \
        the 1/(1-p) rescale.";

    fn params() -> Vec<ParamSpec> {
        Vec::new()
    }

    fn new(_: &Params) -> Result<Self> {
        Ok(DropKey)
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        ops.bernoulli_scalar(&x.shape()?, 1.0 - ctx.p)
    }
}

plugin_api::export_strategy!(DropKey);
