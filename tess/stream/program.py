"""The per-step functions a :class:`~tess.stream.Learner` runs, on the engine's public
functions: eager on NumPy, PyTorch and CuPy; compiled once per variant with ``jax.jit``
on JAX.

Three functions, each a pure function of arrays:

* ``step(signal, readout)``: one :func:`tess.engine.time_step` on a caller-built
  :class:`~tess.engine.Context` → ``(state, sums, summed, logits_t)``.  The logits of the
  step are the time-summed logits of a carry that starts at zero (``0 + z = z``
  exactly); the segment's running sum ``summed + logits_t`` is formed in the same order
  as :func:`tess.engine.train_batch` forms it;
* ``apply``: :func:`tess.engine.gradients` and the kernels' optimiser step;
* ``w_hat``: Ŵ of every block (weight standardisation), recomputed after each update.

On JAX the executables are shared by every learner of this process with the same
program (the config but its seed, epochs, batch size and learning rate; the dtype,
device and number of streams; the step's variant), at most :data:`MAX_EXECUTABLES`.

On JAX every function is lowered and compiled ahead of time on its first call (one
executable per variant: learning or not, with or without dropout masks), with the
inputs placed on the backend's device and ``jax.default_matmul_precision("highest")``
as the JAX backend compiles its train step; :attr:`Program.compile_seconds` keeps the
time spent there apart from the steps themselves.  Every call runs inside
:meth:`Program.scope`: the backend's scoped x64 mode on JAX, ``torch.no_grad`` on torch.
"""

from __future__ import annotations

import collections
import contextlib
import json
import threading
import time
from functools import partial
from typing import Any, Callable, Iterator

from tess_spec.config import OptimizerConfig
from tess_spec.plan import NetworkPlan

from ..engine import SIGNALS, Context, Kernels, Params, SignalFn, Sums, gradients, time_step

__all__ = ["Program", "step_function", "apply_function", "w_hat_function", "framework_of", "program_key",
           "MAX_EXECUTABLES"]

MAX_EXECUTABLES = 32
"""Bound of the JAX executables shared by every learner of this process (least recently
used dropped first); a learner needs three or four."""
_SHARED: "collections.OrderedDict[tuple, Any]" = collections.OrderedDict()
_LOCK = threading.Lock()
_IGNORED = ("seed", "epochs", "batch_size", "dtype")


def program_key(config: Any) -> str:
    """What a compiled step depends on in ``config``: everything but the seed, epochs, batch
    size, dtype (keyed apart), the learning rate (an argument) and the schedule."""
    from tess_spec import to_dict

    d = to_dict(config)
    d["train"] = {k: v for k, v in d["train"].items() if k not in _IGNORED}
    d["optimizer"] = {k: v for k, v in d["optimizer"].items() if k != "lr"}
    d.pop("schedule", None)
    return json.dumps(d, sort_keys=True)


def framework_of(kernels: Kernels) -> str:
    """The framework a kernels object computes with, from its module: ``"jax"``, ``"torch"``,
    ``"cupy"`` or ``"numpy"`` (the default, also for a third-party NumPy-like backend)."""
    parts = type(kernels).__module__.split(".")
    for name in ("jax", "torch", "cupy"):
        if name in parts:
            return name
    return "numpy"


def step_function(K: Kernels, plan: NetworkPlan, batch: int, signal: SignalFn | None,
                  readout: bool = True) -> Callable[..., Any]:
    """``fn(params, w_hat, masks, lsg, onehot, state, sums, summed, x_t) -> (state, sums, summed, logits_t)``:
    one time step of ``batch`` streams on the frame ``x_t`` (the spec's layout); ``summed``
    is the segment's running sum of logits.  ``signal``: the step's learning-signal
    function (``None``: the step does not learn); ``readout``: a learning step also
    accumulates the readout's gradient (``False`` only for the released loop's steps
    before the window, :func:`tess_spec.signals.readout_learns`)."""
    learn = signal is not None
    extra: dict[str, Any] = {} if readout else {"readout": False}

    def fn(params: Params, w_hat: tuple[Any, ...], masks: tuple[Any, ...], lsg: tuple[Any, ...] | None,
           onehot: Any, state: Any, sums: Sums, summed: Any, x_t: Any) -> tuple[Any, Sums, Any, Any]:
        ctx = Context(params, w_hat, masks, lsg, onehot, None, batch)
        (state, sums, logits), _ = time_step(K, plan, ctx, (state, sums, K.zeros((batch, plan.n_classes))),
                                             K.to_layout(x_t), learn=learn, signal=signal or SIGNALS["lsg"], **extra)
        return state, sums, summed + logits, logits

    return fn


def apply_function(K: Kernels, plan: NetworkPlan, oc: OptimizerConfig) -> Callable[..., Any]:
    """``fn(params, moments, sums, lr, corrections) -> (params, moments)``: the window sums
    chained to gradients (:func:`tess.engine.gradients`) and one optimiser step."""

    def fn(params: Params, moments: dict[str, Params], sums: Sums, lr: Any, corrections: Any) -> tuple[Params, Any]:
        grads = gradients(K, plan, params, sums)
        return K.optimizer_step(oc, params, moments, grads, lr, corrections)

    return fn


def w_hat_function(K: Kernels, plan: NetworkPlan) -> Callable[[Params], tuple[Any, ...]]:
    """``fn(params) -> w_hat``: Ŵ of every block, standardised where the block asks for it
    (as :func:`tess.engine.prepare` forms it)."""

    def fn(params: Params) -> tuple[Any, ...]:
        return tuple(K.standardize(p.weight, p.gain) if bp.weight_std else p.weight
                     for bp, p in zip(plan.blocks, params.blocks))

    return fn


class Program:
    """The step, update and Ŵ functions of one learner (see the module docstring).

    Args:
        backend: an engine backend (:class:`tess.engine.EngineBackend`).
        plan: the network plan.
        batch: the number of streams.

    Attributes:
        framework: ``"numpy"``, ``"torch"``, ``"cupy"`` or ``"jax"``.
        compile_count: executables compiled (JAX; 0 elsewhere).
        compile_seconds: seconds spent lowering and compiling them.
    """

    def __init__(self, backend: Any, plan: NetworkPlan, batch: int) -> None:
        self.backend = backend
        self.K: Kernels = backend.kernels
        self.plan = plan
        self.batch = batch
        self.framework = framework_of(self.K)
        self.compile_count = 0
        self.compile_seconds = 0.0
        self._fns: dict[Any, Callable[..., Any]] = {}
        self._ws = any(bp.weight_std for bp in plan.blocks)
        self._key: tuple[Any, ...] = ()
        if self.framework == "jax":
            self._key = (program_key(plan.config), backend.dtype, str(getattr(backend, "jax_device", "")), batch)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """The context every call runs in: JAX's scoped x64 mode of the backend's dtype,
        ``torch.no_grad()`` on torch, nothing elsewhere."""
        if self.framework == "jax":
            import jax

            with jax.enable_x64(self.backend.dtype == "float64"):
                yield
        elif self.framework == "torch":
            import torch

            with torch.no_grad():
                yield
        else:
            yield

    def _get(self, key: Any, build: Callable[[], Callable[..., Any]], args: tuple[Any, ...]) -> Callable[..., Any]:
        fn = self._fns.get(key)
        if fn is None:
            fn = self._compiled(key, build, args) if self.framework == "jax" else build()
            self._fns[key] = fn
        return fn

    def _compiled(self, key: Any, build: Callable[[], Callable[..., Any]], args: tuple[Any, ...]) -> Any:
        """A JAX executable, shared by every learner of the same program in this process."""
        import jax

        full = (*self._key, key)
        with _LOCK:
            exe = _SHARED.get(full)
            if exe is not None:
                _SHARED.move_to_end(full)
                return exe
            t0 = time.perf_counter()
            device = getattr(self.backend, "jax_device", None)
            placed = args if device is None else jax.tree.map(lambda a: jax.device_put(a, device), args)
            with jax.default_matmul_precision("highest"):
                exe = jax.jit(build()).lower(*placed).compile()
            self.compile_seconds += time.perf_counter() - t0
            self.compile_count += 1
            _SHARED[full] = exe
            while len(_SHARED) > MAX_EXECUTABLES:
                _SHARED.popitem(last=False)
        return exe

    def step(self, signal: str | None, readout: bool, params: Params, w_hat: tuple[Any, ...],
             masks: tuple[Any, ...], lsg: tuple[Any, ...] | None, onehot: Any, state: Any, sums: Sums, summed: Any,
             x_t: Any) -> tuple[Any, Sums, Any, Any]:
        """One time step (see :func:`step_function`) with the learning signal named ``signal``
        (:data:`tess.engine.SIGNALS`; ``None``: no learning); ``lsg`` and ``onehot`` are only read
        when learning.  ``x_t``: a NumPy frame in the backend's dtype (JAX's executable transfers
        it itself) or a backend array."""
        if signal is None:
            lsg, onehot, readout = None, None, True
        args = (params, w_hat, masks, lsg, onehot, state, sums, summed, x_t)
        key = ("step", signal, readout, tuple(m is not None for m in masks))
        fn = self._get(key, partial(step_function, self.K, self.plan, self.batch,
                                    None if signal is None else SIGNALS[signal], readout), args)
        return fn(*args)

    def apply(self, params: Params, moments: dict[str, Params], sums: Sums, lr: Any,
              corrections: Any) -> tuple[Params, dict[str, Params]]:
        """Gradients from the sums and one optimiser step (see :func:`apply_function`)."""
        args = (params, moments, sums, lr, corrections)
        fn = self._get(("apply", corrections is None),
                       partial(apply_function, self.K, self.plan, self.plan.config.optimizer), args)
        return fn(*args)

    def w_hat(self, params: Params) -> tuple[Any, ...]:
        """Ŵ of every block (the weights themselves when no block standardises)."""
        if not self._ws:
            return tuple(p.weight for p in params.blocks)
        return self._get(("w_hat",), partial(w_hat_function, self.K, self.plan), (params,))(params)

    def release(self) -> None:
        """Drop this learner's references to its functions (shared JAX executables stay
        cached for other learners, up to :data:`MAX_EXECUTABLES`)."""
        self._fns.clear()
