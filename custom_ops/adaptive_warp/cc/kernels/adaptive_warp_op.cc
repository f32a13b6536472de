// CPU kernels (and, when built with GOOGLE_CUDA, the GPU kernel registrations)
// of SpiritnetAdaptiveWarp and SpiritnetAdaptiveWarpGrad. The maths is in
// adaptive_warp_op.h, shared with the CUDA kernels.
#define EIGEN_USE_THREADS
#if GOOGLE_CUDA
#define EIGEN_USE_GPU
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "adaptive_warp_op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/platform/threadpool.h"

namespace spiritnet {
namespace adaptive_warp {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using CPUDevice = Eigen::ThreadPoolDevice;

// Sizes of one warp call, after validation.
struct Dims {
  int batch, height, width, channels;
  int64_t pixels() const { return static_cast<int64_t>(height) * width; }
};

// Validates image [B,H,W,C], flow [B,H,W,2], kernel [B,H,W,16]. The messages
// name the offending input, as the shape function does in graph mode.
bool ValidateInputs(OpKernelContext* ctx, const Tensor& image, const Tensor& flow,
                    const Tensor& kernel, Dims* dims) {
  const struct {
    const Tensor& t;
    const char* name;
    const char* layout;
  } inputs[3] = {{image, "image", "[B,H,W,C]"},
                 {flow, "flow", "[B,H,W,2]"},
                 {kernel, "kernel", "[B,H,W,16]"}};
  for (const auto& in : inputs) {
    if (in.t.dims() != 4) {
      ctx->CtxFailure(absl::InvalidArgumentError(
          absl::StrCat("adaptive_warp: ", in.name, " must be rank 4 ", in.layout,
                       ", got shape ", in.t.shape().DebugString())));
      return false;
    }
  }
  if (flow.dim_size(3) != 2) {
    ctx->CtxFailure(absl::InvalidArgumentError(absl::StrCat(
        "adaptive_warp: flow must have 2 channels, got ", flow.dim_size(3))));
    return false;
  }
  if (kernel.dim_size(3) != kTaps) {
    ctx->CtxFailure(absl::InvalidArgumentError(absl::StrCat(
        "adaptive_warp: kernel must have 16 channels, got ", kernel.dim_size(3))));
    return false;
  }
  const char* axes[3] = {"batch size", "height", "width"};
  for (int axis = 0; axis < 3; ++axis) {
    for (const auto* other : {&inputs[1], &inputs[2]}) {
      if (other->t.dim_size(axis) != image.dim_size(axis)) {
        ctx->CtxFailure(absl::InvalidArgumentError(absl::StrCat(
            "adaptive_warp: ", axes[axis], " of ", other->name, " (",
            other->t.dim_size(axis), ") does not match the image's (",
            image.dim_size(axis), ")")));
        return false;
      }
    }
  }
  const int64_t max_int = std::numeric_limits<int>::max();
  if (image.dim_size(1) * image.dim_size(2) > max_int || image.dim_size(3) > max_int ||
      image.dim_size(0) > max_int) {
    ctx->CtxFailure(absl::InvalidArgumentError(
        absl::StrCat("adaptive_warp: image too large: ", image.shape().DebugString())));
    return false;
  }
  dims->batch = static_cast<int>(image.dim_size(0));
  dims->height = static_cast<int>(image.dim_size(1));
  dims->width = static_cast<int>(image.dim_size(2));
  dims->channels = static_cast<int>(image.dim_size(3));
  return true;
}

// Rough cost of one pixel per channel for the thread pool's sharding.
constexpr int64_t kCostPerPixel = 16 * 8;

// Channels per work unit of the image-gradient scatter (see BackwardCpu).
constexpr int kChannelBlock = 32;

// The loops over pixels are compiled for several instruction sets and the best
// one the processor supports is picked at run time, so the library stays portable
// while the channel loops use AVX2/AVX-512. The loops with explicit vectors
// (HostVec) are compiled once per instruction set with its register width (L floats:
// 16 for AVX-512, 8 for AVX2, 4 otherwise) and picked by `CpuIsa`; the others are
// cloned by GCC's function multiversioning (AW_CPU_CLONES).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AW_X86_TARGETS 1
#define AW_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define AW_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#define AW_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))
#else
#define AW_CPU_CLONES
#endif

enum class Isa { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The best instruction set of this processor, at most the one named by the
// environment variable SPIRITNET_WARP_ISA ("baseline", "avx2" or "avx512"; read once),
// which lets tests run the narrower paths on a wider machine.
inline Isa CpuIsa() {
  static const Isa isa = [] {
    Isa best = Isa::kBaseline;
#if defined(AW_X86_TARGETS)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) {
      best = Isa::kAvx512;
    } else if (__builtin_cpu_supports("x86-64-v3")) {
      best = Isa::kAvx2;
    }
#endif
    const char* cap = std::getenv("SPIRITNET_WARP_ISA");
    Isa limit = Isa::kAvx512;
    if (cap != nullptr && std::strcmp(cap, "baseline") == 0) limit = Isa::kBaseline;
    if (cap != nullptr && std::strcmp(cap, "avx2") == 0) limit = Isa::kAvx2;
    return std::min(best, limit);
  }();
  return isa;
}

// Large outputs are fresh memory: the allocator maps blocks this large anew on each
// call, and the first write to each 4 KiB page then faults. Asking for transparent
// huge pages before that first write makes it one fault per 2 MiB (first touch of a
// 123 MB output: 98 -> 29 ms on one core, AMD EPYC, KVM, 2026-12-01). Advice only:
// the range is the whole 2 MiB pages inside the buffer, and failures are ignored.
inline void AdviseHugePages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t first = reinterpret_cast<uintptr_t>(data);
  const uintptr_t begin = (first + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (first + bytes) & ~(kHuge - 1);
  if (bytes >= 2 * kHuge && end > begin) {
    madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#endif
}

template <typename T>
struct Args {
  Dims d;
  const T* image;
  const T* flow;
  const T* kernel;
  const T* grad_out;  // backward only
};

// Window of flat pixel p = b * H * W + self.
template <typename T>
inline void WindowOf(const Args<T>& a, int64_t p, int64_t self, Window<T>* win) {
  ComputeWindow<T>(static_cast<int>(self % a.d.width), static_cast<int>(self / a.d.width),
                   a.flow[2 * p], a.flow[2 * p + 1], a.d.height, a.d.width, win);
}

template <int L, typename T>
AW_HOST_INLINE void ForwardRangeL(const Args<T>& a, int64_t begin, int64_t end, T* out) {
  const int64_t hw = a.d.pixels();
  const int C = a.d.channels;
  Window<T> win{};
  for (int64_t p = begin; p < end; ++p) {
    const int64_t b = p / hw, self = p % hw;
    WindowOf(a, p, self, &win);
    ForwardPixel<T, L>(win, a.image + b * hw * C, a.kernel + kTaps * p, self, C, out + p * C);
  }
}

#if defined(AW_X86_TARGETS)
template <typename T>
AW_TARGET_AVX512 void ForwardRangeAvx512(const Args<T>& a, int64_t begin, int64_t end, T* out) {
  ForwardRangeL<16>(a, begin, end, out);
}
template <typename T>
AW_TARGET_AVX2 void ForwardRangeAvx2(const Args<T>& a, int64_t begin, int64_t end, T* out) {
  ForwardRangeL<8>(a, begin, end, out);
}
#endif

template <typename T>
void ForwardRange(const Args<T>& a, int64_t begin, int64_t end, T* out) {
  switch (CpuIsa()) {
#if defined(AW_X86_TARGETS)
    case Isa::kAvx512: ForwardRangeAvx512(a, begin, end, out); return;
    case Isa::kAvx2: ForwardRangeAvx2(a, begin, end, out); return;
#endif
    default: ForwardRangeL<4>(a, begin, end, out);
  }
}

template <typename T>
AW_CPU_CLONES void FlowKernelGradRange(const Args<T>& a, int64_t begin, int64_t end,
                                       T* grad_flow, T* grad_kernel) {
  const int64_t hw = a.d.pixels();
  const int C = a.d.channels;
  Window<T> win{};
  for (int64_t p = begin; p < end; ++p) {
    const int64_t b = p / hw, self = p % hw;
    WindowOf(a, p, self, &win);
    FlowKernelGradPixel<T>(win, a.image + b * hw * C, a.kernel + kTaps * p,
                           a.grad_out + p * C, C, grad_flow + 2 * p,
                           grad_kernel + kTaps * p);
  }
}

template <typename T>
AW_CPU_CLONES void ImageGradUnit(const Args<T>& a, int64_t b, int c_begin, int c_end,
                                 T* grad_image) {
  const int64_t hw = a.d.pixels();
  const int C = a.d.channels;
  Window<T> win{};
  for (int64_t self = 0; self < hw; ++self) {
    const int64_t p = b * hw + self;
    WindowOf(a, p, self, &win);
    ImageGradPixel<T>(win, a.kernel + kTaps * p, a.grad_out + p * C, self, C, c_begin,
                      c_end, grad_image + b * hw * C, PlainAdd());
  }
}

// All three gradients of one batch item in a single pass over its pixels (the
// window is computed once per pixel). Used when one channel block covers all
// channels, so this unit owns the whole of grad_image[b]. grad_image[b] is zeroed
// here a row at a time, just before a pixel first scatters into that row, so the
// zeros are still in cache when the additions come (rows nothing scatters into are
// zeroed at the end); a separate zeroing pass would write and then re-read the
// whole gradient from memory.
template <int L, typename T>
AW_HOST_INLINE void FusedGradUnitL(const Args<T>& a, int64_t b, T* grad_image, T* grad_flow,
                                   T* grad_kernel) {
  const int64_t hw = a.d.pixels();
  const int C = a.d.channels, W = a.d.width;
  const int64_t row_len = static_cast<int64_t>(W) * C;
  const T* image = a.image + b * hw * C;
  T* g_image = grad_image + b * hw * C;
  std::vector<char> zeroed(a.d.height, 0);
  auto zero_rows = [&](int64_t first, int64_t last) {  // rows first..last (inclusive)
    for (int64_t r = first; r <= last; ++r) {
      if (!zeroed[r]) {
        std::fill(g_image + r * row_len, g_image + (r + 1) * row_len, T(0));
        zeroed[r] = 1;
      }
    }
  };
  int64_t seen_first = -1, seen_last = -1;  // row offsets of the last window checked
  Window<T> win{};
  for (int64_t self = 0; self < hw; ++self) {
    const int64_t p = b * hw + self;
    WindowOf(a, p, self, &win);
    if (win.copy) {
      zero_rows(self / W, self / W);
      seen_first = -1;
    } else if (win.row_offset[0] != seen_first || win.row_offset[3] != seen_last) {
      seen_first = win.row_offset[0];
      seen_last = win.row_offset[3];
      zero_rows(seen_first / W, seen_last / W);
    }
    FusedGradPixel<T, L>(win, image, a.kernel + kTaps * p, a.grad_out + p * C, self, C,
                         g_image, grad_flow + 2 * p, grad_kernel + kTaps * p);
  }
  zero_rows(0, a.d.height - 1);
}

#if defined(AW_X86_TARGETS)
template <typename T>
AW_TARGET_AVX512 void FusedGradUnitAvx512(const Args<T>& a, int64_t b, T* grad_image,
                                          T* grad_flow, T* grad_kernel) {
  FusedGradUnitL<16>(a, b, grad_image, grad_flow, grad_kernel);
}
template <typename T>
AW_TARGET_AVX2 void FusedGradUnitAvx2(const Args<T>& a, int64_t b, T* grad_image,
                                      T* grad_flow, T* grad_kernel) {
  FusedGradUnitL<8>(a, b, grad_image, grad_flow, grad_kernel);
}
#endif

template <typename T>
void FusedGradUnit(const Args<T>& a, int64_t b, T* grad_image, T* grad_flow, T* grad_kernel) {
  switch (CpuIsa()) {
#if defined(AW_X86_TARGETS)
    case Isa::kAvx512: FusedGradUnitAvx512(a, b, grad_image, grad_flow, grad_kernel); return;
    case Isa::kAvx2: FusedGradUnitAvx2(a, b, grad_image, grad_flow, grad_kernel); return;
#endif
    default: FusedGradUnitL<4>(a, b, grad_image, grad_flow, grad_kernel);
  }
}

template <typename T>
void ForwardCpu(OpKernelContext* ctx, const Args<T>& a, T* out) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  pool->ParallelFor(a.d.batch * a.d.pixels(), kCostPerPixel * std::max(a.d.channels, 1),
                    [&](int64_t begin, int64_t end) { ForwardRange<T>(a, begin, end, out); });
}

template <typename T>
void BackwardCpu(OpKernelContext* ctx, const Args<T>& a, T* grad_image, T* grad_flow,
                 T* grad_kernel) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t hw = a.d.pixels();
  const int C = a.d.channels;
  // The image gradient is a scatter-add: each work unit owns a (batch item,
  // channel block) of grad_image, so no atomics are needed and the result does
  // not depend on the thread count. Blocks hold about kChannelBlock channels;
  // there are more of them when the batch alone cannot keep the threads busy.
  const int threads = pool->NumThreads();
  int blocks = std::max(1, (C + kChannelBlock - 1) / kChannelBlock);
  if (a.d.batch * blocks < threads) blocks = std::max(1, std::min(C, (threads + a.d.batch - 1) / a.d.batch));
  int block = std::max(1, (C + blocks - 1) / blocks);
  if (block > kLanes) block = (block + kLanes - 1) / kLanes * kLanes;  // whole vectors
  blocks = std::max(1, (C + block - 1) / block);
  // One fused pass per batch item (each tap's rows read once for all three gradients)
  // when one block covers the channels, or when the batch items share out evenly
  // over the threads.
  if (blocks == 1 || a.d.batch % threads == 0 || a.d.batch >= 4 * threads) {
    pool->ParallelFor(a.d.batch, hw * kCostPerPixel * std::max(C, 1),
                      [&](int64_t begin, int64_t end) {
                        for (int64_t b = begin; b < end; ++b) {
                          FusedGradUnit<T>(a, b, grad_image, grad_flow, grad_kernel);
                        }
                      });
    return;
  }
  pool->ParallelFor(a.d.batch * hw, C, [&](int64_t begin, int64_t end) {
    std::fill(grad_image + begin * C, grad_image + end * C, T(0));
  });
  // Pass 1: flow and kernel gradients, independent per pixel.
  pool->ParallelFor(a.d.batch * hw, kCostPerPixel * C, [&](int64_t begin, int64_t end) {
    FlowKernelGradRange<T>(a, begin, end, grad_flow, grad_kernel);
  });
  // Pass 2: the image gradient, one (batch item, channel block) per unit.
  pool->ParallelFor(static_cast<int64_t>(a.d.batch) * blocks, hw * kCostPerPixel * block,
                    [&](int64_t begin, int64_t end) {
                      for (int64_t unit = begin; unit < end; ++unit) {
                        const int c_begin = static_cast<int>(unit % blocks) * block;
                        ImageGradUnit<T>(a, unit / blocks, c_begin,
                                         std::min(C, c_begin + block), grad_image);
                      }
                    });
}

#if GOOGLE_CUDA
using GPUDevice = Eigen::GpuDevice;
// Defined in adaptive_warp_op_gpu.cu.cc; return an error string or nullptr.
template <typename T>
const char* LaunchForwardGpu(void* stream, const T* image, const T* flow,
                             const T* kernel, int batch, int height, int width,
                             int channels, T* out);
template <typename T>
const char* LaunchBackwardGpu(void* stream, const T* grad_out, const T* image,
                              const T* flow, const T* kernel, int batch, int height,
                              int width, int channels, T* grad_image, T* grad_flow,
                              T* grad_kernel);
#endif

template <typename Device, typename T>
class AdaptiveWarpOp : public OpKernel {
 public:
  explicit AdaptiveWarpOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& image = ctx->input(0);
    const Tensor& flow = ctx->input(1);
    const Tensor& kernel = ctx->input(2);
    Dims d;
    if (!ValidateInputs(ctx, image, flow, kernel, &d)) return;
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, image.shape(), &out));
    if (image.NumElements() == 0) return;
    const T* img = image.flat<T>().data();
    const T* fl = flow.flat<T>().data();
    const T* k = kernel.flat<T>().data();
    T* o = out->flat<T>().data();
    if constexpr (std::is_same<Device, CPUDevice>::value) {
      AdviseHugePages(o, out->TotalBytes());
      ForwardCpu<T>(ctx, Args<T>{d, img, fl, k, nullptr}, o);
    }
#if GOOGLE_CUDA
    if constexpr (std::is_same<Device, GPUDevice>::value) {
      const char* err = LaunchForwardGpu<T>(ctx->eigen_device<GPUDevice>().stream(), img,
                                            fl, k, d.batch, d.height, d.width,
                                            d.channels, o);
      OP_REQUIRES(ctx, err == nullptr,
                  absl::InternalError(absl::StrCat("adaptive_warp CUDA: ", err)));
    }
#endif
  }
};

template <typename Device, typename T>
class AdaptiveWarpGradOp : public OpKernel {
 public:
  explicit AdaptiveWarpGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad_out = ctx->input(0);
    const Tensor& image = ctx->input(1);
    const Tensor& flow = ctx->input(2);
    const Tensor& kernel = ctx->input(3);
    Dims d;
    if (!ValidateInputs(ctx, image, flow, kernel, &d)) return;
    OP_REQUIRES(ctx, grad_out.shape() == image.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "adaptive_warp: grad_output shape ", grad_out.shape().DebugString(),
                    " does not match the image's ", image.shape().DebugString())));
    Tensor *grad_image = nullptr, *grad_flow = nullptr, *grad_kernel = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, image.shape(), &grad_image));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, flow.shape(), &grad_flow));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, kernel.shape(), &grad_kernel));
    if (d.batch == 0 || d.pixels() == 0) return;
    const T* go = grad_out.flat<T>().data();
    const T* img = image.flat<T>().data();
    const T* fl = flow.flat<T>().data();
    const T* k = kernel.flat<T>().data();
    if constexpr (std::is_same<Device, CPUDevice>::value) {
      for (Tensor* t : {grad_image, grad_flow, grad_kernel}) {
        AdviseHugePages(t->data(), t->TotalBytes());
      }
      BackwardCpu<T>(ctx, Args<T>{d, img, fl, k, go}, grad_image->flat<T>().data(),
                     grad_flow->flat<T>().data(), grad_kernel->flat<T>().data());
    }
#if GOOGLE_CUDA
    if constexpr (std::is_same<Device, GPUDevice>::value) {
      const char* err = LaunchBackwardGpu<T>(
          ctx->eigen_device<GPUDevice>().stream(), go, img, fl, k, d.batch, d.height,
          d.width, d.channels, grad_image->flat<T>().data(), grad_flow->flat<T>().data(),
          grad_kernel->flat<T>().data());
      OP_REQUIRES(ctx, err == nullptr,
                  absl::InternalError(absl::StrCat("adaptive_warp CUDA: ", err)));
    }
#endif
  }
};

#define REGISTER_DEVICE(DEVICE, DEVICE_NAME, T)                                    \
  REGISTER_KERNEL_BUILDER(                                                         \
      Name("SpiritnetAdaptiveWarp").Device(DEVICE_NAME).TypeConstraint<T>("T"),    \
      AdaptiveWarpOp<DEVICE, T>);                                                  \
  REGISTER_KERNEL_BUILDER(                                                         \
      Name("SpiritnetAdaptiveWarpGrad").Device(DEVICE_NAME).TypeConstraint<T>("T"), \
      AdaptiveWarpGradOp<DEVICE, T>);

REGISTER_DEVICE(CPUDevice, DEVICE_CPU, float);
REGISTER_DEVICE(CPUDevice, DEVICE_CPU, double);
#if GOOGLE_CUDA
REGISTER_DEVICE(GPUDevice, ::tensorflow::DEVICE_GPU, float);
REGISTER_DEVICE(GPUDevice, ::tensorflow::DEVICE_GPU, double);
#endif

}  // namespace adaptive_warp
}  // namespace spiritnet

// Which CPU path the kernels take in this process (0 baseline, 1 AVX2, 2 AVX-512),
// for `spiritnet_tf.ops.warp.cpu_vector_path` (read with ctypes).
extern "C" __attribute__((visibility("default"))) int spiritnet_adaptive_warp_isa() {
  return static_cast<int>(spiritnet::adaptive_warp::CpuIsa());
}
