// Adaptive warping (DAIN-style learned 4x4 kernels), shared maths.
//
// Everything numerical lives in the per-pixel functions below. They are
// `__host__ __device__`, so the CPU kernels (adaptive_warp_op.cc) and the CUDA
// kernels (adaptive_warp_op_gpu.cu.cc) run exactly the same arithmetic and the
// CPU tests cover the GPU maths. This header includes no TensorFlow headers so
// that nvcc compiles the CUDA file without them.
//
// Semantics (docs: ../shared/DESIGN.md section 3.7). For output pixel p = (x, y)
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

// The 16 taps of one output pixel: flat pixel offsets (row * W + col, without
// the batch or channel stride) and their weights, plus the weight derivatives
// with respect to alpha and beta (for the flow gradient).
template <typename T>
struct Taps {
  bool copy;            // true: copy branch, nothing else is filled in
  int64_t offset[kTaps];
  T bilinear[kTaps];    // wy(i) * wx(j)
  T weight[kTaps];      // k[t] * wy(i) * wx(j)
  T dweight_dx[kTaps];  // k[t] * wy(i) * dwx(j)/dalpha
  T dweight_dy[kTaps];  // k[t] * dwy(i)/dbeta * wx(j)
};

AW_HOST_DEVICE int ClampIndex(int v, int size) {
  return v < 0 ? 0 : (v >= size ? size - 1 : v);
}

template <typename T>
AW_HOST_DEVICE bool IsFinite(T v) {
  // v - v is NaN for +-inf and NaN; avoids std::isfinite on the device.
  return (v - v) == (v - v);
}

// Computes the taps of pixel (x, y) with flow (fx, fy) and kernel k[16].
template <typename T>
AW_HOST_DEVICE void ComputeTaps(int x, int y, T fx, T fy, const T* k, int height,
                                int width, Taps<T>* taps) {
  const T qx = static_cast<T>(x) + fx;
  const T qy = static_cast<T>(y) + fy;
  // Written so that NaN compares false and lands in the copy branch.
  const bool inside = IsFinite(fx) && IsFinite(fy) && qx >= T(0) &&
                      qx <= static_cast<T>(width - 1) && qy >= T(0) &&
                      qy <= static_cast<T>(height - 1);
  taps->copy = !inside;
  if (!inside) return;
  const int x0 = static_cast<int>(qx);  // qx >= 0, so truncation is floor
  const int y0 = static_cast<int>(qy);
  const T alpha = qx - static_cast<T>(x0);
  const T beta = qy - static_cast<T>(y0);
  for (int i = 0; i < 4; ++i) {
    const int r = ClampIndex(y0 - 1 + i, height);
    const T wy = i < 2 ? T(1) - beta : beta;
    const T dwy = i < 2 ? T(-1) : T(1);
    for (int j = 0; j < 4; ++j) {
      const int s = ClampIndex(x0 - 1 + j, width);
      const T wx = j < 2 ? T(1) - alpha : alpha;
      const T dwx = j < 2 ? T(-1) : T(1);
      const int t = 4 * i + j;
      taps->offset[t] = static_cast<int64_t>(r) * width + s;
      taps->bilinear[t] = wy * wx;
      taps->weight[t] = k[t] * wy * wx;
      taps->dweight_dx[t] = k[t] * wy * dwx;
      taps->dweight_dy[t] = k[t] * dwy * wx;
    }
  }
}

// Forward for one pixel. `image` points at the start of this pixel's batch
// item ([H, W, C]); `self` is the offset of the pixel itself (y * W + x).
template <typename T>
AW_HOST_DEVICE void ForwardPixel(const Taps<T>& taps, const T* image, int64_t self,
                                 int channels, T* out) {
  if (taps.copy) {
    const T* src = image + self * channels;
    for (int c = 0; c < channels; ++c) out[c] = src[c];
    return;
  }
  for (int c = 0; c < channels; ++c) out[c] = T(0);
  for (int t = 0; t < kTaps; ++t) {
    const T w = taps.weight[t];
    const T* src = image + taps.offset[t] * channels;
    for (int c = 0; c < channels; ++c) out[c] += w * src[c];
  }
}

// Gradients to the flow (2 values) and kernel (16 values) of one pixel. These
// only read, so pixels are independent.
template <typename T>
AW_HOST_DEVICE void FlowKernelGradPixel(const Taps<T>& taps, const T* image,
                                        const T* grad_out, int channels, T* grad_flow,
                                        T* grad_kernel) {
  if (taps.copy) {
    grad_flow[0] = grad_flow[1] = T(0);
    for (int t = 0; t < kTaps; ++t) grad_kernel[t] = T(0);
    return;
  }
  T gx = T(0), gy = T(0);
  for (int t = 0; t < kTaps; ++t) {
    const T* src = image + taps.offset[t] * channels;
    T dot = T(0);  // sum_c grad_out[c] * image(tap)[c]
    for (int c = 0; c < channels; ++c) dot += grad_out[c] * src[c];
    gx += taps.dweight_dx[t] * dot;
    gy += taps.dweight_dy[t] * dot;
    grad_kernel[t] = taps.bilinear[t] * dot;
  }
  grad_flow[0] = gx;
  grad_flow[1] = gy;
}

// Gradient to the image from one pixel, channels [c_begin, c_end): scatters
// weight * grad_out into the taps. `add(ptr, value)` performs the addition (a
// plain += on the CPU where each thread owns its channels, atomicAdd on the GPU).
template <typename T, typename AddFn>
AW_HOST_DEVICE void ImageGradPixel(const Taps<T>& taps, const T* grad_out, int64_t self,
                                   int channels, int c_begin, int c_end, T* grad_image,
                                   AddFn add) {
  if (taps.copy) {
    T* dst = grad_image + self * channels;
    for (int c = c_begin; c < c_end; ++c) add(dst + c, grad_out[c]);
    return;
  }
  for (int t = 0; t < kTaps; ++t) {
    const T w = taps.weight[t];
    T* dst = grad_image + taps.offset[t] * channels;
    for (int c = c_begin; c < c_end; ++c) add(dst + c, w * grad_out[c]);
  }
}

}  // namespace adaptive_warp
}  // namespace spiritnet

#endif  // SPIRITNET_CUSTOM_OPS_ADAPTIVE_WARP_OP_H_
