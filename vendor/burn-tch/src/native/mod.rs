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

/// Takes the shim's results: panics with LibTorch's message on an error (as
/// tch's own bindings do), else owns each returned tensor.
fn take<const N: usize>(error: *mut c_char, out: [*mut C_tensor; N]) -> [Option<Tensor>; N] {
    if !error.is_null() {
        // SAFETY: a non-null error is a NUL-terminated string malloc'd by the
        // shim, alive until freed below; it is copied out first.
        let message = unsafe { CStr::from_ptr(error) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: freed once, by the shim's own free, and not read again.
        unsafe { pdt_free_error(error) };
        panic!("LibTorch: {message}");
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
