"""The CPU LTC kernel (``csrc/ltc_cpu.cpp``): built with the system C++ compiler at first
use, cached, and called through ctypes.

The library is a plain C ABI over raw pointers (no Python or torch headers), so it builds
in about a second. It is cached under ``$LIQUID_RL_CACHE`` (default
``~/.cache/liquid_rl``) by a hash of the source, the flags, the compiler and the machine,
and written atomically, so parallel processes never load a half-written file.
When no compiler is found or the build fails, :func:`load` returns None once with a
warning and the LTC runs on its PyTorch kernel instead (same numbers, slower).
Set ``LIQUID_RL_NATIVE=0`` to never build or use it.

``LIQUID_RL_NATIVE_ISA`` picks the instruction set the library is built for (see
:data:`ISA_FLAGS`): "native" (default, this CPU), "avx512" (x86-64-v4), "avx2"
(x86-64-v3: AVX2 and FMA, what most laptops and AMD Zen 2/3 have) or "generic" (the
compiler's baseline), so that one machine can build and test every code path.

Large batches split into chunks that run in parallel on up to ``torch.get_num_threads()``
threads. The library is built with OpenMP, and torch (imported first) has already loaded
its own ``libgomp.so.1``, so the chunks run on torch's thread pool; a compiler without
OpenMP gets a build that starts its own threads instead. (A torch built on another OpenMP
runtime, e.g. Intel's, leaves the kernel a pool of its own beside torch's; if the two
oversubscribe the cores, ``torch.set_num_threads(1)`` keeps the kernel on one thread.)
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

_SOURCE = Path(__file__).parent / "csrc" / "ltc_cpu.cpp"
_FLAGS = ["-O3", "-fno-math-errno", "-pthread", "-shared", "-fPIC", "-std=c++17"]
_ARM = platform.machine().lower() in ("arm64", "aarch64")
# Apple's clang takes -mcpu=native, not -march=native; aarch64 always has 128-bit NEON.
ISA_FLAGS: dict[str, list[str]] = {
    "native": ["-mcpu=native"] if _ARM else ["-march=native"],
    "avx512": ["-march=x86-64-v4", "-mtune=native"],
    "avx2": ["-march=x86-64-v3", "-mtune=native"],
    "generic": [],
}
# /proc/cpuinfo flags an ISA needs (x86-64-v3 / -v4 as defined by the psABI, the main ones).
_ISA_CPU_FLAGS = {"avx2": {"avx2", "fma", "bmi2", "f16c"}, "avx512": {"avx512f", "avx512bw", "avx512dq", "avx512vl"}}
_PARALLEL_FLAGS = (["-fopenmp"], ["-fopenmp-simd"])   # tried in this order
_ABI_VERSION = 6
_lib: ctypes.CDLL | None = None
_lib_path: Path | None = None
_tried = False


def _cache_dir() -> Path:
    return Path(os.environ.get("LIQUID_RL_CACHE") or Path.home() / ".cache" / "liquid_rl")


def isa() -> str:
    """The instruction set to build for: ``$LIQUID_RL_NATIVE_ISA`` (default "native")."""
    name = os.environ.get("LIQUID_RL_NATIVE_ISA") or "native"
    if name not in ISA_FLAGS:
        raise ValueError(f"LIQUID_RL_NATIVE_ISA={name!r} is not one of {sorted(ISA_FLAGS)}")
    return name


def cpu_runs(name: str) -> bool:
    """Whether this CPU executes code built for ISA ``name`` ("native" and "generic" always;
    "avx2"/"avx512" on x86-64 CPUs whose /proc/cpuinfo lists the needed flags)."""
    if name in ("native", "generic"):
        return True
    if _ARM or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())
    return _ISA_CPU_FLAGS[name] <= flags


def build_flags() -> list[str]:
    """The compiler flags of the build for :func:`isa` (before the OpenMP flag)."""
    return [*_FLAGS, *ISA_FLAGS[isa()]]


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def _build(cxx: str, flags: list[str]) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    sources = [_SOURCE.read_text(), *(p.read_text() for p in sorted(_SOURCE.parent.glob("*.h")))]
    key = hashlib.sha256("\0".join([*sources, " ".join(flags), version, platform.machine(),
                                    platform.node() if any("native" in f for f in flags) else ""]).encode()
                     ).hexdigest()[:16]
    target = _cache_dir() / f"ltc_cpu_{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run([cxx, *flags, str(_SOURCE), "-o", tmp], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "compiler failed")
        os.replace(tmp, target)   # atomic: concurrent builds each write their own temp file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _declare(lib: ctypes.CDLL) -> None:
    i, p = ctypes.c_int, ctypes.c_void_p
    for suffix in ("f32", "f64"):
        getattr(lib, f"liquid_rl_ltc_forward_{suffix}").argtypes = [i] * 5 + [p] * 5 + [i] + [p] * 6 + [i] + [p] * 3
        getattr(lib, f"liquid_rl_ltc_forward_{suffix}").restype = None
        getattr(lib, f"liquid_rl_ltc_backward_{suffix}").argtypes = [i] * 5 + [p] * 3 + [i] + [p] * 9 + [i] + [p] * 7
        getattr(lib, f"liquid_rl_ltc_backward_{suffix}").restype = None
        getattr(lib, f"liquid_rl_ltc_infer_{suffix}").argtypes = [i] * 6 + [p] * 4 + [i] + [p] * 11 + [i] + [p]
        getattr(lib, f"liquid_rl_ltc_infer_{suffix}").restype = None
        getattr(lib, f"liquid_rl_ltc_sensory_forward_{suffix}").argtypes = [i] * 3 + [p] * 4 + [i] + [p] * 2
        getattr(lib, f"liquid_rl_ltc_sensory_forward_{suffix}").restype = None
        getattr(lib, f"liquid_rl_ltc_sensory_backward_{suffix}").argtypes = [i] * 3 + [p] * 6 + [i] + [p] * 4
        getattr(lib, f"liquid_rl_ltc_sensory_backward_{suffix}").restype = None


def load() -> ctypes.CDLL | None:
    """The compiled kernel library, or None when it cannot be built here (warned once)."""
    global _lib, _lib_path, _tried
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("LIQUID_RL_NATIVE", "1") == "0":
        return None
    cxx = _compiler()
    if cxx is None:
        warnings.warn("liquid_rl: no C++ compiler found (set CXX or install g++); the LTC runs on its slower "
                      "PyTorch kernel", RuntimeWarning, stacklevel=2)
        return None
    error: Exception | None = None
    for parallel in _PARALLEL_FLAGS:
        try:
            path = _build(cxx, [*build_flags(), *parallel])
            lib = ctypes.CDLL(str(path))
            lib.liquid_rl_ltc_abi_version.restype = ctypes.c_int
            if lib.liquid_rl_ltc_abi_version() != _ABI_VERSION:
                raise RuntimeError("stale kernel library")
            _declare(lib)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            error = error or exc
            continue
        _lib, _lib_path = lib, path
        return _lib
    warnings.warn(f"liquid_rl: building the CPU LTC kernel failed ({error}); the LTC runs on its slower "
                  "PyTorch kernel", RuntimeWarning, stacklevel=2)
    return None


def library_path() -> Path | None:
    """The built library's file (decisions about it are cached beside it), or None."""
    load()
    return _lib_path


def available() -> bool:
    """Whether the CPU LTC kernel is built (or can be built now)."""
    return load() is not None


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _suffix(dtype: torch.dtype) -> str:
    if dtype == torch.float32:
        return "f32"
    if dtype == torch.float64:
        return "f64"
    raise ValueError(f"The CPU LTC kernel runs float32 or float64, not {dtype}; use kernel='eager'")


def threads() -> int:
    """How many threads a kernel call may use: torch's intra-op thread count
    (``torch.set_num_threads``). Batches split into chunks of at least 16 samples, so small
    batches (rollouts) run on the calling thread alone."""
    return torch.get_num_threads()


def ltc_forward(v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor, sig: Tensor,
                nsmu: Tensor, M2: Tensor, src: Tensor, fanin: Tensor | None, unfolds: int,
                save: bool, n_threads: int = 1) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Run the sequence. v0 (B, N); keep (T, B) or None; num0, den0 (T, B, N); h (T, 1|B);
    cm (N,); sig, nsmu (N, K); M2 (N, 2, K); src (N, K) int64; fanin (N,) int64 the number
    of real synapses per neuron (listed first in src; None = all K); all contiguous CPU
    tensors of one float dtype. Returns V (T, B, N) and, with ``save``, states and dens
    (T*U*B*N values each, in the kernel's layout) for :func:`ltc_backward`, which must get
    the same ``n_threads`` (the layout is per chunk of the batch)."""
    lib = load()
    assert lib is not None
    T, B, N = num0.shape
    K = sig.shape[1]
    V = num0.new_empty((T, B, N))
    states = num0.new_empty((T, unfolds, B, N)) if save else None
    dens = num0.new_empty((T, unfolds, B, N)) if save else None
    getattr(lib, f"liquid_rl_ltc_forward_{_suffix(num0.dtype)}")(
        T, B, N, K, unfolds, _ptr(v0), _ptr(keep), _ptr(num0), _ptr(den0), _ptr(h), h.shape[1], _ptr(cm),
        _ptr(sig), _ptr(nsmu), _ptr(M2), _ptr(src), _ptr(fanin), n_threads, _ptr(V), _ptr(states), _ptr(dens))
    return V, states, dens


def ltc_backward(grad_out: Tensor, keep: Tensor | None, h: Tensor, cm: Tensor, sig: Tensor, nsmu: Tensor,
                 M2: Tensor, src: Tensor, fanin: Tensor | None, V: Tensor, states: Tensor,
                 dens: Tensor, n_threads: int = 1) -> tuple[Tensor, ...]:
    """Gradients for :func:`ltc_forward` (called with the same ``n_threads``): (g_v0 (B, N),
    g_num0, g_den0 (T, B, N), g_cm (N,), g_sig, g_nsmu (N, K), g_M2 (N, 2, K))."""
    lib = load()
    assert lib is not None
    T, B, N = V.shape
    U = states.shape[1]
    K = sig.shape[1]
    g_v0 = V.new_empty((B, N))
    g_num0 = V.new_empty((T, B, N))
    g_den0 = V.new_empty((T, B, N))
    g_cm, g_sig, g_nsmu, g_M2 = (torch.zeros_like(x) for x in (cm, sig, nsmu, M2))
    getattr(lib, f"liquid_rl_ltc_backward_{_suffix(V.dtype)}")(
        T, B, N, K, U, _ptr(grad_out), _ptr(keep), _ptr(h), h.shape[1], _ptr(cm), _ptr(sig), _ptr(nsmu), _ptr(M2),
        _ptr(src), _ptr(fanin), _ptr(V), _ptr(states), _ptr(dens), n_threads, _ptr(g_v0), _ptr(g_num0), _ptr(g_den0), _ptr(g_cm),
        _ptr(g_sig), _ptr(g_nsmu), _ptr(g_M2))
    return g_v0, g_num0, g_den0, g_cm, g_sig, g_nsmu, g_M2


def ltc_infer(v0: Tensor, keep: Tensor | None, x: Tensor, h: Tensor, ssig: Tensor, nssmu: Tensor, M2s: Tensor,
              glvl: Tensor, gl_eps: Tensor, cm: Tensor, sig: Tensor, nsmu: Tensor, M2: Tensor, src: Tensor,
              fanin: Tensor | None, unfolds: int, n_threads: int = 1) -> Tensor:
    """Run the sequence without saving anything for a backward, the sensory synapses included.
    x (T, B, I) mapped inputs; ssig, nssmu (N, I); M2s (N, 2, I); glvl, gl_eps (N,); the
    rest as :func:`ltc_forward`. Returns V (T, B, N)."""
    lib = load()
    assert lib is not None
    T, B, I = x.shape
    N, K = sig.shape
    V = x.new_empty((T, B, N))
    getattr(lib, f"liquid_rl_ltc_infer_{_suffix(x.dtype)}")(
        T, B, N, K, I, unfolds, _ptr(v0), _ptr(keep), _ptr(x), _ptr(h), h.shape[1], _ptr(ssig), _ptr(nssmu),
        _ptr(M2s), _ptr(glvl), _ptr(gl_eps), _ptr(cm), _ptr(sig), _ptr(nsmu), _ptr(M2), _ptr(src), _ptr(fanin),
        n_threads, _ptr(V))
    return V


class SensorySynapses(torch.autograd.Function):
    """``apply(x, ssig, nssmu, M2s) -> (a, g)``: the conductance sums of the sensory synapses.

    x (M, I) mapped inputs (all steps and samples as rows); ssig = sigma, nssmu = -sigma*mu
    (N, I); M2s (N, 2, I) = [w*erev; w] with the sparsity mask applied. Returns a, g (M, N):
    ``a[m, j] = sum_i M2s[j, 0, i] * sigmoid(ssig[j, i] * x[m, i] + nssmu[j, i])``, g with
    M2s[j, 1]. One kernel call each way instead of ~10 autograd nodes on (M, I, N) tensors.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, ssig: Tensor, nssmu: Tensor, M2s: Tensor) -> tuple[Tensor, Tensor]:
        lib = load()
        assert lib is not None
        x, ssig, nssmu, M2s = (t.contiguous() for t in (x, ssig, nssmu, M2s))
        M, I = x.shape
        N = ssig.shape[0]
        a = x.new_empty((M, N))
        g = x.new_empty((M, N))
        getattr(lib, f"liquid_rl_ltc_sensory_forward_{_suffix(x.dtype)}")(
            M, N, I, _ptr(x), _ptr(ssig), _ptr(nssmu), _ptr(M2s), threads(), _ptr(a), _ptr(g))
        ctx.save_for_backward(x, ssig, nssmu, M2s)
        return a, g

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, ga: Tensor | None, gg: Tensor | None) -> tuple[Tensor, ...]:
        lib = load()
        assert lib is not None
        x, ssig, nssmu, M2s = ctx.saved_tensors
        M, I = x.shape
        N = ssig.shape[0]
        ga = x.new_zeros((M, N)) if ga is None else ga.contiguous()
        gg = x.new_zeros((M, N)) if gg is None else gg.contiguous()
        g_x = torch.empty_like(x)
        g_ssig, g_nssmu, g_M2s = (torch.zeros_like(t) for t in (ssig, nssmu, M2s))
        getattr(lib, f"liquid_rl_ltc_sensory_backward_{_suffix(x.dtype)}")(
            M, N, I, _ptr(x), _ptr(ssig), _ptr(nssmu), _ptr(M2s), _ptr(ga), _ptr(gg), threads(), _ptr(g_x), _ptr(g_ssig),
            _ptr(g_nssmu), _ptr(g_M2s))
        return g_x, g_ssig, g_nssmu, g_M2s
