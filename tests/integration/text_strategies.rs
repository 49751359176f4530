//! The 1-D strategies (and DropHead, DropKey) on real transformer activations: the
//! committed Austen sentences, encoded, batched with padding, and passed through
//! a seeded encoder; what the strategies see is what a text run hands them.
//! Every check is over real positions, and padding must come out untouched.

use std::sync::OnceLock;

use crate::common::*;
use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Bool, Device, Tensor};
use probdrop_tui::plugins::{MaskContext, MaskError, Strategy};
use probdrop_tui::train::data::Item;
use probdrop_tui::train::text::{self, TextBatcher, TextFormat, Vocabulary};
use probdrop_tui::train::transformer::{TextEncoderConfig, TextSlots, drop_keys, key_weights};

const HIDDEN: usize = 64;
const HEADS: usize = 4;
const BATCH: usize = 48;

/// Layer activations `[batch, tokens, hidden]`, attention heads
/// `[batch, heads, tokens, head_dim]`, attention logits `[batch, heads,
/// queries, keys]`, and each example's real length.
struct Activations {
    hidden: Tensor<3>,
    heads: Tensor<4>,
    keys: Tensor<4>,
    lens: Vec<usize>,
}

struct Record {
    hidden: Option<Tensor<3>>,
    heads: Option<Tensor<4>>,
    keys: Option<Tensor<4>>,
}

impl TextSlots for Record {
    fn keys(
        &mut self,
        _: &str,
        scores: Tensor<4>,
        _: &Tensor<2, Bool>,
    ) -> Result<Tensor<4>, MaskError> {
        self.keys.get_or_insert(scores.clone());
        Ok(scores)
    }
    fn hidden(
        &mut self,
        slot: &str,
        x: Tensor<3>,
        _: &Tensor<2, Bool>,
    ) -> Result<Tensor<3>, MaskError> {
        if slot == "layer1" {
            self.hidden = Some(x.clone());
        }
        Ok(x)
    }
    fn heads(
        &mut self,
        _: &str,
        x: Tensor<4>,
        _: &Tensor<2, Bool>,
    ) -> Result<Tensor<4>, MaskError> {
        self.heads.get_or_insert(x.clone());
        Ok(x)
    }
}

fn activations() -> &'static Activations {
    static ACTS: OnceLock<Activations> = OnceLock::new();
    ACTS.get_or_init(|| {
        let data = text::load(
            &repo_root().join("data/austen-sentences"),
            TextFormat::LabelText,
        )
        .unwrap();
        let vocab = Vocabulary::train(&data.train, 4000, 48).unwrap();
        let examples: Vec<_> = data.val[..BATCH]
            .iter()
            .map(|e| (vocab.encode(e).unwrap(), e.label))
            .collect();
        let lens: Vec<usize> = examples.iter().map(|(e, _)| e.len).collect();
        let device = Device::default();
        let batch = TextBatcher {
            examples: std::sync::Arc::new(examples),
        }
        .batch(
            (0..BATCH)
                .map(|index| Item { index, aug_seed: 0 })
                .collect(),
            &device,
        );
        // Other tests' mask calls in this process seed the same generator.
        let mut record = Record {
            hidden: None,
            heads: None,
            keys: None,
        };
        probdrop_tui::plugins::library::with_generator(|| {
            device.seed(7);
            let encoder = TextEncoderConfig::new(vocab.size(), 48, 6)
                .with_hidden(HIDDEN)
                .with_heads(HEADS)
                .with_layers(1)
                .with_ff(128)
                .init(&device)
                .unwrap();
            encoder.forward(batch.ids, &batch.pad, &mut record).unwrap();
        });
        Activations {
            hidden: record.hidden.unwrap(),
            heads: record.heads.unwrap(),
            keys: record.keys.unwrap(),
            lens,
        }
    })
}

/// 1.0 at real tokens: `[batch, tokens, 1]`.
fn validity(lens: &[usize], tokens: usize) -> Tensor<3> {
    let v: Vec<f32> = lens
        .iter()
        .flat_map(|&l| (0..tokens).map(move |t| if t < l { 1.0 } else { 0.0 }))
        .collect();
    tensor([lens.len(), tokens, 1], v)
}

fn ctx(p: f64, seed: u64) -> MaskContext {
    MaskContext::training(p, seed)
}

/// The mask of a padded `[batch, tokens, hidden]` input, expanded to its shape.
fn padded_mask(s: &Strategy, x: &Tensor<3>, lens: &[usize], c: &MaskContext) -> Vec<f32> {
    let v = validity(lens, x.dims()[1]);
    let m = s.mask_padded(x, Some(&v), c).expect("mask");
    to_vec(m.expand(x.dims()))
}

/// (row of `hidden` values, is it a real token) for every token of the batch.
fn rows<'a>(
    m: &'a [f32],
    lens: &'a [usize],
    tokens: usize,
    hidden: usize,
) -> Vec<(&'a [f32], bool)> {
    m.chunks(hidden)
        .enumerate()
        .map(|(i, r)| (r, i % tokens < lens[i / tokens]))
        .collect()
}

struct Stats {
    dropped: f64,
    mean_real: f64,
}

/// Dropped fraction and mean mask over real positions; panics on any padded
/// position whose mask is not exactly 1.
fn real_stats(m: &[f32], lens: &[usize], tokens: usize, hidden: usize) -> Stats {
    let (mut zeros, mut sum, mut count) = (0usize, 0.0f64, 0usize);
    for (row, real) in rows(m, lens, tokens, hidden) {
        if real {
            zeros += row.iter().filter(|&&v| v == 0.0).count();
            sum += row.iter().map(|&v| v as f64).sum::<f64>();
            count += row.len();
        } else {
            assert!(row.iter().all(|&v| v == 1.0), "padding touched: {row:?}");
        }
    }
    Stats {
        dropped: zeros as f64 / count as f64,
        mean_real: sum / count as f64,
    }
}

/// Lengths of the zero runs along each real token's hidden units, and whether
/// each run reaches the end of the row.
fn hidden_runs(m: &[f32], lens: &[usize], tokens: usize, hidden: usize) -> Vec<(usize, bool)> {
    let mut runs = Vec::new();
    for (row, real) in rows(m, lens, tokens, hidden) {
        if real {
            runs.extend(zero_runs(row));
        }
    }
    runs
}

/// Zero runs of one sequence: (length, reaches the end).
fn zero_runs(seq: &[f32]) -> Vec<(usize, bool)> {
    let mut runs = Vec::new();
    let mut len = 0;
    for (i, &v) in seq.iter().chain(std::iter::once(&1.0)).enumerate() {
        if v == 0.0 {
            len += 1;
        } else if len > 0 {
            runs.push((len, i == seq.len()));
            len = 0;
        }
    }
    runs
}

/// The same activations with garbage at every padded position.
fn garbage_at_padding(x: &Tensor<3>, lens: &[usize]) -> Tensor<3> {
    let [b, t, h] = x.dims();
    let mut v = to_vec(x.clone());
    for (i, value) in v.iter_mut().enumerate() {
        let token = (i / h) % t;
        if token >= lens[i / (t * h)] {
            *value = 1000.0 + (i % 17) as f32;
        }
    }
    tensor([b, t, h], v)
}

#[test]
fn the_batch_is_padded_real_text() {
    let a = activations();
    let [b, t, h] = a.hidden.dims();
    assert_eq!((b, h), (BATCH, HIDDEN));
    assert_eq!(t, *a.lens.iter().max().unwrap());
    let padded: usize = a.lens.iter().map(|&l| t - l).sum();
    assert!(
        padded as f64 > 0.2 * (b * t) as f64,
        "the batch should be well padded: {padded} of {}",
        b * t
    );
}

#[test]
fn dropblock1d_hidden_drops_runs_of_b_at_real_tokens_only() {
    let a = activations();
    let [_, t, h] = a.hidden.dims();
    let (b, p) = (4usize, 0.1);
    let s = strategy("dropblock1d", &[("block_size", int(b as i64))]);
    let mut dropped = Vec::new();
    for seed in 0..8 {
        let m = padded_mask(&s, &a.hidden, &a.lens, &ctx(p, seed));
        let stats = real_stats(&m, &a.lens, t, h);
        // The rescale counts real positions only: exact up to its 1e-6.
        assert!((stats.mean_real - 1.0).abs() < 1e-3, "{}", stats.mean_real);
        dropped.push(stats.dropped);
        let runs = hidden_runs(&m, &a.lens, t, h);
        // Even b: a block at the end of a row may be cut by one.
        assert!(runs.iter().all(|&(r, end)| r >= b || end), "{runs:?}");
        let exact = runs.iter().filter(|&&(r, _)| r == b).count();
        assert!(exact as f64 > 0.7 * runs.len() as f64, "{runs:?}");
    }
    let got = dropped.iter().sum::<f64>() / dropped.len() as f64;
    let expected = expected_block_fraction(&[h], b, strategy_kit::ghiasi_gamma(p, b, &[h]), true);
    // ~1,000 real tokens × 64 units × 8 draws; blocks of 4 make about 10,000
    // independent seeds per draw: sd of the mean ~0.001. Tolerance 0.006.
    assert!((got - expected).abs() < 0.006, "{got} vs {expected}");
}

#[test]
fn dropblock1d_tokens_drops_whole_runs_of_real_tokens() {
    let a = activations();
    let [n, t, h] = a.hidden.dims();
    let (b, p) = (3usize, 0.15);
    let s = strategy(
        "dropblock1d",
        &[("block_size", int(b as i64)), ("axis", choice("tokens"))],
    );
    let (mut zeros, mut real) = (0usize, 0usize);
    let mut expected = 0.0;
    for seed in 0..20 {
        let m = padded_mask(&s, &a.hidden, &a.lens, &ctx(p, 100 + seed));
        let stats = real_stats(&m, &a.lens, t, h);
        assert!((stats.mean_real - 1.0).abs() < 1e-3, "{}", stats.mean_real);
        for sample in 0..n {
            let len = a.lens[sample];
            // One value per token (the first hidden unit), real tokens only.
            let per_token: Vec<f32> = (0..len).map(|tok| m[(sample * t + tok) * h]).collect();
            for tok in 0..len {
                let row = &m[(sample * t + tok) * h..(sample * t + tok + 1) * h];
                assert!(row.iter().all(|&v| v == row[0]), "a token dropped in part");
            }
            // Seeds fall only where a whole block is real: no cut runs at all.
            for (run, _) in zero_runs(&per_token) {
                assert!(run >= b, "sample {sample}: run of {run} in {per_token:?}");
            }
            zeros += per_token.iter().filter(|&&v| v == 0.0).count();
            real += len;
            if seed == 0 {
                // Each sample at its own real length, weighted by it.
                let g = strategy_kit::ghiasi_gamma(p, b, &[len.max(b)]);
                expected += len as f64 * expected_block_fraction(&[len], b, g, true);
            }
        }
    }
    let got = zeros as f64 / real as f64;
    let expected = expected / a.lens.iter().sum::<usize>() as f64;
    // ~1,000 real tokens × 20 draws, ~70 seeds per draw: sd of the mean ~0.006.
    assert!((got - expected).abs() < 0.02, "{got} vs {expected}");
}

#[test]
fn probdropblock1d_keeps_padding_out_of_salience_seeds_and_rescale() {
    let a = activations();
    let [_, t, h] = a.hidden.dims();
    let p = 0.1;
    let noisy = garbage_at_padding(&a.hidden, &a.lens);
    for axis in ["hidden", "tokens"] {
        for params in [
            vec![("axis", choice(axis))],
            vec![("axis", choice(axis)), ("drop", choice("low"))],
            vec![("axis", choice(axis)), ("group", choice("batch"))],
            vec![("axis", choice(axis)), ("normalize", choice("softmax"))],
            vec![("axis", choice(axis)), ("mode", choice("topk"))],
        ] {
            let s = strategy("probdropblock1d", &params);
            let c = ctx(p, 7);
            let m = padded_mask(&s, &a.hidden, &a.lens, &c);
            let stats = real_stats(&m, &a.lens, t, h);
            assert!(
                (stats.mean_real - 1.0).abs() < 1e-3,
                "{params:?}: {}",
                stats.mean_real
            );
            assert!(stats.dropped > 0.0, "{params:?} dropped nothing");
            // Whatever sits at padding, the mask is the same.
            let m2 = padded_mask(&s, &noisy, &a.lens, &c);
            assert_eq!(m, m2, "{params:?}: padding changed the mask");
        }
    }
}

#[test]
fn probdropblock1d_drops_like_dropblock1d_and_prefers_salient_units() {
    let a = activations();
    let [_, t, h] = a.hidden.dims();
    let (b, p) = (4usize, 0.1);
    let x = to_vec(a.hidden.clone());
    let block = strategy("dropblock1d", &[("block_size", int(b as i64))]);
    let prob = strategy("probdropblock1d", &[("block_size", int(b as i64))]);
    let low = strategy(
        "probdropblock1d",
        &[("block_size", int(b as i64)), ("drop", choice("low"))],
    );
    let (mut f_block, mut f_prob) = (0.0, Vec::new());
    let (mut high_split, mut low_split) = ((0.0, 0.0), (0.0, 0.0));
    for seed in 0..8 {
        let c = ctx(p, 200 + seed);
        f_block += real_stats(&padded_mask(&block, &a.hidden, &a.lens, &c), &a.lens, t, h).dropped;
        let m = padded_mask(&prob, &a.hidden, &a.lens, &c);
        f_prob.push(real_stats(&m, &a.lens, t, h).dropped);
        let (d, k) = salience_split(&x, &m, &a.lens, t, h);
        high_split = (high_split.0 + d, high_split.1 + k);
        let m = padded_mask(&low, &a.hidden, &a.lens, &c);
        let (d, k) = salience_split(&x, &m, &a.lens, t, h);
        low_split = (low_split.0 + d, low_split.1 + k);
    }
    // Issue 17: the default (gamma = "matched") drops DropBlock1D's expected
    // fraction over the real tokens (blocks along each token's hidden units),
    // within 2 % relative plus three standard errors of the 8 draws.
    let target = expected_block_fraction(&[h], b, strategy_kit::ghiasi_gamma(p, b, &[h]), true);
    let mean = f_prob.iter().sum::<f64>() / 8.0;
    let sd = (f_prob.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / 7.0).sqrt();
    assert!(
        (mean - target).abs() <= 0.02 * target + 3.0 * sd / 8f64.sqrt(),
        "ProbDropBlock1D {mean} (sd {sd}) vs DropBlock1D's expected {target}"
    );
    let f_block = f_block / 8.0;
    assert!(
        (f_block - target).abs() < 0.1 * target,
        "DropBlock1D {f_block} vs {target}"
    );
    assert!(high_split.0 > high_split.1, "high: {high_split:?}");
    assert!(low_split.0 < low_split.1, "low: {low_split:?}");
}

/// Mean |x| of dropped and of kept real positions.
fn salience_split(x: &[f32], m: &[f32], lens: &[usize], t: usize, h: usize) -> (f64, f64) {
    let (mut d, mut nd, mut k, mut nk) = (0.0, 0usize, 0.0, 0usize);
    for (i, (&xv, &mv)) in x.iter().zip(m).enumerate() {
        if (i / h) % t >= lens[i / (t * h)] {
            continue;
        }
        if mv == 0.0 {
            d += xv.abs() as f64;
            nd += 1;
        } else {
            k += xv.abs() as f64;
            nk += 1;
        }
    }
    (d / nd.max(1) as f64, k / nk.max(1) as f64)
}

#[test]
fn drophead_drops_whole_heads_and_leaves_padding() {
    let a = activations();
    let [n, heads, t, d] = a.heads.dims();
    let p = 0.25;
    let s = strategy("drophead", &[]);
    let v = validity(&a.lens, t).reshape([n, 1, t, 1]);
    let (mut dropped, mut total) = (0usize, 0usize);
    for seed in 0..20 {
        let m = s
            .mask_padded(&a.heads, Some(&v), &ctx(p, 300 + seed))
            .unwrap();
        let m = to_vec(m.expand([n, heads, t, d]));
        for sample in 0..n {
            let mut kept = 0;
            for head in 0..heads {
                let at = |tok: usize| m[((sample * heads + head) * t + tok) * d];
                let first = at(0);
                for tok in 0..t {
                    if tok < a.lens[sample] {
                        assert_eq!(at(tok), first, "a head dropped in part");
                    } else {
                        assert_eq!(at(tok), 1.0, "padding touched");
                    }
                }
                if first == 0.0 {
                    dropped += 1;
                } else {
                    kept += 1;
                    assert!(
                        (first - heads as f32 / kept_heads(&m, sample, heads, t, d) as f32).abs()
                            < 1e-5
                    );
                }
            }
            let _ = kept;
            total += heads;
        }
    }
    let got = dropped as f64 / total as f64;
    // 3,840 Bernoulli(0.25) draws: sd 0.007; tolerance 0.03.
    assert!((got - p).abs() < 0.03, "{got}");
}

/// DropKey keeps each real logit with probability 1 − p, independently of
/// its neighbours, as a 0/1 mask (no rescale), and never touches a padded key.
#[test]
fn dropkey_drops_real_logits_at_p_unscaled_and_independently() {
    let a = activations();
    let [n, heads, q, k] = a.keys.dims();
    let p = 0.3;
    let s = strategy("dropkey", &[]);
    let v = validity(&a.lens, k).reshape([n, 1, 1, k]);
    let m = to_vec(
        s.mask_padded(&a.keys, Some(&v), &ctx(p, 41))
            .unwrap()
            .expand([n, heads, q, k]),
    );
    let (mut dropped, mut real, mut pairs, mut both) = (0usize, 0usize, 0usize, 0usize);
    for (row, values) in m.chunks(k).enumerate() {
        let len = a.lens[row / (heads * q)];
        for (key, &value) in values.iter().enumerate() {
            assert!(value == 0.0 || value == 1.0, "{value}: rescaled");
            if key >= len {
                assert_eq!(value, 1.0, "a padded key dropped");
                continue;
            }
            real += 1;
            dropped += usize::from(value == 0.0);
            if key + 1 < len {
                pairs += 1;
                both += usize::from(value == 0.0 && values[key + 1] == 0.0);
            }
        }
    }
    let got = dropped as f64 / real as f64;
    let sd = (p * (1.0 - p) / real as f64).sqrt();
    assert!(
        (got - p).abs() < 5.0 * sd.max(1e-3),
        "dropped {got} of {real}"
    );
    // Neighbouring keys drop together at p², as independent draws do.
    let together = both as f64 / pairs as f64;
    assert!(
        (together - p * p).abs() < 0.02,
        "{together} against {}",
        p * p
    );
}

/// DropKey's mask through the model's own attention: every row of weights
/// sums to 1, dropped keys and padding get none, and a query whose every
/// real key is dropped attends evenly to its real keys (never NaN).
#[test]
fn dropkey_rows_sum_to_one_and_a_fully_dropped_row_attends_evenly() {
    let a = activations();
    let [n, heads, q, k] = a.keys.dims();
    let s = strategy("dropkey", &[]);
    let v = validity(&a.lens, k).reshape([n, 1, 1, k]);
    let keep = s.mask_padded(&a.keys, Some(&v), &ctx(0.8, 43)).unwrap();
    let pad: Vec<bool> = a
        .lens
        .iter()
        .flat_map(|&l| (0..k).map(move |t| t >= l))
        .collect();
    let pad =
        Tensor::<2, Bool>::from_data(burn::tensor::TensorData::new(pad, [n, k]), &a.keys.device());
    let keep = keep.expand([n, heads, q, k]);
    let weights = to_vec(key_weights(drop_keys(a.keys.clone(), keep.clone()), &pad));
    let keep = to_vec(keep);
    let mut fully_dropped = 0;
    for (row, (w, m)) in weights.chunks(k).zip(keep.chunks(k)).enumerate() {
        let len = a.lens[row / (heads * q)];
        let sum: f32 = w.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "row {row} sums to {sum}");
        assert!(w[len..].iter().all(|&x| x == 0.0), "padding weighted");
        if m[..len].iter().all(|&x| x == 0.0) {
            fully_dropped += 1;
            let even = 1.0 / len as f32;
            assert!(w[..len].iter().all(|&x| (x - even).abs() < 1e-5), "{w:?}");
        } else {
            let dropped = w[..len].iter().zip(m).filter(|(_, m)| **m == 0.0);
            assert!(dropped.clone().all(|(&x, _)| x == 0.0), "{w:?}");
        }
    }
    assert!(fully_dropped > 0, "no row had every key dropped at p = 0.8");
}

fn kept_heads(m: &[f32], sample: usize, heads: usize, t: usize, d: usize) -> usize {
    (0..heads)
        .filter(|&head| m[((sample * heads + head) * t) * d] != 0.0)
        .count()
}

#[test]
fn padded_masks_are_seeded_and_dropout_leaves_padding_too() {
    let a = activations();
    let [_, t, h] = a.hidden.dims();
    for name in ["dropout", "dropblock1d", "probdropblock1d"] {
        let s = strategy(name, &[]);
        let one = padded_mask(&s, &a.hidden, &a.lens, &ctx(0.2, 5));
        assert_eq!(
            one,
            padded_mask(&s, &a.hidden, &a.lens, &ctx(0.2, 5)),
            "{name}"
        );
        assert_ne!(
            one,
            padded_mask(&s, &a.hidden, &a.lens, &ctx(0.2, 6)),
            "{name}"
        );
        real_stats(&one, &a.lens, t, h);
    }
}
