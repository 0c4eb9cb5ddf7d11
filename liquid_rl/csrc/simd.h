// Explicit SIMD for the CPU LTC kernel: float vectors over GCC/Clang vector extensions, one
// register wide for the target the library is built for (512-bit with AVX-512, 256-bit with
// AVX/AVX2, 128-bit otherwise: SSE2 on x86-64, NEON on aarch64), and a branch-free exp.
//
// The kernel's loop bodies are templates over a value type V that is either the element T
// (scalar tails, and float64, which keeps std::exp) or Pack<T>::V (a whole register), so the
// same body runs vectorised and in the tail. Nothing here depends on the auto-vectoriser: the
// scalar clamp in exp does not vectorise under -ftrapping-math (GCC's default), which left the
// AVX2 build's synapse loops scalar.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__SSE__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace liquid_rl_simd {

#if defined(__AVX512F__)
constexpr int kRegisterBytes = 64;
#elif defined(__AVX__)
constexpr int kRegisterBytes = 32;
#else
constexpr int kRegisterBytes = 16;
#endif

typedef float VFloat __attribute__((vector_size(kRegisterBytes)));
typedef int32_t VInt __attribute__((vector_size(kRegisterBytes)));

// Pack<T>::V holds W elements of T; W = 1 (V = T) where no vector exp exists (float64).
template <typename T>
struct Pack {
    using V = T;
    static constexpr int W = 1;
};
template <>
struct Pack<float> {
    using V = VFloat;
    static constexpr int W = kRegisterBytes / sizeof(float);
};

// Unaligned load/store of one V (a scalar when V is T).
template <typename V, typename T>
inline V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}
template <typename V, typename T>
inline void store(T* p, const V& v) {
    std::memcpy(p, &v, sizeof(V));
}

// The W values of a list through an index (gathered into a register).
template <typename V, typename T>
inline V gather(const T* base, const int64_t* idx) {
    constexpr int W = sizeof(V) / sizeof(T);
    T tmp[W];
    for (int l = 0; l < W; ++l) tmp[l] = base[idx[l]];
    return load<V>(tmp);
}

// Sum of the lanes, in lane order.
inline float hsum(VFloat v) {
    float lanes[Pack<float>::W];
    std::memcpy(lanes, &v, sizeof(v));
    float s = 0;
    for (float x : lanes) s += x;
    return s;
}
inline float hsum(float v) { return v; }
inline double hsum(double v) { return v; }

// min(max(x, lo), hi) lane by lane, NaN kept (x86 min/max return their second operand on
// NaN): one instruction each where the target has them, against a compare and three bit
// operations for each select.
#if defined(__AVX512F__)
using Native = __m512;
inline Native native_min(Native a, Native b) { return _mm512_maskz_min_ps(0xFFFF, a, b); }
inline Native native_max(Native a, Native b) { return _mm512_maskz_max_ps(0xFFFF, a, b); }
#elif defined(__AVX__)
using Native = __m256;
inline Native native_min(Native a, Native b) { return _mm256_min_ps(a, b); }
inline Native native_max(Native a, Native b) { return _mm256_max_ps(a, b); }
#elif defined(__SSE__)
using Native = __m128;
inline Native native_min(Native a, Native b) { return _mm_min_ps(a, b); }
inline Native native_max(Native a, Native b) { return _mm_max_ps(a, b); }
#elif defined(__ARM_NEON)
using Native = float32x4_t;
inline Native native_min(Native a, Native b) { return vminq_f32(a, b); }
inline Native native_max(Native a, Native b) { return vmaxq_f32(a, b); }
#endif

inline VFloat clamp(VFloat x, float lo, float hi) {
    const VFloat l = VFloat{} + lo, h = VFloat{} + hi;
#if defined(__SSE__) || defined(__ARM_NEON)
    auto nat = [](VFloat v) { return reinterpret_cast<Native>(v); };
    return reinterpret_cast<VFloat>(native_min(nat(h), native_max(nat(l), nat(x))));
#else
    const VInt below = x < l, above = x > h;
    x = reinterpret_cast<VFloat>((below & reinterpret_cast<VInt>(l)) | (~below & reinterpret_cast<VInt>(x)));
    return reinterpret_cast<VFloat>((above & reinterpret_cast<VInt>(h)) | (~above & reinterpret_cast<VInt>(x)));
#endif
}

// e^r for |r| <= ln(2)/2, the Cephes expf polynomial shared by the scalar and vector exp
// (T is float or VFloat; a scalar constant broadcasts over a vector).
template <typename T>
inline T exp_poly(T r) {
    T p = T{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r * r + r + 1.0f;
}

// exp for float (Cephes polynomial, ~1 ulp on [-80, 80], clamped outside), branch-free.
// Scalar and vector versions compute the same operations, so they agree to the last bit
// up to FMA contraction.
inline float exp_approx(float x) {
    x = x < -80.0f ? -80.0f : (x > 80.0f ? 80.0f : x);
    const float n = std::nearbyint(x * 1.44269504088896341f);
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    const float p = exp_poly(r);
    int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

inline VFloat exp_approx(VFloat x) {
    x = clamp(x, -80.0f, 80.0f);
    // Round to nearest (even) by adding 1.5 * 2^23 (|x * log2(e)| <= 116 < 2^22): t's low
    // bits then hold n, so its bits + 127, shifted, are the exponent of 2^n.
    const VFloat magic = VFloat{} + 12582912.0f;
    const VFloat t = x * 1.44269504088896341f + magic;
    const VFloat n = t - magic;
    const VFloat r = x - n * 0.693359375f + n * 2.12194440e-4f;
    const VFloat p = exp_poly(r);
    const VInt bits = (reinterpret_cast<VInt>(t) + 127) << 23;
    return p * reinterpret_cast<VFloat>(bits);
}

inline double exp_approx(double x) { return std::exp(x); }

template <typename V>
inline V sigmoid(V z) {
    return 1.0f / (1.0f + exp_approx(-z));
}
inline double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

}  // namespace liquid_rl_simd
