// probdrop-tui: the LibTorch kernels that tch 0.22 has no binding for, called
// from src/native/mod.rs. Tensors cross as `at::Tensor*` (what torch-sys's
// libtch passes as `tensor`); results are new heap tensors that tch::Tensor
// takes ownership of. Errors come back as a malloc'd message, never as a C++
// exception across the FFI boundary.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/record_function.h>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace {

char *error_copy(const char *what) {
  return strdup(what ? what : "unknown LibTorch error");
}

at::Tensor *heap_or_null(const at::Tensor &t) {
  return t.defined() ? new at::Tensor(t) : nullptr;
}

std::vector<at::Tensor> list_of(const at::Tensor *const *tensors, size_t n) {
  std::vector<at::Tensor> list;
  list.reserve(n);
  for (size_t i = 0; i < n; ++i) list.push_back(*tensors[i]);
  return list;
}

void hand_over(const std::vector<at::Tensor> &list, at::Tensor **out) {
  for (size_t i = 0; i < list.size(); ++i) out[i] = new at::Tensor(list[i]);
}

// The operator counter: top-level ATen calls only (an op's own inner calls are
// LibTorch's business), by name, from every thread.
std::mutex counts_lock;
std::map<std::string, uint64_t> counts;
thread_local int depth = 0;
c10::optional<at::CallbackHandle> counter;

std::unique_ptr<at::ObserverContext> count_enter(const at::RecordFunction &fn) {
  if (depth++ == 0) {
    std::lock_guard<std::mutex> guard(counts_lock);
    counts[fn.name()] += 1;
  }
  return nullptr;
}

void count_exit(const at::RecordFunction &, at::ObserverContext *) { --depth; }

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

// SGD as burn-optim's Sgd computes it (weight decay into the gradient,
// momentum without dampening on the first step, Nesterov optional), for every
// parameter at once: a handful of foreach kernels instead of ~5 per parameter.
// Out of place, so earlier parameter and state tensors stay valid. `velocity`
// is null on the first step (and unused without momentum). out_params gets n
// tensors, out_velocity n when momentum > 0.
char *pdt_sgd_step(const at::Tensor *const *params,
                   const at::Tensor *const *grads,
                   const at::Tensor *const *velocity, size_t n, double lr,
                   double weight_decay, double momentum, double dampening,
                   bool nesterov, at::Tensor **out_params,
                   at::Tensor **out_velocity) {
  try {
    auto p = list_of(params, n);
    auto g = list_of(grads, n);
    if (weight_decay != 0.0) g = at::_foreach_add(g, p, weight_decay);
    auto update = g;
    if (momentum != 0.0) {
      std::vector<at::Tensor> v = g;
      if (velocity != nullptr) {
        v = at::_foreach_mul(list_of(velocity, n), momentum);
        at::_foreach_add_(v, g, 1.0 - dampening);
      }
      update = nesterov ? at::_foreach_add(g, v, momentum) : v;
      hand_over(v, out_velocity);
    }
    hand_over(at::_foreach_add(p, update, -lr), out_params);
    return nullptr;
  } catch (const std::exception &e) {
    return error_copy(e.what());
  }
}

// AdamW as burn-optim's AdamW computes it (bias-corrected moments, epsilon
// after the square root, decoupled weight decay), for every parameter at once.
// `time` is the step count after this step (1 on the first, when the moments
// are null). out_params, out_m1 and out_m2 get n tensors each.
char *pdt_adamw_step(const at::Tensor *const *params,
                     const at::Tensor *const *grads,
                     const at::Tensor *const *m1, const at::Tensor *const *m2,
                     size_t n, uint64_t time, double lr, double beta1,
                     double beta2, double eps, double weight_decay,
                     at::Tensor **out_params, at::Tensor **out_m1,
                     at::Tensor **out_m2) {
  try {
    auto p = list_of(params, n);
    auto g = list_of(grads, n);
    auto g2 = at::_foreach_mul(g, g);
    std::vector<at::Tensor> first, second;
    if (m1 == nullptr) {
      first = at::_foreach_mul(g, 1.0 - beta1);
      second = at::_foreach_mul(g2, 1.0 - beta2);
    } else {
      first = at::_foreach_mul(list_of(m1, n), beta1);
      at::_foreach_add_(first, g, 1.0 - beta1);
      second = at::_foreach_mul(list_of(m2, n), beta2);
      at::_foreach_add_(second, g2, 1.0 - beta2);
    }
    const double t = static_cast<double>(time);
    auto denom = at::_foreach_sqrt(
        at::_foreach_div(second, 1.0 - std::pow(beta2, t)));
    at::_foreach_add_(denom, eps);
    auto numer = at::_foreach_div(first, 1.0 - std::pow(beta1, t));
    auto updated = at::_foreach_mul(p, 1.0 - lr * weight_decay);
    at::_foreach_addcdiv_(updated, numer, denom, -lr);
    hand_over(updated, out_params);
    hand_over(first, out_m1);
    hand_over(second, out_m2);
    return nullptr;
  } catch (const std::exception &e) {
    return error_copy(e.what());
  }
}

// Starts (or restarts from zero) counting the ATen operators called.
void pdt_op_counter_start() {
  {
    std::lock_guard<std::mutex> guard(counts_lock);
    counts.clear();
  }
  if (!counter) {
    counter = at::addGlobalCallback(
        at::RecordFunctionCallback(count_enter, count_exit)
            .scopes({at::RecordScope::FUNCTION}));
  }
}

// Stops counting; returns "name count" lines, malloc'd (free with
// pdt_free_error).
char *pdt_op_counter_stop() {
  if (counter) {
    at::removeCallback(*counter);
    counter.reset();
  }
  std::string text;
  std::lock_guard<std::mutex> guard(counts_lock);
  for (const auto &entry : counts)
    text += entry.first + " " + std::to_string(entry.second) + "\n";
  return strdup(text.c_str());
}

}  // extern "C"
