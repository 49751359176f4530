//! probdrop-tui: LibTorch's own kernels for the hot backward operations and
//! batch norm, where burn's defaults compose elementary operations (see
//! vendor/README.md for the measurements behind each). The C++ side is
//! `native_ops.cpp`, compiled by build.rs against the same LibTorch.

use std::ffi::{CStr, c_char};

use burn_backend::ops::ConvOptions;
use tch::Tensor;
use torch_sys::C_tensor;

unsafe extern "C" {
    fn pdt_free_error(message: *mut c_char);
    fn pdt_set_cudnn_deterministic(on: bool);
    fn pdt_convolution_backward(
        grad_output: *const C_tensor,
        input: *const C_tensor,
        weight: *const C_tensor,
        stride: *const i64,
        padding: *const i64,
        dilation: *const i64,
        dims: usize,
        groups: i64,
        want_input: bool,
        want_weight: bool,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn pdt_batch_norm_train(
        input: *const C_tensor,
        gamma: *const C_tensor,
        beta: *const C_tensor,
        eps: f64,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn pdt_sgd_step(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        velocity: *const *const C_tensor,
        n: usize,
        lr: f64,
        weight_decay: f64,
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        out_params: *mut *mut C_tensor,
        out_velocity: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn pdt_adamw_step(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        m1: *const *const C_tensor,
        m2: *const *const C_tensor,
        n: usize,
        time: u64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        out_params: *mut *mut C_tensor,
        out_m1: *mut *mut C_tensor,
        out_m2: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn pdt_op_counter_start();
    fn pdt_op_counter_stop() -> *mut c_char;
    fn pdt_batch_norm_backward(
        grad_output: *const C_tensor,
        input: *const C_tensor,
        gamma: *const C_tensor,
        mean: *const C_tensor,
        variance: *const C_tensor,
        eps: f64,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
}

/// Copies out and frees a message the shim malloc'd.
fn message_of(text: *mut c_char) -> String {
    // SAFETY: `text` is a non-null NUL-terminated string malloc'd by the shim,
    // alive until freed below; it is copied out first.
    let message = unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: freed once, by the shim's own free, and not read again.
    unsafe { pdt_free_error(text) };
    message
}

/// Takes the shim's results: panics with LibTorch's message on an error (as
/// tch's own bindings do), else owns each returned tensor.
fn take<const N: usize>(error: *mut c_char, out: [*mut C_tensor; N]) -> [Option<Tensor>; N] {
    if !error.is_null() {
        panic!("LibTorch: {}", message_of(error));
    }
    // SAFETY: each non-null pointer is a fresh `new at::Tensor` from the shim
    // that nothing else holds; tch::Tensor deletes it when dropped.
    out.map(|p| (!p.is_null()).then(|| unsafe { Tensor::from_ptr(p) }))
}

/// Restricts cuDNN to deterministic algorithms (on) or lets it use any (off,
/// LibTorch's default), as `torch.backends.cudnn.deterministic` does.
pub fn set_cudnn_deterministic(on: bool) {
    // SAFETY: sets a flag of LibTorch's global context; takes no pointers and
    // cannot throw.
    unsafe { pdt_set_cudnn_deterministic(on) }
}

/// The input and weight gradients of a convolution without bias and with
/// symmetric padding, each only if asked for.
pub fn conv_backward<const N: usize>(
    grad_output: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    options: &ConvOptions<N>,
    want: [bool; 2],
) -> [Option<Tensor>; 2] {
    let stride = options.stride.map(|s| s as i64);
    let padding = options.padding_begin().map(|p| p as i64);
    let dilation = options.dilation.map(|d| d as i64);
    let mut out = [std::ptr::null_mut(); 2];
    // SAFETY: the tensors are live for the call (borrowed), the three arrays
    // hold N elements each, `out` has room for the two results, and the shim
    // catches every C++ exception.
    let error = unsafe {
        pdt_convolution_backward(
            grad_output.as_ptr(),
            input.as_ptr(),
            weight.as_ptr(),
            stride.as_ptr(),
            padding.as_ptr(),
            dilation.as_ptr(),
            N,
            options.groups as i64,
            want[0],
            want[1],
            out.as_mut_ptr(),
        )
    };
    take(error, out)
}

/// Batch norm over the batch's own statistics: output, mean, biased variance.
pub fn batch_norm_train(input: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> [Tensor; 3] {
    let mut out = [std::ptr::null_mut(); 3];
    // SAFETY: as in `conv_backward`; `out` has room for the three results.
    let error = unsafe {
        pdt_batch_norm_train(
            input.as_ptr(),
            gamma.as_ptr(),
            beta.as_ptr(),
            eps,
            out.as_mut_ptr(),
        )
    };
    take(error, out).map(|t| t.expect("batch norm returns three tensors"))
}

/// The input, gamma and beta gradients of [batch_norm_train].
pub fn batch_norm_backward(
    grad_output: &Tensor,
    input: &Tensor,
    gamma: &Tensor,
    mean: &Tensor,
    variance: &Tensor,
    eps: f64,
) -> [Tensor; 3] {
    let mut out = [std::ptr::null_mut(); 3];
    // SAFETY: as in `conv_backward`; `out` has room for the three results.
    let error = unsafe {
        pdt_batch_norm_backward(
            grad_output.as_ptr(),
            input.as_ptr(),
            gamma.as_ptr(),
            mean.as_ptr(),
            variance.as_ptr(),
            eps,
            out.as_mut_ptr(),
        )
    };
    take(error, out).map(|t| t.expect("batch norm backward returns three tensors"))
}

/// Owns `n` fresh tensors the shim wrote into `out` (see [take]).
fn take_list(error: *mut c_char, out: Vec<*mut C_tensor>) -> Vec<Tensor> {
    if !error.is_null() {
        panic!("LibTorch: {}", message_of(error));
    }
    // SAFETY: as in `take`: each pointer is a fresh heap tensor from the shim.
    out.into_iter()
        .map(|p| unsafe { Tensor::from_ptr(p) })
        .collect()
}

fn pointers(tensors: &[Tensor]) -> Vec<*const C_tensor> {
    tensors.iter().map(|t| t.as_ptr()).collect()
}

/// SGD's settings, as burn-optim's `Sgd` takes them.
#[derive(Clone, Copy, Debug)]
pub struct SgdSettings {
    /// Learning rate.
    pub lr: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Momentum factor (0: none).
    pub momentum: f64,
    /// Dampening of the gradient in the velocity.
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// One SGD step over every parameter at once, out of place: the new
/// parameters and (with momentum) the new velocities. `velocity` is `None` on
/// the parameters' first step.
pub fn sgd_step(
    params: &[Tensor],
    grads: &[Tensor],
    velocity: Option<&[Tensor]>,
    s: SgdSettings,
) -> (Vec<Tensor>, Vec<Tensor>) {
    let n = params.len();
    assert!(grads.len() == n && velocity.is_none_or(|v| v.len() == n));
    let (p, g) = (pointers(params), pointers(grads));
    let v = velocity.map(pointers);
    let mut out_p = vec![std::ptr::null_mut(); n];
    let mut out_v = vec![std::ptr::null_mut(); if s.momentum != 0.0 { n } else { 0 }];
    // SAFETY: every list holds n live tensors (borrowed for the call), the
    // outputs have room for what the shim writes (n new parameters, n
    // velocities with momentum), and the shim catches every C++ exception.
    let error = unsafe {
        pdt_sgd_step(
            p.as_ptr(),
            g.as_ptr(),
            v.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
            n,
            s.lr,
            s.weight_decay,
            s.momentum,
            s.dampening,
            s.nesterov,
            out_p.as_mut_ptr(),
            out_v.as_mut_ptr(),
        )
    };
    (take_list(error, out_p), take_list(std::ptr::null_mut(), out_v))
}

/// AdamW's settings, as burn-optim's `AdamW` takes them.
#[derive(Clone, Copy, Debug)]
pub struct AdamWSettings {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// One AdamW step over every parameter at once, out of place: the new
/// parameters and moments. `moments` is `None` on the first step; `time` is
/// the step count after this step.
pub fn adamw_step(
    params: &[Tensor],
    grads: &[Tensor],
    moments: Option<(&[Tensor], &[Tensor])>,
    time: u64,
    s: AdamWSettings,
) -> [Vec<Tensor>; 3] {
    let n = params.len();
    assert!(grads.len() == n && moments.is_none_or(|(a, b)| a.len() == n && b.len() == n));
    let (p, g) = (pointers(params), pointers(grads));
    let m = moments.map(|(a, b)| (pointers(a), pointers(b)));
    let null = std::ptr::null();
    let mut out = [0; 3].map(|_| vec![std::ptr::null_mut(); n]);
    let [out_p, out_m1, out_m2] = &mut out;
    // SAFETY: as in `sgd_step`; each output has room for n tensors.
    let error = unsafe {
        pdt_adamw_step(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ref().map_or(null, |m| m.0.as_ptr()),
            m.as_ref().map_or(null, |m| m.1.as_ptr()),
            n,
            time,
            s.lr,
            s.beta1,
            s.beta2,
            s.eps,
            s.weight_decay,
            out_p.as_mut_ptr(),
            out_m1.as_mut_ptr(),
            out_m2.as_mut_ptr(),
        )
    };
    let [out_p, out_m1, out_m2] = out;
    [
        take_list(error, out_p),
        take_list(std::ptr::null_mut(), out_m1),
        take_list(std::ptr::null_mut(), out_m2),
    ]
}

/// Starts counting the top-level ATen operators called, from zero.
pub fn op_counter_start() {
    // SAFETY: registers a LibTorch callback; takes no pointers.
    unsafe { pdt_op_counter_start() }
}

/// Stops counting; the count per operator name since the last start.
pub fn op_counter_stop() -> Vec<(String, u64)> {
    // SAFETY: returns a malloc'd string (never null unless out of memory,
    // checked below), freed by `message_of`.
    let text = unsafe { pdt_op_counter_stop() };
    if text.is_null() {
        return Vec::new();
    }
    message_of(text)
        .lines()
        .filter_map(|l| {
            let (name, n) = l.rsplit_once(' ')?;
            Some((name.to_string(), n.parse().ok()?))
        })
        .collect()
}
