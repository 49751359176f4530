//! DropBlock1D: DropBlock with blocks of `b` consecutive positions along one axis
//! of a `[N, T, D]` (tokens x hidden) input.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Error, Ops, ParamSpec, Params, Result, Strategy, Tensor};
use strategy_kit::{clip_block, dropblock1d_mask, input_validity};

pub struct DropBlock1d {
    block_size: usize,
    gamma_scale: f64,
    tokens: bool,
}

impl Strategy for DropBlock1d {
    const NAME: &'static str = "dropblock1d";
    const DESCRIPTION: &'static str =
        "DropBlock1D for [N, T, D]: blocks of b consecutive positions \
        along the hidden units of each token (axis = \"hidden\", as the author code) or of b whole \
        consecutive tokens (axis = \"tokens\"); gamma = gamma_scale * p*L / (b (L-b+1)) over the \
        axis length L; seeds at valid centres padded by (b//2, (b-1)//2); stride-1 max-pool \
        expansion; m = keep * numel / (sum(keep) + 1e-6). On padded text (host interface 1.2) seeds \
        fall only where the whole block is real, gamma uses each sample's real length along the \
        token axis, and numel and sum count real positions only.";

    fn params() -> Vec<ParamSpec> {
        vec![
            ParamSpec::int("block_size", 4)
                .range(1.0, 1_000_000.0)
                .help("block length b (clipped to the axis length)"),
            ParamSpec::float("gamma_scale", 1.0)
                .range(0.0, 1000.0)
                .help("multiplies the seed rate gamma"),
            ParamSpec::choice("axis", &["hidden", "tokens"]).help(
                "hidden: blocks along one token's hidden units; tokens: whole consecutive tokens",
            ),
        ]
    }

    fn new(params: &Params) -> Result<Self> {
        Ok(Self {
            block_size: params.usize("block_size")?,
            gamma_scale: params.f64("gamma_scale")?,
            tokens: params.choice("axis")? == "tokens",
        })
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        let [n, t, d] = shape[..] else {
            return Err(Error::new(format!(
                "dropblock1d needs [N, T, D], got {shape:?}"
            )));
        };
        let (seed_shape, axis) = if self.tokens {
            ([n, t, 1], 1)
        } else {
            ([n, t, d], 2)
        };
        let b = clip_block(self.block_size, &seed_shape, &[axis]);
        let valid = input_validity(ops);
        dropblock1d_mask(ops, &seed_shape, axis, b, ctx.p, self.gamma_scale, valid)
    }
}

plugin_api::export_strategy!(DropBlock1d);
