// Standalone check of the CUDA kernels against the CPU path, without TensorFlow.
//
// Both sides run the shared per-pixel functions of cc/kernels/adaptive_warp_op.h:
// the host loops below are the CPU reference, the launchers of
// cc/kernels/adaptive_warp_op_gpu.cu.cc the device side. Built by
// `make -C custom_ops cuda-selftest` (when nvcc is present); run it on a machine
// with an NVIDIA GPU: it prints the largest differences and exits non-zero when
// they exceed 1e-5 (forward) / 1e-4 (gradients).
//
// `adaptive_warp_cuda_selftest --bench` then times the kernels at the benchmark's
// size (B=4, 256x448, C=67; median of 20 calls after 3 warm-ups, CUDA events) and
// a device-to-device copy of the same bytes, the memory-bandwidth bound.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <random>
#include <vector>

#include "cc/kernels/adaptive_warp_op.h"

namespace aw = spiritnet::adaptive_warp;

namespace spiritnet {
namespace adaptive_warp {
template <typename T>
const char* LaunchForwardGpu(void*, const T*, const T*, const T*, int, int, int, int, T*);
template <typename T>
const char* LaunchBackwardGpu(void*, const T*, const T*, const T*, const T*, int, int, int,
                              int, T*, T*, T*);
}  // namespace adaptive_warp
}  // namespace spiritnet

#define CHECK_CUDA(call)                                                     \
  do {                                                                       \
    cudaError_t err = (call);                                                \
    if (err != cudaSuccess) {                                                \
      std::fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(err));      \
      return 2;                                                              \
    }                                                                        \
  } while (0)

static float* ToDevice(const std::vector<float>& host) {
  float* dev = nullptr;
  if (cudaMalloc(&dev, host.size() * sizeof(float)) != cudaSuccess) return nullptr;
  cudaMemcpy(dev, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
  return dev;
}

static std::vector<float> ToHost(const float* dev, size_t n) {
  std::vector<float> host(n);
  cudaMemcpy(host.data(), dev, n * sizeof(float), cudaMemcpyDeviceToHost);
  return host;
}

// Random inputs of the op for P pixels of C channels: image and grad_out in [0, 1) and
// [-0.5, 0.5), flows ~ N(0, 3 px), kernel taps ~ N(0, 1), drawn in that order from seed 0.
struct Inputs {
  std::vector<float> image, flow, kernel, grad_out;
};

static Inputs RandomInputs(size_t P, int C) {
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  std::normal_distribution<float> normal(0.f, 3.f);
  Inputs in{std::vector<float>(P * C), std::vector<float>(P * 2), std::vector<float>(P * 16),
            std::vector<float>(P * C)};
  for (auto& v : in.image) v = unit(rng);
  for (auto& v : in.flow) v = normal(rng);
  for (auto& v : in.kernel) v = normal(rng) / 3.f;
  for (auto& v : in.grad_out) v = unit(rng) - 0.5f;
  return in;
}

// False (and a message) when any of the device buffers could not be allocated.
static bool Allocated(std::initializer_list<const float*> buffers) {
  for (const float* b : buffers) {
    if (!b) {
      std::fprintf(stderr, "cudaMalloc failed (is there a GPU?)\n");
      return false;
    }
  }
  return true;
}

static float MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0.f;
  for (size_t i = 0; i < a.size(); ++i) worst = std::fmax(worst, std::fabs(a[i] - b[i]));
  return worst;
}

// Median milliseconds of `call` over 20 runs after 3 warm-ups.
template <typename F>
static float MedianMs(F call) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<float> ms;
  for (int i = 0; i < 23; ++i) {
    cudaEventRecord(start);
    call();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float t = 0.f;
    cudaEventElapsedTime(&t, start, stop);
    if (i >= 3) ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

static int Bench() {
  const int B = 4, H = 256, W = 448, C = 67;
  const size_t P = static_cast<size_t>(B) * H * W;
  const Inputs in = RandomInputs(P, C);
  // grad_out is a copy of the image here, as in the timings of docs/benchmarks.md.
  float *d_image = ToDevice(in.image), *d_flow = ToDevice(in.flow),
        *d_kernel = ToDevice(in.kernel), *d_grad_out = ToDevice(in.image),
        *d_out = ToDevice(in.image), *d_g_image = ToDevice(in.image),
        *d_g_flow = ToDevice(in.flow), *d_g_kernel = ToDevice(in.kernel);
  if (!Allocated({d_image, d_flow, d_kernel, d_grad_out, d_out, d_g_image, d_g_flow,
                  d_g_kernel})) {
    return 2;
  }
  const char* err = nullptr;
  const float fwd = MedianMs([&] {
    err = aw::LaunchForwardGpu<float>(nullptr, d_image, d_flow, d_kernel, B, H, W, C, d_out);
  });
  if (err) { std::fprintf(stderr, "forward: %s\n", err); return 2; }
  const float bwd = MedianMs([&] {
    err = aw::LaunchBackwardGpu<float>(nullptr, d_grad_out, d_image, d_flow, d_kernel, B, H,
                                       W, C, d_g_image, d_g_flow, d_g_kernel);
  });
  if (err) { std::fprintf(stderr, "backward: %s\n", err); return 2; }
  // Least traffic: forward reads image, flow, kernel and writes the output; backward reads
  // grad_out, image, flow, kernel and writes (after zeroing) grad_image, grad_flow, grad_kernel.
  const double mb = 1e-6 * sizeof(float);
  const double fwd_mb = mb * P * (C + 2 + 16 + C);
  const double bwd_mb = mb * P * (C + C + 2 + 16 + 2 * C + 2 + 16);
  const size_t copy_bytes = sizeof(float) * P * C;
  const float copy = MedianMs([&] {
    cudaMemcpyAsync(d_out, d_image, copy_bytes, cudaMemcpyDeviceToDevice);
  });
  CHECK_CUDA(cudaDeviceSynchronize());
  const double copy_gbs = 2e-6 * copy_bytes / copy;  // read + write, GB/s
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s\n", prop.name);
  std::printf("B=%d %dx%d C=%d: forward %.3f ms (%.0f MB, %.0f GB/s), backward %.3f ms "
              "(%.0f MB, %.0f GB/s), forward+backward %.3f ms\n",
              B, H, W, C, fwd, fwd_mb, fwd_mb / fwd, bwd, bwd_mb, bwd_mb / bwd, fwd + bwd);
  std::printf("device-to-device copy of the image: %.3f ms, %.0f GB/s; bound for "
              "forward+backward at that rate %.3f ms (%.1fx above it)\n",
              copy, copy_gbs, (fwd_mb + bwd_mb) / copy_gbs,
              (fwd + bwd) / ((fwd_mb + bwd_mb) / copy_gbs));
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) return Bench();
  const int B = 2, H = 37, W = 61, C = 19;
  const size_t P = static_cast<size_t>(B) * H * W;
  Inputs in = RandomInputs(P, C);
  const std::vector<float> &image = in.image, &kernel = in.kernel, &grad_out = in.grad_out;
  std::vector<float>& flow = in.flow;
  flow[0] = NAN;      // copy branch: non-finite flow
  flow[2] = 1e30f;    // copy branch: far outside
  flow[4] = INFINITY;

  // CPU reference through the shared per-pixel functions.
  std::vector<float> out(P * C), g_image(P * C, 0.f), g_flow(P * 2), g_kernel(P * 16);
  const size_t hw = static_cast<size_t>(H) * W;
  for (size_t p = 0; p < P; ++p) {
    const size_t b = p / hw, self = p % hw;
    aw::Window<float> win;
    aw::ComputeWindow<float>(static_cast<int>(self % W), static_cast<int>(self / W),
                             flow[2 * p], flow[2 * p + 1], H, W, &win);
    const float* img = image.data() + b * hw * C;
    const float* k = kernel.data() + 16 * p;
    aw::ForwardPixel<float>(win, img, k, self, C, out.data() + p * C);
    aw::FlowKernelGradPixel<float>(win, img, k, grad_out.data() + p * C, C,
                                   g_flow.data() + 2 * p, g_kernel.data() + 16 * p);
    aw::ImageGradPixel<float>(win, k, grad_out.data() + p * C, self, C, 0, C,
                              g_image.data() + b * hw * C, aw::PlainAdd());
  }

  float *d_image = ToDevice(image), *d_flow = ToDevice(flow), *d_kernel = ToDevice(kernel),
        *d_grad_out = ToDevice(grad_out), *d_out = ToDevice(out),
        *d_g_image = ToDevice(g_image), *d_g_flow = ToDevice(g_flow),
        *d_g_kernel = ToDevice(g_kernel);
  if (!Allocated({d_image, d_flow, d_kernel, d_grad_out, d_out, d_g_image, d_g_flow,
                  d_g_kernel})) {
    return 2;
  }
  const char* err =
      aw::LaunchForwardGpu<float>(nullptr, d_image, d_flow, d_kernel, B, H, W, C, d_out);
  if (err) { std::fprintf(stderr, "forward: %s\n", err); return 2; }
  err = aw::LaunchBackwardGpu<float>(nullptr, d_grad_out, d_image, d_flow, d_kernel, B, H,
                                     W, C, d_g_image, d_g_flow, d_g_kernel);
  if (err) { std::fprintf(stderr, "backward: %s\n", err); return 2; }
  CHECK_CUDA(cudaDeviceSynchronize());

  const float d_fwd = MaxDiff(out, ToHost(d_out, out.size()));
  const float d_gi = MaxDiff(g_image, ToHost(d_g_image, g_image.size()));
  const float d_gf = MaxDiff(g_flow, ToHost(d_g_flow, g_flow.size()));
  const float d_gk = MaxDiff(g_kernel, ToHost(d_g_kernel, g_kernel.size()));
  std::printf("max |gpu - cpu|: forward %.3g, grad image %.3g, grad flow %.3g, grad kernel %.3g\n",
              d_fwd, d_gi, d_gf, d_gk);
  const bool ok = d_fwd <= 1e-5f && d_gi <= 1e-4f && d_gf <= 1e-4f && d_gk <= 1e-4f;
  std::printf("%s\n", ok ? "CUDA self-test passed" : "CUDA self-test FAILED");
  return ok ? 0 : 1;
}
