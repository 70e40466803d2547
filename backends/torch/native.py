"""Hand-written C++ kernels of the torch backend's fused CPU step (``fuse="cpp"``).

One pass over a block's neurons does the LIF update, the spike, the dropout mask,
ψ, h̃[t-1] and the postsynaptic trace (u, o, h updated in place); one pass over its
inputs the presynaptic trace; one pass the learning-signal products
``m = mask ⊙ g``, ``m ⊙ ψ``, ``m ⊙ h̃``; max pooling and its first-max VJP read the
spikes once and write every output element once (no zero fill, no scatter, no
indices kept).  Each arithmetic expression is the engine's default composition
(:class:`tess.engine.Kernels`), operation for operation, compiled with
``-ffp-contract=off`` so no multiply-add is contracted: float64 results equal the
unfused ones bit for bit.

The source is compiled once per machine with the system C++ compiler (``$CXX``,
else ``c++``/``g++``/``clang++``) into a shared library under
:func:`cache_dir`, named by a hash of the source, the flags and the compiler, and
loaded with :mod:`ctypes` (no torch headers, no ninja: a build takes a few
seconds).  :func:`load` raises :class:`~tess.errors.BackendUnavailableError` when
no compiler is found or the build fails; the backend's ``fuse="auto"`` then falls
back to the eager torch step.  The kernels are single-threaded loops over CPU
tensors (the convolutions around them keep torch's threads).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch

from tess_spec.errors import BackendUnavailableError

__all__ = ["FLAGS", "NativeLibrary", "cache_dir", "compiler", "load", "available"]

log = logging.getLogger(__name__)

# The C++ source of the kernels, compiled by load() (not in __all__: the API reference would print it whole).
SOURCE = r"""
// tess: fused elementwise kernels of the torch backend (see backends/torch/native.py).
#include <cstdint>
#include <cmath>
typedef int64_t i64;

enum { SOFT = 1, FAST = 2, TRACES = 4, NONCAUSAL = 8, PAPER = 16, MASK = 32, HTILDE = 2 };

// LIF + spike + dropout + psi + h~ + h, over n neurons (u, o, h in place).
template <typename T, bool soft, bool fast, bool traces, bool noncausal, bool paper, bool mask>
static void step_impl(i64 n, T* __restrict u, T* __restrict o, const T* __restrict cur, T* __restrict h,
                      const T* __restrict mk, T* __restrict dropped, T* __restrict psi, T* __restrict ht,
                      T leak, T theta, T amount, T lpost) {
    const T one = 1, zero = 0, c03 = (T)0.3, c100 = (T)100;
    for (i64 i = 0; i < n; ++i) {
        T un = soft ? leak * (u[i] - amount * o[i]) + cur[i] : leak * u[i] * (one - o[i]) + cur[i];
        T on = un > theta ? one : zero;
        u[i] = un;
        o[i] = on;
        if (mask) dropped[i] = on * mk[i];
        if (traces) {
            T a = std::fabs(un - theta);
            T p;
            if (fast) { T d = c100 * a + one; p = one / (d * d); }
            else { T r = one - a; p = c03 * (r > zero ? r : zero); }
            psi[i] = p;
            T hp = h[i];
            if (noncausal) ht[i] = paper ? lpost * hp : hp;
            h[i] = lpost * hp + p;
        }
    }
}

template <typename T, bool soft, bool fast, bool traces, bool noncausal, bool paper>
static void step_m(int f, i64 n, T* u, T* o, const T* cur, T* h, const T* mk, T* dr, T* ps, T* ht,
                   T a, T b, T c, T d) {
    if (f & MASK) step_impl<T, soft, fast, traces, noncausal, paper, true>(n, u, o, cur, h, mk, dr, ps, ht, a, b, c, d);
    else step_impl<T, soft, fast, traces, noncausal, paper, false>(n, u, o, cur, h, mk, dr, ps, ht, a, b, c, d);
}
template <typename T, bool soft, bool fast>
static void step_t(int f, i64 n, T* u, T* o, const T* cur, T* h, const T* mk, T* dr, T* ps, T* ht,
                   T a, T b, T c, T d) {
    if (!(f & TRACES)) step_m<T, soft, fast, false, false, false>(f, n, u, o, cur, h, mk, dr, ps, ht, a, b, c, d);
    else if (!(f & NONCAUSAL)) step_m<T, soft, fast, true, false, false>(f, n, u, o, cur, h, mk, dr, ps, ht, a, b, c, d);
    else if (f & PAPER) step_m<T, soft, fast, true, true, true>(f, n, u, o, cur, h, mk, dr, ps, ht, a, b, c, d);
    else step_m<T, soft, fast, true, true, false>(f, n, u, o, cur, h, mk, dr, ps, ht, a, b, c, d);
}
template <typename T>
static void step(int f, i64 n, T* u, T* o, const T* cur, T* h, const T* mk, T* dr, T* ps, T* ht,
                 double leak, double theta, double amount, double lpost) {
    T a = (T)leak, b = (T)theta, c = (T)amount, d = (T)lpost;
    if (f & SOFT) {
        if (f & FAST) step_t<T, true, true>(f, n, u, o, cur, h, mk, dr, ps, ht, a, b, c, d);
        else step_t<T, true, false>(f, n, u, o, cur, h, mk, dr, ps, ht, a, b, c, d);
    } else {
        if (f & FAST) step_t<T, false, true>(f, n, u, o, cur, h, mk, dr, ps, ht, a, b, c, d);
        else step_t<T, false, false>(f, n, u, o, cur, h, mk, dr, ps, ht, a, b, c, d);
    }
}

// q = lambda_pre * q + x, over rows x len (row strides in elements; rows contiguous).
template <typename T>
static void trace(i64 rows, i64 len, T* q, i64 qs, const T* x, i64 xs, double lpre) {
    const T l = (T)lpre;
    for (i64 r = 0; r < rows; ++r) {
        T* __restrict qr = q + r * qs;
        const T* __restrict xr = x + r * xs;
        for (i64 i = 0; i < len; ++i) qr[i] = l * qr[i] + xr[i];
    }
}

// m = g * mask, m * psi, m * h~ (m written only with a mask; h~ optional).
template <typename T, bool mask, bool ht>
static void mod_impl(i64 n, const T* __restrict g, const T* __restrict mk, const T* __restrict ps,
                     const T* __restrict htl, T* __restrict m, T* __restrict mps, T* __restrict mh) {
    for (i64 i = 0; i < n; ++i) {
        T mi = mask ? g[i] * mk[i] : g[i];
        if (mask) m[i] = mi;
        mps[i] = mi * ps[i];
        if (ht) mh[i] = mi * htl[i];
    }
}
template <typename T>
static void modulate(int f, i64 n, const T* g, const T* mk, const T* ps, const T* htl, T* m, T* mps, T* mh) {
    if (f & MASK) { if (f & HTILDE) mod_impl<T, true, true>(n, g, mk, ps, htl, m, mps, mh);
                    else mod_impl<T, true, false>(n, g, mk, ps, htl, m, mps, mh); }
    else { if (f & HTILDE) mod_impl<T, false, true>(n, g, mk, ps, htl, m, mps, mh);
           else mod_impl<T, false, false>(n, g, mk, ps, htl, m, mps, mh); }
}

// Max pooling, window = stride = p (floor), of x (B, C, H, W) with element strides xs[4],
// into out (B, C, H/p, W/p) with strides os[4].  Channels-last (xs[1] == os[1] == 1): the
// inner loops run over contiguous channels; otherwise over a plane's rows.
template <typename T>
static void maxpool(const i64* d, i64 p, const T* x, const i64* xs, T* out, const i64* os) {
    const i64 B = d[0], C = d[1], OH = d[2] / p, OW = d[3] / p;
    if (xs[1] == 1 && os[1] == 1) {
        for (i64 b = 0; b < B; ++b)
            for (i64 i = 0; i < OH; ++i)
                for (i64 j = 0; j < OW; ++j) {
                    const T* xw = x + b * xs[0] + (i * p) * xs[2] + (j * p) * xs[3];
                    T* __restrict ow = out + b * os[0] + i * os[2] + j * os[3];
                    for (i64 c = 0; c < C; ++c) ow[c] = xw[c];
                    for (i64 a = 0; a < p; ++a)
                        for (i64 e = (a == 0 ? 1 : 0); e < p; ++e) {
                            const T* __restrict xa = xw + a * xs[2] + e * xs[3];
                            for (i64 c = 0; c < C; ++c) ow[c] = xa[c] > ow[c] ? xa[c] : ow[c];
                        }
                }
        return;
    }
    for (i64 b = 0; b < B; ++b)
        for (i64 c = 0; c < C; ++c)
            for (i64 i = 0; i < OH; ++i) {
                const T* xr = x + b * xs[0] + c * xs[1] + (i * p) * xs[2];
                T* orow = out + b * os[0] + c * os[1] + i * os[2];
                for (i64 j = 0; j < OW; ++j) {
                    const T* xw = xr + (j * p) * xs[3];
                    T best = xw[0];
                    for (i64 a = 0; a < p; ++a)
                        for (i64 e = 0; e < p; ++e) {
                            T v = xw[a * xs[2] + e * xs[3]];
                            best = v > best ? v : best;
                        }
                    orow[j * os[3]] = best;
                }
            }
}

// Its VJP: each window's gradient g[b, c, i, j] (strides gs[4]) to the FIRST maximal element
// (row-major) of the window of x, zero elsewhere and in the rows/columns the floor cropped;
// out has x's shape and strides os[4].  Every element of out is written exactly once.
template <typename T>
static void maxpool_vjp(const i64* d, i64 p, const T* x, const i64* xs, const T* g, const i64* gs,
                        T* out, const i64* os) {
    const i64 B = d[0], C = d[1], H = d[2], W = d[3], OH = H / p, OW = W / p;
    const T zero = 0;
    if (xs[1] == 1 && os[1] == 1) {
        T* best = new T[C];
        int32_t* win = new int32_t[C];
        for (i64 b = 0; b < B; ++b)
            for (i64 i = 0; i < OH; ++i)
                for (i64 j = 0; j < OW; ++j) {
                    const T* xw = x + b * xs[0] + (i * p) * xs[2] + (j * p) * xs[3];
                    T* ow = out + b * os[0] + (i * p) * os[2] + (j * p) * os[3];
                    const T* gw = g + b * gs[0] + i * gs[2] + j * gs[3];
                    for (i64 c = 0; c < C; ++c) { best[c] = xw[c]; win[c] = 0; }
                    for (i64 a = 0; a < p; ++a)
                        for (i64 e = (a == 0 ? 1 : 0); e < p; ++e) {
                            const T* __restrict xa = xw + a * xs[2] + e * xs[3];
                            const int32_t k = (int32_t)(a * p + e);
                            for (i64 c = 0; c < C; ++c) {
                                const bool up = xa[c] > best[c];
                                best[c] = up ? xa[c] : best[c];
                                win[c] = up ? k : win[c];
                            }
                        }
                    for (i64 a = 0; a < p; ++a)
                        for (i64 e = 0; e < p; ++e) {
                            T* __restrict oa = ow + a * os[2] + e * os[3];
                            const int32_t k = (int32_t)(a * p + e);
                            if (gs[1] == 1)
                                for (i64 c = 0; c < C; ++c) oa[c] = win[c] == k ? gw[c] : zero;
                            else
                                for (i64 c = 0; c < C; ++c) oa[c] = win[c] == k ? gw[c * gs[1]] : zero;
                        }
                }
        delete[] best;
        delete[] win;
    } else {
        for (i64 b = 0; b < B; ++b)
            for (i64 c = 0; c < C; ++c)
                for (i64 i = 0; i < OH; ++i)
                    for (i64 j = 0; j < OW; ++j) {
                        const T* xw = x + b * xs[0] + c * xs[1] + (i * p) * xs[2] + (j * p) * xs[3];
                        T* ow = out + b * os[0] + c * os[1] + (i * p) * os[2] + (j * p) * os[3];
                        T bv = xw[0];
                        i64 k = 0;
                        for (i64 a = 0; a < p; ++a)
                            for (i64 e = 0; e < p; ++e) {
                                T v = xw[a * xs[2] + e * xs[3]];
                                if (v > bv) { bv = v; k = a * p + e; }
                            }
                        const T gv = g[b * gs[0] + c * gs[1] + i * gs[2] + j * gs[3]];
                        for (i64 a = 0; a < p; ++a)
                            for (i64 e = 0; e < p; ++e)
                                ow[a * os[2] + e * os[3]] = (a * p + e == k) ? gv : zero;
                    }
    }
    if (OH * p < H || OW * p < W)  // the cropped margin
        for (i64 b = 0; b < B; ++b)
            for (i64 c = 0; c < C; ++c)
                for (i64 r = 0; r < H; ++r)
                    for (i64 s = (r < OH * p ? OW * p : 0); s < W; ++s)
                        out[b * os[0] + c * os[1] + r * os[2] + s * os[3]] = zero;
}

extern "C" {
void tess_step_f32(int f, i64 n, float* u, float* o, const float* cur, float* h, const float* mk, float* dr,
                   float* ps, float* ht, double leak, double theta, double amount, double lpost) {
    step<float>(f, n, u, o, cur, h, mk, dr, ps, ht, leak, theta, amount, lpost);
}
void tess_step_f64(int f, i64 n, double* u, double* o, const double* cur, double* h, const double* mk, double* dr,
                   double* ps, double* ht, double leak, double theta, double amount, double lpost) {
    step<double>(f, n, u, o, cur, h, mk, dr, ps, ht, leak, theta, amount, lpost);
}
void tess_trace_f32(i64 rows, i64 len, float* q, i64 qs, const float* x, i64 xs, double l) {
    trace<float>(rows, len, q, qs, x, xs, l);
}
void tess_trace_f64(i64 rows, i64 len, double* q, i64 qs, const double* x, i64 xs, double l) {
    trace<double>(rows, len, q, qs, x, xs, l);
}
void tess_modulate_f32(int f, i64 n, const float* g, const float* mk, const float* ps, const float* htl, float* m,
                       float* mps, float* mh) { modulate<float>(f, n, g, mk, ps, htl, m, mps, mh); }
void tess_modulate_f64(int f, i64 n, const double* g, const double* mk, const double* ps, const double* htl, double* m,
                       double* mps, double* mh) { modulate<double>(f, n, g, mk, ps, htl, m, mps, mh); }
void tess_maxpool_f32(const i64* d, i64 p, const float* x, const i64* xs, float* out, const i64* os) {
    maxpool<float>(d, p, x, xs, out, os);
}
void tess_maxpool_f64(const i64* d, i64 p, const double* x, const i64* xs, double* out, const i64* os) {
    maxpool<double>(d, p, x, xs, out, os);
}
void tess_maxpool_vjp_f32(const i64* d, i64 p, const float* x, const i64* xs, const float* g, const i64* gs, float* out,
                          const i64* os) { maxpool_vjp<float>(d, p, x, xs, g, gs, out, os); }
void tess_maxpool_vjp_f64(const i64* d, i64 p, const double* x, const i64* xs, const double* g, const i64* gs,
                          double* out, const i64* os) { maxpool_vjp<double>(d, p, x, xs, g, gs, out, os); }
int tess_abi_version(void) { return 1; }
}
"""

FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-std=c++17", "-shared", "-fPIC")
"""Compiler flags: optimised for this CPU, no contracted multiply-adds (bit-exact with the eager step)."""

# flag bits of tess_step_* / tess_modulate_* (the C++ enum)
SOFT, FAST, TRACES, NONCAUSAL, PAPER, MASK, HTILDE = 1, 2, 4, 8, 16, 32, 2

_LOCK = threading.Lock()
_LIB: "NativeLibrary | None" = None
_ERROR: str | None = None


def cache_dir() -> Path:
    """Where built libraries live: ``$TESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/tess``, else ``~/.cache/tess``
    (a ``torch-native`` folder inside)."""
    root = os.environ.get("TESS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tess")
    return Path(root) / "torch-native"


def compiler() -> str | None:
    """The C++ compiler to use: ``$CXX``, else the first of ``c++``, ``g++``, ``clang++`` on the PATH."""
    env = os.environ.get("CXX")
    if env:
        return shutil.which(env) or (env if os.path.isfile(env) else None)
    for name in ("c++", "g++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _build(cxx: str) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    key = hashlib.sha256("\0".join([SOURCE, " ".join(FLAGS), cxx, version, _cpu_id()]).encode()).hexdigest()[:20]
    folder = cache_dir() / key
    lib = folder / "libtess_torch_native.so"
    if lib.is_file():
        return lib
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "kernels.cpp"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".build-", suffix=".so")
    os.close(fd)
    try:
        tmp_src = src.with_suffix(f".{os.getpid()}.cpp")
        tmp_src.write_text(SOURCE)
        proc = subprocess.run([cxx, *FLAGS, str(tmp_src), "-o", tmp], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"{cxx} exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        os.replace(tmp_src, src)
        os.replace(tmp, lib)  # atomic: a concurrent build of the same key writes the same bytes
    finally:
        for leftover in (tmp, str(tmp_src)):
            if os.path.exists(leftover):
                os.unlink(leftover)
    log.info("built the torch backend's native kernels: %s", lib)
    return lib


_P = ctypes.c_void_p
_I = ctypes.c_int64
_D = ctypes.c_double
_C = ctypes.c_int


class NativeLibrary:
    """The loaded kernels, with typed :mod:`ctypes` entry points per dtype (``"f32"``/``"f64"``).

    Args:
        path: the shared library built by :func:`load`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lib = ctypes.CDLL(str(path))
        if self._lib.tess_abi_version() != 1:
            raise RuntimeError(f"{path} has an unexpected ABI version")
        self.step: dict[torch.dtype, Any] = {}
        self.trace: dict[torch.dtype, Any] = {}
        self.modulate: dict[torch.dtype, Any] = {}
        self.maxpool: dict[torch.dtype, Any] = {}
        self.maxpool_vjp: dict[torch.dtype, Any] = {}
        for dt, sfx in ((torch.float32, "f32"), (torch.float64, "f64")):
            fn = getattr(self._lib, f"tess_step_{sfx}")
            fn.argtypes, fn.restype = [_C, _I, _P, _P, _P, _P, _P, _P, _P, _P, _D, _D, _D, _D], None
            self.step[dt] = fn
            fn = getattr(self._lib, f"tess_trace_{sfx}")
            fn.argtypes, fn.restype = [_I, _I, _P, _I, _P, _I, _D], None
            self.trace[dt] = fn
            fn = getattr(self._lib, f"tess_modulate_{sfx}")
            fn.argtypes, fn.restype = [_C, _I, _P, _P, _P, _P, _P, _P, _P], None
            self.modulate[dt] = fn
            fn = getattr(self._lib, f"tess_maxpool_{sfx}")
            fn.argtypes, fn.restype = [_P, _I, _P, _P, _P, _P], None
            self.maxpool[dt] = fn
            fn = getattr(self._lib, f"tess_maxpool_vjp_{sfx}")
            fn.argtypes, fn.restype = [_P, _I, _P, _P, _P, _P, _P, _P], None
            self.maxpool_vjp[dt] = fn


def load() -> NativeLibrary:
    """The native kernels, built on first use (once per machine; cached by :func:`cache_dir`).

    Raises :class:`~tess.errors.BackendUnavailableError` when no C++ compiler is found or
    the build fails (the message says which, and what to do instead)."""
    global _LIB, _ERROR
    with _LOCK:
        if _LIB is not None:
            return _LIB
        if _ERROR is None:
            cxx = compiler()
            if cxx is None:
                _ERROR = "no C++ compiler was found ($CXX, c++, g++ or clang++ on the PATH)"
            else:
                try:
                    _LIB = NativeLibrary(_build(cxx))
                    return _LIB
                except Exception as exc:  # a failed build is reported, not raised mid-training
                    _ERROR = f"building them with {cxx} failed ({type(exc).__name__}: {exc})"
        raise BackendUnavailableError(
            f"the torch backend's native kernels (fuse='cpp') are unavailable: {_ERROR}; install a C++ "
            "compiler (e.g. apt-get install g++), or use fuse='eager' (no compiler needed) or fuse='none'")


def available() -> bool:
    """Whether :func:`load` succeeds here (builds the library if needed)."""
    try:
        load()
    except BackendUnavailableError:
        return False
    return True
