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
#include <cstring>
#include <type_traits>
#include <utility>

#if defined(__CUDACC__)
#define AW_HOST_DEVICE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define AW_HOST_DEVICE inline __attribute__((always_inline))  // see AW_HOST_INLINE
#else
#define AW_HOST_DEVICE inline
#endif

namespace spiritnet {
namespace adaptive_warp {

constexpr int kTaps = 16;

#define AW_RESTRICT __restrict__

// Host-only helpers are always inlined: the CPU loops that call them are compiled
// for several instruction sets (function multiversioning), and a helper left as a
// separate function would be compiled for the baseline one only.
#if defined(__GNUC__)
#define AW_HOST_INLINE inline __attribute__((always_inline))
#else
#define AW_HOST_INLINE inline
#endif

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

// Partial sums of `Dot` and `DotAxpy` (the fixed-size inner loops let the compiler
// vectorise the reductions without reassociating them).
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

// Host only (GCC 12+ or Clang): explicit vectors of L values written with the
// compilers' vector extensions, so the CPU loops get the instruction set they are
// compiled for (see CpuIsa in adaptive_warp_op.cc) without intrinsics. L is
// the number of floats in one register of that instruction set (16 for AVX-512, 8 for
// AVX2, 4 for SSE/NEON): wider vectors than the registers would be split by the
// compiler and spilled to the stack (measured: AVX2 forward 2.6x slower with 16).
// nvcc (host or device pass) takes the plain loops instead.
#if !defined(__CUDACC__) && defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 12)
#define AW_HOST_VECTORS 1
template <typename T, int L>
struct HostVec {
  typedef T V __attribute__((vector_size(L * sizeof(T))));
  typedef typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type Int;
  typedef Int Mask __attribute__((vector_size(L * sizeof(T))));
};

template <typename V>
AW_HOST_INLINE V LoadVec(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V>
AW_HOST_INLINE void StoreVec(void* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// Most vectors of L channels the loops keep in registers at once (the forward's
// accumulators, the gradient's grad_out): 128 channels with AVX-512, 96 with AVX2.
constexpr int MaxVectors(int lanes) { return lanes >= 16 ? 8 : 12; }

// Forward of channels [c, c + n) of a window with NV vectors of L channels,
// L <= n <= NV * L: the NV accumulators stay in registers over the 16 taps (summed
// in tap order). Vector v starts at channel c + min(v * L, n - L): a last vector that
// overlaps the one before computes the same values for the shared channels.
template <int NV, int L, typename T>
AW_HOST_INLINE void ForwardVectors(const T* const* src, const T* weight, int c, int n,
                                   T* AW_RESTRICT out) {
  typedef typename HostVec<T, L>::V V;
  int start[NV];
  for (int v = 0; v < NV; ++v) start[v] = c + (v * L < n - L ? v * L : n - L);
  V acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = weight[0] * LoadVec<V>(src[0] + start[v]);
  for (int t = 1; t < kTaps; ++t) {
    const T w = weight[t];
    for (int v = 0; v < NV; ++v) acc[v] += w * LoadVec<V>(src[t] + start[v]);
  }
  for (int v = 0; v < NV; ++v) StoreVec(out + start[v], acc[v]);
}

// out[c] = sum_t weight[t] * src[t][c] for all n >= L channels: blocks of
// MaxVectors(L) vectors, then the rest in one ForwardVectors call (a rest shorter
// than one vector ends at the last channel, overlapping the block before).
template <int L, typename T>
AW_HOST_INLINE void ForwardBlocks(const T* const* src, const T* weight, int n, T* out) {
  constexpr int kBlock = MaxVectors(L) * L;
  int c = 0;
  for (; n - c > kBlock; c += kBlock) ForwardVectors<MaxVectors(L), L>(src, weight, c, kBlock, out);
  if (n - c < L) c = n - L;
#define AW_CASE(NV)                                                            \
  case NV:                                                                     \
    if constexpr (NV <= MaxVectors(L)) ForwardVectors<NV, L>(src, weight, c, n - c, out); \
    return;
  switch ((n - c + L - 1) / L) {
    AW_CASE(1) AW_CASE(2) AW_CASE(3) AW_CASE(4) AW_CASE(5) AW_CASE(6)
    AW_CASE(7) AW_CASE(8) AW_CASE(9) AW_CASE(10) AW_CASE(11) AW_CASE(12)
  }
#undef AW_CASE
}
#endif  // AW_HOST_VECTORS

// Forward for one pixel. `image` points at this pixel's batch item ([H, W, C]),
// `self` is the pixel's own offset (y * W + x), `k` its 16 kernel values. L: the
// host's vector width (see HostVec); the device ignores it.
template <typename T, int L = kLanes>
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
#if defined(AW_HOST_VECTORS)
  if (channels >= L) {
    ForwardBlocks<L>(src, weight, channels, out);
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
AW_HOST_INLINE T DotAxpy(const T* AW_RESTRICT g, const T* AW_RESTRICT s, T* AW_RESTRICT d, T w,
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

#if defined(AW_HOST_VECTORS)
// Lane i of one reduction round with half width H (see ReduceTaps): the vectors hold
// groups of 2H lanes; lane i takes lane i % H of group i / H of (a, b) concatenated,
// from the group's lower half (Odd false) or upper half (Odd true).
template <int H, bool Odd>
constexpr int HalfIndex(int i) {
  return (i / H) * 2 * H + (Odd ? H : 0) + i % H;
}
template <int H, typename V, int... I>
AW_HOST_INLINE V AddHalves(V a, V b, std::integer_sequence<int, I...>) {
  return __builtin_shufflevector(a, b, HalfIndex<H, false>(I)...) +
         __builtin_shufflevector(a, b, HalfIndex<H, true>(I)...);
}
// `count` vectors of groups of 2H lanes -> count / 2 vectors of groups of H lanes.
template <int H, int L, typename V>
AW_HOST_INLINE void ReduceRounds(V* p, int count) {
  if constexpr (H >= 1) {
    for (int i = 0; i < count / 2; ++i) {
      p[i] = AddHalves<H>(p[2 * i], p[2 * i + 1], std::make_integer_sequence<int, L>());
    }
    ReduceRounds<H / 2, L>(p, count / 2);
  }
}
// Given the partial sums (L lanes each) of the 16 taps in p[0..15], leaves the 16
// totals in tap order in p[0..16/L - 1] (taps r * L .. r * L + L - 1 in p[r]):
// log2(L) rounds, each adding the two halves of every tap's lanes while packing two
// taps' groups into one vector.
template <int L, typename V>
AW_HOST_INLINE void ReduceTaps(V* p) {
  static_assert(kTaps % L == 0 && (L & (L - 1)) == 0, "16 taps over whole vectors");
  ReduceRounds<L / 2, L>(p, kTaps);
}

template <int L, typename V>
AW_HOST_INLINE auto SumLanes(V v) -> typename std::remove_reference<decltype(v[0])>::type {
  typename std::remove_reference<decltype(v[0])>::type a[L];
  StoreVec(a, v);
  for (int w = L / 2; w > 0; w /= 2) {
    for (int u = 0; u < w; ++u) a[u] += a[u + w];
  }
  return a[0];
}

// FusedGradPixel for a window (not the copy branch) and n >= L channels, NV vectors
// of L of them (0: any number, grad_out reloaded for each tap; otherwise it stays in
// registers over the 16 taps). Each tap sweeps its channels once: partial sums of
// grad_out * image and grad_image += weight * grad_out, a vector at a time. The
// channels past the last whole vector are covered by one more vector ending at the
// last channel, with the lanes it shares with the previous one masked off (grad_out
// zero there, image lanes cleared); both grad_image vectors are loaded before either
// is stored, the overlapping one first, so each channel is added to once and no load
// waits on an overlapping store. The 16 partial sums are reduced together.
template <int NV, int L, typename T>
AW_HOST_INLINE void FusedGradVectors(const Window<T>& win, const T* AW_RESTRICT image,
                                     const T* AW_RESTRICT k, const T* AW_RESTRICT g,
                                     int n, T* AW_RESTRICT grad_image,
                                     T* AW_RESTRICT grad_flow, T* AW_RESTRICT grad_kernel) {
  typedef typename HostVec<T, L>::V V;
  typedef typename HostVec<T, L>::Mask Mask;
  const int whole = n / L * L;
  const bool ragged = whole != n;
  const int nv = NV > 0 ? NV : (n + L - 1) / L;
  const int plain = ragged ? nv - 2 : nv;  // vectors without an overlap
  const int last = plain * L;              // ragged: the vector before the overlap
  const int end = n - L;                   // ragged: the overlapping vector
  T tail_g[L];
  Mask on;
  for (int u = 0; u < L; ++u) {
    const bool lane = end + u >= whole;
    on[u] = lane ? -1 : 0;
    tail_g[u] = lane ? g[end + u] : T(0);
  }
  const V g_tail = LoadVec<V>(tail_g);
  V g_held[NV > 0 ? NV : 1];
  if constexpr (NV > 0) {
    for (int v = 0; v < NV; ++v) g_held[v] = LoadVec<V>(g + (v * L < end ? v * L : end));
  }
  T wyx[kTaps], weight[kTaps];
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      wyx[4 * i + j] = win.wy[i] * win.wx[j];
      weight[4 * i + j] = k[4 * i + j] * wyx[4 * i + j];
    }
  }
  V part[kTaps];
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const int t = 4 * i + j;
      const int64_t offset = (win.row_offset[i] + win.col[j]) * n;
      const T* AW_RESTRICT s = image + offset;
      T* AW_RESTRICT d = grad_image + offset;
      const T w = weight[t];
      V acc = V{};
      for (int v = 0; v < plain; ++v) {
        const int c = v * L;
        V gv;
        if constexpr (NV > 0) gv = g_held[v]; else gv = LoadVec<V>(g + c);
        acc += gv * LoadVec<V>(s + c);
        StoreVec(d + c, LoadVec<V>(d + c) + w * gv);
      }
      if (ragged) {
        V g_last;
        if constexpr (NV > 0) g_last = g_held[NV > 1 ? NV - 2 : 0]; else g_last = LoadVec<V>(g + last);
        const V d_last = LoadVec<V>(d + last);
        const V d_end = LoadVec<V>(d + end);
        acc += g_last * LoadVec<V>(s + last);
        acc += g_tail * (V)((Mask)LoadVec<V>(s + end) & on);
        StoreVec(d + end, d_end + w * g_tail);
        StoreVec(d + last, d_last + w * g_last);
      }
      part[t] = acc;
    }
  }
  ReduceTaps<L>(part);  // part[r]: the dot products of taps r * L ..
  T fx[kTaps], fy[kTaps];  // d weight / d alpha and d weight / d beta, over k
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      fx[4 * i + j] = win.wy[i] * static_cast<T>(TapSign(j));
      fy[4 * i + j] = static_cast<T>(TapSign(i)) * win.wx[j];
    }
  }
  V gx = V{}, gy = V{};
  for (int r = 0; r < kTaps / L; ++r) {
    const V k_v = LoadVec<V>(k + r * L);
    StoreVec(grad_kernel + r * L, LoadVec<V>(wyx + r * L) * part[r]);
    gx += k_v * LoadVec<V>(fx + r * L) * part[r];
    gy += k_v * LoadVec<V>(fy + r * L) * part[r];
  }
  grad_flow[0] = SumLanes<L>(gx);
  grad_flow[1] = SumLanes<L>(gy);
}

template <int L, typename T>
AW_HOST_INLINE void FusedGradVectorsAnyN(const Window<T>& win, const T* image, const T* k,
                                         const T* g, int n, T* grad_image, T* grad_flow,
                                         T* grad_kernel) {
#define AW_CASE(NV)                                                                  \
  case NV:                                                                           \
    if constexpr (NV <= MaxVectors(L)) {                                             \
      FusedGradVectors<NV, L>(win, image, k, g, n, grad_image, grad_flow, grad_kernel); \
      return;                                                                        \
    }                                                                                \
    break;
  switch ((n + L - 1) / L) {
    AW_CASE(1) AW_CASE(2) AW_CASE(3) AW_CASE(4) AW_CASE(5) AW_CASE(6)
    AW_CASE(7) AW_CASE(8) AW_CASE(9) AW_CASE(10) AW_CASE(11) AW_CASE(12)
  }
#undef AW_CASE
  FusedGradVectors<0, L>(win, image, k, g, n, grad_image, grad_flow, grad_kernel);
}
#endif  // AW_HOST_VECTORS

// Host only: all three gradients of one pixel in one sweep per tap; the same results
// as `FlowKernelGradPixel` followed by `ImageGradPixel` over every channel, up to the
// order in which the channel sums add up. ``grad_image`` is this pixel's batch item,
// owned by the caller's thread. The image and grad_image rows of a tap never alias.
template <typename T, int L = kLanes>
AW_HOST_INLINE void FusedGradPixel(const Window<T>& win, const T* AW_RESTRICT image,
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
#if defined(AW_HOST_VECTORS)
  if (channels >= L) {
    FusedGradVectorsAnyN<L>(win, image, k, grad_out, channels, grad_image, grad_flow,
                            grad_kernel);
    return;
  }
#endif
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
