//! Models with named dropout slots (placements from strategies.md).

use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Bool, Device, Int, Tensor};

use std::path::Path;

use crate::experiment::{ExperimentFile, MemoryFloor, ModelKind, ModelSpec};
use crate::plugins::MaskError;
use crate::train::resnet::{ResNet, ResNetConfig};
use crate::train::transformer::{TextEncoder, TextEncoderConfig, TextSlots};

/// Applies whatever strategy is configured for a slot (the identity when none is).
pub type SlotFn<'a> = dyn FnMut(&str, Tensor<4>) -> Result<Tensor<4>, MaskError> + 'a;

/// A small CNN for small images (28×28 by default): conv 3×3 + ReLU + 2×2
/// max-pool blocks, then two linear layers. A dropout slot follows each conv block
/// but the first (`block2`, `block3`, …).
#[derive(Config, Debug)]
pub struct SmallCnnConfig {
    #[config(default = 1)]
    pub in_channels: usize,
    #[config(default = 28)]
    pub image_size: usize,
    /// Output channels of each conv block.
    #[config(default = "vec![32, 64]")]
    pub channels: Vec<usize>,
    #[config(default = 128)]
    pub hidden: usize,
    #[config(default = 10)]
    pub classes: usize,
}

#[derive(Module, Debug)]
pub struct SmallCnn {
    convs: Vec<Conv2d>,
    fc1: Linear,
    fc2: Linear,
}

impl SmallCnnConfig {
    pub fn init(&self, device: &Device) -> SmallCnn {
        let mut convs = Vec::new();
        let mut inputs = self.in_channels;
        for &out in &self.channels {
            convs.push(
                Conv2dConfig::new([inputs, out], [3, 3])
                    .with_padding(PaddingConfig2d::Same)
                    .init(device),
            );
            inputs = out;
        }
        SmallCnn {
            convs,
            fc1: LinearConfig::new(self.flat_features(), self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, self.classes).init(device),
        }
    }

    /// Features entering the first linear layer: each block halves the image.
    pub fn flat_features(&self) -> usize {
        let side = self.channels.iter().fold(self.image_size, |s, _| s / 2);
        self.channels.last().copied().unwrap_or(self.in_channels) * side * side
    }
}

impl SmallCnn {
    /// Logits `[batch, classes]` for images `[batch, in_channels, size, size]`.
    pub fn forward(
        &self,
        images: Tensor<4>,
        slots: &mut SlotFn<'_>,
    ) -> Result<Tensor<2>, MaskError> {
        let mut x = images;
        for (i, conv) in self.convs.iter().enumerate() {
            // [batch, channels[i], size / 2^(i+1), size / 2^(i+1)]
            x = max_pool2d(relu(conv.forward(x)), MaxPoolOptions::new([2, 2]));
            if i > 0 {
                x = slots(&format!("block{}", i + 1), x)?;
            }
        }
        let [batch, c, h, w] = x.dims();
        let x = relu(self.fc1.forward(x.reshape([batch, c * h * w]))); // [batch, hidden]
        Ok(self.fc2.forward(x)) // [batch, classes]
    }
}

/// Any bundled model, built from an experiment's `[model]` table.
// One model exists per run: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model {
    SmallCnn(SmallCnn),
    ResNet(ResNet),
    Transformer(TextEncoder),
}

/// What a model reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Images `[channels, height, width]`.
    Image([usize; 3]),
    /// Token ids below `vocab_size`, at most `max_len` per example.
    Text { vocab_size: usize, max_len: usize },
}

impl Model {
    /// Builds the model of `spec` for its input.
    pub fn build(
        spec: &ModelSpec,
        input: InputKind,
        classes: usize,
        device: &Device,
    ) -> Result<Model, String> {
        let shape = match (input, spec.kind) {
            (
                InputKind::Text {
                    vocab_size,
                    max_len,
                },
                ModelKind::Transformer,
            ) => {
                let hidden = spec.hidden.unwrap_or(128);
                let config = TextEncoderConfig::new(vocab_size, max_len, classes)
                    .with_hidden(hidden)
                    .with_heads(spec.heads.unwrap_or(4))
                    .with_layers(spec.layers.unwrap_or(2))
                    .with_ff(spec.ff.unwrap_or(2 * hidden))
                    .with_dropout(spec.dropout.unwrap_or(0.1));
                return Ok(Model::Transformer(config.init(device)?));
            }
            (InputKind::Image(shape), kind) if kind != ModelKind::Transformer => shape,
            _ => return Err("the model does not read this kind of data".into()),
        };
        let [channels, height, width] = shape;
        match spec.kind {
            ModelKind::SmallCnn => {
                if height != width {
                    return Err(format!(
                        "small-cnn takes square images, found {height}×{width}"
                    ));
                }
                let mut config = SmallCnnConfig::new()
                    .with_in_channels(channels)
                    .with_image_size(height)
                    .with_classes(classes);
                if let Some(c) = &spec.channels {
                    config = config.with_channels(c.clone());
                }
                if let Some(h) = spec.hidden {
                    config = config.with_hidden(h);
                }
                if height >> config.channels.len() == 0 {
                    return Err(format!(
                        "{} conv blocks halve a {height}-pixel image to nothing",
                        config.channels.len()
                    ));
                }
                Ok(Model::SmallCnn(config.init(device)))
            }
            ModelKind::Resnet18 | ModelKind::Resnet20 | ModelKind::Resnet50 => {
                let depth = match spec.kind {
                    ModelKind::Resnet18 => 18,
                    ModelKind::Resnet20 => 20,
                    _ => 50,
                };
                // Small images get the CIFAR stem (3×3, no max-pool), large ones the
                // ImageNet stem.
                let config =
                    ResNetConfig::new(depth, classes, height <= 64).with_in_channels(channels);
                Ok(Model::ResNet(config.init(device)?))
            }
            ModelKind::Transformer => unreachable!("matched above"),
        }
    }

    /// Logits `[batch, classes]` of an image model.
    pub fn forward(
        &self,
        images: Tensor<4>,
        slots: &mut SlotFn<'_>,
    ) -> Result<Tensor<2>, MaskError> {
        match self {
            Model::SmallCnn(m) => m.forward(images, slots),
            Model::ResNet(m) => m.forward(images, slots),
            Model::Transformer(_) => {
                Err(MaskError("the transformer reads text, not images".into()))
            }
        }
    }

    /// Logits `[batch, classes]` of the text model for ids `[batch, tokens]`.
    pub fn forward_text(
        &self,
        ids: Tensor<2, Int>,
        pad: &Tensor<2, Bool>,
        slots: &mut dyn TextSlots,
    ) -> Result<Tensor<2>, MaskError> {
        match self {
            Model::Transformer(m) => m.forward(ids, pad, slots),
            _ => Err(MaskError("this model reads images, not text".into())),
        }
    }
}

/// The learned parameters of `model`: [`Module::num_params`] less batch
/// norm's running statistics, which published counts leave out.
pub fn learned_params<M: Module>(model: &M) -> usize {
    #[derive(Default)]
    struct Count {
        path: Vec<String>,
        total: usize,
    }
    impl ModuleVisitor for Count {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let field = self.path.last().map(String::as_str);
            if !matches!(field, Some("running_mean" | "running_var")) {
                self.total += param.lazy_shape().num_elements();
            }
        }
    }
    let mut count = Count::default();
    model.visit(&mut count);
    count.total
}

/// The model of `file` as `check` describes it: its learned parameters on the
/// data at `data_path` (the input's shape and the classes fix the first and
/// last layers; for text, the configured vocabulary is an upper bound, as the
/// trained one may come out smaller).
pub fn describe_size(file: &ExperimentFile, data_path: &Path) -> Result<String, String> {
    let spec = &file.data;
    let (input, classes, what) = match crate::train::text::TextFormat::of(spec.format) {
        Some(format) => {
            let data = crate::train::text::load(data_path, format).map_err(|e| e.to_string())?;
            let (vocab_size, max_len) = (spec.vocab_size(), spec.max_len());
            let input = InputKind::Text {
                vocab_size,
                max_len,
            };
            (
                input,
                data.classes.len(),
                format!("a vocabulary of up to {vocab_size} tokens"),
            )
        }
        None => {
            let splits = crate::train::data::load(spec, data_path).map_err(|e| e.to_string())?;
            let [c, h, w] = splits.shape();
            (
                InputKind::Image([c, h, w]),
                splits.classes(),
                format!("{c}×{h}×{w} images"),
            )
        }
    };
    let model = Model::build(&file.model, input, classes, &Device::flex())?;
    let count = group_thousands(learned_params(&model));
    let bound = if matches!(input, InputKind::Text { .. }) {
        "up to "
    } else {
        ""
    };
    Ok(format!(
        "{bound}{count} learned parameters ({what}, {classes} classes)"
    ))
}

/// `n` with a comma between each group of three digits.
fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A floor on the memory of one training step of `spec` on inputs of `input`
/// (`[channels, side, side]` images, or `[vocab, tokens]` for text) at `batch`.
/// ResNets are fixed in size and not estimated.
pub fn memory_floor(spec: &ModelSpec, input: [usize; 3], batch: usize) -> Option<MemoryFloor> {
    const F32: u128 = 4;
    let (parameters, activations) = match spec.kind {
        ModelKind::SmallCnn => small_cnn_floor(spec, input),
        ModelKind::Transformer => transformer_floor(spec, input),
        ModelKind::Resnet18 | ModelKind::Resnet20 | ModelKind::Resnet50 => return None,
    };
    let bytes = F32
        .saturating_mul(4)
        .saturating_mul(parameters)
        .saturating_add(
            F32.saturating_mul(2)
                .saturating_mul(activations)
                .saturating_mul(batch as u128),
        );
    Some(MemoryFloor { parameters, bytes })
}

/// (parameters, activations per sample) of the small CNN.
fn small_cnn_floor(spec: &ModelSpec, [channels, side, _]: [usize; 3]) -> (u128, u128) {
    let defaults = SmallCnnConfig::new();
    let convs = spec.channels.clone().unwrap_or(defaults.channels);
    let hidden = spec.hidden.unwrap_or(defaults.hidden) as u128;
    let (mut params, mut acts) = (0u128, 0u128);
    let (mut inputs, mut side) = (channels as u128, side as u128);
    for &out in &convs {
        let out = out as u128;
        params = params.saturating_add(inputs.saturating_mul(out).saturating_mul(9) + out);
        // The conv's output, then the pooled map.
        acts = acts.saturating_add(out.saturating_mul(side * side));
        side = (side / 2).max(1);
        acts = acts.saturating_add(out.saturating_mul(side * side));
        inputs = out;
    }
    let flat = inputs.saturating_mul(side * side);
    params = params
        .saturating_add(flat.saturating_mul(hidden))
        // fc1's bias, and fc2 for the fewest classes there can be (two).
        .saturating_add(hidden.saturating_mul(3))
        .saturating_add(2);
    (params, acts.saturating_add(hidden))
}

/// (parameters, activations per sample) of the text encoder.
fn transformer_floor(spec: &ModelSpec, [vocab, tokens, _]: [usize; 3]) -> (u128, u128) {
    let h = spec.hidden.unwrap_or(128) as u128;
    let ff = spec.ff.map_or(2 * h, |f| f as u128);
    let layers = spec.layers.unwrap_or(2) as u128;
    let heads = spec.heads.unwrap_or(4) as u128;
    let (vocab, t) = (vocab as u128, tokens as u128);
    let per_layer = h
        .saturating_mul(h)
        .saturating_mul(4)
        .saturating_add(h.saturating_mul(ff).saturating_mul(2));
    let params = vocab
        .saturating_add(t)
        .saturating_mul(h)
        .saturating_add(layers.saturating_mul(per_layer));
    // Per layer: the attention scores of every head, and a few token × width maps.
    let acts = layers.saturating_mul(
        heads
            .saturating_mul(t * t)
            .saturating_add(t.saturating_mul(h.saturating_mul(6).saturating_add(ff))),
    );
    (params, acts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn shapes_and_slots_follow_the_config() {
        let device = Device::default();
        let config = SmallCnnConfig::new().with_channels(vec![8, 16, 16]);
        let spec = ModelSpec {
            channels: Some(config.channels.clone()),
            ..ModelSpec::of(ModelKind::SmallCnn)
        };
        assert_eq!(crate::experiment::model_slots(&spec), ["block2", "block3"]);
        assert_eq!(config.flat_features(), 16 * 3 * 3);
        let model = config.init(&device);
        let x = Tensor::<4>::random([5, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
        let mut seen = Vec::new();
        let logits = model
            .forward(x, &mut |slot, t| {
                seen.push((slot.to_string(), t.dims()));
                Ok(t)
            })
            .unwrap();
        assert_eq!(logits.dims(), [5, 10]);
        assert_eq!(
            seen,
            [
                ("block2".to_string(), [5, 16, 7, 7]),
                ("block3".to_string(), [5, 16, 3, 3])
            ]
        );
    }

    #[test]
    fn the_memory_floor_counts_the_small_cnn_parameters_exactly() {
        let device = Device::default();
        let config = SmallCnnConfig::new()
            .with_channels(vec![8, 16])
            .with_hidden(32);
        let model = config.init(&device);
        let spec = ModelSpec {
            channels: Some(vec![8, 16]),
            hidden: Some(32),
            ..ModelSpec::of(ModelKind::SmallCnn)
        };
        let floor = memory_floor(&spec, [1, 28, 28], 32).unwrap();
        // Ten classes in the model, two in the floor: 8 × 32 fewer.
        assert_eq!(floor.parameters + 8 * 32 + 8, model.num_params() as u128);
        let huge = ModelSpec {
            hidden: Some(10_000_000_000),
            ..spec
        };
        assert!(memory_floor(&huge, [1, 28, 28], 32).unwrap().bytes > 1 << 40);
    }

    #[test]
    fn a_failing_slot_fails_the_forward_pass() {
        let device = Device::default();
        let model = SmallCnnConfig::new().init(&device);
        let x = Tensor::<4>::zeros([1, 1, 28, 28], &device);
        let err = model
            .forward(x, &mut |_, _| Err(MaskError("broken".into())))
            .unwrap_err();
        assert_eq!(err.0, "broken");
    }
}
