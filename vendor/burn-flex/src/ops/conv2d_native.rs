//! probdrop-tui (issue 35): 2-D convolution forward, input gradient and
//! weight gradient as 2-D kernels over NCHW data.
//!
//! Upstream runs conv2d as a 3-D convolution (an NHWC copy of the input, im2col
//! per tile, each tile's result copied back into NCHW), and burn-backend's
//! default backward passes add their own detours: the input gradient as a
//! transposed 3-D convolution, the weight gradient as a forward convolution over
//! batch-swapped copies. Here each worker takes a contiguous range of samples,
//! unfolds a block of them into one `[C·kh·kw, block·OH·OW]` buffer it reuses,
//! and runs one GEMM per block and group straight on the NCHW tensors:
//!
//! - forward:      y_b  = W · col(x_b)
//! - input grad:   dx_b = fold(Wᵀ · dy_b)      (fold adds each patch back)
//! - weight grad:  dW   = Σ_b dy_b · col(x_b)ᵀ (one partial sum per worker)
//!
//! A block holds one sample when its output plane is large enough for the GEMM
//! to run at speed (then nothing is copied: the GEMM reads and writes the
//! tensors themselves, and a 1×1 stride-1 convolution needs no unfold at all);
//! small planes (ResNet's last stage: 4×4) take several samples per GEMM.
//! Sums run in a fixed order for a given thread count, so results repeat bit
//! for bit.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape, bf16, f16};
use num_traits::Float;

use crate::{FlexTensor, Layout};

/// Columns one GEMM should have at least: below this a block takes more
/// samples. Measured on ResNet-18 (batch 128): 64, 512, 1024 and 2048 are no
/// better (the larger, the more is copied into and out of blocks).
const MIN_COLUMNS: usize = 256;

/// The element types the kernels run in; half types go through f32.
pub(crate) trait Real: Float + bytemuck::Pod + burn_backend::Element + Send + Sync {
    /// The value in f64, where sums accumulate.
    fn wide(self) -> f64;
}
impl Real for f32 {
    fn wide(self) -> f64 {
        self as f64
    }
}
impl Real for f64 {
    fn wide(self) -> f64 {
        self
    }
}

/// Forward convolution, `[N, C_in, H, W]` by `[C_out, C_in/groups, kh, kw]`.
pub(crate) fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => forward::<f32>(x, weight, bias, options),
        DType::F64 => forward::<f64>(x, weight, bias, options),
        DType::F16 | DType::BF16 => via_f32(x.dtype(), |f| {
            forward::<f32>(f(x), f(weight), bias.map(f), options)
        }),
        dtype => panic!("conv2d: unsupported dtype {dtype:?}"),
    }
}

/// Gradient of the loss with respect to the convolution's input.
pub(crate) fn conv2d_x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => input_grad::<f32>(x, weight, output_grad, options),
        DType::F64 => input_grad::<f64>(x, weight, output_grad, options),
        DType::F16 | DType::BF16 => via_f32(x.dtype(), |f| {
            input_grad::<f32>(f(x), f(weight), f(output_grad), options)
        }),
        dtype => panic!("conv2d_x_backward: unsupported dtype {dtype:?}"),
    }
}

/// Gradient of the loss with respect to the convolution's weight.
pub(crate) fn conv2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => weight_grad::<f32>(x, weight, output_grad, options),
        DType::F64 => weight_grad::<f64>(x, weight, output_grad, options),
        DType::F16 | DType::BF16 => via_f32(x.dtype(), |f| {
            weight_grad::<f32>(f(x), f(weight), f(output_grad), options)
        }),
        dtype => panic!("conv2d_weight_backward: unsupported dtype {dtype:?}"),
    }
}

/// Runs `op` in f32 on tensors of a half type and casts its result back.
fn via_f32(
    dtype: DType,
    op: impl FnOnce(&dyn Fn(FlexTensor) -> FlexTensor) -> FlexTensor,
) -> FlexTensor {
    use super::module::{cast_from_f32, cast_to_f32};
    match dtype {
        DType::F16 => cast_from_f32(op(&|t| cast_to_f32(t, f16::to_f32)), f16::from_f32),
        _ => cast_from_f32(op(&|t| cast_to_f32(t, bf16::to_f32)), bf16::from_f32),
    }
}

/// One convolution's sizes, per sample.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    oh: usize,
    ow: usize,
}

impl Geometry {
    fn new(x: &[usize], weight: &[usize], options: &ConvOptions<2>) -> Self {
        let (begin, end) = (options.padding_begin(), options.padding_end());
        let out = |i: usize| {
            let (len, k) = ([x[2], x[3]][i], weight[2 + i]);
            let span = options.dilation[i] * (k - 1) + 1;
            let padded = len + begin[i] + end[i];
            assert!(
                padded >= span,
                "conv2d: kernel larger than the padded input"
            );
            (padded - span) / options.stride[i] + 1
        };
        Self {
            batch: x[0],
            c_in: x[1],
            h: x[2],
            w: x[3],
            c_out: weight[0],
            kh: weight[2],
            kw: weight[3],
            stride: options.stride,
            pad: begin,
            dilation: options.dilation,
            groups: options.groups,
            oh: out(0),
            ow: out(1),
        }
    }

    /// Output positions per channel.
    fn positions(&self) -> usize {
        self.oh * self.ow
    }
    /// Rows of the unfolded input: one per input channel and kernel cell.
    fn patch_rows(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    /// A group's share of the unfolded rows (the GEMM's inner dimension).
    fn group_rows(&self) -> usize {
        self.patch_rows() / self.groups
    }
    fn group_out(&self) -> usize {
        self.c_out / self.groups
    }
    fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }
    fn out_len(&self) -> usize {
        self.c_out * self.positions()
    }
    fn weight_len(&self) -> usize {
        self.c_out * self.group_rows()
    }
    /// The input read as its own unfolding: 1×1, stride 1, no padding.
    fn unfold_is_identity(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.oh == self.h
            && self.ow == self.w
    }
    /// Samples per GEMM.
    fn block(&self) -> usize {
        MIN_COLUMNS.div_ceil(self.positions().max(1))
    }
}

/// A matrix in a slice: element (i, j) at `offset + i·rows + j·cols`.
#[derive(Clone, Copy)]
struct Strided<'a, T> {
    data: &'a [T],
    offset: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> Strided<'a, T> {
    fn rows(data: &'a [T], offset: usize, row_stride: usize) -> Self {
        Self {
            data,
            offset,
            row_stride,
            col_stride: 1,
        }
    }
    /// The transpose of the row-major matrix at `offset` with `row_stride`.
    fn transposed(data: &'a [T], offset: usize, row_stride: usize) -> Self {
        Self {
            data,
            offset,
            row_stride: 1,
            col_stride: row_stride,
        }
    }
    fn check(&self, rows: usize, cols: usize) {
        let last = self.offset + (rows - 1) * self.row_stride + (cols - 1) * self.col_stride;
        assert!(last < self.data.len(), "conv2d: GEMM operand out of bounds");
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]`, `dst` row-major with `dst_stride`.
#[allow(clippy::too_many_arguments)]
fn matmul<T: Real>(
    dst: &mut [T],
    dst_offset: usize,
    dst_stride: usize,
    lhs: Strided<'_, T>,
    rhs: Strided<'_, T>,
    [m, n, k]: [usize; 3],
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[dst_offset + i * dst_stride..][..n].fill(T::zero());
            }
        }
        return;
    }
    lhs.check(m, k);
    rhs.check(k, n);
    assert!(
        dst_offset + (m - 1) * dst_stride + n <= dst.len(),
        "conv2d: GEMM output out of bounds"
    );
    // SAFETY: the three bounds checks above keep every element gemm reads or
    // writes inside its slice; `dst` is borrowed mutably, so it aliases neither
    // operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(dst_offset),
            1,
            dst_stride as isize,
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Output positions `lo..hi` along one axis whose input index `o·stride + offset`
/// falls inside `0..len`.
fn valid_range(offset: isize, stride: usize, len: usize, out: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + s - 1) / s
    };
    let last = len as isize - 1 - offset;
    let hi = if last < 0 { 0 } else { (last / s + 1) as usize };
    let hi = hi.min(out);
    ((lo as usize).min(hi), hi)
}

/// Where kernel cell `(ki, kj)` reads: the row and column offsets and the
/// valid output ranges along each axis.
struct Tap {
    dy: isize,
    dx: isize,
    rows: (usize, usize),
    cols: (usize, usize),
}

impl Tap {
    fn new(g: &Geometry, ki: usize, kj: usize) -> Self {
        let dy = (ki * g.dilation[0]) as isize - g.pad[0] as isize;
        let dx = (kj * g.dilation[1]) as isize - g.pad[1] as isize;
        Self {
            dy,
            dx,
            rows: valid_range(dy, g.stride[0], g.h, g.oh),
            cols: valid_range(dx, g.stride[1], g.w, g.ow),
        }
    }
    /// Input index of the first valid column of output row `oy`.
    fn start(&self, g: &Geometry, oy: usize) -> usize {
        let iy = (oy * g.stride[0]) as isize + self.dy;
        let ix = (self.cols.0 * g.stride[1]) as isize + self.dx;
        iy as usize * g.w + ix as usize
    }
}

/// Writes sample `x_b`'s patches into `col` (row stride `ld`) from column `at`.
fn unfold<T: Real>(x_b: &[T], g: &Geometry, col: &mut [T], ld: usize, at: usize) {
    let plane = g.h * g.w;
    let mut row = 0;
    for c in 0..g.c_in {
        let input = &x_b[c * plane..][..plane];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let out = &mut col[row * ld + at..][..g.positions()];
                unfold_tap(input, g, &Tap::new(g, ki, kj), out);
                row += 1;
            }
        }
    }
}

fn unfold_tap<T: Real>(input: &[T], g: &Geometry, tap: &Tap, out: &mut [T]) {
    let (x0, x1) = tap.cols;
    let sx = g.stride[1];
    for (oy, line) in out.chunks_exact_mut(g.ow).enumerate() {
        if oy < tap.rows.0 || oy >= tap.rows.1 || x0 == x1 {
            line.fill(T::zero());
            continue;
        }
        line[..x0].fill(T::zero());
        line[x1..].fill(T::zero());
        let src = &input[tap.start(g, oy)..];
        if sx == 1 {
            line[x0..x1].copy_from_slice(&src[..x1 - x0]);
        } else {
            for (o, v) in line[x0..x1].iter_mut().enumerate() {
                *v = src[o * sx];
            }
        }
    }
}

/// Adds the patches in `col` (row stride `ld`, from column `at`) back into `dx_b`.
fn fold<T: Real>(col: &[T], g: &Geometry, ld: usize, at: usize, dx_b: &mut [T]) {
    let plane = g.h * g.w;
    let mut row = 0;
    for c in 0..g.c_in {
        let grad = &mut dx_b[c * plane..][..plane];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let patch = &col[row * ld + at..][..g.positions()];
                fold_tap(patch, g, &Tap::new(g, ki, kj), grad);
                row += 1;
            }
        }
    }
}

fn fold_tap<T: Real>(patch: &[T], g: &Geometry, tap: &Tap, grad: &mut [T]) {
    let (x0, x1) = tap.cols;
    let sx = g.stride[1];
    if x0 == x1 {
        return;
    }
    for oy in tap.rows.0..tap.rows.1 {
        let line = &patch[oy * g.ow + x0..oy * g.ow + x1];
        let dst = &mut grad[tap.start(g, oy)..];
        if sx == 1 {
            for (d, &v) in dst[..line.len()].iter_mut().zip(line) {
                *d = *d + v;
            }
        } else {
            for (o, &v) in line.iter().enumerate() {
                dst[o * sx] = dst[o * sx] + v;
            }
        }
    }
}

#[cfg(feature = "std")]
std::thread_local! {
    /// Each thread's two scratch buffers (unfolded patches, a block of rows),
    /// kept between calls: fresh multi-megabyte buffers per call cost page
    /// faults and zeroing every time.
    static SCRATCH: core::cell::RefCell<[Vec<f64>; 2]> = const { core::cell::RefCell::new([Vec::new(), Vec::new()]) };
}

/// Runs `f` with two scratch slices of `lens` elements (contents unspecified):
/// the thread's own when free, fresh ones otherwise.
fn with_scratch<T: Real, R>(lens: [usize; 2], f: impl FnOnce(&mut [T], &mut [T]) -> R) -> R {
    let mut f = Some(f);
    #[cfg(feature = "std")]
    if let Some(r) = SCRATCH.with(|cell| {
        let mut bufs = cell.try_borrow_mut().ok()?;
        Some(in_buffers(&mut bufs, lens, f.take()?))
    }) {
        return r;
    }
    let f = f.take().expect("not run yet");
    in_buffers(&mut [Vec::new(), Vec::new()], lens, f)
}

fn in_buffers<T: Real, R>(
    bufs: &mut [Vec<f64>; 2],
    lens: [usize; 2],
    f: impl FnOnce(&mut [T], &mut [T]) -> R,
) -> R {
    let words = |len: usize| (len * core::mem::size_of::<T>()).div_ceil(8);
    for (buf, &len) in bufs.iter_mut().zip(&lens) {
        if buf.len() < words(len) {
            buf.resize(words(len), 0.0);
        }
    }
    let [a, b] = bufs;
    let a: &mut [T] = bytemuck::cast_slice_mut(&mut a[..words(lens[0])]);
    let b: &mut [T] = bytemuck::cast_slice_mut(&mut b[..words(lens[1])]);
    f(&mut a[..lens[0]], &mut b[..lens[1]])
}

/// How many workers split the batch, and whether each GEMM should itself
/// run in parallel (when there are fewer samples than threads).
fn workers(batch: usize) -> (usize, gemm::Parallelism) {
    #[cfg(feature = "rayon")]
    {
        let threads = rayon::current_num_threads();
        if batch >= threads {
            (threads, gemm::Parallelism::None)
        } else {
            (1, gemm::Parallelism::Rayon(threads))
        }
    }
    #[cfg(not(feature = "rayon"))]
    {
        let _ = batch;
        (1, gemm::Parallelism::None)
    }
}

/// Calls `work(first_sample, chunk)` for contiguous chunks of `out` (whole
/// samples of `sample_len`), one chunk per worker, in parallel.
fn split_batch<T: Real>(
    out: &mut [T],
    sample_len: usize,
    batch: usize,
    work: impl Fn(usize, &mut [T], gemm::Parallelism) + Send + Sync,
) {
    let (n, parallelism) = workers(batch);
    let per_worker = batch.div_ceil(n.max(1)).max(1);
    let chunk = (per_worker * sample_len).max(1);
    #[cfg(feature = "rayon")]
    if n > 1 {
        use rayon::prelude::*;
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, part)| work(i * per_worker, part, parallelism));
        return;
    }
    for (i, part) in out.chunks_mut(chunk).enumerate() {
        work(i * per_worker, part, parallelism);
    }
}

/// A buffer of `len` values, every one of which the caller writes before any
/// is read: skips zeroing an output the kernel fills anyway.
pub(crate) fn unwritten<T: bytemuck::Pod>(len: usize) -> Vec<T> {
    let mut buffer = Vec::with_capacity(len);
    // SAFETY: the capacity is `len`; `T` is plain data (floats, indices: any
    // bit pattern valid), and callers write every value before reading it.
    unsafe { buffer.set_len(len) };
    buffer
}

fn contiguous<T: Real>(t: FlexTensor) -> FlexTensor {
    let t = t.into_contiguous();
    debug_assert_eq!(t.storage::<T>().len(), t.layout().num_elements());
    t
}

fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().to_vec()
}

fn tensor<T: Real>(data: Vec<T>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape)),
        T::dtype(),
    )
}

fn forward<T: Real>(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (x, weight) = (contiguous::<T>(x), contiguous::<T>(weight));
    let g = Geometry::new(&dims(&x), &dims(&weight), options);
    let (xs, ws) = (x.storage::<T>(), weight.storage::<T>());
    // Every value is written: by a GEMM that does not read its output, or by scatter.
    let mut y = unwritten::<T>(g.batch * g.out_len());
    split_batch(&mut y, g.out_len(), g.batch, |first, part, par| {
        forward_chunk(&g, xs, ws, first, part, par);
    });
    if let Some(bias) = bias {
        let bias = contiguous::<T>(bias);
        add_bias(&mut y, bias.storage::<T>(), g.positions());
    }
    tensor(y, vec![g.batch, g.c_out, g.oh, g.ow])
}

/// The forward pass of one worker's samples, `y` holding their outputs.
fn forward_chunk<T: Real>(
    g: &Geometry,
    xs: &[T],
    ws: &[T],
    first: usize,
    y: &mut [T],
    par: gemm::Parallelism,
) {
    let (p, samples) = (g.positions(), y.len() / g.out_len());
    let block = g.block().min(samples);
    let ld = block * p;
    let direct = block == 1 && g.unfold_is_identity();
    let lens = [
        if direct { 0 } else { g.patch_rows() * ld },
        if block == 1 { 0 } else { g.c_out * ld },
    ];
    with_scratch(lens, |col: &mut [T], out: &mut [T]| {
        for start in (0..samples).step_by(block) {
            let count = block.min(samples - start);
            let n = count * p;
            for j in 0..count {
                let x_b = &xs[(first + start + j) * g.in_len()..][..g.in_len()];
                if !direct {
                    unfold(x_b, g, col, ld, j * p);
                }
            }
            let x_first = &xs[(first + start) * g.in_len()..][..g.in_len()];
            let rhs_data: &[T] = if direct { x_first } else { &*col };
            let rhs_ld = if direct { p } else { ld };
            let (dst, dst_ld, dst_at) = if block == 1 {
                (&mut *y, p, start * g.out_len())
            } else {
                (&mut *out, ld, 0)
            };
            for grp in 0..g.groups {
                matmul(
                    dst,
                    dst_at + grp * g.group_out() * dst_ld,
                    dst_ld,
                    Strided::rows(ws, grp * g.group_out() * g.group_rows(), g.group_rows()),
                    Strided::rows(rhs_data, grp * g.group_rows() * rhs_ld, rhs_ld),
                    [g.group_out(), n, g.group_rows()],
                    false,
                    par,
                );
            }
            if block > 1 {
                scatter(
                    out,
                    ld,
                    g,
                    &mut y[start * g.out_len()..][..count * g.out_len()],
                );
            }
        }
    });
}

/// Copies a block's `[C_out, count·P]` result into `count` NCHW samples.
fn scatter<T: Real>(block: &[T], ld: usize, g: &Geometry, y: &mut [T]) {
    let p = g.positions();
    for (j, sample) in y.chunks_exact_mut(g.out_len()).enumerate() {
        for (c, plane) in sample.chunks_exact_mut(p).enumerate() {
            plane.copy_from_slice(&block[c * ld + j * p..][..p]);
        }
    }
}

/// Copies `count` NCHW samples of `[C_out, P]` into one `[C_out, count·P]` block.
fn gather<T: Real>(dy: &[T], g: &Geometry, block: &mut [T], ld: usize) {
    let p = g.positions();
    for (j, sample) in dy.chunks_exact(g.out_len()).enumerate() {
        for (c, plane) in sample.chunks_exact(p).enumerate() {
            block[c * ld + j * p..][..p].copy_from_slice(plane);
        }
    }
}

fn add_bias<T: Real>(y: &mut [T], bias: &[T], positions: usize) {
    for (i, plane) in y.chunks_exact_mut(positions).enumerate() {
        let b = bias[i % bias.len()];
        plane.iter_mut().for_each(|v| *v = *v + b);
    }
}

fn input_grad<T: Real>(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (weight, dy) = (contiguous::<T>(weight), contiguous::<T>(output_grad));
    let g = Geometry::new(&dims(&x), &dims(&weight), options);
    let (ws, dys) = (weight.storage::<T>(), dy.storage::<T>());
    let mut dx = vec![T::zero(); g.batch * g.in_len()];
    split_batch(&mut dx, g.in_len(), g.batch, |first, part, par| {
        input_grad_chunk(&g, ws, dys, first, part, par);
    });
    tensor(dx, vec![g.batch, g.c_in, g.h, g.w])
}

/// The input gradient of one worker's samples into `dx` (zeroed).
fn input_grad_chunk<T: Real>(
    g: &Geometry,
    ws: &[T],
    dys: &[T],
    first: usize,
    dx: &mut [T],
    par: gemm::Parallelism,
) {
    let (p, samples) = (g.positions(), dx.len() / g.in_len());
    let block = g.block().min(samples);
    let ld = block * p;
    let direct = block == 1 && g.unfold_is_identity();
    let lens = [
        if direct { 0 } else { g.patch_rows() * ld },
        if block == 1 { 0 } else { g.c_out * ld },
    ];
    with_scratch(lens, |col: &mut [T], dy_block: &mut [T]| {
        for start in (0..samples).step_by(block) {
            let count = block.min(samples - start);
            let dy = &dys[(first + start) * g.out_len()..][..count * g.out_len()];
            let (rhs, rhs_ld) = if block == 1 {
                (dy, p)
            } else {
                gather(dy, g, dy_block, ld);
                (&*dy_block, ld)
            };
            let (dst, dst_ld, dst_at) = if direct {
                (&mut *dx, p, start * g.in_len())
            } else {
                (&mut *col, ld, 0)
            };
            for grp in 0..g.groups {
                matmul(
                    dst,
                    dst_at + grp * g.group_rows() * dst_ld,
                    dst_ld,
                    Strided::transposed(ws, grp * g.group_out() * g.group_rows(), g.group_rows()),
                    Strided::rows(rhs, grp * g.group_out() * rhs_ld, rhs_ld),
                    [g.group_rows(), count * p, g.group_out()],
                    false,
                    par,
                );
            }
            if !direct {
                for j in 0..count {
                    let dx_b = &mut dx[(start + j) * g.in_len()..][..g.in_len()];
                    fold(col, g, ld, j * p, dx_b);
                }
            }
        }
    });
}

fn weight_grad<T: Real>(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (x, dy) = (contiguous::<T>(x), contiguous::<T>(output_grad));
    let w_shape = dims(&weight);
    let g = Geometry::new(&dims(&x), &w_shape, options);
    let (xs, dys) = (x.storage::<T>(), dy.storage::<T>());
    let (n, par) = workers(g.batch);
    let per_worker = g.batch.div_ceil(n.max(1)).max(1);
    let chunk = |i: usize| {
        let first = (i * per_worker).min(g.batch);
        weight_grad_chunk(&g, xs, dys, first..(first + per_worker).min(g.batch), par)
    };
    #[cfg(feature = "rayon")]
    let partials: Vec<Vec<T>> = {
        use rayon::prelude::*;
        (0..n).into_par_iter().map(chunk).collect()
    };
    #[cfg(not(feature = "rayon"))]
    let partials: Vec<Vec<T>> = (0..n).map(chunk).collect();
    let mut partials = partials.into_iter();
    let mut dw = partials
        .next()
        .unwrap_or_else(|| vec![T::zero(); g.weight_len()]);
    for part in partials {
        dw.iter_mut().zip(&part).for_each(|(a, &b)| *a = *a + b);
    }
    tensor(dw, w_shape)
}

/// One worker's share of the weight gradient, over `samples`.
fn weight_grad_chunk<T: Real>(
    g: &Geometry,
    xs: &[T],
    dys: &[T],
    samples: core::ops::Range<usize>,
    par: gemm::Parallelism,
) -> Vec<T> {
    let mut dw = vec![T::zero(); g.weight_len()];
    let p = g.positions();
    let block = g.block().min(samples.len().max(1));
    let ld = block * p;
    let direct = block == 1 && g.unfold_is_identity();
    let lens = [
        if direct { 0 } else { g.patch_rows() * ld },
        if block == 1 { 0 } else { g.c_out * ld },
    ];
    with_scratch(lens, |col: &mut [T], dy_block: &mut [T]| {
        for start in samples.clone().step_by(block) {
            let count = block.min(samples.end - start);
            let dy = &dys[start * g.out_len()..][..count * g.out_len()];
            let (lhs, lhs_ld) = if block == 1 {
                (dy, p)
            } else {
                gather(dy, g, dy_block, ld);
                (&*dy_block, ld)
            };
            for j in 0..count {
                let x_b = &xs[(start + j) * g.in_len()..][..g.in_len()];
                if !direct {
                    unfold(x_b, g, col, ld, j * p);
                }
            }
            let x_first = &xs[start * g.in_len()..][..g.in_len()];
            let (rhs, rhs_ld) = if direct { (x_first, p) } else { (&*col, ld) };
            for grp in 0..g.groups {
                matmul(
                    &mut dw,
                    grp * g.group_out() * g.group_rows(),
                    g.group_rows(),
                    Strided::rows(lhs, grp * g.group_out() * lhs_ld, lhs_ld),
                    Strided::transposed(rhs, grp * g.group_rows() * rhs_ld, rhs_ld),
                    [g.group_out(), g.group_rows(), count * p],
                    true,
                    par,
                );
            }
        }
    });
    dw
}
