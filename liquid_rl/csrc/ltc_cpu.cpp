// Semi-implicit LTC over a whole sequence on the CPU: forward and hand-written backward.
//
// The same recurrence as liquid_rl/ltc_fused.py (see its docstring), batch-major and in
// plain loops: one call runs all T steps and U unfolds, so the per-operation overhead of
// ~35 small tensor operations per unfold disappears. Built at first use by
// liquid_rl/native.py and called through ctypes; no Python or torch headers.
//
// Layouts (all contiguous, row-major):
//   v0 (B, N); keep (T, B) or null; num0, den0 (T, B, N); h (T, Bh) with Bh in {1, B};
//   cm (N); sig, nsmu (N, K); M2 (N, 2, K); src (N, K) presynaptic neuron of synapse k
//   into neuron j (padding entries have zero weight in M2).
//   Saved by the forward for the backward: states (T, U, B, N) the input state of every
//   unfold, dens (T, U, B, N) its denominator.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace {

// Flush denormals to zero (FTZ and DAZ) for the duration of a call, then restore: saturated
// synapses produce denormals that slow x86 arithmetic 10-100x and carry no signal.
struct FlushDenormals {
#if defined(__SSE__)
    unsigned int saved = _mm_getcsr();
    FlushDenormals() { _mm_setcsr(saved | 0x8040); }
    ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// exp for float in plain arithmetic (Cephes polynomial, ~1 ulp on [-80, 80]) so that
// the synapse loops vectorise; std::exp is a library call the compiler cannot.
inline float exp_approx(float x) {
    x = x < -80.0f ? -80.0f : (x > 80.0f ? 80.0f : x);
    const float n = std::nearbyint(x * 1.44269504088896341f);
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

inline double exp_approx(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T z) { return T(1) / (T(1) + exp_approx(-z)); }

// One unfold for one sample: v (N) -> out (N); den (N) the denominators.
template <typename T>
inline void unfold(int N, int K, const T* v, const T* num0, const T* den0, T h, const T* cm, const T* sig,
                   const T* nsmu, const T* M2, const int64_t* src, bool dense, T* out, T* den) {
    for (int j = 0; j < N; ++j) {
        const T* sj = sig + j * K;
        const T* mj = nsmu + j * K;
        const T* w0 = M2 + j * 2 * K;
        const T* w1 = w0 + K;
        T a = 0, g = 0;
        if (dense) {
#pragma omp simd reduction(+ : a, g)
            for (int k = 0; k < K; ++k) {
                const T s = sigmoid(sj[k] * v[k] + mj[k]);
                a += w0[k] * s;
                g += w1[k] * s;
            }
        } else {
            const int64_t* srcj = src + j * K;
#pragma omp simd reduction(+ : a, g)
            for (int k = 0; k < K; ++k) {
                const T s = sigmoid(sj[k] * v[srcj[k]] + mj[k]);
                a += w0[k] * s;
                g += w1[k] * s;
            }
        }
        const T d = den0[j] + h * g;
        den[j] = d;
        out[j] = (cm[j] * v[j] + num0[j] + h * a) / d;
    }
}

bool is_dense(int N, int K, const int64_t* src) {
    if (K != N) return false;
    for (int j = 0; j < N; ++j)
        for (int k = 0; k < K; ++k)
            if (src[j * K + k] != k) return false;
    return true;
}

template <typename T>
void forward(int Tn, int B, int N, int K, int U, const T* v0, const T* keep, const T* num0, const T* den0,
             const T* h, int Bh, const T* cm, const T* sig, const T* nsmu, const T* M2, const int64_t* src, T* V,
             T* states, T* dens) {
    FlushDenormals flush;
    const bool dense = is_dense(N, K, src);
    std::vector<T> cur(N), nxt(N), den(N);
    for (int b = 0; b < B; ++b) {
        std::memcpy(cur.data(), v0 + b * N, N * sizeof(T));
        for (int t = 0; t < Tn; ++t) {
            if (keep) {
                const T f = keep[t * B + b];
                for (int j = 0; j < N; ++j) cur[j] *= f;
            }
            const T ht = h[t * Bh + (Bh == 1 ? 0 : b)];
            const T* n0 = num0 + (static_cast<int64_t>(t) * B + b) * N;
            const T* d0 = den0 + (static_cast<int64_t>(t) * B + b) * N;
            for (int u = 0; u < U; ++u) {
                const int64_t off = ((static_cast<int64_t>(t) * U + u) * B + b) * N;
                if (states) std::memcpy(states + off, cur.data(), N * sizeof(T));
                unfold(N, K, cur.data(), n0, d0, ht, cm, sig, nsmu, M2, src, dense, nxt.data(), den.data());
                if (dens) std::memcpy(dens + off, den.data(), N * sizeof(T));
                cur.swap(nxt);
            }
            std::memcpy(V + (static_cast<int64_t>(t) * B + b) * N, cur.data(), N * sizeof(T));
        }
    }
}

// Gradients given grad_out = dL/dV (T, B, N). Outputs: g_v0 (B, N), g_num0 and g_den0
// (T, B, N); g_cm (N), g_sig and g_nsmu (N, K), g_M2 (N, 2, K) are accumulated into
// (the caller zeroes them).
template <typename T>
void backward(int Tn, int B, int N, int K, int U, const T* grad_out, const T* keep, const T* h, int Bh, const T* cm,
              const T* sig, const T* nsmu, const T* M2, const int64_t* src, const T* V, const T* states,
              const T* dens, T* g_v0, T* g_num0, T* g_den0, T* g_cm, T* g_sig, T* g_nsmu, T* g_M2) {
    FlushDenormals flush;
    const bool dense = is_dense(N, K, src);
    std::vector<T> gv(N), gnew(N), gz(K);
    for (int b = 0; b < B; ++b) {
        std::fill(gv.begin(), gv.end(), T(0));
        for (int t = Tn - 1; t >= 0; --t) {
            const int64_t row = (static_cast<int64_t>(t) * B + b) * N;
            for (int j = 0; j < N; ++j) gv[j] += grad_out[row + j];
            const T ht = h[t * Bh + (Bh == 1 ? 0 : b)];
            T* gn0 = g_num0 + row;
            T* gd0 = g_den0 + row;
            for (int j = 0; j < N; ++j) gn0[j] = gd0[j] = T(0);
            for (int u = U - 1; u >= 0; --u) {
                const int64_t off = ((static_cast<int64_t>(t) * U + u) * B + b) * N;
                const T* v = states + off;
                const T* den = dens + off;
                const T* v_next = u == U - 1 ? V + row : states + off + static_cast<int64_t>(B) * N;
                for (int j = 0; j < N; ++j) {
                    const T g_num = gv[j] / den[j];
                    const T g_den = -g_num * v_next[j];
                    gn0[j] += g_num;
                    gd0[j] += g_den;
                    g_cm[j] += g_num * v[j];
                    gnew[j] = g_num * cm[j];
                }
                for (int j = 0; j < N; ++j) {
                    const T g_num = gv[j] / den[j];
                    const T G0 = g_num * ht;
                    const T G1 = -g_num * v_next[j] * ht;
                    const T* sj = sig + j * K;
                    const T* mj = nsmu + j * K;
                    const T* w0 = M2 + j * 2 * K;
                    const T* w1 = w0 + K;
                    T* gw0 = g_M2 + j * 2 * K;
                    T* gw1 = gw0 + K;
                    T* gs = g_sig + j * K;
                    T* gm = g_nsmu + j * K;
                    const int64_t* srcj = src + j * K;
                    if (dense) {
#pragma omp simd
                        for (int k = 0; k < K; ++k) {
                            const T vs = v[k];
                            const T s = sigmoid(sj[k] * vs + mj[k]);
                            gw0[k] += G0 * s;
                            gw1[k] += G1 * s;
                            const T z = (w0[k] * G0 + w1[k] * G1) * s * (T(1) - s);
                            gs[k] += z * vs;
                            gm[k] += z;
                            gnew[k] += z * sj[k];
                        }
                    } else {
#pragma omp simd
                        for (int k = 0; k < K; ++k) {
                            const T vs = v[srcj[k]];
                            const T s = sigmoid(sj[k] * vs + mj[k]);
                            gw0[k] += G0 * s;
                            gw1[k] += G1 * s;
                            const T z = (w0[k] * G0 + w1[k] * G1) * s * (T(1) - s);
                            gs[k] += z * vs;
                            gm[k] += z;
                            gz[k] = z * sj[k];
                        }
                        for (int k = 0; k < K; ++k) gnew[srcj[k]] += gz[k];
                    }
                }
                gv.swap(gnew);
            }
            if (keep) {
                const T f = keep[t * B + b];
                for (int j = 0; j < N; ++j) gv[j] *= f;
            }
        }
        std::memcpy(g_v0 + b * N, gv.data(), N * sizeof(T));
    }
}

// Inference (no backward): like forward, with the sensory synapses computed here from the
// mapped inputs x (T, B, I): ssig, nssmu (N, I), M2s (N, 2, I) = [w*erev; w] (masked),
// glvl = gleak*vleak (N), gl_eps = gleak + epsilon (N). num0/den0 are built per step.
template <typename T>
void infer(int Tn, int B, int N, int K, int I, int U, const T* v0, const T* keep, const T* x, const T* h, int Bh,
           const T* ssig, const T* nssmu, const T* M2s, const T* glvl, const T* gl_eps, const T* cm, const T* sig,
           const T* nsmu, const T* M2, const int64_t* src, T* V) {
    FlushDenormals flush;
    const bool dense = is_dense(N, K, src);
    std::vector<T> cur(N), nxt(N), den(N), num0(N), den0(N);
    for (int b = 0; b < B; ++b) {
        std::memcpy(cur.data(), v0 + b * N, N * sizeof(T));
        for (int t = 0; t < Tn; ++t) {
            if (keep) {
                const T f = keep[t * B + b];
                for (int j = 0; j < N; ++j) cur[j] *= f;
            }
            const T ht = h[t * Bh + (Bh == 1 ? 0 : b)];
            const T* xt = x + (static_cast<int64_t>(t) * B + b) * I;
            for (int j = 0; j < N; ++j) {
                const T* sj = ssig + j * I;
                const T* mj = nssmu + j * I;
                const T* w0 = M2s + j * 2 * I;
                const T* w1 = w0 + I;
                T a = 0, g = 0;
#pragma omp simd reduction(+ : a, g)
                for (int i = 0; i < I; ++i) {
                    const T s = sigmoid(sj[i] * xt[i] + mj[i]);
                    a += w0[i] * s;
                    g += w1[i] * s;
                }
                num0[j] = ht * (glvl[j] + a);
                den0[j] = cm[j] + ht * (gl_eps[j] + g);
            }
            for (int u = 0; u < U; ++u) {
                unfold(N, K, cur.data(), num0.data(), den0.data(), ht, cm, sig, nsmu, M2, src, dense, nxt.data(),
                       den.data());
                cur.swap(nxt);
            }
            std::memcpy(V + (static_cast<int64_t>(t) * B + b) * N, cur.data(), N * sizeof(T));
        }
    }
}

}  // namespace

extern "C" {

int liquid_rl_ltc_abi_version() { return 2; }

#define LTC_EXPORT(SUFFIX, T)                                                                                      \
    void liquid_rl_ltc_forward_##SUFFIX(int Tn, int B, int N, int K, int U, const T* v0, const T* keep,             \
                                        const T* num0, const T* den0, const T* h, int Bh, const T* cm,            \
                                        const T* sig, const T* nsmu, const T* M2, const int64_t* src, T* V,       \
                                        T* states, T* dens) {                                                      \
        forward<T>(Tn, B, N, K, U, v0, keep, num0, den0, h, Bh, cm, sig, nsmu, M2, src, V, states, dens);         \
    }                                                                                                              \
    void liquid_rl_ltc_backward_##SUFFIX(int Tn, int B, int N, int K, int U, const T* grad_out, const T* keep,      \
                                         const T* h, int Bh, const T* cm, const T* sig, const T* nsmu,            \
                                         const T* M2, const int64_t* src, const T* V, const T* states,            \
                                         const T* dens, T* g_v0, T* g_num0, T* g_den0, T* g_cm, T* g_sig,         \
                                         T* g_nsmu, T* g_M2) {                                                     \
        backward<T>(Tn, B, N, K, U, grad_out, keep, h, Bh, cm, sig, nsmu, M2, src, V, states, dens, g_v0, g_num0, \
                    g_den0, g_cm, g_sig, g_nsmu, g_M2);                                                            \
    }                                                                                                              \
    void liquid_rl_ltc_infer_##SUFFIX(int Tn, int B, int N, int K, int I, int U, const T* v0, const T* keep,        \
                                      const T* x, const T* h, int Bh, const T* ssig, const T* nssmu,              \
                                      const T* M2s, const T* glvl, const T* gl_eps, const T* cm, const T* sig,    \
                                      const T* nsmu, const T* M2, const int64_t* src, T* V) {                     \
        infer<T>(Tn, B, N, K, I, U, v0, keep, x, h, Bh, ssig, nssmu, M2s, glvl, gl_eps, cm, sig, nsmu, M2, src, V); \
    }

LTC_EXPORT(f32, float)
LTC_EXPORT(f64, double)

}  // extern "C"
