//! A transformer encoder classifier for text: token and learned position
//! embeddings, N post-norm layers (multi-head self-attention, feed-forward), a
//! classification head on the first token (`[CLS]`). Dropout slots (named in
//! `experiment::slots`) follow each layer's output (`layer1`, `layer2`, … with
//! `[batch, tokens, hidden]`, blocks along one token's hidden units, as the
//! ProbDropBlock author code placed them), each residual branch before its add
//! (`layerN.attn`, `layerN.ff`: LayerDrop's places), the attention logits
//! (`layerN.keys`, `[batch, heads, queries, keys]`: DropKey's) and each layer's
//! per-head attention output (`heads`, `[batch, heads, tokens, head_dim]`, for
//! DropHead). Padded positions are masked out of attention.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig,
};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Bool, Device, Int, Tensor};

use crate::experiment::slots::{HEADS_SLOT, LayerSlots};
use crate::plugins::MaskError;

/// Where the encoder hands its activations to a strategy (the identity when none
/// is configured). `pad` is `[batch, tokens]`, true at padding.
pub trait TextSlots {
    /// After a layer: `[batch, tokens, hidden]`.
    fn hidden(
        &mut self,
        slot: &str,
        x: Tensor<3>,
        pad: &Tensor<2, Bool>,
    ) -> Result<Tensor<3>, MaskError>;
    /// A layer's attention logits `[batch, heads, queries, keys]` before the
    /// softmax: the logits with the keys a strategy drops set to
    /// [`DROPPED_LOGIT`], not rescaled.
    fn keys(
        &mut self,
        slot: &str,
        scores: Tensor<4>,
        pad: &Tensor<2, Bool>,
    ) -> Result<Tensor<4>, MaskError>;
    /// A layer's attention output per head: `[batch, heads, tokens, head_dim]`.
    fn heads(
        &mut self,
        slot: &str,
        x: Tensor<4>,
        pad: &Tensor<2, Bool>,
    ) -> Result<Tensor<4>, MaskError>;
}

/// No strategy anywhere.
pub struct NoSlots;

/// The logit of a dropped key. A row whose every real key is dropped
/// attends evenly to its real keys (what DropKey's additive `-1e12` does in
/// f32), never NaN; padded keys, at `PAD_LOGIT` below it, stay out.
pub const DROPPED_LOGIT: f64 = -1e9;

/// Added to a padded key's logit: far enough below [`DROPPED_LOGIT`] that no
/// padded key outweighs a dropped real one.
const PAD_LOGIT: f64 = -4e9;

/// `scores` with the keys that `keep` (1 kept, 0 dropped; broadcastable to
/// `[batch, heads, queries, keys]`) drops set to [`DROPPED_LOGIT`]: no
/// gradient flows to a dropped logit.
pub fn drop_keys(scores: Tensor<4>, keep: Tensor<4>) -> Tensor<4> {
    let dropped = keep.clone().neg().add_scalar(1.0);
    scores * keep + dropped * DROPPED_LOGIT
}

/// Attention weights from logits `[batch, heads, queries, keys]`: a softmax
/// over the keys, none on padded keys (`pad` `[batch, keys]`).
pub fn key_weights(scores: Tensor<4>, pad: &Tensor<2, Bool>) -> Tensor<4> {
    let [batch, keys] = pad.dims();
    let key_pad = pad.clone().float().reshape([batch, 1, 1, keys]) * PAD_LOGIT;
    softmax(scores + key_pad, 3)
}

impl TextSlots for NoSlots {
    fn keys(
        &mut self,
        _: &str,
        scores: Tensor<4>,
        _: &Tensor<2, Bool>,
    ) -> Result<Tensor<4>, MaskError> {
        Ok(scores)
    }
    fn hidden(
        &mut self,
        _: &str,
        x: Tensor<3>,
        _: &Tensor<2, Bool>,
    ) -> Result<Tensor<3>, MaskError> {
        Ok(x)
    }
    fn heads(
        &mut self,
        _: &str,
        x: Tensor<4>,
        _: &Tensor<2, Bool>,
    ) -> Result<Tensor<4>, MaskError> {
        Ok(x)
    }
}

#[derive(Config, Debug)]
pub struct TextEncoderConfig {
    pub vocab_size: usize,
    pub max_len: usize,
    pub classes: usize,
    #[config(default = 128)]
    pub hidden: usize,
    #[config(default = 4)]
    pub heads: usize,
    #[config(default = 2)]
    pub layers: usize,
    #[config(default = 256)]
    pub ff: usize,
    /// The encoder's own dropout (embeddings, attention output, feed-forward),
    /// kept as in the models the paper fine-tuned.
    #[config(default = 0.1)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct EncoderLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    norm_attention: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    norm_ff: LayerNorm,
    dropout: Dropout,
    heads: usize,
}

#[derive(Module, Debug)]
pub struct TextEncoder {
    tokens: Embedding,
    positions: Embedding,
    norm_embedding: LayerNorm,
    layers: Vec<EncoderLayer>,
    head: Linear,
    dropout: Dropout,
}

impl TextEncoderConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return Err(format!(
                "hidden size {} is not a multiple of {} heads",
                self.hidden, self.heads
            ));
        }
        Ok(())
    }

    pub fn init(&self, device: &Device) -> Result<TextEncoder, String> {
        self.check()?;
        let h = self.hidden;
        let layer = || EncoderLayer {
            query: LinearConfig::new(h, h).init(device),
            key: LinearConfig::new(h, h).init(device),
            value: LinearConfig::new(h, h).init(device),
            output: LinearConfig::new(h, h).init(device),
            norm_attention: LayerNormConfig::new(h).init(device),
            ff_in: LinearConfig::new(h, self.ff).init(device),
            ff_out: LinearConfig::new(self.ff, h).init(device),
            norm_ff: LayerNormConfig::new(h).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            heads: self.heads,
        };
        Ok(TextEncoder {
            tokens: EmbeddingConfig::new(self.vocab_size, h).init(device),
            positions: EmbeddingConfig::new(self.max_len, h).init(device),
            norm_embedding: LayerNormConfig::new(h).init(device),
            layers: (0..self.layers).map(|_| layer()).collect(),
            head: LinearConfig::new(h, self.classes).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        })
    }
}

impl EncoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        pad: &Tensor<2, Bool>,
        names: &LayerSlots,
        slots: &mut dyn TextSlots,
    ) -> Result<Tensor<3>, MaskError> {
        let attended = self.attention(x.clone(), pad, names, slots)?;
        let branch = self.dropout.forward(self.output.forward(attended));
        let branch = slots.hidden(&names.attn, branch, pad)?;
        let x = self.norm_attention.forward(x + branch);
        let ff = self.ff_out.forward(gelu(self.ff_in.forward(x.clone())));
        let branch = slots.hidden(&names.ff, self.dropout.forward(ff), pad)?;
        Ok(self.norm_ff.forward(x + branch)) // [batch, tokens, hidden]
    }

    /// Multi-head self-attention before its output projection, heads joined
    /// again: `[batch, tokens, hidden]`.
    fn attention(
        &self,
        x: Tensor<3>,
        pad: &Tensor<2, Bool>,
        names: &LayerSlots,
        slots: &mut dyn TextSlots,
    ) -> Result<Tensor<3>, MaskError> {
        let [batch, tokens, hidden] = x.dims();
        let head_dim = hidden / self.heads;
        let split = |t: Tensor<3>| {
            t.reshape([batch, tokens, self.heads, head_dim])
                .swap_dims(1, 2) // [batch, heads, tokens, head_dim]
        };
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x));
        // [batch, heads, tokens, tokens]; padded keys get no weight.
        let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt();
        let weights = key_weights(slots.keys(&names.keys, scores, pad)?, pad);
        let per_head = slots.heads(HEADS_SLOT, weights.matmul(v), pad)?; // [batch, heads, tokens, head_dim]
        Ok(per_head.swap_dims(1, 2).reshape([batch, tokens, hidden]))
    }
}

impl TextEncoder {
    /// Logits `[batch, classes]` for token ids `[batch, tokens]`; `pad` is true at
    /// padding (which must not be the first position).
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        pad: &Tensor<2, Bool>,
        slots: &mut dyn TextSlots,
    ) -> Result<Tensor<2>, MaskError> {
        let [batch, tokens] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..tokens as i64, &device).reshape([1, tokens]);
        // [batch, tokens, hidden]
        let mut x = self.dropout.forward(
            self.norm_embedding
                .forward(self.tokens.forward(ids) + self.positions.forward(positions)),
        );
        for (i, layer) in self.layers.iter().enumerate() {
            let names = LayerSlots::at(i + 1);
            x = layer.forward(x, pad, &names, slots)?;
            x = slots.hidden(&names.output, x, pad)?;
        }
        let hidden = x.dims()[2];
        let first = x
            .slice([0..batch, 0..1, 0..hidden])
            .reshape([batch, hidden]);
        Ok(self.head.forward(self.dropout.forward(first))) // [batch, classes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn config() -> TextEncoderConfig {
        TextEncoderConfig::new(50, 24, 3)
            .with_hidden(16)
            .with_heads(4)
            .with_layers(2)
            .with_ff(32)
    }

    fn batch(rows: &[Vec<i64>], len: usize, device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>) {
        let mut ids = Vec::new();
        let mut pad = Vec::new();
        for r in rows {
            for i in 0..len {
                ids.push(r.get(i).copied().unwrap_or(0));
                pad.push(i >= r.len());
            }
        }
        let shape = [rows.len(), len];
        (
            Tensor::from_data(TensorData::new(ids, shape), device),
            Tensor::from_data(TensorData::new(pad, shape), device),
        )
    }

    struct Record(Vec<(String, Vec<usize>)>);

    impl TextSlots for Record {
        fn keys(
            &mut self,
            s: &str,
            x: Tensor<4>,
            _: &Tensor<2, Bool>,
        ) -> Result<Tensor<4>, MaskError> {
            self.0.push((s.into(), x.dims().to_vec()));
            Ok(x)
        }
        fn hidden(
            &mut self,
            s: &str,
            x: Tensor<3>,
            _: &Tensor<2, Bool>,
        ) -> Result<Tensor<3>, MaskError> {
            self.0.push((s.into(), x.dims().to_vec()));
            Ok(x)
        }
        fn heads(
            &mut self,
            s: &str,
            x: Tensor<4>,
            _: &Tensor<2, Bool>,
        ) -> Result<Tensor<4>, MaskError> {
            self.0.push((s.into(), x.dims().to_vec()));
            Ok(x)
        }
    }

    #[test]
    fn shapes_and_slots() {
        let device = Device::default();
        let c = config();
        let spec = crate::experiment::ModelSpec {
            layers: Some(c.layers),
            ..crate::experiment::ModelSpec::of(crate::experiment::ModelKind::Transformer)
        };
        assert_eq!(
            crate::experiment::model_slots(&spec),
            [
                "layer1.keys",
                "layer1.attn",
                "layer1.ff",
                "layer1",
                "layer2.keys",
                "layer2.attn",
                "layer2.ff",
                "layer2",
                "heads"
            ]
        );
        let model = c.init(&device).unwrap();
        let (ids, pad) = batch(&[vec![2, 7, 9, 3], vec![2, 5, 3]], 8, &device);
        let mut seen = Record(Vec::new());
        let logits = model.forward(ids, &pad, &mut seen).unwrap();
        assert_eq!(logits.dims(), [2, 3]);
        let expected: Vec<(String, Vec<usize>)> = [
            ("layer1.keys", vec![2, 4, 8, 8]),
            ("heads", vec![2, 4, 8, 4]),
            ("layer1.attn", vec![2, 8, 16]),
            ("layer1.ff", vec![2, 8, 16]),
            ("layer1", vec![2, 8, 16]),
            ("layer2.keys", vec![2, 4, 8, 8]),
            ("heads", vec![2, 4, 8, 4]),
            ("layer2.attn", vec![2, 8, 16]),
            ("layer2.ff", vec![2, 8, 16]),
            ("layer2", vec![2, 8, 16]),
        ]
        .into_iter()
        .map(|(s, d)| (s.to_string(), d))
        .collect();
        assert_eq!(seen.0, expected);
        assert!(
            TextEncoderConfig::new(5, 5, 2)
                .with_hidden(10)
                .with_heads(4)
                .check()
                .is_err()
        );
    }

    /// Dropped keys get no weight and no gradient, nothing is rescaled, and
    /// a row with every real key dropped attends evenly to its real keys,
    /// never to padding.
    #[test]
    fn dropped_keys_get_no_weight_and_a_fully_dropped_row_stays_finite() {
        let device = Device::default();
        let scores: Vec<f32> = vec![0.5, 2.0, -1.0, 3.0, 1.0, 0.0, 4.0, 9.0];
        let scores = Tensor::<4>::from_data(TensorData::new(scores, [1, 1, 2, 4]), &device);
        // Row 0 keeps keys 0 and 2; row 1 drops both real keys it has left.
        let keep = vec![1.0f32, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let keep = Tensor::<4>::from_data(TensorData::new(keep, [1, 1, 2, 4]), &device);
        let pad = Tensor::<2, Bool>::from_data(
            TensorData::new(vec![false, false, true, true], [1, 4]),
            &device,
        );
        // Keys 2 and 3 are padding: row 0 keeps only key 0 of its real keys.
        let w = key_weights(drop_keys(scores, keep), &pad)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(w[..4], [1.0, 0.0, 0.0, 0.0], "{w:?}");
        for (got, want) in w[4..].iter().zip([0.5, 0.5, 0.0, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{w:?}");
        }
    }

    /// What sits at padded positions, and how much padding there is, changes
    /// nothing: the `[CLS]` output never attends to it.
    #[test]
    fn padding_is_masked_out() {
        let device = Device::default();
        let model = config().init(&device).unwrap();
        let row = vec![2, 11, 12, 13, 3];
        let (a, pad_a) = batch(std::slice::from_ref(&row), 8, &device);
        let (b, pad_b) = batch(std::slice::from_ref(&row), 20, &device);
        let mut garbage = row.clone();
        garbage.extend([40, 41, 42]);
        let (c, _) = batch(&[garbage], 8, &device);
        let logits = |ids, pad: &Tensor<2, Bool>| -> Vec<f32> {
            model
                .forward(ids, pad, &mut NoSlots)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let la = logits(a, &pad_a);
        let lb = logits(b, &pad_b);
        let lc = logits(c, &pad_a);
        for ((x, y), z) in la.iter().zip(&lb).zip(&lc) {
            assert!((x - y).abs() < 1e-4, "{la:?} vs {lb:?}");
            assert!((x - z).abs() < 1e-4, "{la:?} vs {lc:?}");
        }
        // While the real tokens do matter.
        let (d, pad_d) = batch(&[vec![2, 11, 12, 14, 3]], 8, &device);
        let ld = logits(d, &pad_d);
        assert!(la.iter().zip(&ld).any(|(x, y)| (x - y).abs() > 1e-4));
    }
}
