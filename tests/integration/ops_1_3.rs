//! The host ops of plugin interfaces 1.3 to 1.5 through the plugin's own wrapper
//! (`plugin_api::Ops`/`Tensor` over the host's table), checked against values
//! worked out by hand. `check_every_op` runs on flex here and on LibTorch in
//! tests/native_ops.rs, which includes this file.

use burn::tensor::{Device, Tensor as Burn, TensorData};
use plugin_api::{Ops, Tensor};
use probdrop_tui::plugins::host_ops::{HOST_OPS, Session};

type Check = fn(&Ops<'static>, &Session, &Device);

/// Every check of this file on `device`, each in a fresh arena.
pub fn check_every_op(device: &Device) {
    let checks: [(&str, Check); 12] = [
        ("rounding", rounding),
        ("remainder", remainder),
        ("arange", arange),
        ("randint", randint),
        ("select", select),
        ("concat", concat),
        ("concat of nothing", concat_of_nothing),
        ("gather", gather),
        ("index_select", index_select),
        ("block_keep", block_keep),
        ("block_mask", block_mask),
        ("mean_one", mean_one),
    ];
    for (name, check) in checks {
        let session = Session::open(device.clone());
        let ops = Ops::new(&HOST_OPS).unwrap();
        check(&ops, &session, device);
        eprintln!("{name}: ok");
    }
}

fn put<const R: usize>(
    session: &Session,
    ops: &Ops<'static>,
    device: &Device,
    shape: [usize; R],
    values: &[f32],
) -> Tensor<'static> {
    let t = Burn::<R>::from_data(TensorData::new(values.to_vec(), shape), device);
    ops.adopt(session.insert(t).unwrap())
}

fn get<const R: usize>(session: &Session, t: Tensor<'static>) -> (Vec<usize>, Vec<f32>) {
    let t = session.take::<R>(t.into_handle()).unwrap();
    let shape = t.dims().to_vec();
    (shape, t.into_data().try_to_vec::<f32>().unwrap())
}

/// The host's own message of the op that failed (the first failure of the
/// arena: one per check).
fn failure(session: &Session, result: plugin_api::Result<Tensor<'static>>) -> String {
    let err = result.expect_err("the op should fail");
    format!("{err}: {}", session.last_error().unwrap_or_default())
}

const HALVES: [f32; 8] = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 7.0, -1.2];

fn rounding(ops: &Ops<'static>, s: &Session, d: &Device) {
    let x = || put(s, ops, d, [8], &HALVES);
    let floor = get::<1>(s, x().floor().unwrap()).1;
    assert_eq!(floor, [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 7.0, -2.0]);
    let ceil = get::<1>(s, x().ceil().unwrap()).1;
    assert_eq!(ceil, [-2.0, -1.0, -0.0, 1.0, 2.0, 3.0, 7.0, -1.0]);
    // Halves to even, as in torch.round.
    let round = get::<1>(s, x().round().unwrap()).1;
    assert_eq!(round, [-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, 7.0, -1.0]);
}

fn remainder(ops: &Ops<'static>, s: &Session, d: &Device) {
    let x = || put(s, ops, d, [6], &[7.0, -1.0, -7.0, 6.0, 0.0, 2.5]);
    let by_3 = get::<1>(s, x().rem_scalar(3.0).unwrap()).1;
    assert_eq!(by_3, [1.0, 2.0, 2.0, 0.0, 0.0, 2.5]);
    let by_minus_3 = get::<1>(s, x().rem_scalar(-3.0).unwrap()).1;
    assert_eq!(by_minus_3, [-2.0, -1.0, -1.0, 0.0, 0.0, -0.5]);
    // Per-row divisors broadcast: [2, 3] % [[4], [5]].
    let a = put(s, ops, d, [2, 3], &[9.0, 10.0, 11.0, 9.0, 10.0, 11.0]);
    let divisors = put(s, ops, d, [2, 1], &[4.0, 5.0]);
    let rows = get::<2>(s, a.rem(divisors).unwrap()).1;
    assert_eq!(rows, [1.0, 2.0, 3.0, 4.0, 0.0, 1.0]);
}

fn arange(ops: &Ops<'static>, s: &Session, _: &Device) {
    let columns = get::<2>(s, ops.arange(&[2, 3], 1).unwrap());
    assert_eq!(columns, (vec![2, 3], vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0]));
    let rows = get::<2>(s, ops.arange(&[2, 3], 0).unwrap()).1;
    assert_eq!(rows, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let err = failure(s, ops.arange(&[2, 3], 2));
    assert!(
        err.contains("arange") && err.contains("out of range"),
        "{err}"
    );
}

fn randint(ops: &Ops<'static>, s: &Session, _: &Device) {
    const DRAWS: usize = 70_000;
    let values = get::<1>(s, ops.randint(&[DRAWS], -3, 4).unwrap()).1;
    let mut counts = [0usize; 7];
    for v in values {
        assert!(v.fract() == 0.0 && (-3.0..4.0).contains(&v), "{v}");
        counts[(v + 3.0) as usize] += 1;
    }
    // Each of the 7 values has probability 1/7: count 10 000, sd about 92;
    // six standard deviations is a failure rate far below one in a million.
    for (value, count) in (-3..4).zip(counts) {
        assert!(count.abs_diff(10_000) < 560, "{value}: {count} of {DRAWS}");
    }
    let err = failure(s, ops.randint(&[3], 2, 2));
    assert!(err.contains("empty range"), "{err}");
}

fn select(ops: &Ops<'static>, s: &Session, d: &Device) {
    let cond = put(s, ops, d, [2, 1], &[1.0, 0.0]);
    let a = put(s, ops, d, [2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = ops.full(&[1], -1.0).unwrap();
    let chosen = get::<2>(s, ops.select(cond, a, b).unwrap());
    assert_eq!(chosen, (vec![2, 3], vec![1.0, 2.0, 3.0, -1.0, -1.0, -1.0]));
    let (c, x, y) = (
        ops.full(&[2], 1.0).unwrap(),
        ops.full(&[3], 1.0).unwrap(),
        ops.full(&[1], 0.0).unwrap(),
    );
    let err = failure(s, ops.select(c, x, y));
    assert!(err.contains("do not broadcast"), "{err}");
}

fn concat(ops: &Ops<'static>, s: &Session, d: &Device) {
    let left = put(s, ops, d, [2, 1], &[1.0, 2.0]);
    // A helper needs no `ops` of its own: the tensor lends them.
    let right = left.ops().full(&[2, 2], 9.0).unwrap();
    let joined = get::<2>(s, ops.concat(vec![left, right], 1).unwrap());
    assert_eq!(joined, (vec![2, 3], vec![1.0, 9.0, 9.0, 2.0, 9.0, 9.0]));
    let parts = vec![
        ops.full(&[2, 1], 0.0).unwrap(),
        ops.full(&[3, 1], 0.0).unwrap(),
    ];
    let err = failure(s, ops.concat(parts, 1));
    assert!(err.contains("differ outside dimension 1"), "{err}");
}

/// Apart from `concat`: an arena keeps the first error of its call.
fn concat_of_nothing(ops: &Ops<'static>, s: &Session, _: &Device) {
    let err = failure(s, ops.concat(vec![], 0));
    assert!(err.contains("nothing to concatenate"), "{err}");
}

fn gather(ops: &Ops<'static>, s: &Session, d: &Device) {
    let row_major: Vec<f32> = (0..8).map(|v| v as f32).collect();
    let x = || put(s, ops, d, [2, 4], &row_major);
    let index = put(s, ops, d, [2, 2], &[3.0, 0.0, 1.0, 1.0]);
    let picked = get::<2>(s, x().gather(1, index).unwrap());
    assert_eq!(picked, (vec![2, 2], vec![3.0, 0.0, 5.0, 5.0]));
    // One index row serves every row of x.
    let shared = put(s, ops, d, [1, 3], &[2.0, 2.0, 0.0]);
    let picked = get::<2>(s, x().gather(1, shared).unwrap()).1;
    assert_eq!(picked, [2.0, 2.0, 0.0, 6.0, 6.0, 4.0]);
    let outside = put(s, ops, d, [2, 1], &[0.0, 4.0]);
    let err = failure(s, x().gather(1, outside));
    assert!(err.contains("outside 0..4"), "{err}");
}

fn index_select(ops: &Ops<'static>, s: &Session, d: &Device) {
    let x = put(s, ops, d, [3, 2], &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
    let rows = put(s, ops, d, [3], &[2.0, 0.0, 2.0]);
    let picked = get::<2>(s, x.index_select(0, rows).unwrap());
    assert_eq!(picked, (vec![3, 2], vec![20.0, 21.0, 0.0, 1.0, 20.0, 21.0]));
    let x = put(s, ops, d, [3, 2], &[0.0; 6]);
    let negative = put(s, ops, d, [1], &[-1.0]);
    let err = failure(s, x.index_select(0, negative));
    assert!(err.contains("outside 0..3"), "{err}");
}

/// Both means of interface 1.4's `block_keep`, worked out by hand for a
/// 1-D window of 3 and a 2-D one (flex takes its fused path, LibTorch the
/// composed ops).
fn block_keep(ops: &Ops<'static>, s: &Session, d: &Device) {
    const Q_MAX: f64 = 1.0 - 1e-6;
    let x = || put(s, ops, d, [1, 4], &[1.0, 2.0, 0.0, 4.0]);
    let means = |gamma: f32, valid: Option<[f32; 4]>, exact: bool| {
        let g = put(s, ops, d, [1, 1], &[gamma]);
        let v = valid.map(|v| put(s, ops, d, [1, 4], &v));
        let (m, fall) = x()
            .block_keep(&g, v.as_ref(), &[1], 3, Q_MAX, exact)
            .unwrap();
        [get::<2>(s, m).1[0], get::<2>(s, fall).1[0]]
    };
    // 1 − q = [0.9, 0.8, 1, 0.6]; kept [0.72, 0.72, 0.48, 0.6].
    close(means(0.1, None, false), [0.63, 2.4]);
    close(means(0.1, None, true), [0.63, 3.4]);
    close(means(0.1, Some([1.0, 1.0, 1.0, 0.0]), false), [0.64, 2.4]);
    // q = [0.3, 0.6, 0, Q_MAX]: the saturated seed adds nothing to the slope.
    close(means(0.3, None, true), [0.140_000_35, 0.900_000_5]);
    // 2-D, [2, 3] of ones, 3×3 windows: 4, 6 and 4 cells in each row.
    let ones = put(s, ops, d, [1, 1, 2, 3], &[1.0; 6]);
    let g = put(s, ops, d, [1, 1, 1, 1], &[0.1]);
    let (m, fall) = ones.block_keep(&g, None, &[2, 3], 3, Q_MAX, false).unwrap();
    let got = [get::<4>(s, m).1[0], get::<4>(s, fall).1[0]];
    let (k4, k6) = (0.9f32.powi(4), 0.9f32.powi(6));
    close(got, [(2.0 * k4 + k6) / 3.0, (8.0 * k4 + 6.0 * k6) / 3.0]);
}

/// Interface 1.5's `block_mask` where the seeds are certain: rates 0 and 1
/// (`u < 1` always, `u < 0` never), so the blocks and the rescale are known.
fn block_mask(ops: &Ops<'static>, s: &Session, d: &Device) {
    let mask = |rates: &[f32; 7], gamma: f32, b: usize| {
        let x = put(s, ops, d, [1, 7], rates);
        let g = put(s, ops, d, [1, 1], &[gamma]);
        get::<2>(s, x.block_mask(&g, &[1], b, 1e-6).unwrap()).1
    };
    let one_seed = [0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0];
    // b = 3 drops 2..=4 around the seed at 3: 4 kept of 7.
    let want = [1.75, 1.75, 0.0, 0.0, 0.0, 1.75, 1.75];
    near(&mask(&one_seed, 1.0, 3), &want);
    // b = 2: one cell before, none after (the even window's crop): 3 and 4.
    let want = [1.4, 1.4, 1.4, 0.0, 0.0, 1.4, 1.4];
    near(&mask(&one_seed, 1.0, 2), &want);
    // No seed: nothing dropped; every seed: everything.
    near(&mask(&one_seed, 0.0, 3), &[1.0; 7]);
    near(&mask(&[1.0; 7], 5.0, 3), &[0.0; 7]);
    // 2-D: one seed in the middle of 3×3 covers the whole plane.
    let x = put(
        s,
        ops,
        d,
        [1, 1, 3, 3],
        &[0., 0., 0., 0., 1., 0., 0., 0., 0.],
    );
    let g = put(s, ops, d, [1, 1, 1, 1], &[1.0]);
    let (shape, got) = get::<4>(s, x.block_mask(&g, &[2, 3], 3, 1e-6).unwrap());
    assert_eq!(shape, [1, 1, 3, 3]);
    near(&got, &[0.0; 9]);
}

/// Interface 1.5's `mean_one`: each row to mean 1, an all-zero row to 1.
fn mean_one(ops: &Ops<'static>, s: &Session, d: &Device) {
    let x = put(s, ops, d, [2, 3], &[1.0, 2.0, 3.0, 0.0, 0.0, 0.0]);
    let (shape, got) = get::<2>(s, x.mean_one(1, 1e-12).unwrap());
    assert_eq!(shape, [2, 3]);
    near(&got, &[0.5, 1.0, 1.5, 1.0, 1.0, 1.0]);
}

fn near(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} against {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{got:?} against {want:?}"
        );
    }
}

fn close(got: [f32; 2], want: [f32; 2]) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 2e-5 * w.abs(), "{got:?} against {want:?}");
    }
}

#[test]
fn interface_1_3_to_1_5_ops_compute_what_they_promise_on_flex() {
    check_every_op(&Device::default());
}
