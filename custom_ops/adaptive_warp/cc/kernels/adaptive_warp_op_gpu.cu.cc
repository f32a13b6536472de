// CUDA kernels of SpiritnetAdaptiveWarp / SpiritnetAdaptiveWarpGrad. One thread
// per output pixel; the maths is the shared per-pixel code of adaptive_warp_op.h.
// No TensorFlow headers here: the launchers take raw pointers and the stream.
#include <cuda_runtime.h>

#include "adaptive_warp_op.h"

namespace spiritnet {
namespace adaptive_warp {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void ForwardKernel(const T* image, const T* flow, const T* kernel,
                              int batch, int height, int width, int channels, T* out) {
  const int64_t hw = static_cast<int64_t>(height) * width;
  const int64_t total = batch * hw;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       p < total; p += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t b = p / hw, self = p % hw;
    Window<T> win;
    ComputeWindow<T>(static_cast<int>(self % width), static_cast<int>(self / width),
                     flow[2 * p], flow[2 * p + 1], height, width, &win);
    ForwardPixel<T>(win, image + b * hw * channels, kernel + kTaps * p, self, channels,
                    out + p * channels);
  }
}

struct AtomicAdd {
  template <typename T>
  __device__ void operator()(T* dst, T v) const {
    atomicAdd(dst, v);
  }
};

template <typename T>
__global__ void BackwardKernel(const T* grad_out, const T* image, const T* flow,
                               const T* kernel, int batch, int height, int width,
                               int channels, T* grad_image, T* grad_flow,
                               T* grad_kernel) {
  const int64_t hw = static_cast<int64_t>(height) * width;
  const int64_t total = batch * hw;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       p < total; p += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t b = p / hw, self = p % hw;
    Window<T> win;
    ComputeWindow<T>(static_cast<int>(self % width), static_cast<int>(self / width),
                     flow[2 * p], flow[2 * p + 1], height, width, &win);
    const T* k = kernel + kTaps * p;
    FlowKernelGradPixel<T>(win, image + b * hw * channels, k, grad_out + p * channels,
                           channels, grad_flow + 2 * p, grad_kernel + kTaps * p);
    ImageGradPixel<T>(win, k, grad_out + p * channels, self, channels, 0, channels,
                      grad_image + b * hw * channels, AtomicAdd());
  }
}

int Blocks(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 * 32 ? (blocks > 0 ? blocks : 1) : 65535 * 32);
}

const char* LastError() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace

template <typename T>
const char* LaunchForwardGpu(void* stream, const T* image, const T* flow,
                             const T* kernel, int batch, int height, int width,
                             int channels, T* out) {
  const int64_t total = static_cast<int64_t>(batch) * height * width;
  if (total == 0) return nullptr;
  ForwardKernel<T><<<Blocks(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      image, flow, kernel, batch, height, width, channels, out);
  return LastError();
}

template <typename T>
const char* LaunchBackwardGpu(void* stream, const T* grad_out, const T* image,
                              const T* flow, const T* kernel, int batch, int height,
                              int width, int channels, T* grad_image, T* grad_flow,
                              T* grad_kernel) {
  const int64_t total = static_cast<int64_t>(batch) * height * width;
  if (total == 0) return nullptr;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (cudaMemsetAsync(grad_image, 0, sizeof(T) * total * channels, s) != cudaSuccess) {
    return LastError();
  }
  BackwardKernel<T><<<Blocks(total), kThreads, 0, s>>>(grad_out, image, flow, kernel,
                                                       batch, height, width, channels,
                                                       grad_image, grad_flow,
                                                       grad_kernel);
  return LastError();
}

#define INSTANTIATE(T)                                                                \
  template const char* LaunchForwardGpu<T>(void*, const T*, const T*, const T*, int,  \
                                           int, int, int, T*);                        \
  template const char* LaunchBackwardGpu<T>(void*, const T*, const T*, const T*,      \
                                            const T*, int, int, int, int, T*, T*, T*);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace adaptive_warp
}  // namespace spiritnet
