// probdrop-tui: the LibTorch kernels that tch 0.22 has no binding for, called
// from src/native/mod.rs. Tensors cross as `at::Tensor*` (what torch-sys's
// libtch passes as `tensor`); results are new heap tensors that tch::Tensor
// takes ownership of. Errors come back as a malloc'd message, never as a C++
// exception across the FFI boundary.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace {

char *error_copy(const char *what) {
  return strdup(what ? what : "unknown LibTorch error");
}

at::Tensor *heap_or_null(const at::Tensor &t) {
  return t.defined() ? new at::Tensor(t) : nullptr;
}

}  // namespace

extern "C" {

void pdt_free_error(char *message) { std::free(message); }

// cuDNN restricted to deterministic algorithms (torch.backends.cudnn.deterministic).
void pdt_set_cudnn_deterministic(bool on) {
  at::globalContext().setDeterministicCuDNN(on);
}

// aten::convolution_backward for a non-transposed convolution without bias:
// out[0] the input gradient, out[1] the weight gradient, each only if asked.
char *pdt_convolution_backward(const at::Tensor *grad_output,
                               const at::Tensor *input,
                               const at::Tensor *weight, const int64_t *stride,
                               const int64_t *padding, const int64_t *dilation,
                               size_t dims, int64_t groups, bool want_input,
                               bool want_weight, at::Tensor **out) {
  try {
    std::vector<int64_t> output_padding(dims, 0);
    auto grads = at::convolution_backward(
        *grad_output, *input, *weight, c10::nullopt,
        at::IntArrayRef(stride, dims), at::IntArrayRef(padding, dims),
        at::IntArrayRef(dilation, dims), false, output_padding, groups,
        {want_input, want_weight, false});
    out[0] = want_input ? heap_or_null(std::get<0>(grads)) : nullptr;
    out[1] = want_weight ? heap_or_null(std::get<1>(grads)) : nullptr;
    return nullptr;
  } catch (const std::exception &e) {
    return error_copy(e.what());
  }
}

// Batch norm with the batch's own statistics (no running statistics here:
// burn-nn keeps those). out[0] the output, out[1] the mean, out[2] the biased
// variance (from the 1/sqrt(variance + eps) the kernel saves).
char *pdt_batch_norm_train(const at::Tensor *input, const at::Tensor *gamma,
                           const at::Tensor *beta, double eps,
                           at::Tensor **out) {
  try {
    auto result = at::native_batch_norm(*input, *gamma, *beta, c10::nullopt,
                                        c10::nullopt, true, 0.0, eps);
    const at::Tensor &invstd = std::get<2>(result);
    out[0] = heap_or_null(std::get<0>(result));
    out[1] = heap_or_null(std::get<1>(result));
    out[2] = heap_or_null(invstd.pow(-2).sub_(eps));
    return nullptr;
  } catch (const std::exception &e) {
    return error_copy(e.what());
  }
}

// The gradients of pdt_batch_norm_train: out[0] input, out[1] gamma, out[2]
// beta.
char *pdt_batch_norm_backward(const at::Tensor *grad_output,
                              const at::Tensor *input,
                              const at::Tensor *gamma, const at::Tensor *mean,
                              const at::Tensor *variance, double eps,
                              at::Tensor **out) {
  try {
    at::Tensor invstd = variance->add(eps).rsqrt_();
    auto grads = at::native_batch_norm_backward(
        *grad_output, *input, *gamma, c10::nullopt, c10::nullopt, *mean,
        invstd, true, eps, {true, true, true});
    out[0] = heap_or_null(std::get<0>(grads));
    out[1] = heap_or_null(std::get<1>(grads));
    out[2] = heap_or_null(std::get<2>(grads));
    return nullptr;
  } catch (const std::exception &e) {
    return error_copy(e.what());
  }
}

}  // extern "C"
