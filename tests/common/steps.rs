//! What `tests/flex_ops.rs` and `tests/native_ops.rs` share: deterministic
//! inputs, a closeness check, models built from one set of weights, and
//! training steps with each kind of optimiser. Each test file uses part of it.
#![allow(dead_code)]

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use probdrop_tui::experiment::{ModelKind, ModelSpec};
use probdrop_tui::train::models::{InputKind, Model};
use probdrop_tui::train::optim::{Rule, RunOptimizer, Stepping};

/// Deterministic values in [-1, 1) (bench/flex_ops_fixture.py has the same).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

pub fn tensor<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(values(n, seed), shape), device)
}

pub fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Largest difference within `tolerance` of the reference's largest magnitude.
pub fn assert_close(what: &str, ours: &[f32], reference: &[f32], tolerance: f32) {
    assert_eq!(ours.len(), reference.len(), "{what}: lengths");
    let scale = reference.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= tolerance * scale,
        "{what}: max difference {worst} against max magnitude {scale}"
    );
}

/// Every parameter's gradient, in the order the module visits them.
pub struct GradsOf<'a>(pub &'a burn::optim::GradientsParams, pub Vec<Vec<f32>>);

impl burn::module::ModuleVisitor for GradsOf<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        if let Some(grad) = self.0.get::<D>(param.id) {
            self.1.push(flat(grad));
        }
    }
}

/// A model's initial weights, made once on flex and loaded on each device so
/// that every device starts from the same ones (tests build models on several
/// threads at once, so seeding alone would not do).
pub struct Weights {
    kind: ModelKind,
    input: InputKind,
    bytes: Vec<u8>,
}

impl Weights {
    pub fn new(kind: ModelKind, input: InputKind) -> Self {
        let flex = Device::flex().autodiff();
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("model.bpk");
        Model::build(&ModelSpec::of(kind), input, 10, &flex)
            .unwrap()
            .save_file(&file)
            .unwrap();
        let bytes = std::fs::read(&file).unwrap();
        Weights { kind, input, bytes }
    }

    pub fn on(&self, device: &Device) -> Model {
        let bytes = burn::tensor::Bytes::from_bytes_vec(self.bytes.clone());
        let record = burn::store::ModuleRecord::from_bytes(bytes).unwrap();
        Model::build(&ModelSpec::of(self.kind), self.input, 10, device)
            .unwrap()
            .try_load_record(record)
            .unwrap()
    }
}

/// Three SGD steps (momentum 0.9) of a CIFAR-shaped `model` on fixed
/// batches with `stepping`: the first step's gradient of every parameter,
/// and the three losses.
pub fn three_steps(
    mut model: Model,
    device: &Device,
    stepping: Stepping,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let rule = Rule::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    };
    let mut optim = RunOptimizer::new(rule, stepping);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new((0..8i64).collect(), [8]), device);
    let (mut losses, mut first_grads) = (Vec::new(), Vec::new());
    for step in 0..3 {
        let images = tensor([8, 3, 32, 32], 20 + step, device);
        let logits = model.forward(images, &mut |_, x| Ok(x)).unwrap();
        let loss = loss_fn.forward(logits, labels.clone());
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
        if step == 0 {
            let mut visitor = GradsOf(&grads, Vec::new());
            model.visit(&mut visitor);
            first_grads = visitor.1;
        }
        model = optim.step(0.05, model, grads);
    }
    (first_grads, losses)
}

/// `steps` updates of the small CNN on fixed batches, from batch
/// `first_batch` on.
pub fn small_cnn_steps(
    device: &Device,
    optim: &mut RunOptimizer,
    model: Model,
    first_batch: u64,
    steps: u64,
) -> Model {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new((0..8i64).collect(), [8]), device);
    (first_batch..first_batch + steps).fold(model, |model, b| {
        let images = tensor([8, 1, 28, 28], 40 + b, device);
        let logits = model.forward(images, &mut |_, x| Ok(x)).unwrap();
        let loss = loss_fn.forward(logits, labels.clone());
        let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
        optim.step(0.05, model, grads)
    })
}

/// Every parameter's values, in the order the module visits them.
pub fn parameters(model: &Model) -> Vec<f32> {
    let mut all = ParamsOf(Vec::new());
    model.visit(&mut all);
    all.0
}

struct ParamsOf(Vec<f32>);

impl burn::module::ModuleVisitor for ParamsOf {
    fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
        self.0.extend(flat(p.val()));
    }
}

pub const RULES: [Rule; 4] = [
    Rule::Sgd {
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    },
    Rule::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
    },
    Rule::Sgd {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
    },
    Rule::AdamW {
        betas: [0.9, 0.999],
        eps: 1e-8,
        weight_decay: 0.05,
    },
];

/// One small-CNN step with each of `kinds` from the same model, batch and
/// optimiser state (`state`: an optimiser file, or none for a first step):
/// the parameters.
///
/// Compared one step at a time: over several steps AdamW turns rounding-level
/// differences into whole steps of size lr (its update is about lr·sign(g) for
/// a gradient that is near zero), seen on 4 of 421,642 elements by step 3.
pub fn one_step_each(
    rule: Rule,
    model: &Model,
    state: Option<&std::path::Path>,
    device: &Device,
    kinds: [Stepping; 2],
) -> [Vec<f32>; 2] {
    kinds.map(|stepping| {
        let mut optim = RunOptimizer::new(rule, stepping);
        if let Some(file) = state {
            optim = optim.load(file).unwrap();
        }
        parameters(&small_cnn_steps(device, &mut optim, model.clone(), 2, 1))
    })
}

/// `kind` updates as burn's per-parameter optimiser does, for each update
/// rule, on a first step and on a step with state (burn's, loaded).
pub fn steps_as_burns_per_parameter_optimiser(kind: Stepping, device: &Device) {
    let weights = Weights::new(ModelKind::SmallCnn, InputKind::Image([1, 28, 28]));
    let tmp = tempfile::tempdir().unwrap();
    let kinds = [kind, Stepping::PerParameter];
    for rule in RULES {
        let model = weights.on(device);
        let [ours, burns] = one_step_each(rule, &model, None, device, kinds);
        assert_close(&format!("{rule:?} first step"), &ours, &burns, 1e-5);

        let mut history = RunOptimizer::new(rule, Stepping::PerParameter);
        let model = small_cnn_steps(device, &mut history, model, 0, 2);
        let file = tmp.path().join("burn.bpk");
        history.save(&file).unwrap();
        let [ours, burns] = one_step_each(rule, &model, Some(&file), device, kinds);
        assert_close(&format!("{rule:?} third step"), &ours, &burns, 1e-5);
    }
}

/// `kind`'s checkpoint resumes on it and on burn's per-parameter optimiser
/// exactly as it would have gone on without the break.
pub fn checkpoints_resume_on_either_kind(kind: Stepping, device: &Device) {
    let weights = Weights::new(ModelKind::SmallCnn, InputKind::Image([1, 28, 28]));
    let tmp = tempfile::tempdir().unwrap();
    for rule in RULES {
        let mut optim = RunOptimizer::new(rule, kind);
        let model = weights.on(device);
        let model = small_cnn_steps(device, &mut optim, model, 0, 2);
        let file = tmp.path().join("state.bpk");
        optim.save(&file).unwrap();
        let unbroken = parameters(&small_cnn_steps(device, &mut optim, model.clone(), 2, 1));
        let kinds = [kind, Stepping::PerParameter];
        for (resumed, stepping) in one_step_each(rule, &model, Some(&file), device, kinds)
            .iter()
            .zip(kinds)
        {
            let what = format!("{rule:?} resumed on {}", stepping.label());
            assert_close(&what, resumed, &unbroken, 1e-5);
        }
    }
}
