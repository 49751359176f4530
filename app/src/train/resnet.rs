//! ResNets (He et al., 2016) with dropout slots named as torchvision names
//! the modules (`experiment::slots`): after each batch norm, on each block's
//! shortcut and residual branch, and at each stage's output.
//!
//! Depth 18 stacks basic blocks (two 3×3 convs), depth 50 stacks bottleneck
//! blocks (1×1 → 3×3 → 1×1, four times wider out than in) with the stride on
//! the 3×3 conv (the "v1.5" layout torchvision uses). The CIFAR stem replaces
//! the 7×7 stride-2 conv and max-pool with one 3×3 stride-1 conv, so 32×32
//! images still reach stage 4 at 4×4. Depth 20 is the paper's CIFAR network:
//! three stages of three basic blocks, 16, 32 and 64 channels, and
//! parameter-free shortcuts (option A: the input subsampled, the new channels
//! zeros) where a block changes shape.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor};

use super::models::SlotFn;
use crate::experiment::slots::{BlockSlots, stage_slot};
use crate::plugins::MaskError;

/// Base width of each stage of the ImageNet ResNets; bottleneck stages
/// output four times as much.
const WIDTHS: [usize; 4] = [64, 128, 256, 512];

/// Width of each stage of the CIFAR ResNets (depth 6n + 2).
const CIFAR_WIDTHS: [usize; 3] = [16, 32, 64];

/// Output channels of a bottleneck block relative to its inner width.
const EXPANSION: usize = 4;

/// A ResNet for `in_channels × H × W` images.
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// 18 (basic blocks), 20 (CIFAR basic blocks) or 50 (bottleneck blocks).
    pub depth: usize,
    pub classes: usize,
    #[config(default = 3)]
    pub in_channels: usize,
    /// A 3×3 stride-1 stem without max-pool, for 32×32 images; otherwise the
    /// ImageNet stem (7×7 stride-2 conv, 3×3 stride-2 max-pool).
    pub cifar_stem: bool,
}

/// A conv without bias (the batch norm after it has one) and its batch norm.
#[derive(Module, Debug)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

/// A residual block: `relu(convs(x) + shortcut(x))`, a ReLU between the convs.
/// Two 3×3 convs make a basic block; 1×1, 3×3, 1×1 a bottleneck.
#[derive(Module, Debug)]
struct Block {
    convs: Vec<ConvBn>,
    /// A 1×1 projection where the block changes the shape (ResNet-18 and 50);
    /// the identity otherwise, padded where the shape changes (ResNet-20).
    shortcut: Option<ConvBn>,
}

#[derive(Module, Debug)]
pub struct ResNet {
    stem: ConvBn,
    /// Whether the stem ends with the 3×3 stride-2 max-pool (ImageNet stem).
    stem_pool: bool,
    stages: Vec<Vec<Block>>,
    fc: Linear,
}

/// Which block a depth stacks, how many per stage, and how wide.
#[derive(Clone, Copy)]
struct Layout {
    bottleneck: bool,
    blocks: &'static [usize],
    widths: &'static [usize],
    /// 1×1 projections on shape-changing shortcuts (else option A).
    projection: bool,
}

impl Layout {
    fn of(depth: usize) -> Result<Layout, String> {
        match depth {
            18 => Ok(Layout {
                bottleneck: false,
                blocks: &[2, 2, 2, 2],
                widths: &WIDTHS,
                projection: true,
            }),
            20 => Ok(Layout {
                bottleneck: false,
                blocks: &[3, 3, 3],
                widths: &CIFAR_WIDTHS,
                projection: false,
            }),
            50 => Ok(Layout {
                bottleneck: true,
                blocks: &[3, 4, 6, 3],
                widths: &WIDTHS,
                projection: true,
            }),
            _ => Err(format!(
                "ResNet depth {depth} is not supported (choose 18, 20 or 50)"
            )),
        }
    }

    /// Output channels of a block with this inner width.
    fn outputs(self, width: usize) -> usize {
        if self.bottleneck {
            width * EXPANSION
        } else {
            width
        }
    }
}

impl ResNetConfig {
    /// Builds the model; fails on an unsupported depth or zero classes/channels.
    pub fn init(&self, device: &Device) -> Result<ResNet, String> {
        let layout = Layout::of(self.depth)?;
        if self.classes == 0 {
            return Err("a ResNet needs at least one class".into());
        }
        if self.in_channels == 0 {
            return Err("a ResNet needs at least one input channel".into());
        }
        let first = layout.widths[0];
        let stem = if self.cifar_stem {
            conv_bn(self.in_channels, first, 3, 1, device)
        } else {
            conv_bn(self.in_channels, first, 7, 2, device)
        };
        let mut inputs = first;
        let mut stages = Vec::with_capacity(layout.widths.len());
        for (stage, &width) in layout.widths.iter().enumerate() {
            // The first stage keeps the stem's resolution; the others halve it
            // in their first block.
            let first_stride = if stage == 0 { 1 } else { 2 };
            let blocks = (0..layout.blocks[stage])
                .map(|i| {
                    let stride = if i == 0 { first_stride } else { 1 };
                    let mut block = if layout.bottleneck {
                        bottleneck(inputs, width, stride, device)
                    } else {
                        basic_block(inputs, width, stride, device)
                    };
                    if !layout.projection {
                        block.shortcut = None;
                    }
                    inputs = layout.outputs(width);
                    block
                })
                .collect();
            stages.push(blocks);
        }
        Ok(ResNet {
            stem,
            stem_pool: !self.cifar_stem,
            stages,
            fc: LinearConfig::new(inputs, self.classes).init(device),
        })
    }
}

impl ResNet {
    /// Logits `[batch, classes]` for images `[batch, in_channels, H, W]`.
    ///
    /// Shapes below are for the CIFAR ResNet-18 on 32×32 input; ResNet-50 has
    /// four times the channels from stage 1 on, and the ImageNet stem divides
    /// the resolution by four.
    pub fn forward(
        &self,
        images: Tensor<4>,
        slots: &mut SlotFn<'_>,
    ) -> Result<Tensor<2>, MaskError> {
        let mut x = relu(self.stem.forward(images)); // [batch, 64, 32, 32]
        if self.stem_pool {
            let pool = MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]);
            x = max_pool2d(x, pool);
        }
        // Stage index i outputs [batch, 64·2^i, 32 / 2^i, 32 / 2^i]: stage 3 is
        // [batch, 256, 8, 8], stage 4 [batch, 512, 4, 4].
        for (i, stage) in self.stages.iter().enumerate() {
            for (j, block) in stage.iter().enumerate() {
                let names = BlockSlots::at(i + 1, j, block.convs.len());
                x = block.forward(x, &names, slots)?;
            }
            x = slots(&stage_slot(i + 1), x)?;
        }
        let [batch, channels, _, _] = x.dims();
        let x = adaptive_avg_pool2d(x, [1, 1]).reshape([batch, channels]); // [batch, 512]
        Ok(self.fc.forward(x)) // [batch, classes]
    }
}

impl Block {
    /// `relu(branch(x) + shortcut(x))`, each slot of `names` in torchvision's
    /// order: after each batch norm, then the shortcut, then the branch.
    fn forward(
        &self,
        x: Tensor<4>,
        names: &BlockSlots,
        slots: &mut SlotFn<'_>,
    ) -> Result<Tensor<4>, MaskError> {
        let last = self.convs.len() - 1;
        let mut out = x.clone();
        for (i, (layer, name)) in self.convs.iter().zip(&names.bns).enumerate() {
            out = slots(name, layer.forward(out))?;
            // The last conv's ReLU comes after the addition.
            if i < last {
                out = relu(out);
            }
        }
        let identity = match &self.shortcut {
            Some(projection) => projection.forward(x),
            None => padded_identity(x, out.dims()),
        };
        let identity = slots(&names.shortcut, identity)?;
        let out = slots(&names.branch, out)?;
        Ok(relu(out + identity))
    }
}

/// Option A (He et al. 2016, CIFAR): `x` as is where the block keeps its
/// shape; else subsampled to the block's resolution (every stride-th row
/// and column, a 1×1 pool) and its new channels zeros, half before, half
/// after.
fn padded_identity(x: Tensor<4>, [_, channels, height, width]: [usize; 4]) -> Tensor<4> {
    let [n, c, h, _] = x.dims();
    if [c, h] == [channels, height] {
        return x;
    }
    let stride = h.div_ceil(height).max(1);
    let x = avg_pool2d(x, AvgPoolOptions::new([1, 1]).with_stride([stride, stride])); // [n, c, height, width]
    let extra = channels.saturating_sub(c);
    let device = x.device();
    let zeros = |k: usize| Tensor::<4>::zeros([n, k, height, width], &device);
    let (before, after) = (extra / 2, extra - extra / 2);
    let parts = [zeros(before), x, zeros(after)];
    let parts: Vec<Tensor<4>> = parts.into_iter().filter(|t| t.dims()[1] > 0).collect();
    Tensor::cat(parts, 1)
}

impl ConvBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        super::norm::forward(&self.bn, self.conv.forward(x))
    }
}

/// A `kernel × kernel` conv padded by `kernel / 2` (so stride 1 keeps the size,
/// stride 2 halves it), then batch norm.
fn conv_bn(inputs: usize, outputs: usize, kernel: usize, stride: usize, device: &Device) -> ConvBn {
    let pad = kernel / 2;
    let conv = Conv2dConfig::new([inputs, outputs], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        // He initialisation for ReLU networks (fan-out, normal), as in the
        // paper; burn's default is scaled for a unit-gain activation.
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(device);
    ConvBn {
        conv,
        bn: BatchNormConfig::new(outputs).init(device),
    }
}

/// Projects the input when the block changes its shape.
fn shortcut(inputs: usize, outputs: usize, stride: usize, device: &Device) -> Option<ConvBn> {
    (stride != 1 || inputs != outputs).then(|| conv_bn(inputs, outputs, 1, stride, device))
}

fn basic_block(inputs: usize, width: usize, stride: usize, device: &Device) -> Block {
    Block {
        convs: vec![
            conv_bn(inputs, width, 3, stride, device),
            conv_bn(width, width, 3, 1, device),
        ],
        shortcut: shortcut(inputs, width, stride, device),
    }
}

fn bottleneck(inputs: usize, width: usize, stride: usize, device: &Device) -> Block {
    let outputs = width * EXPANSION;
    Block {
        convs: vec![
            conv_bn(inputs, width, 1, 1, device),
            conv_bn(width, width, 3, stride, device),
            conv_bn(width, outputs, 1, 1, device),
        ],
        shortcut: shortcut(inputs, outputs, stride, device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn trainable_params(model: &ResNet) -> usize {
        crate::train::models::learned_params(model)
    }

    /// Runs the model, recording each slot's name and input shape.
    fn slot_shapes(model: &ResNet, x: Tensor<4>) -> (Tensor<2>, Vec<(String, [usize; 4])>) {
        let mut seen = Vec::new();
        let logits = model
            .forward(x, &mut |slot, t| {
                seen.push((slot.to_string(), t.dims()));
                Ok(t)
            })
            .unwrap();
        (logits, seen)
    }

    #[test]
    fn cifar_resnet18_shapes_and_slots() {
        let device = Device::default();
        let config = ResNetConfig::new(18, 10, true);
        let spec = crate::experiment::ModelSpec::of(crate::experiment::ModelKind::Resnet18);
        let model = config.init(&device).unwrap();
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let (logits, seen) = slot_shapes(&model, x);
        assert_eq!(logits.dims(), [2, 10]);
        // The forward pass visits the one list of slots, in its order.
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, crate::experiment::model_slots(&spec));
        let shape_of = |name: &str| seen.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(shape_of("layer3"), [2, 256, 8, 8]);
        assert_eq!(shape_of("layer4"), [2, 512, 4, 4]);
        assert_eq!(shape_of("layer1.0.bn1"), [2, 64, 32, 32]);
        assert_eq!(shape_of("layer2.0.shortcut"), [2, 128, 16, 16]);
        assert_eq!(shape_of("layer4.1.branch"), [2, 512, 4, 4]);
    }

    #[test]
    fn imagenet_resnet50_shapes_and_slots() {
        let device = Device::default();
        let model = ResNetConfig::new(50, 7, false).init(&device).unwrap();
        let x = Tensor::<4>::random([1, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        let (logits, seen) = slot_shapes(&model, x);
        assert_eq!(logits.dims(), [1, 7]);
        let spec = crate::experiment::ModelSpec::of(crate::experiment::ModelKind::Resnet50);
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, crate::experiment::model_slots(&spec));
        let shape_of = |name: &str| seen.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(shape_of("layer3"), [1, 1024, 4, 4]);
        assert_eq!(shape_of("layer4"), [1, 2048, 2, 2]);
        assert_eq!(shape_of("layer1.0.bn3"), [1, 256, 16, 16]);
    }

    /// Stochastic depth's place: with a sample's residual branch dropped, the
    /// block passes its shortcut on for that sample (`relu(0 + x) = x`, the
    /// identity shortcut carrying a ReLU's output), and the other samples
    /// are left alone.
    #[test]
    fn a_dropped_branch_leaves_the_shortcut() {
        let device = Device::default();
        let model = ResNetConfig::new(18, 10, true).init(&device).unwrap();
        let x = Tensor::<4>::random([2, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
        let (mut shortcut, mut branch, mut out) = (None, None, None);
        model
            .forward(x, &mut |slot, t| {
                match slot {
                    "layer2.1.shortcut" => shortcut = Some(t.clone()),
                    "layer2.1.branch" => {
                        branch = Some(t.clone());
                        let keep = Tensor::<1>::from_floats([0.0, 1.0], &t.device());
                        return Ok(t * keep.reshape([2, 1, 1, 1]));
                    }
                    "layer2" => out = Some(t.clone()),
                    _ => {}
                }
                Ok(t)
            })
            .unwrap();
        let (shortcut, branch, out) = (shortcut.unwrap(), branch.unwrap(), out.unwrap());
        let sample = |t: &Tensor<4>, i: usize| {
            let [_, c, h, w] = t.dims();
            t.clone()
                .slice([i..i + 1, 0..c, 0..h, 0..w])
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        assert_eq!(sample(&out, 0), sample(&shortcut, 0), "the shortcut, as is");
        let kept = relu(branch + shortcut);
        assert_eq!(sample(&out, 1), sample(&kept, 1), "the other sample");
    }

    #[test]
    fn cifar_resnet20_is_the_papers() {
        let device = Device::default().autodiff();
        let model = ResNetConfig::new(20, 10, true).init(&device).unwrap();
        // He et al. 2016: 0.27M parameters (option A shortcuts add none).
        assert_eq!(trainable_params(&model), 269_722);
        let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
        let (logits, seen) = slot_shapes(&model, x);
        assert_eq!(logits.dims(), [2, 10]);
        let spec = crate::experiment::ModelSpec::of(crate::experiment::ModelKind::Resnet20);
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, crate::experiment::model_slots(&spec));
        let shape_of = |name: &str| seen.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(shape_of("layer1"), [2, 16, 32, 32]);
        assert_eq!(shape_of("layer2.0.shortcut"), [2, 32, 16, 16]);
        assert_eq!(shape_of("layer3"), [2, 64, 8, 8]);
        // The padded shortcut's gradient reaches the input.
        let loss = logits.sum();
        let grads = loss.backward();
        assert!(model.stem.conv.weight.grad(&grads).is_some());
    }

    /// Option A: the subsampled input in the middle channels, zeros around.
    #[test]
    fn a_padded_shortcut_subsamples_and_adds_zero_channels() {
        let device = Device::default();
        let x = Tensor::<4>::random([1, 2, 4, 4], Distribution::Normal(0.0, 1.0), &device);
        let y = padded_identity(x.clone(), [1, 4, 2, 2]);
        assert_eq!(y.dims(), [1, 4, 2, 2]);
        let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        let want = x.clone().slice([0..1, 0..2, 0..4, 0..4]);
        let picked: Vec<f32> = values(want)
            .chunks(4)
            .enumerate()
            .filter(|(row, _)| row % 2 == 0)
            .flat_map(|(_, r)| [r[0], r[2]])
            .collect();
        let y = values(y);
        assert_eq!(&y[..4], &[0.0; 4]);
        assert_eq!(&y[4..12], picked.as_slice());
        assert_eq!(&y[12..], &[0.0; 4]);
        assert_eq!(values(padded_identity(x.clone(), [1, 2, 4, 4])), values(x));
    }

    #[test]
    fn parameter_counts_match_the_reference_models() {
        let device = Device::default();
        let resnet18 = ResNetConfig::new(18, 10, true).init(&device).unwrap();
        assert_eq!(trainable_params(&resnet18), 11_173_962);
        // Plus the running mean and variance of 4,800 batch-norm channels.
        assert_eq!(resnet18.num_params(), 11_173_962 + 2 * 4_800);
        let resnet50 = ResNetConfig::new(50, 1000, false).init(&device).unwrap();
        assert_eq!(trainable_params(&resnet50), 25_557_032);
    }

    #[test]
    fn unsupported_depths_are_refused() {
        let device = Device::default();
        let err = ResNetConfig::new(34, 10, true).init(&device).unwrap_err();
        assert_eq!(
            err,
            "ResNet depth 34 is not supported (choose 18, 20 or 50)"
        );
        assert!(ResNetConfig::new(18, 0, true).init(&device).is_err());
    }

    #[test]
    fn a_failing_slot_fails_the_forward_pass() {
        let device = Device::default();
        let model = ResNetConfig::new(18, 10, true)
            .with_in_channels(1)
            .init(&device)
            .unwrap();
        let x = Tensor::<4>::zeros([1, 1, 16, 16], &device);
        let mut calls = Vec::new();
        let err = model
            .forward(x, &mut |slot, t| {
                calls.push(slot.to_string());
                if slot == "layer4" {
                    Err(MaskError("broken".into()))
                } else {
                    Ok(t)
                }
            })
            .unwrap_err();
        assert_eq!(err.0, "broken");
        assert_eq!(calls.last().map(String::as_str), Some("layer4"));
        assert_eq!(calls.len(), 36, "every slot up to the failing one");
    }
}
