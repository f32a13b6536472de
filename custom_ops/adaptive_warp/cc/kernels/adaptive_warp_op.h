// Adaptive warping (DAIN-style learned 4x4 kernels), shared maths.
//
// Everything numerical lives in the per-pixel functions below. They are
// `__host__ __device__`, so the CPU kernels (adaptive_warp_op.cc) and the CUDA
// kernels (adaptive_warp_op_gpu.cu.cc) run exactly the same arithmetic and the
// CPU tests cover the GPU maths. This header includes no TensorFlow headers so
// that nvcc compiles the CUDA file without them.
//
// Semantics (docs/design.md §3.7 of the repository). For output pixel p = (x, y)
// with backward flow f: q = p + f, x0 = floor(qx), y0 = floor(qy),
// alpha = qx - x0, beta = qy - y0.
//  * q outside [0, W-1] x [0, H-1], or f not finite: out(p) = image(p) (copy).
//  * otherwise out(p) = sum_{i,j in 0..3} k[4i+j] * wy(i) * wx(j) * image(r_i, s_j)
//    with r_i = clamp(y0 - 1 + i), s_j = clamp(x0 - 1 + j),
//    wx(j) = 1 - alpha for j in {0, 1}, alpha for j in {2, 3} (wy with beta).
//    No normalisation: k = 1 on the centre 2x2 taps gives bilinear sampling.
#ifndef SPIRITNET_CUSTOM_OPS_ADAPTIVE_WARP_OP_H_
#define SPIRITNET_CUSTOM_OPS_ADAPTIVE_WARP_OP_H_

#include <cstdint>

#if defined(__CUDACC__)
#define AW_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define AW_HOST_DEVICE inline
#endif

namespace spiritnet {
namespace adaptive_warp {

constexpr int kTaps = 16;

#define AW_RESTRICT __restrict__

// The 4x4 window of one output pixel, separable: tap t = 4 * i + j reads pixel
// row_offset[i] + col[j] (without batch or channel stride) with weight
// k[t] * wy[i] * wx[j]. d wx[j] / d alpha is -1 for j < 2 and +1 otherwise
// (d wy[i] / d beta likewise), which the gradient code uses directly.
template <typename T>
struct Window {
  bool copy;  // true: copy branch, nothing else is filled in
  int64_t row_offset[4];  // clamped row * width
  int64_t col[4];         // clamped column
  T wx[4], wy[4];
};

AW_HOST_DEVICE int ClampIndex(int v, int size) {
  return v < 0 ? 0 : (v >= size ? size - 1 : v);
}

template <typename T>
AW_HOST_DEVICE bool IsFinite(T v) {
  // v - v is NaN for +-inf and NaN; avoids std::isfinite on the device.
  return (v - v) == (v - v);
}

AW_HOST_DEVICE int TapSign(int index) { return index < 2 ? -1 : 1; }

// Computes the window of pixel (x, y) with backward flow (fx, fy).
template <typename T>
AW_HOST_DEVICE void ComputeWindow(int x, int y, T fx, T fy, int height, int width,
                                  Window<T>* win) {
  const T qx = static_cast<T>(x) + fx;
  const T qy = static_cast<T>(y) + fy;
  // Written so that NaN compares false and lands in the copy branch.
  const bool inside = IsFinite(fx) && IsFinite(fy) && qx >= T(0) &&
                      qx <= static_cast<T>(width - 1) && qy >= T(0) &&
                      qy <= static_cast<T>(height - 1);
  win->copy = !inside;
  if (!inside) return;
  const int x0 = static_cast<int>(qx);  // qx >= 0, so truncation is floor
  const int y0 = static_cast<int>(qy);
  const T alpha = qx - static_cast<T>(x0);
  const T beta = qy - static_cast<T>(y0);
  for (int i = 0; i < 4; ++i) {
    win->row_offset[i] = static_cast<int64_t>(ClampIndex(y0 - 1 + i, height)) * width;
    win->col[i] = ClampIndex(x0 - 1 + i, width);
    win->wy[i] = i < 2 ? T(1) - beta : beta;
    win->wx[i] = i < 2 ? T(1) - alpha : alpha;
  }
}

// Partial sums of `Dot` (one AVX-512 vector of floats): the fixed-size inner loop
// lets the compiler vectorise the reduction without reassociating it.
constexpr int kLanes = 16;

// The 16 source pointers and weights k[t] * wy[i] * wx[j] of a window.
template <typename T>
AW_HOST_DEVICE void TapPointers(const Window<T>& win, const T* image, const T* k,
                                int channels, const T** src, T* weight) {
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      src[4 * i + j] = image + (win.row_offset[i] + win.col[j]) * channels;
      weight[4 * i + j] = k[4 * i + j] * win.wy[i] * win.wx[j];
    }
  }
}

#if !defined(__CUDA_ARCH__)
// Host only: out[c + u] = sum_t weight[t] * src[t][c + u] for u < kLanes, summed in
// tap order; the fixed-size inner loops compile to one vector register (or two).
template <typename T>
inline void ForwardChunk(const T* const* src, const T* weight, int c, T* AW_RESTRICT out) {
  T acc[kLanes];
  for (int u = 0; u < kLanes; ++u) acc[u] = weight[0] * src[0][c + u];
  for (int t = 1; t < kTaps; ++t) {
    const T w = weight[t];
    const T* AW_RESTRICT s = src[t] + c;
    for (int u = 0; u < kLanes; ++u) acc[u] += w * s[u];
  }
  for (int u = 0; u < kLanes; ++u) out[c + u] = acc[u];
}
#endif

// Forward for one pixel. `image` points at this pixel's batch item ([H, W, C]),
// `self` is the pixel's own offset (y * W + x), `k` its 16 kernel values.
template <typename T>
AW_HOST_DEVICE void ForwardPixel(const Window<T>& win, const T* AW_RESTRICT image,
                                 const T* AW_RESTRICT k, int64_t self, int channels,
                                 T* AW_RESTRICT out) {
  if (win.copy) {
    const T* AW_RESTRICT src = image + self * channels;
    for (int c = 0; c < channels; ++c) out[c] = src[c];
    return;
  }
  const T* src[kTaps];
  T weight[kTaps];
  TapPointers(win, image, k, channels, src, weight);
  // out[c] = sum_t weight[t] * src[t][c], summed in tap order on every path.
#if !defined(__CUDA_ARCH__)
  if (channels >= kLanes) {
    // Host, many channels: kLanes channels at a time accumulated over the 16 taps in
    // registers (one vector), so out is written once. The channels left over are
    // covered by one more chunk ending at the last channel, which overlaps the
    // previous one and writes the same values again.
    int c = 0;
    for (; c + kLanes <= channels; c += kLanes) ForwardChunk(src, weight, c, out);
    if (c < channels) ForwardChunk(src, weight, channels - kLanes, out);
    return;
  }
#endif
  // Device, or few channels: each channel accumulated in a register.
  for (int c = 0; c < channels; ++c) {
    T acc = weight[0] * src[0][c];
    for (int t = 1; t < kTaps; ++t) acc += weight[t] * src[t][c];
    out[c] = acc;
  }
}

// sum_c a[c] * b[c], with kLanes partial sums so that it vectorises.
template <typename T>
AW_HOST_DEVICE T Dot(const T* AW_RESTRICT a, const T* AW_RESTRICT b, int n) {
  if (n < kLanes) {  // few channels (RGB): the partial sums would only cost
    T sum = T(0);
    for (int c = 0; c < n; ++c) sum += a[c] * b[c];
    return sum;
  }
  T part[kLanes];
  for (int u = 0; u < kLanes; ++u) part[u] = T(0);
  int c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    for (int u = 0; u < kLanes; ++u) part[u] += a[c + u] * b[c + u];
  }
  T sum = T(0);
  for (int u = 0; u < kLanes; ++u) sum += part[u];
  for (; c < n; ++c) sum += a[c] * b[c];
  return sum;
}

// Gradients to the flow (2 values) and kernel (16 values) of one pixel. These
// only read shared data, so pixels are independent.
template <typename T>
AW_HOST_DEVICE void FlowKernelGradPixel(const Window<T>& win, const T* AW_RESTRICT image,
                                        const T* AW_RESTRICT k,
                                        const T* AW_RESTRICT grad_out, int channels,
                                        T* AW_RESTRICT grad_flow,
                                        T* AW_RESTRICT grad_kernel) {
  if (win.copy) {
    grad_flow[0] = grad_flow[1] = T(0);
    for (int t = 0; t < kTaps; ++t) grad_kernel[t] = T(0);
    return;
  }
  T gx = T(0), gy = T(0);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const int t = 4 * i + j;
      // d out / d (weight of tap t), summed against the incoming gradient
      const T dot =
          Dot(grad_out, image + (win.row_offset[i] + win.col[j]) * channels, channels);
      gx += k[t] * win.wy[i] * static_cast<T>(TapSign(j)) * dot;
      gy += k[t] * static_cast<T>(TapSign(i)) * win.wx[j] * dot;
      grad_kernel[t] = win.wy[i] * win.wx[j] * dot;
    }
  }
  grad_flow[0] = gx;
  grad_flow[1] = gy;
}

// Host only: sum_c g[c] * s[c] (the same partial sums and order as `Dot`) and, in the
// same sweep over the channels, d[c] += w * g[c]. One read of g and s serves both the
// flow/kernel gradient and the image-gradient scatter of a tap.
#if !defined(__CUDACC__)
template <typename T>
inline T DotAxpy(const T* AW_RESTRICT g, const T* AW_RESTRICT s, T* AW_RESTRICT d, T w,
                 int n) {
  if (n < kLanes) {
    T sum = T(0);
    for (int c = 0; c < n; ++c) {
      sum += g[c] * s[c];
      d[c] += w * g[c];
    }
    return sum;
  }
  T part[kLanes];
  for (int u = 0; u < kLanes; ++u) part[u] = T(0);
  int c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    for (int u = 0; u < kLanes; ++u) {
      part[u] += g[c + u] * s[c + u];
      d[c + u] += w * g[c + u];
    }
  }
  T sum = T(0);
  for (int u = 0; u < kLanes; ++u) sum += part[u];
  for (; c < n; ++c) {
    sum += g[c] * s[c];
    d[c] += w * g[c];
  }
  return sum;
}

// Host only: all three gradients of one pixel in one sweep per tap; the same results,
// bit for bit, as `FlowKernelGradPixel` followed by `ImageGradPixel` over every channel
// (same sums in the same order). ``grad_image`` is this pixel's batch item, owned by
// the caller's thread. The image and grad_image rows of a tap never alias.
template <typename T>
inline void FusedGradPixel(const Window<T>& win, const T* AW_RESTRICT image,
                           const T* AW_RESTRICT k, const T* AW_RESTRICT grad_out,
                           int64_t self, int channels, T* AW_RESTRICT grad_image,
                           T* AW_RESTRICT grad_flow, T* AW_RESTRICT grad_kernel) {
  if (win.copy) {
    grad_flow[0] = grad_flow[1] = T(0);
    for (int t = 0; t < kTaps; ++t) grad_kernel[t] = T(0);
    T* dst = grad_image + self * channels;
    for (int c = 0; c < channels; ++c) dst[c] += grad_out[c];
    return;
  }
  T gx = T(0), gy = T(0);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const int t = 4 * i + j;
      const int64_t offset = (win.row_offset[i] + win.col[j]) * channels;
      const T w = k[t] * win.wy[i] * win.wx[j];
      const T dot = DotAxpy(grad_out, image + offset, grad_image + offset, w, channels);
      gx += k[t] * win.wy[i] * static_cast<T>(TapSign(j)) * dot;
      gy += k[t] * static_cast<T>(TapSign(i)) * win.wx[j] * dot;
      grad_kernel[t] = win.wy[i] * win.wx[j] * dot;
    }
  }
  grad_flow[0] = gx;
  grad_flow[1] = gy;
}
#endif

// Non-atomic accumulation, for callers where each thread owns what it writes.
struct PlainAdd {
  template <typename T>
  AW_HOST_DEVICE void operator()(T* dst, T v) const { *dst += v; }
};

// Gradient to the image from one pixel, channels [c_begin, c_end): scatters
// weight * grad_out into the taps. `add(ptr, value)` performs the addition (a
// plain += on the CPU where each thread owns its channels, atomicAdd on the GPU).
template <typename T, typename AddFn>
AW_HOST_DEVICE void ImageGradPixel(const Window<T>& win, const T* AW_RESTRICT k,
                                   const T* AW_RESTRICT grad_out, int64_t self,
                                   int channels, int c_begin, int c_end, T* grad_image,
                                   AddFn add) {
  if (win.copy) {
    T* dst = grad_image + self * channels;
    for (int c = c_begin; c < c_end; ++c) add(dst + c, grad_out[c]);
    return;
  }
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const T w = k[4 * i + j] * win.wy[i] * win.wx[j];
      T* dst = grad_image + (win.row_offset[i] + win.col[j]) * channels;
      for (int c = c_begin; c < c_end; ++c) add(dst + c, w * grad_out[c]);
    }
  }
}

}  // namespace adaptive_warp
}  // namespace spiritnet

#endif  // SPIRITNET_CUSTOM_OPS_ADAPTIVE_WARP_OP_H_
