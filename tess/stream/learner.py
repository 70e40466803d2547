"""The streaming learner: TESS one time step at a time, with fixed memory.

See :mod:`tess.stream` for the learning policy; this module holds :class:`Learner`
and :class:`SegmentResult`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tess_spec import TessConfig, draw_dropout_masks, init_opt_state, init_params, make_rng
from tess_spec.errors import ConfigError, DataError, DivergenceError, ShapeError
from tess_spec.init import param_shapes
from tess_spec.signals import readout_learns, step_signal
from tess_spec.validate import validate_finite_in

from ..backend import Backend
from ..engine import (SIGNALS, BlockState, Params, Sums, adam_corrections, init_state, params_from_flat,
                      params_to_flat, zero_sums)
from ..model import _checked_arrays, _finite_probe, _non_finite_detail
from ..registry import get_backend
from .program import Program

__all__ = ["Learner", "SegmentResult", "StreamClosedError", "AUTO_RESETS", "signal_name", "step_schedule"]

log = logging.getLogger(__name__)

AUTO_RESETS: tuple[str, ...] = ("segment", "never")
"""Automatic reset policies: ``"segment"`` zeroes u, o, q, h at the start of every segment (as
:func:`tess.engine.train_batch` starts every sequence); ``"never"`` carries them across
segment boundaries (only :meth:`Learner.reset` zeroes them)."""


class StreamClosedError(ConfigError):
    """A :class:`Learner` was used after :meth:`Learner.close` (a :class:`tess.errors.ConfigError`)."""


def signal_name(config: TessConfig) -> str:
    """The learning-signal setting of ``config`` (``config.learning_signal``: ``"lsg"``,
    ``"readout-backprop"`` or ``"released"``, TESS_RULE.md §10–§11)."""
    return config.learning_signal


def step_schedule(config: TessConfig) -> tuple[tuple[str | None, bool], ...]:
    """Per step ``t = 0 … T-1`` of a segment: ``(signal, readout)`` — the per-step learning
    signal (a name of :data:`tess.engine.SIGNALS`, ``None``: the step does not learn) and
    whether the readout's gradient accumulates — from the spec's schedule
    (:func:`tess_spec.signals.step_signal`, :func:`tess_spec.signals.readout_learns`), as
    :func:`tess.engine.train_batch` scans it."""
    return tuple((step_signal(config, t), readout_learns(config, t)) for t in range(config.train.T))


@dataclass(frozen=True)
class SegmentResult:
    """What a finished segment (T steps) produced, before any update it triggered.

    Attributes:
        index: the segment's number (0-based, counted since the learner was created).
        labels: the segment's labels ``(B,)`` (int64), or ``None`` (an unlabelled segment).
        logits: the time-summed logits ``Σ_t logits[t]`` ``(B, n_classes)`` (NumPy).
        predictions: ``argmax`` of ``logits`` ``(B,)``.
        n_correct: streams whose prediction equals their label (``None`` without labels).
        loss: mean cross-entropy of ``logits`` (``None`` without labels).
        learned_steps: steps of the segment that accumulated an update.
        updated: whether the optimiser was applied at the segment's last step.
    """

    index: int
    labels: np.ndarray | None
    logits: np.ndarray
    predictions: np.ndarray
    n_correct: int | None
    loss: float | None
    learned_steps: int
    updated: bool


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _resolve_backend(config: TessConfig, backend: Backend | str, options: dict[str, Any]) -> Backend:
    if isinstance(backend, str):
        options.setdefault("dtype", config.train.dtype)
        backend = get_backend(backend, **options)
    elif options:
        raise ConfigError("backend options are only accepted with a backend name")
    if not isinstance(backend, Backend):
        raise ConfigError(f"backend must be a tess.Backend or a backend name, got {type(backend).__name__}")
    if getattr(backend, "method", "tess") != "tess":
        raise ConfigError(f"the streaming learner runs TESS; the backend given runs {backend.method!r} "
                          f"(pass the backend by name, without method=)")
    if not hasattr(backend, "kernels") or not hasattr(backend, "plan") or not hasattr(backend, "lsg"):
        raise ConfigError(f"backend {backend.name!r} does not implement the engine's kernel protocol "
                          "(tess.engine.EngineBackend): the streaming learner drives the engine's time step "
                          "directly; use numpy, torch, jax or cupy")
    return backend


class Learner:
    """TESS on a stream, one time step at a time (see :mod:`tess.stream` for the policy).

    Args:
        config: the network and rule (``train.T`` is the segment length, ``train.n_learn``
            its learning window, ``optimizer`` the update, ``train.seed`` the generator).
        backend: a :class:`tess.Backend` built on the engine, or its name (default
            ``"numpy"``); with a name, ``backend_options`` go to :func:`tess.get_backend`
            and the dtype defaults to ``config.train.dtype``.
        batch: the number of independent streams ``B`` stepped together (≥ 1).
        learn: ``False``: never accumulate or update (labels only score the segments).
        apply_every: ``None`` (default): apply the optimiser at the last step of every
            segment that learned (the rule); ``k``: apply after every ``k`` learning steps,
            the sums carried across segment boundaries.
        auto_reset: ``"segment"`` (default) or ``"never"`` (:data:`AUTO_RESETS`).
        lr: the learning rate (default ``config.optimizer.lr``; constant — a stream has no
            epochs for the plateau schedule; assign :attr:`lr` to change it).
        params: NumPy initial parameters (default: drawn from ``config.train.seed`` as
            :class:`tess.Model` draws them).

    Raises:
        ConfigError: a bad option, or a backend that is not an engine backend.
    """

    def __init__(self, config: TessConfig, backend: Backend | str = "numpy", *, batch: int = 1, learn: bool = True,
                 apply_every: int | None = None, auto_reset: str = "segment", lr: float | None = None,
                 params: dict[str, np.ndarray] | None = None, **backend_options: Any) -> None:
        if not isinstance(config, TessConfig):
            raise ConfigError(f"config must be a tess_spec.TessConfig, got {type(config).__name__}")
        if not _is_int(batch) or batch < 1:
            raise ConfigError(f"batch={batch!r} is invalid: expected a positive integer (streams stepped together)")
        if apply_every is not None and (not _is_int(apply_every) or apply_every < 1):
            raise ConfigError(f"apply_every={apply_every!r} is invalid: expected None (apply at every segment's "
                              "end) or a positive integer (apply after that many learning steps)")
        if auto_reset not in AUTO_RESETS:
            raise ConfigError(f"auto_reset={auto_reset!r} is invalid: expected one of {list(AUTO_RESETS)}")
        if not isinstance(learn, (bool, np.bool_)):
            raise ConfigError(f"learn={learn!r} is invalid: expected True or False")
        name = signal_name(config)
        schedule = step_schedule(config)
        unknown = sorted({s for s, _ in schedule if s is not None and s not in SIGNALS})
        if unknown:
            raise ConfigError(f"learning signal {unknown[0]!r} (of learning_signal={name!r}) is unknown to the engine; "
                              f"available: {sorted(SIGNALS)}")
        self.backend: Backend = _resolve_backend(config, backend, dict(backend_options))
        self.config = config
        self.batch = int(batch)
        self.learn = bool(learn)
        self.apply_every = None if apply_every is None else int(apply_every)
        self.auto_reset = auto_reset
        self.signal = name
        self.schedule = schedule
        """Per step of a segment, ``(signal, readout)`` (:func:`step_schedule`)."""
        self.plan = self.backend.plan(config)  # type: ignore[attr-defined]
        self.T = config.train.T
        self.window_start = config.train.window_start
        self.rng = make_rng(config.train.seed)
        dtype = self.backend.dtype
        if params is None:
            np_params = init_params(config, self.rng)
        else:
            np_params = _checked_arrays(param_shapes(config), params, "parameter", dtype, ConfigError)
        np_params = {k: np.asarray(v, dtype=dtype) for k, v in np_params.items()}
        self._prog = Program(self.backend, self.plan, self.batch)
        self._closed = False
        self._lr = 0.0
        self.lr = config.optimizer.lr if lr is None else lr
        with self._prog.scope():
            self._lsg = self.backend.lsg(config)  # type: ignore[attr-defined]
            self._no_masks = tuple(None for _ in self.plan.blocks)
            self._set_params(np_params, init_opt_state(config, np_params))
            self.state: tuple[BlockState, ...] = self._zero_state()
            self.sums: Sums = self._zero_sums()
        self._t = 0
        self._begun = False
        self._masks_np: list[np.ndarray | None] | None = None
        self._masks: tuple[Any, ...] = self._no_masks
        self._label: np.ndarray | None = None
        self._onehot: Any = None
        self._summed: Any = None
        self._seg_learned = 0
        self._pending = 0
        self._steps = 0
        self._segments = 0
        self._updates = 0
        self.last_segment: SegmentResult | None = None
        """The :class:`SegmentResult` of the last segment that finished (``None`` before)."""

    @classmethod
    def from_model(cls, model: Any, **options: Any) -> "Learner":
        """A learner that continues a :class:`tess.Model` (e.g. trained offline with ``fit``) on a
        stream: its config, backend, parameters, optimiser moments and step, and a copy of its
        generator's state.  ``options``: :class:`Learner`'s keyword options (``batch``,
        ``apply_every``, ``lr`` — default: the model's current rate — …)."""
        options.setdefault("lr", model.lr)
        learner = cls(model.config, model.backend, params=model.numpy_params(), **options)
        opt = model.backend.opt_state_to_numpy(model.opt_state)
        with learner._prog.scope():
            learner._set_params(model.numpy_params(), opt)
        learner.rng = np.random.Generator(type(model.rng.bit_generator)())
        learner.rng.bit_generator.state = model.rng.bit_generator.state
        return learner

    # -- properties -------------------------------------------------------------------
    @property
    def _K(self) -> Any:
        return self.backend.kernels  # type: ignore[attr-defined]

    @property
    def lr(self) -> float:
        """The learning rate of the next update (a finite number > 0)."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        if not ok or not math.isfinite(float(value)) or value <= 0:
            raise ConfigError(f"lr={value!r} is invalid: expected a finite learning rate > 0")
        self._lr = float(value)

    @property
    def step_in_segment(self) -> int:
        """Index ``t`` (0 … T-1) of the next step within its segment."""
        return self._t

    @property
    def steps(self) -> int:
        """Time steps taken (``step`` and ``predict_step``) since the learner was created."""
        return self._steps

    @property
    def segments(self) -> int:
        """Segments finished."""
        return self._segments

    @property
    def updates(self) -> int:
        """Optimiser steps applied by this learner (the optimiser's own counter is :attr:`optimizer_step`)."""
        return self._updates

    @property
    def optimizer_step(self) -> int:
        """The optimiser's step counter (Adam's bias corrections use it)."""
        return self._opt_step

    @property
    def pending_steps(self) -> int:
        """Learning steps accumulated in the window sums and not yet applied."""
        return self._pending

    @property
    def segment_label(self) -> np.ndarray | None:
        """The current segment's labels ``(B,)``, or ``None`` before one is given."""
        return None if self._label is None else self._label.copy()

    @property
    def segment_logits(self) -> np.ndarray | None:
        """Time-summed logits of the current segment so far (NumPy), ``None`` before its first step."""
        if self._summed is None or not self._begun:
            return None
        with self._prog.scope():
            return self.backend.to_numpy(self._summed)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def compile_seconds(self) -> float:
        """Seconds spent compiling the per-step functions (JAX; 0 on eager backends)."""
        return self._prog.compile_seconds

    @property
    def compile_count(self) -> int:
        """Executables compiled (JAX; 0 on eager backends)."""
        return self._prog.compile_count

    def numpy_params(self) -> dict[str, np.ndarray]:
        """The current parameters as NumPy arrays (flat :func:`tess_spec.param_names`)."""
        with self._prog.scope():
            return {k: self.backend.to_numpy(v) for k, v in params_to_flat(self.plan, self.params).items()}

    # -- the stream ----------------------------------------------------------------------
    def step(self, x_t: Any, label: Any = None) -> np.ndarray:
        """One time step of every stream: the frame ``x_t`` in, the step's logits out.

        ``x_t``: ``(B, *input_shape)`` (or ``input_shape`` when ``B = 1``); ``label``: ``None``,
        an integer (``B = 1``, or the same label for every stream) or ``(B,)`` integers in
        ``[0, n_classes)`` — the current segment's label (a segment has one).  At a learning
        step of a labelled segment (:attr:`schedule`: the window ``t ≥ T - n_learn`` for the
        paper's LSG) the step accumulates its update; at the segment's end (or every
        ``apply_every`` learning steps) the optimiser is applied.
        Returns ``logits[t]`` ``(B, n_classes)`` (``(n_classes,)`` for an unbatched frame).

        Raises :class:`~tess.errors.ShapeError` / :class:`~tess.errors.DataError` for a frame
        of the wrong shape, NaN or Inf values, or a bad label, and
        :class:`StreamClosedError` after :meth:`close` — each before anything changes.
        :class:`~tess.errors.DivergenceError` if an update made a parameter non-finite (the
        parameters and moments from before it are kept, its sums dropped).
        """
        self._check_open("step")
        x, squeeze = self._checked_frame(x_t)
        y = self._checked_label(label)
        return self._advance(x, y, True, squeeze)

    def predict_step(self, x_t: Any) -> np.ndarray:
        """One time step in inference mode: no dropout, no learning, no random numbers.

        The stream's state and segment position advance as with :meth:`step` (so learning
        can resume after it), but nothing accumulates and no update is applied.  Same
        shapes and errors as :meth:`step`."""
        self._check_open("predict_step")
        x, squeeze = self._checked_frame(x_t)
        return self._advance(x, None, False, squeeze)

    def apply(self) -> bool:
        """Apply the optimiser now to the sums accumulated so far; ``False`` if there are none."""
        self._check_open("apply")
        if self._pending == 0:
            return False
        with self._prog.scope():
            self._apply()
        return True

    def reset(self, *, discard_pending: bool = False) -> None:
        """Start a new segment at the next step: u, o, q, h zeroed, the segment's label,
        dropout masks and summed logits dropped (an unfinished segment is not counted).

        Window sums not yet applied are kept for the next application (call :meth:`apply`
        first to apply them now) unless ``discard_pending``."""
        self._check_open("reset")
        with self._prog.scope():
            self.state = self._zero_state()
            if discard_pending and self._pending:
                self.sums = self._zero_sums()
                self._pending = 0
        self._t = 0
        self._begun = False
        self._label = self._onehot = self._summed = None
        self._masks_np, self._masks = None, self._no_masks
        self._seg_learned = 0

    def close(self) -> None:
        """Release the compiled functions; every later call but :meth:`state_dict` raises
        :class:`StreamClosedError`.  Idempotent.  A learner is also a context manager."""
        self._closed = True
        self._prog.release()

    def __enter__(self) -> "Learner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"step {self._t} of segment {self._segments}"
        return (f"<tess.stream.Learner {self.backend.name} {self.backend.dtype} batch={self.batch} T={self.T} "
                f"n_learn={self.config.train.n_learn} {state}, {self._updates} updates>")

    # -- checks (nothing changes before they pass) ----------------------------------------------
    def _check_open(self, what: str) -> None:
        if self._closed:
            raise StreamClosedError(f"{what}() on a closed Learner (close() was called after {self._steps} steps); "
                                    "create a new Learner, or load this one's state_dict() into one")

    def _checked_frame(self, x_t: Any) -> tuple[np.ndarray, bool]:
        inp = tuple(self.config.network.input_shape)
        try:
            x = np.asarray(x_t)
        except (TypeError, ValueError) as exc:
            raise DataError(f"a stream frame must be an array of numbers: {exc}") from exc
        squeeze = False
        if self.batch == 1 and tuple(x.shape) == inp:
            x, squeeze = x[None], True
        if tuple(x.shape) != (self.batch, *inp):
            hint = ""
            if x.ndim == len(inp) + 2 and tuple(x.shape[2:]) == inp:
                hint = "; this looks like whole sequences (batch, T, ...): feed their frames x[:, t] one at a time"
            one = f" (or {inp} for one stream)" if self.batch == 1 else ""
            raise ShapeError(f"stream frame of shape {tuple(x.shape)} does not match the learner: expected one frame "
                             f"per stream, ({self.batch}, *{inp}){one}{hint}")
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise DataError(f"stream frame dtype {x.dtype} is not a real number type; pass integer or float arrays")
        if not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x.reshape(-1)))[0])
            raise DataError(f"stream frame {self._steps} contains NaN or Inf (first at flat index {bad}: "
                            f"{float(x.reshape(-1)[bad])}); the step was not taken and the state is unchanged — "
                            "clean or skip the frame")
        validate_finite_in(x, self.backend.dtype)
        return x, squeeze

    def _checked_label(self, label: Any) -> np.ndarray | None:
        if label is None:
            return None
        try:
            y = np.asarray(label)
        except (TypeError, ValueError) as exc:
            raise DataError(f"a label must be an integer or an array of integers: {exc}") from exc
        if not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
            raise DataError(f"labels must be integers, got {y.dtype} ({label!r})")
        if y.ndim == 0:
            y = np.full(self.batch, int(y), dtype=np.int64)
        if y.shape != (self.batch,):
            raise ShapeError(f"labels of shape {tuple(y.shape)} do not match the learner: expected one label per "
                             f"stream, ({self.batch},), or one integer")
        n = self.config.network.n_classes
        bad = y[(y < 0) | (y >= n)]
        if bad.size:
            raise DataError(f"label {int(bad[0])} is outside [0, {n}) for a {n}-class network; the step was not taken")
        y = y.astype(np.int64)
        if self._label is not None and self._begun and not np.array_equal(y, self._label):
            raise DataError(f"label {y.tolist()} differs from the label {self._label.tolist()} of the current segment "
                            f"(step {self._t} of {self.T}); a segment has one label — call reset() to start a new "
                            "segment")
        return y

    # -- the step ---------------------------------------------------------------------------------
    def _advance(self, x: np.ndarray, y: np.ndarray | None, train: bool, squeeze: bool) -> np.ndarray:
        be, K = self.backend, self._K
        with self._prog.scope():
            if not self._begun:
                self._begin_segment()
            if train and self._masks_np is None:
                self._masks_np = draw_dropout_masks(self.config, self.batch, self.rng, be.dtype)
                self._masks = tuple(None if m is None else K.to_layout(be.asarray(m)) for m in self._masks_np)
            if y is not None and self._label is None:
                self._label = y
                self._onehot = be.asarray(np.eye(self.plan.n_classes, dtype=be.dtype)[y])
            signal, readout = self.schedule[self._t]
            learn = train and self.learn and self._label is not None and signal is not None
            xb = x.astype(be.dtype, copy=False)
            if self._prog.framework != "jax":  # JAX's executable takes the host frame and transfers it
                xb = be.asarray(xb)
            state, sums, summed, logits = self._prog.step(
                signal if learn else None, readout, self.params, self._w_hat, self._masks if train else self._no_masks,
                self._lsg, self._onehot, self.state, self.sums, self._summed, xb)
            self.state, self.sums, self._summed = state, sums, summed
            self._steps += 1
            self._t += 1
            if learn:
                self._pending += 1
                self._seg_learned += 1
            out = be.to_numpy(logits)
            end = self._t == self.T
            due = (self._pending > 0 and end) if self.apply_every is None else self._pending >= self.apply_every
            updated = False
            try:
                if due:
                    self._apply()
                    updated = True
            finally:
                if end:
                    self._end_segment(updated)
        return out[0] if squeeze else out

    def _begin_segment(self) -> None:
        K = self._K
        if self.auto_reset == "segment":
            self.state = self._zero_state()
        self._summed = self._zero_logits()
        self._label = self._onehot = None
        self._masks_np, self._masks = None, self._no_masks
        self._seg_learned = 0
        self._begun = True

    def _end_segment(self, updated: bool) -> None:
        logits = self.backend.to_numpy(self._summed)
        labels = self._label
        pred = logits.argmax(axis=1)
        n_correct = loss = None
        if labels is not None:
            n_correct = int((pred == labels).sum())
            z = logits.astype(np.float64)
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            loss = float(-logp[np.arange(self.batch), labels].mean())
        self.last_segment = SegmentResult(self._segments, None if labels is None else labels.copy(), logits, pred,
                                          n_correct, loss, self._seg_learned, updated)
        self._segments += 1
        self._t = 0
        self._begun = False
        self._label = self._onehot = None
        self._masks_np, self._masks = None, self._no_masks

    def _apply(self) -> None:
        """One optimiser step on the window sums (inside :meth:`Program.scope`)."""
        be, K = self.backend, self._K
        oc = self.config.optimizer
        step = self._opt_step + 1
        corrections = adam_corrections(oc, step)
        lr: Any = self._lr
        if self._prog.framework == "jax":
            lr = np.asarray(lr, be.dtype)
            corrections = None if corrections is None else np.asarray(corrections, be.dtype)
        params, moments = self._prog.apply(self.params, self.moments, self.sums, lr, corrections)
        self.sums = self._zero_sums()
        self._pending = 0
        self._check_finite(params, moments, step)
        self.params, self.moments, self._opt_step = params, moments, step
        self._w_hat = self._prog.w_hat(params)
        self._updates += 1

    def _check_finite(self, params: Params, moments: dict[str, Params], step: int) -> None:
        tensors = [(f"parameter {k!r}", v) for k, v in params_to_flat(self.plan, params).items()]
        for slot in sorted(moments):
            flat = params_to_flat(self.plan, moments[slot])
            tensors += [(f"optimiser state {slot}[{k!r}]", v) for k, v in flat.items()]
        total: Any = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for _, a in tensors:
                total = total + _finite_probe(a, self.backend.to_numpy)
            if math.isfinite(float(total)):
                return
            found = [(n, a) for n, a in tensors if not np.isfinite(np.asarray(self.backend.to_numpy(a))).all()]
        if not found:
            return
        name, a = found[0]
        raise DivergenceError(
            f"the stream diverged at optimiser step {step} (segment {self._segments}, stream step {self._steps}): "
            f"{name} {_non_finite_detail(self.backend.to_numpy(a))} after the update. The learner keeps its "
            f"parameters and optimiser state from before it and dropped the window sums that caused it. Lower "
            f"the learning rate (now {self._lr:g}), rescale the input, or run in float64 (now {self.backend.dtype}).")

    # -- zeros (created once on JAX, whose arrays are immutable; fresh elsewhere: a kernel may
    #    update its state arrays in place) -------------------------------------------------------------
    def _zero(self, what: str, build: Callable[[], Any]) -> Any:
        if self._prog.framework != "jax":
            return build()
        cache = self.__dict__.setdefault("_zeros", {})
        if what not in cache:
            cache[what] = build()
        return cache[what]

    def _zero_state(self) -> tuple[BlockState, ...]:
        return self._zero("state", lambda: init_state(self._K, self.plan, self.batch))

    def _zero_sums(self) -> Sums:
        return self._zero("sums", lambda: zero_sums(self._K, self.plan))

    def _zero_logits(self) -> Any:
        return self._zero("logits", lambda: self._K.zeros((self.batch, self.plan.n_classes)))

    # -- parameters and state -------------------------------------------------------------------------
    def _set_params(self, np_params: dict[str, np.ndarray], opt_state: dict[str, Any]) -> None:
        """Framework copies of NumPy parameters and an optimiser state (inside :meth:`Program.scope`)."""
        be = self.backend
        flat = {k: be.asarray(np.array(v, dtype=be.dtype, copy=True)) for k, v in np_params.items()}
        self.params: Params = params_from_flat(self.plan, flat)
        self.moments: dict[str, Params] = {
            slot: params_from_flat(self.plan, {k: be.asarray(np.array(v, dtype=be.dtype, copy=True))
                                               for k, v in values.items()})
            for slot, values in opt_state.items() if slot != "step"}
        self._opt_step = int(opt_state["step"])
        self._w_hat = self._prog.w_hat(self.params)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the stream bit for bit, as NumPy / plain Python values.

        Keys: ``format`` (``"tess-stream"``), ``config``, ``dtype``, ``batch``, ``policy``
        (``learn``, ``apply_every``, ``auto_reset``, ``signal``), ``params``, ``opt_state``
        (``step`` and the moments), ``state`` (per block ``u, o, q, h``, the spec's layout),
        ``sums`` (the window sums, flat names), ``segment`` (``t``, ``begun``, ``labels``,
        ``masks`` — ``None`` before they are drawn —, ``logits`` summed so far, ``learned_steps``),
        ``counters`` (``steps``, ``segments``, ``updates``, ``pending``), ``lr`` and ``rng``
        (the generator's ``bit_generator.state``).  :meth:`load_state_dict` restores it;
        :func:`tess.stream.save_state` writes it to a file atomically.
        """
        be, K = self.backend, self._K
        with self._prog.scope():
            state = [{k: be.to_numpy(K.from_layout(v)) for k, v in s._asdict().items() if v is not None}
                     for s in self.state]
            sums = _flat_sums(self.sums, lambda a: be.to_numpy(a))
            params = {k: be.to_numpy(v) for k, v in params_to_flat(self.plan, self.params).items()}
            opt: dict[str, Any] = {"step": int(self._opt_step)}
            for slot, tree in self.moments.items():
                opt[slot] = {k: be.to_numpy(v) for k, v in params_to_flat(self.plan, tree).items()}
            logits = None if self._summed is None or not self._begun else be.to_numpy(self._summed)
        return {
            "format": "tess-stream",
            "config": self.config,
            "dtype": be.dtype,
            "batch": self.batch,
            "policy": {"learn": self.learn, "apply_every": self.apply_every, "auto_reset": self.auto_reset,
                       "signal": self.signal},
            "params": params,
            "opt_state": opt,
            "state": state,
            "sums": sums,
            "segment": {
                "t": int(self._t),
                "begun": bool(self._begun),
                "labels": None if self._label is None else self._label.copy(),
                "masks": None if self._masks_np is None else [None if m is None else m.copy() for m in self._masks_np],
                "logits": logits,
                "learned_steps": int(self._seg_learned),
            },
            "counters": {"steps": int(self._steps), "segments": int(self._segments), "updates": int(self._updates),
                         "pending": int(self._pending)},
            "lr": float(self._lr),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (possibly from another backend or dtype).

        Everything is validated and converted before anything is assigned
        (:func:`tess.stream.validated_state`): a mismatched or corrupt state raises
        :class:`tess.errors.CheckpointError` and leaves the learner untouched.  The
        config must equal this learner's (the network, the rule, T and n_learn, the
        optimiser; not ``epochs``, ``batch_size``, ``seed`` or ``dtype``), and so must
        ``batch`` and the policy."""
        from .io import validated_state

        self._check_open("load_state_dict")
        new = validated_state(self.config, state, self.backend.dtype, batch=self.batch,
                              policy={"learn": self.learn, "apply_every": self.apply_every,
                                      "auto_reset": self.auto_reset, "signal": self.signal})
        be, K = self.backend, self._K
        with self._prog.scope():
            flat = {k: be.asarray(v) for k, v in new["params"].items()}
            params = params_from_flat(self.plan, flat)
            moments = {slot: params_from_flat(self.plan, {k: be.asarray(v) for k, v in values.items()})
                       for slot, values in new["opt_state"].items() if slot != "step"}
            blocks = tuple(BlockState(*(K.to_layout(be.asarray(d[k])) for k in ("u", "o", "q", "h")))
                           for d in new["state"])
            sums = _sums_from_flat(self.plan, new["sums"], lambda a: be.asarray(a))
            seg = new["segment"]
            masks_np = seg["masks"]
            masks = (self._no_masks if masks_np is None
                     else tuple(None if m is None else K.to_layout(be.asarray(m)) for m in masks_np))
            labels = seg["labels"]
            onehot = None if labels is None else be.asarray(np.eye(self.plan.n_classes, dtype=be.dtype)[labels])
            summed = None if seg["logits"] is None else be.asarray(seg["logits"])
            w_hat = self._prog.w_hat(params)
        # assign (nothing below can fail)
        self.params, self.moments, self._opt_step, self._w_hat = params, moments, new["opt_state"]["step"], w_hat
        self.state, self.sums = blocks, sums
        self._t, self._begun, self._seg_learned = seg["t"], seg["begun"], seg["learned_steps"]
        self._label, self._onehot, self._summed = labels, onehot, summed
        self._masks_np, self._masks = masks_np, masks
        c = new["counters"]
        self._steps, self._segments = c["steps"], c["segments"]
        self._updates, self._pending = c["updates"], c["pending"]
        self._lr = new["lr"]
        self.rng = new["rng"]

    def save(self, path: Any) -> Any:
        """Write :meth:`state_dict` to ``path`` (``.npz``, atomically); returns the path.
        See :func:`tess.stream.save_state`."""
        from .io import save_state

        return save_state(self, path)

    def load(self, path: Any) -> None:
        """Restore the state written by :meth:`save` (all or nothing). See :func:`tess.stream.read_state`."""
        from .io import read_state

        self._check_open("load")
        self.load_state_dict(read_state(path))


def _flat_sums(sums: Sums, convert: Callable[[Any], np.ndarray]) -> dict[str, np.ndarray]:
    """The window sums by flat name: ``blocks.{i}.causal|noncausal|bias``, ``readout.weight|bias``."""
    out: dict[str, np.ndarray] = {}
    for i, bs in enumerate(sums.blocks):
        out[f"blocks.{i}.causal"] = convert(bs.causal)
        out[f"blocks.{i}.noncausal"] = convert(bs.noncausal)
        if bs.bias is not None:
            out[f"blocks.{i}.bias"] = convert(bs.bias)
    out["readout.weight"] = convert(sums.readout.weight)
    out["readout.bias"] = convert(sums.readout.bias)
    return out


def _sums_from_flat(plan: Any, flat: dict[str, Any], convert: Callable[[Any], Any]) -> Sums:
    from ..engine import BlockSums, ReadoutParams

    blocks = tuple(BlockSums(convert(flat[f"blocks.{i}.causal"]), convert(flat[f"blocks.{i}.noncausal"]),
                             convert(flat[f"blocks.{i}.bias"]) if bp.bias else None)
                   for i, bp in enumerate(plan.blocks))
    return Sums(blocks, ReadoutParams(convert(flat["readout.weight"]), convert(flat["readout.bias"])))


def _sum_shapes(plan: Any) -> dict[str, tuple[int, ...]]:
    """Shapes of the window sums by flat name (see :func:`tess.engine.zero_sums`)."""
    out: dict[str, tuple[int, ...]] = {}
    for i, bp in enumerate(plan.blocks):
        out[f"blocks.{i}.causal"] = tuple(bp.weight)
        out[f"blocks.{i}.noncausal"] = tuple(bp.weight)
        if bp.bias:
            out[f"blocks.{i}.bias"] = (bp.features,)
    out["readout.weight"] = (plan.n_classes, plan.blocks[-1].features)
    out["readout.bias"] = (plan.n_classes,)
    return out

