//! Timing probe: DropBlock drawn three ways (PROBE_VARIANT = pad | row | bern).
use plugin_api::blocks::{clip_block, expand_blocks, ghiasi_gamma, keep_rescaled, pad_valid, restrict_valid};
use plugin_api::{Ctx, Ops, ParamSpec, Params, Result, Strategy, Tensor};

pub struct Probe { block_size: usize }

impl Strategy for Probe {
    const NAME: &'static str = "dropblockprobe";
    const DESCRIPTION: &'static str = "timing probe";
    fn params() -> Vec<ParamSpec> { vec![ParamSpec::int("block_size", 3).range(1.0, 64.0)] }
    fn new(params: &Params) -> Result<Self> { Ok(Self { block_size: params.usize("block_size")? }) }
    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        let (h, w) = (shape[2], shape[3]);
        let dims = [2, 3];
        let b = clip_block(self.block_size, &shape, &dims);
        let gamma = ghiasi_gamma(ctx.p, b, &[h, w]);
        let variant = std::env::var("PROBE_VARIANT").unwrap_or_else(|_| "pad".into());
        let seeds = match variant.as_str() {
            "row" => {
                let centres = restrict_valid(ops.full(&[1, 1, h, w], 1.0)?, &dims, b)?;
                ops.bernoulli_scalar(&shape, gamma)?.mul(centres)?
            }
            "bern" => {
                let valid = [shape[0], shape[1], h - b + 1, w - b + 1];
                pad_valid(ops.full(&valid, gamma)?.bernoulli()?, &dims, b)?
            }
            _ => {
                let valid = [shape[0], shape[1], h - b + 1, w - b + 1];
                pad_valid(ops.bernoulli_scalar(&valid, gamma)?, &dims, b)?
            }
        };
        keep_rescaled(expand_blocks(seeds, &dims, b)?)
    }
}

plugin_api::export_strategy!(Probe);
