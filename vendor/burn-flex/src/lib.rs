#![cfg_attr(not(feature = "std"), no_std)]

//! # burn-flex
//!
//! A fast, portable CPU backend for [Burn](https://github.com/tracel-ai/burn).
//!
//! ## Features
//!
//! - Pure Rust (no C dependencies)
//! - f16/bf16 support
//! - SIMD acceleration via macerator (NEON, AVX2/AVX-512/SSE, SIMD128, scalar fallback)
//! - Zero-copy tensor views
//! - Thread-safe by design
//!
//! ## Usage
//!
//! ```ignore
//! use burn_flex::Flex;
//! use burn::tensor::Tensor;
//!
//! let tensor: Tensor<Flex, 2> = Tensor::from_data([[1.0, 2.0], [3.0, 4.0]], &Default::default());
//! ```

extern crate alloc;

#[cfg(all(not(target_has_atomic = "ptr"), not(feature = "critical-section")))]
compile_error!(
    "This target lacks atomic CAS support. Enable the `critical-section` feature: \
     burn-flex = { ..., features = [\"critical-section\"] }"
);

mod backend;
mod layout;
mod qtensor;
mod strided_index;
mod tensor;
mod zip;

#[doc(hidden)]
pub mod ops;

#[doc(hidden)]
pub mod simd;

pub use backend::{Flex, FlexDevice};
// probdrop-tui (issue 35): a fused kernel's uniforms, the same as a drawn tensor's.
pub use ops::random_native::{uniform_key, unit as uniform_unit};
pub use layout::Layout;
pub use qtensor::FlexQTensor;
pub use tensor::FlexTensor;

// probdrop-tui (issue 35): the native 2-D convolution and batch norm kernels
// run unless a test or bench turns them off to compare with upstream's paths.
static NATIVE_KERNELS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// Turns the native conv2d and batch-norm kernels on (the default) or off
/// (burn-backend's default decompositions and upstream's conv2d), process-wide.
pub fn set_native_kernels(on: bool) {
    NATIVE_KERNELS.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// Whether the native kernels run: see [set_native_kernels].
pub fn native_kernels() -> bool {
    NATIVE_KERNELS.load(core::sync::atomic::Ordering::Relaxed)
}
