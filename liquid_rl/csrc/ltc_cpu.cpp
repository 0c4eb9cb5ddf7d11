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
//   into neuron j; fanin (N) the number of real synapses of neuron j (they come first; the
//   padding after them has zero weight in M2).
// Batches below kLanes run batch-major (vectorised over synapses: lowest latency at B = 1),
// larger ones neuron-major (vectorised over the batch); states/dens layouts differ.
//   Saved by the forward for the backward: states (T, U, B, N) the input state of every
//   unfold, dens (T, U, B, N) its denominator.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "simd.h"

namespace {

// Loops over a batch (or over many synapses in the backward) run on 512-bit vectors where the
// CPU has them (~15% faster at batch 64); the batch-1 inference keeps 256-bit ones (lower latency).
#define LTC_WIDE __attribute__((target("prefer-vector-width=512")))

// Flush denormals to zero (FTZ and DAZ) for the duration of a call, then restore: saturated
// synapses produce denormals that slow x86 arithmetic 10-100x and carry no signal.
struct FlushDenormals {
#if defined(__SSE__)
    unsigned int saved = _mm_getcsr();
    FlushDenormals() { _mm_setcsr(saved | 0x8040); }
    ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

using liquid_rl_simd::hsum;
using liquid_rl_simd::load;
using liquid_rl_simd::Pack;
using liquid_rl_simd::sigmoid;
using liquid_rl_simd::store;

// Conductance sums of L synapses into one neuron from presynaptic values x (L), or
// x[idx[l]] when idx is given: a = sum w0 * s, g = sum w1 * s with s = sigmoid(sj * x + mj);
// W synapses per register, the rest one by one.
template <typename T>
inline void synapse_sums(int L, const T* x, const int64_t* idx, const T* sj, const T* mj, const T* w0, const T* w1,
                         T* a_out, T* g_out) {
    using V = typename Pack<T>::V;
    constexpr int W = Pack<T>::W;
    V av{}, gv{};
    int l = 0;
    for (; l + W <= L; l += W) {
        const V xv = idx ? liquid_rl_simd::gather<V>(x, idx + l) : load<V>(x + l);
        const V s = sigmoid(load<V>(sj + l) * xv + load<V>(mj + l));
        av += load<V>(w0 + l) * s;
        gv += load<V>(w1 + l) * s;
    }
    T a = hsum(av), g = hsum(gv);
    for (; l < L; ++l) {
        const T s = sigmoid(sj[l] * (idx ? x[idx[l]] : x[l]) + mj[l]);
        a += w0[l] * s;
        g += w1[l] * s;
    }
    *a_out = a;
    *g_out = g;
}

// One unfold for one sample: v (N) -> out (N); den (N) the denominators.
template <typename T>
inline void unfold(int N, int K, const T* v, const T* num0, const T* den0, T h, const T* cm, const T* sig,
                   const T* nsmu, const T* M2, const int64_t* src, bool dense, T* out, T* den) {
    for (int j = 0; j < N; ++j) {
        const T* sj = sig + j * K;
        const T* mj = nsmu + j * K;
        const T* w0 = M2 + j * 2 * K;
        const T* w1 = w0 + K;
        T a, g;
        synapse_sums(K, v, dense ? nullptr : src + j * K, sj, mj, w0, w1, &a, &g);
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

// Start of step t for sample b (batch-major): apply the reset factor to the state cur (N)
// and return the sub-step length h.
template <typename T>
inline T begin_step(int t, int b, int B, int Bh, int N, const T* keep, const T* h, T* cur) {
    if (keep) {
        const T f = keep[t * B + b];
        for (int j = 0; j < N; ++j) cur[j] *= f;
    }
    return h[t * Bh + (Bh == 1 ? 0 : b)];
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
            const T ht = begin_step(t, b, B, Bh, N, keep, h, cur.data());
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

// The weights of the K synapses into neuron j and the rows of their gradients.
template <typename T>
struct SynapseRow {
    const T *sig, *nsmu, *w0, *w1;
    T *g_w0, *g_w1, *g_sig, *g_nsmu;
    SynapseRow(int j, int K, const T* sig_, const T* nsmu_, const T* M2, T* g_sig_, T* g_nsmu_, T* g_M2)
        : sig(sig_ + j * K), nsmu(nsmu_ + j * K), w0(M2 + j * 2 * K), w1(M2 + j * 2 * K + K),
          g_w0(g_M2 + j * 2 * K), g_w1(g_M2 + j * 2 * K + K), g_sig(g_sig_ + j * K), g_nsmu(g_nsmu_ + j * K) {}
};

// The dense backward for G samples bs..bs+G-1 at once: the weights of each synapse row are
// loaded, and their gradients read and written, once for the G samples instead of G times
// (those loads and stores, not the sigmoids, were half of the one-sample loop's time).
template <int G, typename T>
LTC_WIDE void backward_dense_group(int Tn, int B, int bs, int N, int U, const T* grad_out, const T* keep,
                                   const T* h, int Bh, const T* cm, const T* sig, const T* nsmu, const T* M2,
                                   const T* V, const T* states, const T* dens, T* g_v0, T* g_num0, T* g_den0,
                                   T* g_cm, T* g_sig, T* g_nsmu, T* g_M2) {
    const int64_t NG = static_cast<int64_t>(N) * G;
    std::vector<T> gv(NG, T(0)), gnew(NG);
    T ht[G], G0[G], G1[G];
    for (int t = Tn - 1; t >= 0; --t) {
        const int64_t row = (static_cast<int64_t>(t) * B + bs) * N;   // G consecutive rows of (T, B, N)
        for (int64_t e = 0; e < NG; ++e) gv[e] += grad_out[row + e];
        for (int g = 0; g < G; ++g) ht[g] = h[t * Bh + (Bh == 1 ? 0 : bs + g)];
        T* gn0 = g_num0 + row;
        T* gd0 = g_den0 + row;
        std::fill(gn0, gn0 + NG, T(0));
        std::fill(gd0, gd0 + NG, T(0));
        for (int u = U - 1; u >= 0; --u) {
            const int64_t off = ((static_cast<int64_t>(t) * U + u) * B + bs) * N;
            const T* v = states + off;
            const T* den = dens + off;
            const T* v_next = u == U - 1 ? V + row : states + off + static_cast<int64_t>(B) * N;
            for (int64_t e = 0; e < NG; ++e) {
                const int j = static_cast<int>(e % N);
                const T g_num = gv[e] / den[e];
                gn0[e] += g_num;
                gd0[e] -= g_num * v_next[e];
                g_cm[j] += g_num * v[e];
                gnew[e] = g_num * cm[j];
            }
            for (int j = 0; j < N; ++j) {
                for (int g = 0; g < G; ++g) {
                    const T g_num = gv[g * N + j] / den[g * N + j];
                    G0[g] = g_num * ht[g];
                    G1[g] = -g_num * v_next[g * N + j] * ht[g];
                }
                const SynapseRow<T> r(j, N, sig, nsmu, M2, g_sig, g_nsmu, g_M2);
                // Synapses k..k+width-1 (a register of them, or one) for the G samples.
                auto synapses = [&](auto zero, int k) {
                    using P = decltype(zero);
                    const P sg = load<P>(r.sig + k), nm = load<P>(r.nsmu + k);
                    const P w0 = load<P>(r.w0 + k), w1 = load<P>(r.w1 + k);
                    P a0 = zero, a1 = zero, as = zero, am = zero;
                    for (int g = 0; g < G; ++g) {
                        const P vs = load<P>(v + g * N + k);
                        const P s = sigmoid(sg * vs + nm);
                        a0 += G0[g] * s;
                        a1 += G1[g] * s;
                        const P z = (w0 * G0[g] + w1 * G1[g]) * s * (T(1) - s);
                        as += z * vs;
                        am += z;
                        store(gnew.data() + g * N + k, load<P>(gnew.data() + g * N + k) + z * sg);
                    }
                    store(r.g_w0 + k, load<P>(r.g_w0 + k) + a0);
                    store(r.g_w1 + k, load<P>(r.g_w1 + k) + a1);
                    store(r.g_sig + k, load<P>(r.g_sig + k) + as);
                    store(r.g_nsmu + k, load<P>(r.g_nsmu + k) + am);
                };
                int k = 0;
                for (; k + Pack<T>::W <= N; k += Pack<T>::W) synapses(typename Pack<T>::V{}, k);
                for (; k < N; ++k) synapses(T(0), k);
            }
            gv.swap(gnew);
        }
        if (keep)
            for (int g = 0; g < G; ++g)
                for (int j = 0; j < N; ++j) gv[g * N + j] *= keep[t * B + bs + g];
    }
    std::memcpy(g_v0 + static_cast<int64_t>(bs) * N, gv.data(), NG * sizeof(T));
}

// Gradients given grad_out = dL/dV (T, B, N), for samples [b0, b1). Outputs: g_v0 (B, N),
// g_num0 and g_den0 (T, B, N) at those rows; g_cm (N), g_sig and g_nsmu (N, K), g_M2 (N, 2, K)
// are accumulated into (the caller zeroes them).
template <typename T>
LTC_WIDE void backward(int Tn, int B, int b0, int b1, int N, int K, int U, const T* grad_out, const T* keep,
                       const T* h, int Bh, const T* cm, const T* sig, const T* nsmu, const T* M2, const int64_t* src,
                       const T* V, const T* states, const T* dens, T* g_v0, T* g_num0, T* g_den0, T* g_cm, T* g_sig,
                       T* g_nsmu, T* g_M2) {
    FlushDenormals flush;
    if (is_dense(N, K, src)) {   // four samples at a time, the rest one by one
        constexpr int kGroup = 4;
        int b = b0;
        for (; b + kGroup <= b1; b += kGroup)
            backward_dense_group<kGroup>(Tn, B, b, N, U, grad_out, keep, h, Bh, cm, sig, nsmu, M2, V, states, dens,
                                         g_v0, g_num0, g_den0, g_cm, g_sig, g_nsmu, g_M2);
        for (; b < b1; ++b)
            backward_dense_group<1>(Tn, B, b, N, U, grad_out, keep, h, Bh, cm, sig, nsmu, M2, V, states, dens, g_v0,
                                    g_num0, g_den0, g_cm, g_sig, g_nsmu, g_M2);
        return;
    }
    std::vector<T> gv(N), gnew(N), gz(K);
    for (int b = b0; b < b1; ++b) {   // sparse wirings: presynaptic values gathered through src
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
                    const SynapseRow<T> r(j, K, sig, nsmu, M2, g_sig, g_nsmu, g_M2);
                    const int64_t* srcj = src + j * K;
#pragma omp simd
                    for (int k = 0; k < K; ++k) {
                        const T vs = v[srcj[k]];
                        const T s = sigmoid(r.sig[k] * vs + r.nsmu[k]);
                        r.g_w0[k] += G0 * s;
                        r.g_w1[k] += G1 * s;
                        const T z = (r.w0[k] * G0 + r.w1[k] * G1) * s * (T(1) - s);
                        r.g_sig[k] += z * vs;
                        r.g_nsmu[k] += z;
                        gz[k] = z * r.sig[k];
                    }
                    for (int k = 0; k < K; ++k) gnew[srcj[k]] += gz[k];
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
            const T ht = begin_step(t, b, B, Bh, N, keep, h, cur.data());
            const T* xt = x + (static_cast<int64_t>(t) * B + b) * I;
            for (int j = 0; j < N; ++j) {
                T a, g;
                synapse_sums(I, xt, nullptr, ssig + j * I, nssmu + j * I, M2s + j * 2 * I, M2s + j * 2 * I + I, &a, &g);
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

// ---- Neuron-major variant for batches of at least kLanes samples --------------------
// The state is (N, B) inside the call, so the batch sits in the vector lanes: every
// synapse (j, k) is one contiguous loop over the batch, with no gathers (sparse wirings)
// and no horizontal sums in the forward pass. states/dens are stored (T, U, N, B).
// Only the first fanin[j] synapses of neuron j are real; the rest (zero weight) are skipped.
constexpr int kLanes = 8;

// One synapse (weights sg, nm, a0, a1) over L lanes of presynaptic values x:
// acc_a += a0 * s, acc_g += a1 * s with s = sigmoid(sg * x + nm).
template <typename T>
LTC_WIDE inline void synapse_forward(int L, const T* x, T sg, T nm, T a0, T a1, T* acc_a, T* acc_g) {
    auto lanes = [&](auto zero, int l) {
        using P = decltype(zero);
        const P s = sigmoid(sg * load<P>(x + l) + nm);
        store(acc_a + l, load<P>(acc_a + l) + a0 * s);
        store(acc_g + l, load<P>(acc_g + l) + a1 * s);
    };
    int l = 0;
    for (; l + Pack<T>::W <= L; l += Pack<T>::W) lanes(typename Pack<T>::V{}, l);
    for (; l < L; ++l) lanes(T(0), l);
}

// Its backward given dL/dacc_a = G0 and dL/dacc_g = G1 (L lanes): adds dL/dx to gx and the
// weights' gradients (summed over lanes) to g[0..3] = (a0, a1, sg, nm).
template <typename T>
LTC_WIDE inline void synapse_backward(int L, const T* x, T sg, T nm, T a0, T a1, const T* G0, const T* G1, T* gx, T* g_a0,
                             T* g_a1, T* g_sg, T* g_nm) {
    using V = typename Pack<T>::V;
    V s0{}, s1{}, ss{}, sm{};   // per-lane partial sums, added up at the end
    T t0 = 0, t1 = 0, ts = 0, tm = 0;
    auto lanes = [&](auto& p0, auto& p1, auto& ps, auto& pm, int l) {
        using P = std::remove_reference_t<decltype(p0)>;
        const P xv = load<P>(x + l), g0 = load<P>(G0 + l), g1 = load<P>(G1 + l);
        const P s = sigmoid(sg * xv + nm);
        p0 += g0 * s;
        p1 += g1 * s;
        const P z = (a0 * g0 + a1 * g1) * s * (T(1) - s);
        ps += z * xv;
        pm += z;
        store(gx + l, load<P>(gx + l) + z * sg);
    };
    int l = 0;
    for (; l + Pack<T>::W <= L; l += Pack<T>::W) lanes(s0, s1, ss, sm, l);
    for (; l < L; ++l) lanes(t0, t1, ts, tm, l);
    *g_a0 += hsum(s0) + t0;
    *g_a1 += hsum(s1) + t1;
    *g_sg += hsum(ss) + ts;
    *g_nm += hsum(sm) + tm;
}

// All synapses into neuron j over lanes [l0, l0 + L) of v (N, B), the sums kept in registers
// (L a compile-time block) rather than stored and reloaded after every synapse.
template <int L, typename T>
LTC_WIDE inline void synapses_into_block(int j, int K, int cnt, int B, int l0, const T* v, const T* sig, const T* nsmu,
                                const T* M2, const int64_t* src, T* acc_a, T* acc_g) {
    using V = typename Pack<T>::V;
    constexpr int W = Pack<T>::W, R = L / W;   // R registers of sums of each kind
    static_assert(L % W == 0, "a block is a whole number of registers");
    V a[R] = {}, g[R] = {};
    for (int k = 0; k < cnt; ++k) {
        const T* x = v + src[j * K + k] * B + l0;
        const T sg = sig[j * K + k], nm = nsmu[j * K + k], a0 = M2[j * 2 * K + k], a1 = M2[j * 2 * K + K + k];
        for (int r = 0; r < R; ++r) {
            const V s = sigmoid(sg * load<V>(x + r * W) + nm);
            a[r] += a0 * s;
            g[r] += a1 * s;
        }
    }
    for (int r = 0; r < R; ++r) {
        store(acc_a + l0 + r * W, a[r]);
        store(acc_g + l0 + r * W, g[r]);
    }
}

template <typename T>
LTC_WIDE inline void unfold_nm(int N, int K, int B, const int64_t* fanin, const T* v, const T* n0, const T* d0, const T* hb,
                      const T* cm, const T* sig, const T* nsmu, const T* M2, const int64_t* src, T* acc_a, T* acc_g,
                      T* out, T* den) {
    constexpr int kBlock = 64 / sizeof(T);   // 64 bytes of sums of each kind (two AVX2 registers)
    const int blocked = B / kBlock * kBlock;
    for (int j = 0; j < N; ++j) {
        const int cnt = fanin ? static_cast<int>(fanin[j]) : K;
        for (int l0 = 0; l0 < blocked; l0 += kBlock)
            synapses_into_block<kBlock>(j, K, cnt, B, l0, v, sig, nsmu, M2, src, acc_a, acc_g);
        if (blocked < B) {
            std::fill(acc_a + blocked, acc_a + B, T(0));
            std::fill(acc_g + blocked, acc_g + B, T(0));
            for (int k = 0; k < cnt; ++k)
                synapse_forward(B - blocked, v + src[j * K + k] * B + blocked, sig[j * K + k], nsmu[j * K + k],
                                M2[j * 2 * K + k], M2[j * 2 * K + K + k], acc_a + blocked, acc_g + blocked);
        }
        const T* vj = v + j * B;
#pragma omp simd
        for (int b = 0; b < B; ++b) {
            const T d = d0[j * B + b] + hb[b] * acc_g[b];
            den[j * B + b] = d;
            out[j * B + b] = (cm[j] * vj[b] + n0[j * B + b] + hb[b] * acc_a[b]) / d;
        }
    }
}

// (B, N) rows of a (T, B, N) tensor at step t <-> (N, B).
template <typename T>
inline void to_nm(int B, int N, const T* src, T* dst) {
    for (int b = 0; b < B; ++b)
        for (int j = 0; j < N; ++j) dst[j * B + b] = src[b * N + j];
}
template <typename T>
inline void from_nm(int B, int N, const T* src, T* dst) {
    for (int b = 0; b < B; ++b)
        for (int j = 0; j < N; ++j) dst[b * N + j] = src[j * B + b];
}

// Lanes [b0, b0 + L) of a batch of B (the slice one thread owns): the step's sub-step lengths
// hb (L) and the reset factor applied to the neuron-major state cur (N, L).
template <typename T>
inline void step_scales(int t, int B, int b0, int L, int Bh, const T* h, const T* keep, T* hb, T* cur, int N) {
    for (int b = 0; b < L; ++b) hb[b] = h[t * Bh + (Bh == 1 ? 0 : b0 + b)];
    if (keep)
        for (int j = 0; j < N; ++j)
            for (int b = 0; b < L; ++b) cur[j * L + b] *= keep[t * B + b0 + b];
}

// The neuron-major functions below run lanes [b0, b0 + L) of a batch of B: (T, B, N) tensors
// are read and written at rows b0.. of each step, and the saved states/dens of the slice
// occupy the same rows, as an (N, L) block when saved neuron-major.
template <typename T>
LTC_WIDE void forward_nm(int Tn, int B, int b0, int L, int N, int K, int U, const T* v0, const T* keep,
                         const T* num0, const T* den0, const T* h, int Bh, const T* cm, const T* sig, const T* nsmu,
                         const T* M2, const int64_t* src, const int64_t* fanin, bool save_batch_major, T* V,
                         T* states, T* dens) {
    FlushDenormals flush;
    const int64_t NB = static_cast<int64_t>(N) * B, NL = static_cast<int64_t>(N) * L, row0 = int64_t(b0) * N;
    std::vector<T> cur(NL), nxt(NL), den(NL), n0(NL), d0(NL), hb(L), acc_a(L), acc_g(L);
    auto save = [&](const T* from, T* to) {
        if (save_batch_major)
            from_nm(L, N, from, to);
        else
            std::memcpy(to, from, NL * sizeof(T));
    };
    to_nm(L, N, v0 + row0, cur.data());
    for (int t = 0; t < Tn; ++t) {
        step_scales(t, B, b0, L, Bh, h, keep, hb.data(), cur.data(), N);
        to_nm(L, N, num0 + t * NB + row0, n0.data());
        to_nm(L, N, den0 + t * NB + row0, d0.data());
        for (int u = 0; u < U; ++u) {
            const int64_t off = (static_cast<int64_t>(t) * U + u) * NB + row0;
            if (states) save(cur.data(), states + off);
            unfold_nm(N, K, L, fanin, cur.data(), n0.data(), d0.data(), hb.data(), cm, sig, nsmu, M2, src,
                      acc_a.data(), acc_g.data(), nxt.data(), den.data());
            if (dens) save(den.data(), dens + off);
            cur.swap(nxt);
        }
        from_nm(L, N, cur.data(), V + t * NB + row0);
    }
}

template <typename T>
LTC_WIDE void backward_nm(int Tn, int B, int b0, int L, int N, int K, int U, const T* grad_out, const T* keep,
                          const T* h, int Bh, const T* cm, const T* sig, const T* nsmu, const T* M2,
                          const int64_t* src, const int64_t* fanin, const T* V, const T* states, const T* dens,
                          T* g_v0, T* g_num0, T* g_den0, T* g_cm, T* g_sig, T* g_nsmu, T* g_M2) {
    FlushDenormals flush;
    const int64_t NB = static_cast<int64_t>(N) * B, NL = static_cast<int64_t>(N) * L, row0 = int64_t(b0) * N;
    std::vector<T> gv(NL, T(0)), gnew(NL), G0(NL), G1(NL), gn0(NL), gd0(NL), vt(NL), go(NL), hb(L);
    for (int t = Tn - 1; t >= 0; --t) {
        to_nm(L, N, grad_out + t * NB + row0, go.data());
        for (int64_t e = 0; e < NL; ++e) gv[e] += go[e];
        for (int b = 0; b < L; ++b) hb[b] = h[t * Bh + (Bh == 1 ? 0 : b0 + b)];
        to_nm(L, N, V + t * NB + row0, vt.data());
        std::fill(gn0.begin(), gn0.end(), T(0));
        std::fill(gd0.begin(), gd0.end(), T(0));
        for (int u = U - 1; u >= 0; --u) {
            const int64_t off = (static_cast<int64_t>(t) * U + u) * NB + row0;
            const T* v = states + off;
            const T* den = dens + off;
            const T* v_next = u == U - 1 ? vt.data() : states + off + NB;
            for (int j = 0; j < N; ++j) {
                T gcm = 0;
#pragma omp simd reduction(+ : gcm)
                for (int b = 0; b < L; ++b) {
                    const int64_t e = j * L + b;
                    const T g_num = gv[e] / den[e];
                    const T g_den = -g_num * v_next[e];
                    gn0[e] += g_num;
                    gd0[e] += g_den;
                    gcm += g_num * v[e];
                    gnew[e] = g_num * cm[j];
                    G0[e] = g_num * hb[b];
                    G1[e] = g_den * hb[b];
                }
                g_cm[j] += gcm;
            }
            for (int j = 0; j < N; ++j) {
                const int cnt = fanin ? static_cast<int>(fanin[j]) : K;
                const T* G0j = G0.data() + j * L;
                const T* G1j = G1.data() + j * L;
                for (int k = 0; k < cnt; ++k) {
                    const int64_t i = src[j * K + k];
                    const int64_t w = j * 2 * K + k;
                    synapse_backward(L, v + i * L, sig[j * K + k], nsmu[j * K + k], M2[w], M2[w + K], G0j, G1j,
                                     gnew.data() + i * L, &g_M2[w], &g_M2[w + K], &g_sig[j * K + k],
                                     &g_nsmu[j * K + k]);
                }
            }
            gv.swap(gnew);
        }
        from_nm(L, N, gn0.data(), g_num0 + t * NB + row0);
        from_nm(L, N, gd0.data(), g_den0 + t * NB + row0);
        if (keep)
            for (int j = 0; j < N; ++j)
                for (int b = 0; b < L; ++b) gv[j * L + b] *= keep[t * B + b0 + b];
    }
    from_nm(L, N, gv.data(), g_v0 + row0);
}

template <typename T>
LTC_WIDE void infer_nm(int Tn, int B, int b0, int L, int N, int K, int I, int U, const T* v0, const T* keep,
                       const T* x, const T* h, int Bh, const T* ssig, const T* nssmu, const T* M2s, const T* glvl,
                       const T* gl_eps, const T* cm, const T* sig, const T* nsmu, const T* M2, const int64_t* src,
                       const int64_t* fanin, T* V) {
    FlushDenormals flush;
    const int64_t NB = static_cast<int64_t>(N) * B, NL = static_cast<int64_t>(N) * L, row0 = int64_t(b0) * N;
    std::vector<T> cur(NL), nxt(NL), den(NL), n0(NL), d0(NL), hb(L), acc_a(L), acc_g(L),
        xt(static_cast<int64_t>(I) * L);
    to_nm(L, N, v0 + row0, cur.data());
    for (int t = 0; t < Tn; ++t) {
        step_scales(t, B, b0, L, Bh, h, keep, hb.data(), cur.data(), N);
        to_nm(L, I, x + (static_cast<int64_t>(t) * B + b0) * I, xt.data());
        for (int j = 0; j < N; ++j) {
            std::fill(acc_a.begin(), acc_a.end(), T(0));
            std::fill(acc_g.begin(), acc_g.end(), T(0));
            for (int i = 0; i < I; ++i)
                synapse_forward(L, xt.data() + i * L, ssig[j * I + i], nssmu[j * I + i], M2s[j * 2 * I + i],
                                M2s[j * 2 * I + I + i], acc_a.data(), acc_g.data());
            for (int b = 0; b < L; ++b) {
                n0[j * L + b] = hb[b] * (glvl[j] + acc_a[b]);
                d0[j * L + b] = cm[j] + hb[b] * (gl_eps[j] + acc_g[b]);
            }
        }
        for (int u = 0; u < U; ++u) {
            unfold_nm(N, K, L, fanin, cur.data(), n0.data(), d0.data(), hb.data(), cm, sig, nsmu, M2, src,
                      acc_a.data(), acc_g.data(), nxt.data(), den.data());
            cur.swap(nxt);
        }
        from_nm(L, N, cur.data(), V + t * NB + row0);
    }
}

// ---- Sensory synapses (inputs -> neurons), for the training path ---------------------
// For M = T*B input rows x (M, I): a = sum_i w_a[j,i] sigmoid(ssig[j,i] x_i + nssmu[j,i]),
// g likewise with w_g; M2s (N, 2, I) = [w_a; w_g]. Outputs a, g (M, N). The rows sit in
// the vector lanes (inputs are transposed to (I, M) first).
template <typename T>
LTC_WIDE void sensory_forward(int M, int N, int I, const T* x, const T* ssig, const T* nssmu, const T* M2s, T* a, T* g) {
    FlushDenormals flush;
    std::vector<T> xt(static_cast<int64_t>(I) * M), acc_a(M), acc_g(M);
    to_nm(M, I, x, xt.data());
    for (int j = 0; j < N; ++j) {
        std::fill(acc_a.begin(), acc_a.end(), T(0));
        std::fill(acc_g.begin(), acc_g.end(), T(0));
        for (int i = 0; i < I; ++i)
            synapse_forward(M, xt.data() + static_cast<int64_t>(i) * M, ssig[j * I + i], nssmu[j * I + i],
                            M2s[j * 2 * I + i], M2s[j * 2 * I + I + i], acc_a.data(), acc_g.data());
        for (int m = 0; m < M; ++m) {
            a[static_cast<int64_t>(m) * N + j] = acc_a[m];
            g[static_cast<int64_t>(m) * N + j] = acc_g[m];
        }
    }
}

// Gradients given ga, gg (M, N): g_x (M, I) written; g_ssig, g_nssmu (N, I), g_M2s (N, 2, I)
// accumulated into (the caller zeroes them).
template <typename T>
LTC_WIDE void sensory_backward(int M, int N, int I, const T* x, const T* ssig, const T* nssmu, const T* M2s, const T* ga,
                      const T* gg, T* g_x, T* g_ssig, T* g_nssmu, T* g_M2s) {
    FlushDenormals flush;
    std::vector<T> xt(static_cast<int64_t>(I) * M), gxt(static_cast<int64_t>(I) * M, T(0)), gat(M), ggt(M);
    to_nm(M, I, x, xt.data());
    for (int j = 0; j < N; ++j) {
        for (int m = 0; m < M; ++m) {
            gat[m] = ga[static_cast<int64_t>(m) * N + j];
            ggt[m] = gg[static_cast<int64_t>(m) * N + j];
        }
        for (int i = 0; i < I; ++i) {
            const int64_t w = j * 2 * I + i;
            synapse_backward(M, xt.data() + static_cast<int64_t>(i) * M, ssig[j * I + i], nssmu[j * I + i], M2s[w],
                             M2s[w + I], gat.data(), ggt.data(), gxt.data() + static_cast<int64_t>(i) * M, &g_M2s[w],
                             &g_M2s[w + I], &g_ssig[j * I + i], &g_nssmu[j * I + i]);
        }
    }
    from_nm(M, I, gxt.data(), g_x);
}

// The backward runs neuron-major for sparse wirings at B >= kLanes (no scatter); for dense
// ones the batch-major backward (four samples at a time) is faster (at B 64, T 64, N 32:
// 25 ms against 43 even one sample at a time), so the forward then saves its states
// batch-major.
bool backward_neuron_major(int B, int N, int K, const int64_t* src) { return B >= kLanes && !is_dense(N, K, src); }

// ---- Threads ---------------------------------------------------------------------------
// Samples are independent, so a batch splits into contiguous chunks run on their own threads.
// A chunk gets at least kMinWork synapse evaluations (thread start-up is ~50 us) and, in the
// neuron-major layout, a whole number of 16-lane blocks. The bounds depend only on the
// arguments, so a forward and its backward (which reads the forward's per-chunk layout) agree.
constexpr int64_t kMinWork = int64_t(1) << 18;

std::vector<int> chunk_bounds(int threads, int n, int64_t work_per_item, int align) {
    const int64_t grain = std::max<int64_t>(align, (kMinWork + work_per_item - 1) / std::max<int64_t>(work_per_item, 1));
    const int chunks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n / grain)));
    const int step = ((n + chunks - 1) / chunks + align - 1) / align * align;
    std::vector<int> bounds{0};
    while (bounds.back() < n) bounds.push_back(std::min(n, bounds.back() + step));
    if (n == 0) bounds.push_back(0);
    return bounds;
}

// fn(c, begin, end) for every chunk c. Built with OpenMP (the default), the chunks run on the
// OpenMP thread pool that torch itself uses (its libgomp is the one loaded in the process), so
// they do not compete with torch's idle-spinning workers; otherwise on std::threads, chunk 0
// on the calling thread, and a thread that cannot be started runs its chunk here instead.
template <typename F>
void run_chunks(const std::vector<int>& bounds, F&& fn) {
    const int chunks = static_cast<int>(bounds.size()) - 1;
    if (chunks == 1) {
        fn(0, bounds[0], bounds[1]);
        return;
    }
#if defined(_OPENMP)
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
    for (int c = 0; c < chunks; ++c) fn(c, bounds[c], bounds[c + 1]);
#else
    std::vector<std::thread> pool;
    std::vector<int> inline_chunks;
    for (int c = 1; c < chunks; ++c) {
        try {
            pool.emplace_back(fn, c, bounds[c], bounds[c + 1]);
        } catch (...) {
            inline_chunks.push_back(c);
        }
    }
    fn(0, bounds[0], bounds[1]);
    for (int c : inline_chunks) fn(c, bounds[c], bounds[c + 1]);
    for (auto& th : pool) th.join();
#endif
}

// Weight gradients accumulated per chunk: chunk 0 into the outputs, the others into zeroed
// private copies that are added to the outputs after the join, in chunk order (the same
// result for the same thread count).
template <typename T>
struct ChunkGrads {
    std::vector<std::pair<T*, int64_t>> outs;
    std::vector<std::vector<T>> priv;   // per chunk c >= 1, all arrays back to back

    ChunkGrads(int chunks, std::vector<std::pair<T*, int64_t>> outputs) : outs(std::move(outputs)) {
        int64_t total = 0;
        for (auto& o : outs) total += o.second;
        priv.assign(std::max(0, chunks - 1), std::vector<T>(total, T(0)));
    }
    // The i-th gradient array of chunk c.
    T* get(int c, int i) {
        if (c == 0) return outs[i].first;
        int64_t off = 0;
        for (int k = 0; k < i; ++k) off += outs[k].second;
        return priv[c - 1].data() + off;
    }
    void reduce() {
        for (auto& p : priv) {
            int64_t off = 0;
            for (auto& o : outs) {
                for (int64_t e = 0; e < o.second; ++e) o.first[e] += p[off + e];
                off += o.second;
            }
        }
    }
};

constexpr int lane_block(int elem_size) { return 64 / elem_size; }

template <typename T>
void ltc_forward(int Tn, int B, int N, int K, int U, const T* v0, const T* keep, const T* num0, const T* den0,
                 const T* h, int Bh, const T* cm, const T* sig, const T* nsmu, const T* M2, const int64_t* src,
                 const int64_t* fanin, int threads, T* V, T* states, T* dens) {
    if (B < kLanes) {
        forward<T>(Tn, B, N, K, U, v0, keep, num0, den0, h, Bh, cm, sig, nsmu, M2, src, V, states, dens);
        return;
    }
    const bool batch_major = !backward_neuron_major(B, N, K, src);
    run_chunks(chunk_bounds(threads, B, int64_t(Tn) * U * N * K, lane_block(sizeof(T))), [&](int, int b0, int b1) {
        forward_nm<T>(Tn, B, b0, b1 - b0, N, K, U, v0, keep, num0, den0, h, Bh, cm, sig, nsmu, M2, src, fanin,
                      batch_major, V, states, dens);
    });
}

template <typename T>
void ltc_backward(int Tn, int B, int N, int K, int U, const T* grad_out, const T* keep, const T* h, int Bh,
                  const T* cm, const T* sig, const T* nsmu, const T* M2, const int64_t* src, const int64_t* fanin,
                  const T* V, const T* states, const T* dens, int threads, T* g_v0, T* g_num0, T* g_den0, T* g_cm,
                  T* g_sig, T* g_nsmu, T* g_M2) {
    const int64_t NK = int64_t(N) * K;
    const bool nm = backward_neuron_major(B, N, K, src);
    // Must match ltc_forward's chunks when the states are saved neuron-major (per chunk).
    const auto bounds = nm ? chunk_bounds(threads, B, int64_t(Tn) * U * N * K, lane_block(sizeof(T)))
                           : chunk_bounds(B < kLanes ? 1 : threads, B, int64_t(Tn) * U * N * K, 1);
    ChunkGrads<T> grads(static_cast<int>(bounds.size()) - 1, {{g_cm, N}, {g_sig, NK}, {g_nsmu, NK}, {g_M2, 2 * NK}});
    run_chunks(bounds, [&](int c, int b0, int b1) {
        if (nm)
            backward_nm<T>(Tn, B, b0, b1 - b0, N, K, U, grad_out, keep, h, Bh, cm, sig, nsmu, M2, src, fanin, V,
                           states, dens, g_v0, g_num0, g_den0, grads.get(c, 0), grads.get(c, 1), grads.get(c, 2),
                           grads.get(c, 3));
        else
            backward<T>(Tn, B, b0, b1, N, K, U, grad_out, keep, h, Bh, cm, sig, nsmu, M2, src, V, states, dens,
                        g_v0, g_num0, g_den0, grads.get(c, 0), grads.get(c, 1), grads.get(c, 2), grads.get(c, 3));
    });
    grads.reduce();
}

template <typename T>
void ltc_infer(int Tn, int B, int N, int K, int I, int U, const T* v0, const T* keep, const T* x, const T* h, int Bh,
               const T* ssig, const T* nssmu, const T* M2s, const T* glvl, const T* gl_eps, const T* cm,
               const T* sig, const T* nsmu, const T* M2, const int64_t* src, const int64_t* fanin, int threads,
               T* V) {
    if (B < kLanes) {
        infer<T>(Tn, B, N, K, I, U, v0, keep, x, h, Bh, ssig, nssmu, M2s, glvl, gl_eps, cm, sig, nsmu, M2, src, V);
        return;
    }
    run_chunks(chunk_bounds(threads, B, int64_t(Tn) * (U * K + I) * N, lane_block(sizeof(T))),
               [&](int, int b0, int b1) {
                   infer_nm<T>(Tn, B, b0, b1 - b0, N, K, I, U, v0, keep, x, h, Bh, ssig, nssmu, M2s, glvl, gl_eps,
                               cm, sig, nsmu, M2, src, fanin, V);
               });
}

template <typename T>
void ltc_sensory_forward(int M, int N, int I, const T* x, const T* ssig, const T* nssmu, const T* M2s, int threads,
                         T* a, T* g) {
    run_chunks(chunk_bounds(threads, M, int64_t(N) * I, lane_block(sizeof(T))), [&](int, int m0, int m1) {
        sensory_forward<T>(m1 - m0, N, I, x + int64_t(m0) * I, ssig, nssmu, M2s, a + int64_t(m0) * N,
                           g + int64_t(m0) * N);
    });
}

template <typename T>
void ltc_sensory_backward(int M, int N, int I, const T* x, const T* ssig, const T* nssmu, const T* M2s, const T* ga,
                          const T* gg, int threads, T* g_x, T* g_ssig, T* g_nssmu, T* g_M2s) {
    const int64_t NI = int64_t(N) * I;
    const auto bounds = chunk_bounds(threads, M, NI, lane_block(sizeof(T)));
    ChunkGrads<T> grads(static_cast<int>(bounds.size()) - 1, {{g_ssig, NI}, {g_nssmu, NI}, {g_M2s, 2 * NI}});
    run_chunks(bounds, [&](int c, int m0, int m1) {
        sensory_backward<T>(m1 - m0, N, I, x + int64_t(m0) * I, ssig, nssmu, M2s, ga + int64_t(m0) * N,
                            gg + int64_t(m0) * N, g_x + int64_t(m0) * I, grads.get(c, 0), grads.get(c, 1),
                            grads.get(c, 2));
    });
    grads.reduce();
}

}  // namespace

// The C ABI (called through ctypes by liquid_rl/native.py). `threads`: the most threads a call
// may use (chunks of the batch; small batches run on the calling thread alone).
extern "C" {

int liquid_rl_ltc_abi_version() { return 6; }

#define LTC_EXPORT(SUFFIX, T)                                                                                      \
    void liquid_rl_ltc_forward_##SUFFIX(int Tn, int B, int N, int K, int U, const T* v0, const T* keep,             \
                                        const T* num0, const T* den0, const T* h, int Bh, const T* cm,            \
                                        const T* sig, const T* nsmu, const T* M2, const int64_t* src,           \
                                        const int64_t* fanin, int threads, T* V, T* states, T* dens) {            \
        ltc_forward<T>(Tn, B, N, K, U, v0, keep, num0, den0, h, Bh, cm, sig, nsmu, M2, src, fanin, threads, V,     \
                       states, dens);                                                                              \
    }                                                                                                              \
    void liquid_rl_ltc_backward_##SUFFIX(int Tn, int B, int N, int K, int U, const T* grad_out, const T* keep,      \
                                         const T* h, int Bh, const T* cm, const T* sig, const T* nsmu,            \
                                         const T* M2, const int64_t* src, const int64_t* fanin, const T* V,       \
                                         const T* states, const T* dens, int threads, T* g_v0, T* g_num0,        \
                                         T* g_den0, T* g_cm, T* g_sig, T* g_nsmu, T* g_M2) {                       \
        ltc_backward<T>(Tn, B, N, K, U, grad_out, keep, h, Bh, cm, sig, nsmu, M2, src, fanin, V, states, dens,     \
                        threads, g_v0, g_num0, g_den0, g_cm, g_sig, g_nsmu, g_M2);                                 \
    }                                                                                                              \
    void liquid_rl_ltc_infer_##SUFFIX(int Tn, int B, int N, int K, int I, int U, const T* v0, const T* keep,        \
                                      const T* x, const T* h, int Bh, const T* ssig, const T* nssmu,              \
                                      const T* M2s, const T* glvl, const T* gl_eps, const T* cm, const T* sig,    \
                                      const T* nsmu, const T* M2, const int64_t* src, const int64_t* fanin,       \
                                      int threads, T* V) {                                                        \
        ltc_infer<T>(Tn, B, N, K, I, U, v0, keep, x, h, Bh, ssig, nssmu, M2s, glvl, gl_eps, cm, sig, nsmu, M2,     \
                     src, fanin, threads, V);                                                                      \
    }

#define SENSORY_EXPORT(SUFFIX, T)                                                                                  \
    void liquid_rl_ltc_sensory_forward_##SUFFIX(int M, int N, int I, const T* x, const T* ssig, const T* nssmu,     \
                                                const T* M2s, int threads, T* a, T* g) {                           \
        ltc_sensory_forward<T>(M, N, I, x, ssig, nssmu, M2s, threads, a, g);                                       \
    }                                                                                                              \
    void liquid_rl_ltc_sensory_backward_##SUFFIX(int M, int N, int I, const T* x, const T* ssig, const T* nssmu,    \
                                                 const T* M2s, const T* ga, const T* gg, int threads, T* g_x,     \
                                                 T* g_ssig, T* g_nssmu, T* g_M2s) {                                \
        ltc_sensory_backward<T>(M, N, I, x, ssig, nssmu, M2s, ga, gg, threads, g_x, g_ssig, g_nssmu, g_M2s);       \
    }

SENSORY_EXPORT(f32, float)
SENSORY_EXPORT(f64, double)
LTC_EXPORT(f32, float)
LTC_EXPORT(f64, double)

}  // extern "C"
