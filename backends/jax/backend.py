"""The JAX backend: the engine's train step, jit-compiled into one program per mini-batch.

The program is :func:`tess.engine.train_batch` on :class:`~.kernels.JaxKernels`, whose
:meth:`~tess.engine.Kernels.scan` is ``jax.lax.scan``: the T steps, the closed-form
TESS updates (no autodiff), the weight-standardisation chain rule and the Adam/SGD
step are one XLA program.  Prediction is a second one (:func:`tess.engine.predict`).

Compilation.  Everything Python-level (the plan: block kinds, pooling, kernel sizes,
ψ, trace factors, profile, learning window; whether a record is produced; which
blocks have a dropout mask) is static: it is closed over when the function is
traced, and compiled executables are cached (per process, shared by backend
instances) per ``(config, kind, record, padded batch, sequence input, mask pattern,
dtype, device)`` — where the config key ignores the fields the program does not
depend on (seed, epochs, batch size, default lr, schedule).  Shapes are static, so a
short batch is padded: a batch of ``n ≤ config.train.batch_size`` samples runs padded
to ``batch_size`` rows with sample weights ``w`` (1 real, 0 padding), and every batch
mean divides by the real count ``n`` (an argument, not a constant) — so the padded
rows contribute exactly zero and the result equals the unpadded computation.  A
batch larger than ``batch_size`` and every prediction batch is padded to the next
power of two.  One training run therefore compiles the train step once;
:attr:`JaxBackend.compile_count` and :attr:`JaxBackend.compile_seconds` (tracing +
lowering + XLA compilation, kept separate from steady-state time) make that observable.

float64.  JAX computes in float32 unless its ``jax_enable_x64`` flag is on.  Rather
than flipping that flag for the whole process, a float64 backend enters JAX's scoped
``jax.enable_x64(True)`` context around every conversion, tracing and execution it
performs, and a float32 backend enters ``jax.enable_x64(False)``.  The setting is
thread-local and restored on exit, so float32 and float64 backends coexist in one
process in any order, and neither sees nor changes the user's global setting.  One
consequence to know: float64 arrays a float64 backend hands out stay float64, but
arithmetic the user does on them *outside* such a context follows the user's own
x64 setting.

Randomness.  None here: parameters, dropout masks and batch order come from the
spec's NumPy generator (:mod:`tess.model`); the backend never uses JAX's PRNG.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Iterator

import jax
import numpy as np

from tess.backend import TrainOutput
from tess.engine import EngineBackend, adam_corrections, params_from_flat, predict, train_batch
from tess_spec import TessConfig
from tess_spec.errors import BackendUnavailableError, ConfigError

from .kernels import JaxKernels

__all__ = ["JaxBackend", "padded_batch", "program_config", "MAX_EXECUTABLES"]

log = logging.getLogger(__name__)

_EXECUTABLES: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()
"""Compiled executables shared by every backend instance of this process, keyed by
(program config, kind, padded rows, record, sequence input, mask pattern, dtype, device);
least recently used first, at most :data:`MAX_EXECUTABLES` of them."""
MAX_EXECUTABLES = 64
"""Bound of the executable cache (a run needs 1-3; test suites drawing many configs need the bound)."""
_LOCK = threading.Lock()


def program_config(config: TessConfig) -> TessConfig:
    """``config`` with every field the compiled program does not depend on set to a
    fixed value (seed, epochs, batch size, dtype, the default learning rate, the
    schedule), so that runs differing only in those share executables."""
    return dataclasses.replace(
        config,
        train=dataclasses.replace(config.train, seed=0, epochs=0, batch_size=1, dtype="float32"),
        optimizer=dataclasses.replace(config.optimizer, lr=1.0),
        schedule=type(config.schedule)(),
    )


def padded_batch(n: int, batch_size: int) -> int:
    """Rows a batch of ``n`` samples is padded to: ``batch_size`` if ``n ≤ batch_size``,
    else the next power of two ≥ ``n`` (a bounded set of compiled shapes)."""
    if n <= batch_size:
        return batch_size
    return 1 << (n - 1).bit_length()


CPU_COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
"""XLA options of a CPU compilation: YNNPACK for single matrix products only, so the
convolutions run on XLA's Eigen kernels.  Measured on the quarter-width VGG-9 step (one
core): YNNPACK runs the weight-gradient correlations at 40-70 GFLOP/s, Eigen at ~90-130;
the whole step is ~5% faster (and the MLP keeps YNNPACK's matrix products).  A jaxlib
that does not know the option compiles with its defaults (see :func:`_compile`)."""


def _compile(lowered: Any, platform: str) -> Any:
    """``lowered.compile()`` with :data:`CPU_COMPILER_OPTIONS` on CPU; without them if this
    jaxlib rejects them (an unknown option or enum value is an ``INVALID_ARGUMENT``)."""
    if platform == "cpu" and CPU_COMPILER_OPTIONS:
        try:
            return lowered.compile(compiler_options=CPU_COMPILER_OPTIONS)
        except Exception as exc:  # noqa: BLE001 - jaxlib's error types vary across versions
            if "INVALID_ARGUMENT" not in str(exc) and "No such compile option" not in str(exc):
                raise
            log.info("jax backend: XLA rejected %s (%s); compiling with its defaults", CPU_COMPILER_OPTIONS, exc)
    return lowered.compile()


def _pad(a: np.ndarray, rows: int, dtype: Any) -> np.ndarray:
    a = np.asarray(a, dtype=dtype)
    if a.shape[0] == rows:
        return a
    out = np.zeros((rows, *a.shape[1:]), dtype=dtype)
    out[: a.shape[0]] = a
    return out


class JaxBackend(EngineBackend):
    """TESS on JAX: jit-compiled train and predict steps, ``lax.scan`` over time.

    Options: ``dtype`` (``"float32"`` | ``"float64"``; float64 runs inside JAX's
    scoped x64 mode, see the module docstring) and ``device`` (``"cpu"`` or
    ``"cuda"``/``"gpu"``, optionally ``":index"``).

    Attributes:
        compile_count: executables compiled so far (train and predict, all configs).
        compile_seconds: total seconds spent tracing, lowering and compiling them.
    """

    name = "jax"
    devices = ("cpu", "cuda", "gpu")
    kernels_class = JaxKernels

    def __init__(self, *, dtype: str = "float32", device: str | None = None, method: str = "tess") -> None:
        super().__init__(dtype=dtype, device=device, method=method)
        kind, _, index = self.device.partition(":")
        platform = "cpu" if kind == "cpu" else "gpu"
        try:
            found = jax.devices(platform)
        except RuntimeError:
            found = []
        if not found:
            raise BackendUnavailableError(
                f"device={self.device!r} was requested but JAX sees no {platform.upper()} "
                f"(jax.devices() = {jax.devices()}); install a CUDA-enabled jax "
                "(pip install 'jax[cuda12]') or use device='cpu'"
            )
        try:
            i = int(index) if index else 0
        except ValueError:
            raise ConfigError(f"device={self.device!r} is invalid: the index after ':' must be an integer") from None
        if not 0 <= i < len(found):
            raise BackendUnavailableError(
                f"device={self.device!r} was requested but JAX sees {len(found)} {platform} device(s) {found}; "
                f"use an index in [0, {len(found)})"
            )
        self.jax_device = found[i]
        self.compile_count: int = 0
        self.compile_seconds: float = 0.0

    # -- x64 scoping -------------------------------------------------------
    @contextlib.contextmanager
    def _x64(self) -> Iterator[None]:
        """Scoped JAX dtype mode of this backend (thread-local; restored on exit)."""
        with jax.enable_x64(self.dtype == "float64"):
            yield

    # -- conversions -------------------------------------------------------
    def asarray(self, a: np.ndarray) -> Any:
        """A JAX array of this backend's dtype, on its device, holding ``a``."""
        with self._x64():
            return jax.device_put(np.asarray(a, dtype=self.dtype), self.jax_device)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A NumPy copy of a JAX array (its dtype kept)."""
        with self._x64():
            return np.array(a, copy=True)

    def info(self) -> dict[str, str]:
        """Name, dtype, device, JAX version and the JAX device in use."""
        return {**super().info(), "jax": jax.__version__, "jax_device": str(self.jax_device)}

    # -- compilation cache -----------------------------------------------------
    def _compiled(self, key: tuple, build: Callable[[], Callable], args: tuple) -> Any:
        """The executable for ``key`` (shared by all instances); compiles on a miss and
        adds to this instance's :attr:`compile_count` / :attr:`compile_seconds`."""
        key = (*key, self.dtype, self._where())
        exe = _EXECUTABLES.get(key)
        if exe is not None:
            with contextlib.suppress(KeyError):  # evicted by another thread meanwhile
                _EXECUTABLES.move_to_end(key)
            return exe
        with _LOCK:
            exe = _EXECUTABLES.get(key)
            if exe is None:
                t0 = time.perf_counter()
                # lower with the inputs where they will be (this backend's device): that fixes where it runs
                placed = self._place(key[1], args)
                with jax.default_matmul_precision("highest"):
                    exe = _compile(jax.jit(build()).lower(*placed), self.jax_device.platform)
                dt = time.perf_counter() - t0
                self.compile_count += 1
                self.compile_seconds += dt
                log.info("jax backend: compiled %s (batch %s) in %.2fs", key[1], key[2], dt)
                _EXECUTABLES[key] = exe
                while len(_EXECUTABLES) > MAX_EXECUTABLES:
                    _EXECUTABLES.popitem(last=False)
        return exe

    # -- placement hooks (a data-parallel subclass, :mod:`.parallel`, shards over devices) --
    def _where(self) -> str:
        """Where the executables run, as part of their cache key: this backend's device."""
        return str(self.jax_device)

    def _place(self, kind: str, args: tuple) -> tuple:
        """The ``kind`` (``"train"``/``"predict"``) program's arguments placed as it expects them."""
        return jax.tree.map(lambda a: jax.device_put(a, self.jax_device), args)

    def _rows(self, rows: int) -> int:
        """The padded batch rows a program runs on (one device: as padded)."""
        return rows

    def _program(self, kind: str, fn: Callable) -> Callable:
        """The function a ``kind`` program compiles (one device: ``fn`` itself)."""
        return fn

    # -- public entry points (pad on the host, then one device call) ------------
    def train_batch(
        self,
        config: TessConfig,
        params: dict[str, Any],
        opt_state: dict[str, Any],
        x: np.ndarray,
        y: np.ndarray,
        *,
        masks: list[np.ndarray | None] | None = None,
        lr: float | None = None,
        record: bool = False,
    ) -> TrainOutput:
        """T steps of TESS on a batch and one optimiser step (see :meth:`tess.Backend.train_batch`).

        The batch is padded on the host to a compiled shape (see :func:`padded_batch`)."""
        x, y, masks = self.validated_batch(config, x, y, masks)
        return self._train_batch(config, params, opt_state, x, y, masks,
                                 float(config.optimizer.lr if lr is None else lr), bool(record))

    def predict(self, config: TessConfig, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        """Time-summed logits ``(B, n_classes)`` as NumPy (no learning, no dropout)."""
        return self._predict(config, params, self.validated_input(config, x))

    def _train_batch(self, config: TessConfig, params: dict[str, Any], opt_state: dict[str, Any], x: Any,
                     y: np.ndarray, masks: list[Any], lr: float, record: bool) -> TrainOutput:
        x = np.asarray(x)
        n = x.shape[0]
        rows = self._rows(padded_batch(n, config.train.batch_size))
        plan = self.plan(config)
        step = int(opt_state["step"]) + 1
        w = np.zeros(rows, dtype=self.dtype)
        w[:n] = 1
        corrections = adam_corrections(config.optimizer, step)
        # Host arrays go to the executable as NumPy: it transfers them to its device itself.
        args = (
            params,
            {k: v for k, v in opt_state.items() if k != "step"},
            None if corrections is None else np.asarray(corrections, self.dtype),
            _pad(x, rows, self.dtype),
            _pad(y, rows, np.int32),
            w,
            np.asarray(n, self.dtype),
            [None if m is None else _pad(m, rows, self.dtype) for m in masks],
            np.asarray(lr, self.dtype),
            self.lsg(config),
        )
        K = self.kernels

        def build() -> Callable:
            def fn(params, moments, corrections, x, y, w, n, masks, lr, mats):  # noqa: ANN001, ANN202
                return train_batch(K, plan, params_from_flat(plan, params),
                                   {k: params_from_flat(plan, v) for k, v in moments.items()}, x, y, masks,
                                   lr=lr, corrections=corrections, lsg=mats, record=record, weights=w, n=n,
                                   reduce=self.reduce)
            return self._program("train", fn)

        sequence = x.ndim == len(config.network.input_shape) + 2
        with self._x64():
            key = (program_config(config), "train", rows, record, sequence, tuple(m is not None for m in masks))
            res = self._compiled(key, build, args)(*args)
            return self.train_output(plan, res, step, n, record)

    def _predict(self, config: TessConfig, params: dict[str, Any], x: Any) -> Any:
        x = np.asarray(x)
        n = x.shape[0]
        rows = self._rows(1 << max(n - 1, 0).bit_length())
        plan = self.plan(config)
        K = self.kernels
        args = (params, _pad(x, rows, self.dtype))
        sequence = x.ndim == len(config.network.input_shape) + 2

        def build() -> Callable:
            return self._program("predict", lambda params, x: predict(K, plan, params_from_flat(plan, params), x))

        with self._x64():
            key = (program_config(config), "predict", rows, False, sequence, ())
            return np.asarray(self._compiled(key, build, args)(*args))[:n].copy()
