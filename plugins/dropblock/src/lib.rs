//! DropBlock (Ghiasi et al. 2018), as torchvision's `drop_block2d` computes it.

#![forbid(unsafe_code)]

use plugin_api::{Ctx, Error, Ops, ParamSpec, Params, Result, Strategy, Tensor};
use strategy_kit::{clip_block, dropblock_mask, ghiasi_gamma};

pub struct DropBlock {
    block_size: usize,
    gamma_scale: f64,
    batchwise: bool,
    shared_channels: bool,
}

impl Strategy for DropBlock {
    const NAME: &'static str = "dropblock";
    const DESCRIPTION: &'static str = "DropBlock (Ghiasi et al. 2018; torchvision drop_block2d): \
        b clipped to min(H, W); gamma = gamma_scale * p*H*W / (b^2 (H-b+1)(W-b+1)); Bernoulli(gamma) \
        seeds at the valid centres only (those of [N, C, H-b+1, W-b+1] placed by a (b//2, (b-1)//2) \
        zero pad, i.e. where a whole block fits); expanded by a \
        stride-1 bxb max-pool (cropped when b is even); keep = 1 - expanded; \
        m = keep * numel / (sum(keep) + 1e-6). Input [N, C, H, W].";

    fn params() -> Vec<ParamSpec> {
        vec![
            ParamSpec::int("block_size", 7)
                .range(1.0, 1024.0)
                .help("block width b (clipped to min(H, W))"),
            ParamSpec::float("gamma_scale", 1.0)
                .range(0.0, 1000.0)
                .help("multiplies the seed rate gamma"),
            ParamSpec::bool("batchwise", false)
                .help("one seed map [1, C, ...] shared by the batch"),
            ParamSpec::bool("shared_channels", false)
                .help("one seed map [N, 1, ...] shared by all channels"),
        ]
    }

    fn new(params: &Params) -> Result<Self> {
        Ok(Self {
            block_size: params.usize("block_size")?,
            gamma_scale: params.f64("gamma_scale")?,
            batchwise: params.bool("batchwise")?,
            shared_channels: params.bool("shared_channels")?,
        })
    }

    fn mask<'a>(&self, ops: &Ops<'a>, x: Tensor<'a>, ctx: &Ctx) -> Result<Tensor<'a>> {
        let shape = x.shape()?;
        let [n, c, h, w] = shape[..] else {
            return Err(Error::new(format!(
                "dropblock needs [N, C, H, W], got {shape:?}"
            )));
        };
        let block_dims = [2, 3];
        let b = clip_block(self.block_size, &shape, &block_dims);
        let gamma = self.gamma_scale * ghiasi_gamma(ctx.p, b, &[h, w]);
        let seed_shape = [
            if self.batchwise { 1 } else { n },
            if self.shared_channels { 1 } else { c },
            h,
            w,
        ];
        dropblock_mask(ops, &seed_shape, &block_dims, b, gamma)
    }
}

plugin_api::export_strategy!(DropBlock);
