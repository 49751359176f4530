//! probdrop-tui (issue 35): the native conv2d and batch-norm kernels against
//! upstream's paths on the same inputs (the app's `tests/flex_ops.rs` checks
//! them against PyTorch and a naive reference as well).

use alloc::vec::Vec;
use burn_backend::TensorData;
use burn_backend::ops::{ConvOptions, ModuleOps};

use super::{batch_norm_native, conv2d_native, upstream};
use crate::{Flex, FlexTensor};

fn values(n: usize, seed: u64) -> Vec<f32> {
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

fn tensor(shape: &[usize], seed: u64) -> FlexTensor {
    let n = shape.iter().product();
    FlexTensor::from_data(TensorData::new(values(n, seed), shape.to_vec()))
}

fn flat(t: FlexTensor) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn assert_close(what: &str, ours: FlexTensor, theirs: FlexTensor) {
    assert_eq!(
        ours.layout().shape(),
        theirs.layout().shape(),
        "{what}: shapes"
    );
    let (a, b) = (flat(ours), flat(theirs));
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 2e-5 * scale,
        "{what}: max difference {worst} against {scale}"
    );
}

/// (input, weight, options): strides, padding (asymmetric too), dilation,
/// groups, 1×1, and planes small enough that a GEMM takes several samples.
fn cases() -> Vec<([usize; 4], [usize; 4], ConvOptions<2>)> {
    let asym = ConvOptions::new_with_padding([1, 2], [(1, 2), (0, 1)], [1, 1], 1);
    alloc::vec![
        (
            [3, 4, 9, 7],
            [5, 4, 3, 3],
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
        ),
        (
            [3, 4, 9, 7],
            [6, 4, 3, 3],
            ConvOptions::new([2, 2], [1, 1], [1, 1], 1)
        ),
        (
            [2, 6, 8, 8],
            [6, 3, 3, 3],
            ConvOptions::new([1, 2], [0, 1], [2, 1], 2)
        ),
        (
            [5, 8, 6, 6],
            [4, 8, 1, 1],
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1)
        ),
        (
            [5, 8, 7, 7],
            [4, 8, 1, 1],
            ConvOptions::new([2, 2], [0, 0], [1, 1], 1)
        ),
        (
            [7, 16, 4, 4],
            [8, 16, 3, 3],
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
        ),
        (
            [1, 3, 10, 11],
            [4, 3, 5, 2],
            ConvOptions::new([3, 1], [2, 0], [1, 2], 1)
        ),
        ([3, 4, 9, 7], [5, 4, 3, 2], asym),
    ]
}

#[test]
fn conv2d_matches_upstream() {
    crate::set_native_kernels(false);
    for (i, (xs, ws, options)) in cases().into_iter().enumerate() {
        let (x, w, bias) = (
            tensor(&xs, 1 + i as u64),
            tensor(&ws, 50 + i as u64),
            tensor(&[ws[0]], 99),
        );
        let ours = conv2d_native::conv2d(x.clone(), w.clone(), Some(bias.clone()), &options);
        let theirs = Flex::conv2d(x.clone(), w.clone(), Some(bias.clone()), options.clone());
        assert_close(&alloc::format!("case {i} forward"), ours.clone(), theirs);
        let dy = tensor(ours.layout().shape(), 7 + i as u64);
        assert_close(
            &alloc::format!("case {i} input grad"),
            conv2d_native::conv2d_x_backward(x.clone(), w.clone(), dy.clone(), &options),
            upstream::conv2d_x_backward::<Flex>(x.clone(), w.clone(), dy.clone(), options.clone()),
        );
        assert_close(
            &alloc::format!("case {i} weight grad"),
            conv2d_native::conv2d_weight_backward(x.clone(), w.clone(), dy.clone(), &options),
            upstream::conv2d_weight_backward::<Flex>(x.clone(), w, dy.clone(), options.clone()),
        );
        assert_close(
            &alloc::format!("case {i} bias grad"),
            batch_norm_native::channel_sums(dy.clone()),
            upstream::conv2d_bias_backward::<Flex>(x, bias, dy),
        );
    }
}

#[test]
fn batch_norm_matches_upstream() {
    crate::set_native_kernels(false);
    for (i, shape) in [[4usize, 3, 5, 6], [3, 2, 1, 1], [6, 5, 2, 3]]
        .iter()
        .enumerate()
    {
        let x = tensor(shape, 3 + i as u64);
        let (gamma, beta) = (tensor(&[shape[1]], 11), tensor(&[shape[1]], 12));
        let ours = batch_norm_native::train(x.clone(), gamma.clone(), beta.clone(), 1e-5);
        let theirs =
            upstream::batch_norm_train::<Flex>(x.clone(), gamma.clone(), beta.clone(), 1e-5);
        assert_close("train output", ours.output.clone(), theirs.output);
        assert_close("mean", ours.mean.clone(), theirs.mean);
        assert_close("variance", ours.variance.clone(), theirs.variance);
        let dy = tensor(shape, 21 + i as u64);
        let g = batch_norm_native::train_backward(
            x.clone(),
            gamma.clone(),
            ours.mean.clone(),
            ours.variance.clone(),
            1e-5,
            dy.clone(),
        );
        let r = upstream::batch_norm_train_backward::<Flex>(
            x.clone(),
            gamma.clone(),
            ours.mean.clone(),
            ours.variance.clone(),
            1e-5,
            dy,
        );
        assert_close("x grad", g.x, r.x_grad);
        assert_close("gamma grad", g.gamma, r.gamma_grad);
        assert_close("beta grad", g.beta, r.beta_grad);
        assert_close(
            "inference",
            batch_norm_native::infer(
                x.clone(),
                gamma.clone(),
                beta.clone(),
                ours.mean.clone(),
                ours.variance.clone(),
                1e-5,
            ),
            upstream::batch_norm::<Flex>(x, gamma, beta, ours.mean, ours.variance, 1e-5),
        );
    }
}

#[test]
fn max_pool2d_matches_upstream() {
    use super::pool2d_native::{Pool2d, max_pool2d};
    let cases = [
        ([2, 3, 8, 8], [2, 2], [2, 2], [0, 0], [1, 1], false),
        ([2, 3, 7, 9], [3, 3], [1, 1], [1, 1], [1, 1], false),
        ([1, 2, 9, 7], [3, 2], [2, 3], [1, 0], [2, 1], false),
        ([2, 2, 7, 7], [2, 2], [2, 2], [0, 0], [1, 1], true),
        ([1, 1, 5, 6], [3, 3], [2, 2], [1, 1], [1, 1], true),
        // Stride 1 (the framed flat path without indices): mask expansions
        // over many small planes, even kernels, dilation, no padding.
        ([64, 64, 7, 7], [3, 3], [1, 1], [1, 1], [1, 1], false),
        ([3, 5, 6, 8], [4, 2], [1, 1], [2, 1], [1, 1], false),
        ([2, 3, 9, 8], [3, 3], [1, 1], [2, 1], [2, 2], false),
        ([2, 2, 6, 5], [5, 5], [1, 1], [0, 0], [1, 1], false),
        ([1, 1, 1, 1], [1, 1], [1, 1], [0, 0], [1, 1], false),
    ];
    for (i, (shape, kernel, stride, padding, dilation, ceil_mode)) in cases.into_iter().enumerate()
    {
        let x = tensor(&shape, 40 + i as u64);
        let pool = Pool2d {
            kernel,
            stride,
            padding,
            dilation,
            ceil_mode,
        };
        let (ours, idx) = max_pool2d(x.clone(), pool, true);
        let (theirs, their_idx) = super::pool::max_pool2d_with_indices_f32(
            x.clone(),
            kernel,
            stride,
            padding,
            dilation,
            ceil_mode,
        );
        assert_eq!(ours.layout().shape(), theirs.layout().shape(), "case {i}");
        assert_eq!(flat(ours.clone()), flat(theirs), "case {i} values");
        let idx: Vec<i64> = idx.unwrap().into_data().try_to_vec::<i64>().unwrap();
        let their_idx: Vec<i64> = their_idx.into_data().try_to_vec::<i64>().unwrap();
        assert_eq!(idx, their_idx, "case {i} indices");
        assert_eq!(
            flat(max_pool2d(x, pool, false).0),
            flat(ours),
            "case {i} without indices"
        );
    }
}

#[test]
fn uniform_draws_are_uniform_reproducible_and_in_range() {
    use burn_backend::{Backend, Distribution, ops::FloatTensorOps};
    use burn_std::FloatDType;
    let draw = |seed: u64, low: f64, high: f64| {
        Flex::seed(&Default::default(), seed);
        let t = Flex::float_random(
            [100_003].into(),
            Distribution::Uniform(low, high),
            &Default::default(),
            FloatDType::F32,
        );
        flat(t)
    };
    let a = draw(7, 0.0, 1.0);
    assert_eq!(a, draw(7, 0.0, 1.0), "same seed, same values");
    assert_ne!(a, draw(8, 0.0, 1.0), "another seed, other values");
    assert!(a.iter().all(|&v| (0.0..1.0).contains(&v)));
    // Mean 1/2 and variance 1/12 within ~5 standard errors.
    let n = a.len() as f64;
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    assert!((mean - 0.5).abs() < 5.0 * (1.0 / 12.0 / n).sqrt(), "mean {mean}");
    assert!((var - 1.0 / 12.0).abs() < 5e-3, "variance {var}");
    // 100 equal bins: chi-square with 99 degrees of freedom, p < 1e-4 refused.
    let mut bins = [0f64; 100];
    for &v in &a {
        bins[(v * 100.0) as usize] += 1.0;
    }
    let expected = n / 100.0;
    let chi2: f64 = bins.iter().map(|b| (b - expected).powi(2) / expected).sum();
    assert!(chi2 < 170.0, "chi-square {chi2}");
    // Consecutive values uncorrelated (lag-1 correlation within ~5 s.e.).
    let lag: f64 = a
        .windows(2)
        .map(|w| (w[0] as f64 - mean) * (w[1] as f64 - mean))
        .sum::<f64>()
        / (n - 1.0)
        / var;
    assert!(lag.abs() < 5.0 / n.sqrt(), "lag-1 correlation {lag}");
    let b = draw(3, -2.0, 6.0);
    assert!(b.iter().all(|&v| (-2.0..6.0).contains(&v)));
    let mean = b.iter().map(|&v| v as f64).sum::<f64>() / b.len() as f64;
    assert!((mean - 2.0).abs() < 0.05, "mean {mean}");
}

#[test]
fn uniform_values_follow_one_stream_whatever_the_chunking() {
    use super::random_native::{uniform_f32, unit};
    use burn_std::rand::{RngExt, SeedableRng};
    let mut rng = crate::backend::FlexRng::seed_from_u64(11);
    let key: u64 = crate::backend::FlexRng::seed_from_u64(11).random();
    // Several parallel chunks; each value as the sequential stream gives it.
    let t = flat(uniform_f32([40_000].into(), 0.0, 1.0, &mut rng));
    for (i, v) in t.iter().enumerate() {
        assert_eq!(*v, unit(key, i as u64), "element {i}");
    }
}
