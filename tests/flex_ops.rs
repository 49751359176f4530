//! The native kernels of the patched burn-flex (vendor/README.md) on the
//! default backend, through burn's autodiff as training uses them:
//! - against PyTorch's results on fixed inputs (tests/fixtures/flex_ops/torch.json,
//!   written by bench/flex_ops_fixture.py; CI needs no torch);
//! - against upstream flex's own paths on the same inputs
//!   (`burn_flex::set_native_kernels(false)`);
//! - a CIFAR ResNet-18 trained three steps both ways from the same weights;
//! - the fused optimiser against burn-optim's, checkpoints across both.

use std::sync::Mutex;

use burn::tensor::module::{batch_norm, batch_norm_train, conv2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use probdrop_tui::experiment::{ModelKind, ModelSpec};
use probdrop_tui::train::models::{InputKind, Model};
use probdrop_tui::train::optim::Stepping;
use serde_json::Value;

#[path = "common/steps.rs"]
mod steps;
use steps::*;

/// The kernel switch is process-wide: tests that depend on it take turns.
static KERNELS: Mutex<()> = Mutex::new(());

fn with_kernels<R>(native: bool, f: impl FnOnce() -> R) -> R {
    let _turn = KERNELS.lock().unwrap_or_else(|e| e.into_inner());
    burn_flex::set_native_kernels(native);
    let result = f();
    burn_flex::set_native_kernels(true);
    result
}

fn device() -> Device {
    Device::flex().autodiff()
}

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/flex_ops/torch.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn dims<const D: usize>(v: &Value) -> [usize; D] {
    let d: Vec<usize> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    d.try_into().unwrap()
}

fn pair(v: &Value) -> [usize; 2] {
    dims(v)
}

/// A convolution of the fixture: its options and inputs.
struct ConvCase {
    options: ConvOptions<2>,
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    seed_dy: u64,
}

impl ConvCase {
    fn of(case: &Value, device: &Device) -> Self {
        let padding = case["padding"].as_array().unwrap();
        let [top, bottom] = pair(&padding[0]);
        let [left, right] = pair(&padding[1]);
        let options = ConvOptions::new_with_padding(
            pair(&case["stride"]),
            [(top, bottom), (left, right)],
            pair(&case["dilation"]),
            case["groups"].as_u64().unwrap() as usize,
        );
        let seed = |k: &str| case["seeds"][k].as_u64().unwrap();
        let ws: [usize; 4] = dims(&case["weight"]);
        Self {
            options,
            x: tensor(dims(&case["input"]), seed("x"), device),
            weight: tensor(ws, seed("weight"), device),
            bias: tensor([ws[0]], seed("bias"), device),
            seed_dy: seed("dy"),
        }
    }

    /// Output, then the input, weight and bias gradients of `sum(y · dy)`.
    fn results(&self, device: &Device) -> [Vec<f32>; 4] {
        let (x, w, b) = (
            self.x.clone().require_grad(),
            self.weight.clone().require_grad(),
            self.bias.clone().require_grad(),
        );
        let y = conv2d(x.clone(), w.clone(), Some(b.clone()), self.options.clone());
        let dy = tensor(y.dims(), self.seed_dy, device);
        let grads = (y.clone() * dy).sum().backward();
        [
            flat(y),
            flat(x.grad(&grads).unwrap()),
            flat(w.grad(&grads).unwrap()),
            flat(b.grad(&grads).unwrap()),
        ]
    }
}

const CONV_RESULTS: [&str; 4] = ["output", "x_grad", "weight_grad", "bias_grad"];

#[test]
fn conv2d_and_its_gradients_agree_with_pytorch() {
    let device = device();
    let fixture = fixture();
    for (i, case) in fixture["conv2d"].as_array().unwrap().iter().enumerate() {
        let conv = ConvCase::of(case, &device);
        assert_eq!(flat(conv.x.clone())[..4], floats(&case["x_head"])[..]);
        let ours = with_kernels(true, || conv.results(&device));
        for (name, values) in CONV_RESULTS.iter().zip(&ours) {
            assert_close(
                &format!("conv case {i} {name}"),
                values,
                &floats(&case[name]),
                1e-5,
            );
        }
    }
}

#[test]
fn conv2d_and_its_gradients_agree_with_upstream_flex() {
    let device = device();
    let fixture = fixture();
    for (i, case) in fixture["conv2d"].as_array().unwrap().iter().enumerate() {
        let conv = ConvCase::of(case, &device);
        let ours = with_kernels(true, || conv.results(&device));
        let upstream = with_kernels(false, || conv.results(&device));
        for ((name, a), b) in CONV_RESULTS.iter().zip(&ours).zip(&upstream) {
            assert_close(&format!("conv case {i} {name}"), a, b, 1e-5);
        }
    }
}

const BN_RESULTS: [&str; 7] = [
    "output",
    "mean",
    "variance",
    "x_grad",
    "gamma_grad",
    "beta_grad",
    "inference",
];

/// Batch norm's training output, statistics and gradients of `sum(y · dy)`,
/// then its inference output with the fixture's running statistics.
fn batch_norm_results(case: &Value, device: &Device) -> Vec<Vec<f32>> {
    let shape: [usize; 4] = dims(&case["shape"]);
    let seed = |k: &str| case["seeds"][k].as_u64().unwrap();
    let eps = case["epsilon"].as_f64().unwrap();
    let x = tensor(shape, seed("x"), device).require_grad();
    let gamma = tensor([shape[1]], seed("gamma"), device).require_grad();
    let beta = tensor([shape[1]], seed("beta"), device).require_grad();
    let out = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps);
    let grads = (out.output.clone() * tensor(shape, seed("dy"), device))
        .sum()
        .backward();
    let running =
        |k: &str| Tensor::<1>::from_data(TensorData::new(floats(&case[k]), [shape[1]]), device);
    let inference = batch_norm(
        x.clone().detach(),
        gamma.clone().detach(),
        beta.clone().detach(),
        running("running_mean"),
        running("running_var"),
        eps,
    );
    vec![
        flat(out.output),
        flat(out.mean),
        flat(out.variance),
        flat(x.grad(&grads).unwrap()),
        flat(gamma.grad(&grads).unwrap()),
        flat(beta.grad(&grads).unwrap()),
        flat(inference),
    ]
}

#[test]
fn batch_norm_agrees_with_pytorch() {
    let device = device();
    let fixture = fixture();
    for (i, case) in fixture["batch_norm"].as_array().unwrap().iter().enumerate() {
        let ours = with_kernels(true, || batch_norm_results(case, &device));
        for (name, values) in BN_RESULTS.iter().zip(&ours) {
            assert_close(
                &format!("batch norm case {i} {name}"),
                values,
                &floats(&case[name]),
                1e-5,
            );
        }
    }
}

#[test]
fn batch_norm_agrees_with_upstream_flex() {
    let device = device();
    let fixture = fixture();
    for (i, case) in fixture["batch_norm"].as_array().unwrap().iter().enumerate() {
        let ours = with_kernels(true, || batch_norm_results(case, &device));
        let upstream = with_kernels(false, || batch_norm_results(case, &device));
        for ((name, a), b) in BN_RESULTS.iter().zip(&ours).zip(&upstream) {
            assert_close(&format!("batch norm case {i} {name}"), a, b, 1e-5);
        }
    }
}

/// The same tolerances as `tests/native_ops.rs` (LibTorch against flex): each
/// parameter's first gradient within 1e-2 of its norm, the first loss within
/// 1e-5, the three losses within 1e-2. A wrong kernel is off by its whole size.
#[test]
fn resnet18_trained_three_steps_agrees_with_upstream_flex() {
    let device = device();
    // Seeded (no other test of this file draws random numbers), so every run
    // has the same weights: the gaps come from rounding (f64 sums against f32
    // ones) turning a few activations to the other side of a ReLU, and their
    // size depends on the weights. The largest parameter gap measured with
    // seeds 1 to 5 and 7 was 1.7e-3 to 8.3e-3; unseeded runs reached 1.2e-2.
    device.seed(1);
    let model = Model::build(
        &ModelSpec::of(ModelKind::Resnet18),
        InputKind::Image([3, 32, 32]),
        10,
        &device,
    )
    .unwrap();
    let (grads, losses) = with_kernels(true, || {
        three_steps(model.clone(), &device, Stepping::PerParameter)
    });
    let (ref_grads, ref_losses) = with_kernels(false, || {
        three_steps(model, &device, Stepping::PerParameter)
    });
    assert_eq!(
        ref_grads.len(),
        62,
        "every conv, batch-norm and linear parameter"
    );
    assert_eq!(grads.len(), ref_grads.len());
    let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| x * x).sum::<f32>().sqrt();
    for (i, (ours, reference)) in grads.iter().zip(&ref_grads).enumerate() {
        let gap = norm(&mut ours.iter().zip(reference).map(|(a, b)| a - b));
        let size = norm(&mut reference.iter().copied()).max(1e-12);
        assert!(
            gap <= 1e-2 * size,
            "parameter {i}: relative gap {}",
            gap / size
        );
    }
    assert_close("first loss", &losses[..1], &ref_losses[..1], 1e-5);
    assert_close("losses", &losses, &ref_losses, 1e-2);
}

/// Max pooling's output, indices and input gradient of `sum(y · dy)`.
fn max_pool_results(case: &Value, device: &Device) -> (Vec<f32>, Vec<i64>, Vec<f32>) {
    use burn::tensor::module::max_pool2d_with_indices;
    use burn::tensor::ops::MaxPoolOptions;
    let seed = |k: &str| case["seeds"][k].as_u64().unwrap();
    let x = tensor(dims::<4>(&case["input"]), seed("x"), device).require_grad();
    let options = MaxPoolOptions::new(pair(&case["kernel"]))
        .with_stride(pair(&case["stride"]))
        .with_padding(pair(&case["padding"]))
        .with_dilation(pair(&case["dilation"]))
        .with_ceil_mode(case["ceil_mode"].as_bool().unwrap());
    let out = max_pool2d_with_indices(x.clone(), options);
    let dy = tensor(out.0.dims(), seed("dy"), device);
    let grads = (out.0.clone() * dy).sum().backward();
    let indices = out
        .1
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    (flat(out.0), indices, flat(x.grad(&grads).unwrap()))
}

#[test]
fn max_pool2d_agrees_with_pytorch_and_upstream_flex() {
    let device = device();
    let fixture = fixture();
    for (i, case) in fixture["max_pool2d"].as_array().unwrap().iter().enumerate() {
        let (values, indices, x_grad) = with_kernels(true, || max_pool_results(case, &device));
        assert_eq!(values, floats(&case["output"]), "pool case {i} output");
        let expected: Vec<i64> = case["indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(indices, expected, "pool case {i} indices");
        assert_eq!(x_grad, floats(&case["x_grad"]), "pool case {i} x_grad");
        let upstream = with_kernels(false, || max_pool_results(case, &device));
        assert_eq!(
            (values, indices, x_grad),
            upstream,
            "pool case {i} against upstream"
        );
    }
}

/// The fused optimiser updates as burn's per-parameter one does, for each
/// update rule, on a first step and on a step with state (burn's, loaded).
#[test]
fn fused_optimiser_steps_as_burns_per_parameter_one() {
    steps_as_burns_per_parameter_optimiser(Stepping::Fused, &device());
}

/// The fused optimiser's checkpoint resumes on either kind exactly as it
/// would have gone on without the break.
#[test]
fn fused_optimiser_checkpoints_resume_on_either_kind() {
    checkpoints_resume_on_either_kind(Stepping::Fused, &device());
}
