"""The stateful wrapper over a backend's functional core: parameters, optimiser
state, learning-rate schedule, and the epoch loop (shuffling, batching, dropout
masks — all from the spec's single NumPy generator, so every backend sees the
same numbers)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol

import numpy as np

from tess_spec import TessConfig, draw_dropout_masks, init_opt_state, init_params, make_rng
from tess_spec.errors import CheckpointError, ConfigError, DataError, DivergenceError, ShapeError
from tess_spec.init import param_shapes
from tess_spec.optim import PlateauState, plateau_update
from tess_spec.validate import validate_batch

from .backend import Backend, TrainOutput
from .registry import get_backend

__all__ = ["Model", "EpochLoop", "EpochMetrics", "ArrayDataset"]

log = logging.getLogger(__name__)


class ArrayDataset(Protocol):
    """What :meth:`Model.fit` needs of a dataset: ``x`` (N, ...) and ``y`` (N,) arrays."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class EpochMetrics:
    """Metrics of one epoch (train loss/accuracy from the training pass itself)."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float | None
    test_accuracy: float | None
    lr: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


class EpochLoop:
    """The epoch loop shared by :class:`Model` (TESS) and the BPTT baseline.

    A subclass provides ``config``, ``rng``, ``epoch``, ``history``, ``schedule``
    (a :class:`tess_spec.optim.PlateauState`), ``lr``, ``train_batch(x, y)`` returning
    an object with ``loss`` and ``n_correct``, and ``evaluate(x, y)``.
    """

    config: TessConfig
    rng: np.random.Generator
    epoch: int
    history: list[EpochMetrics]
    schedule: PlateauState

    @property
    def lr(self) -> float:
        """The current learning rate (after the schedule)."""
        return self.schedule.lr

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> Any:  # pragma: no cover - abstract
        """One optimiser step on a mini-batch."""
        raise NotImplementedError

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:  # pragma: no cover - abstract
        """``(loss, accuracy)`` on ``(x, y)``."""
        raise NotImplementedError

    def fit(
        self,
        train: ArrayDataset,
        test: ArrayDataset | None = None,
        *,
        epochs: int | None = None,
        on_batch: Callable[[int, int, Any], None] | None = None,
        on_epoch: Callable[[EpochMetrics], None] | None = None,
    ) -> list[EpochMetrics]:
        """Train for ``epochs`` (default ``config.train.epochs``) epochs.

        Each epoch shuffles with the model's generator, trains on mini-batches of
        ``config.train.batch_size`` (the last may be smaller; a dataset's
        ``transform(x, rng)``, if any, augments each batch with the model's generator
        before its dropout masks are drawn), evaluates on
        ``test``, and steps the plateau schedule on the epoch's train loss.
        ``on_batch(done, total, output)`` and ``on_epoch(metrics)`` report progress.
        """
        n = _check_split(train, "training")
        if n == 0:
            raise DataError("the training set is empty")
        if test is not None:
            _check_split(test, "test")
        epochs = self.config.train.epochs if epochs is None else epochs
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ConfigError(f"epochs={epochs!r} is invalid: expected a non-negative integer")
        bs = self.config.train.batch_size
        sc = self.config.schedule
        n_batches = -(-n // bs)
        for _ in range(int(epochs)):
            t0 = time.perf_counter()
            order = self.rng.permutation(n)
            loss_sum, correct = 0.0, 0
            transform = getattr(train, "transform", None)
            for b, s in enumerate(range(0, n, bs)):
                idx = order[s : s + bs]
                xb = train.x[idx]
                if transform is not None:
                    xb = transform(xb, self.rng)
                self._position = (self.epoch + 1, b + 1, n_batches)
                try:
                    out = self.train_batch(xb, train.y[idx])
                finally:
                    self._position = None
                loss_sum += out.loss * len(idx)
                correct += out.n_correct
                if on_batch is not None:
                    on_batch(min(s + bs, n), n, out)
            train_loss = loss_sum / n
            if not np.isfinite(train_loss):
                raise DivergenceError(
                    f"training diverged in epoch {self.epoch + 1}: the mean training loss is {train_loss}; "
                    "lower the learning rate or check the data"
                )
            test_loss = test_acc = None
            if test is not None and len(test.y):
                test_loss, test_acc = self.evaluate(test.x, test.y)
            self.epoch += 1
            m = EpochMetrics(self.epoch, train_loss, correct / n, test_loss, test_acc, self.lr,
                             time.perf_counter() - t0)
            self.history.append(m)
            log.info("epoch %d: %s", self.epoch, m)
            if sc.name == "plateau":
                self.schedule = plateau_update(
                    self.schedule, train_loss, factor=sc.factor, patience=sc.patience,
                    threshold=sc.threshold, min_lr=sc.min_lr,
                )
            if on_epoch is not None:
                on_epoch(m)
        return self.history

    _position: tuple[int, int, int] | None = None
    """``(epoch, batch, batches per epoch)`` of the mini-batch :meth:`fit` is training (for messages)."""


def _check_split(data: Any, what: str) -> int:
    """The number of samples of a dataset-like ``data`` (``x``, ``y``), after checking they agree."""
    try:
        nx, ny = len(data.x), len(data.y)
    except (AttributeError, TypeError) as exc:
        raise DataError(f"the {what} set must have array attributes x and y (e.g. a tess.datasets.Dataset): "
                        f"{exc}") from exc
    if nx != ny:
        raise DataError(f"the {what} set has {nx} samples but {ny} labels; x and y must have the same length")
    return ny


class Model(EpochLoop):
    """A TESS network bound to a backend.

    Args:
        config: the run's :class:`tess_spec.TessConfig`.
        backend: a :class:`tess.Backend` or a backend name (default ``"numpy"``);
            with a name, ``backend_options`` go to :func:`tess.get_backend` and the
            dtype defaults to ``config.train.dtype``.
        params: NumPy initial parameters; default: drawn from ``config.train.seed``.
        method: the training method, ``"tess"`` (default) or one the backend offers
            (:attr:`tess.Backend.methods`; the torch backend also has ``"bptt"``, the
            baseline trained end to end by autodiff): ``Model(config, "torch", method="bptt")``.
    """

    def __init__(
        self,
        config: TessConfig,
        backend: Backend | str = "numpy",
        params: dict[str, np.ndarray] | None = None,
        *,
        method: str = "tess",
        **backend_options: Any,
    ) -> None:
        if not isinstance(config, TessConfig):
            raise ConfigError(f"config must be a tess_spec.TessConfig, got {type(config).__name__}")
        if isinstance(backend, str):
            backend_options.setdefault("dtype", config.train.dtype)
            if method != "tess":
                backend_options["method"] = method
            backend = get_backend(backend, **backend_options)
        elif backend_options:
            raise ConfigError("backend options are only accepted with a backend name")
        if getattr(backend, "method", "tess") != method:
            raise ConfigError(f"method={method!r} but the backend given runs {getattr(backend, 'method', 'tess')!r}; "
                              f"pass the backend by name (Model(config, {backend.name!r}, method={method!r}))")
        self.config = config
        self.backend = backend
        self.rng = make_rng(config.train.seed)
        if params is None:
            np_params = init_params(config, self.rng)
        else:
            np_params = _checked_arrays(param_shapes(config), params, "parameter", backend.dtype, ConfigError)
        self._names = list(param_shapes(config))
        self.params = backend.params_from_numpy(np_params)
        self.opt_state = backend.opt_state_from_numpy(
            init_opt_state(config, {k: np.asarray(v, dtype=backend.dtype) for k, v in np_params.items()})
        )
        self.schedule = PlateauState(lr=config.optimizer.lr)
        self.epoch = 0
        self.history: list[EpochMetrics] = []

    def train_batch(self, x: np.ndarray, y: np.ndarray, *, record: bool = False) -> TrainOutput:
        """One mini-batch: draw dropout masks from the model's generator, run the
        backend's train step, keep the updated parameters.

        The batch is validated first (shapes, labels, values finite in the backend's
        dtype), so a rejected batch consumes no random numbers.  After the step every
        parameter and optimiser moment is checked to be finite (one reduction per
        tensor, one host sync per batch); if one is not, :class:`tess.errors.DivergenceError`
        names the epoch, the batch and the first non-finite tensor, and the model keeps
        the parameters and optimiser state from *before* the step.
        """
        x, y = np.asarray(x), np.asarray(y)
        validate_batch(self.config, x, y, dtype=self.backend.dtype)
        masks = draw_dropout_masks(self.config, int(x.shape[0]), self.rng, self.backend.dtype)
        # Overflow inside the step is detected below, with a precise message, instead of
        # one RuntimeWarning per NumPy operation.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out = self.backend.train_batch(
                self.config, self.params, self.opt_state, x, y, masks=masks, lr=self.lr, record=record
            )
        self._check_finite_step(out)
        self.params, self.opt_state = out.params, out.opt_state
        return out

    def _check_finite_step(self, out: TrainOutput) -> None:
        """Raise DivergenceError if ``out``'s parameters or optimiser moments hold NaN or Inf."""
        tensors = _step_tensors(self._names, out.params, out.opt_state)
        total: Any = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for _, a in tensors:
                total = total + _finite_probe(a, self.backend.to_numpy)
        if math.isfinite(float(total)):
            return
        # Exact check (0·x is 0 for every finite x), only when the probe is not finite: it
        # can also overflow on large but finite values, which is no divergence.
        with np.errstate(over="ignore", invalid="ignore"):
            found = [(name, a) for name, a in tensors
                     if not np.isfinite(np.asarray(self.backend.to_numpy(a))).all()]
        if not found:
            return
        name, a = found[0]
        detail = _non_finite_detail(self.backend.to_numpy(a))
        step = out.opt_state.get("step", "?") if isinstance(out.opt_state, dict) else "?"
        pos = self._position
        where = (f"in epoch {pos[0]}, batch {pos[1]} of {pos[2]} (optimiser step {step})" if pos is not None
                 else f"at optimiser step {step} (a train_batch call after {self.epoch} completed epochs)")
        raise DivergenceError(
            f"training diverged {where}: {name} {detail} after the optimiser step. The model keeps its "
            f"parameters and optimiser state from before this step. Lower the learning rate (now {self.lr:g}), "
            f"rescale the input, or train in float64 (now {self.backend.dtype})."
        )

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Time-summed logits ``(N, n_classes)``, computed in batches of ``batch_size`` (≥ 1)."""
        _check_batch_size(batch_size)
        x = np.asarray(x)
        if x.shape[:1] == (0,):
            raise DataError("cannot predict on an empty array")
        if x.ndim == 0:
            raise ShapeError(f"cannot predict on a scalar ({x.item()!r}): expected an array of shape "
                             f"(batch, *{self.config.network.input_shape})")
        parts = [
            self.backend.predict(self.config, self.params, x[s : s + batch_size])
            for s in range(0, x.shape[0], batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> tuple[float, float]:
        """``(loss, accuracy)`` of the time-summed logits on ``(x, y)``."""
        _check_batch_size(batch_size)
        x, y = np.asarray(x), np.asarray(y)
        validate_batch(self.config, x, y, dtype=self.backend.dtype)
        logits = self.predict(x, batch_size).astype(np.float64)
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean()), float((logits.argmax(axis=1) == y).mean())

    def numpy_params(self) -> dict[str, np.ndarray]:
        """Current parameters as NumPy arrays."""
        return self.backend.params_to_numpy(self.params)

    # -- checkpoint / resume -------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly, as NumPy / plain Python values.

        Keys: ``config`` (the :class:`TessConfig`), ``params`` and ``opt_state``
        (NumPy, this backend's dtype), ``schedule`` (``lr``, ``best``, ``bad_epochs``),
        ``epoch``, ``rng`` (the generator's ``bit_generator.state``), ``history``
        (epoch metric dicts) and ``dtype``.  :func:`tess.checkpoint.save_checkpoint`
        writes it to disk; :meth:`load_state_dict` restores it.
        """
        return {
            "config": self.config,
            "params": self.numpy_params(),
            "opt_state": self.backend.opt_state_to_numpy(self.opt_state),
            "schedule": asdict(self.schedule),
            "epoch": int(self.epoch),
            "rng": self.rng.bit_generator.state,
            "history": [m.to_dict() for m in self.history],
            "dtype": self.backend.dtype,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (possibly from another backend or dtype).

        Everything is validated and converted before anything is assigned, so a
        mismatched state raises :class:`tess.errors.CheckpointError` and leaves the
        model untouched.  The network of ``state["config"]`` must equal this
        model's; other settings (e.g. ``train.epochs``) stay this model's.
        """
        try:
            new = _validated_state(self.config, state, self.backend.dtype)
            params = self.backend.params_from_numpy(new["params"])
            opt_state = self.backend.opt_state_from_numpy(new["opt_state"])
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"cannot load the state: {exc}") from exc
        self.params, self.opt_state = params, opt_state
        self.schedule, self.epoch, self.rng = new["schedule"], new["epoch"], new["rng"]
        self.history = new["history"]


def _network_difference(a: TessConfig, b: TessConfig) -> str:
    """A short description of how the networks of two configs differ ('' if equal)."""
    from tess_spec import to_dict

    da, db = to_dict(a.network), to_dict(b.network)
    for key in da:
        if da[key] != db.get(key):
            if key == "blocks" and len(da[key]) == len(db[key]):
                for i, (ba, bb) in enumerate(zip(da[key], db[key])):
                    for f in ba:
                        if ba[f] != bb[f]:
                            return f"network.blocks[{i}].{f}: checkpoint {bb[f]!r} vs model {ba[f]!r}"
            return f"network.{key}: checkpoint {db.get(key)!r} vs model {da[key]!r}"
    return ""


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is invalid: expected a positive integer (samples per batch)")


def _finite_probe(a: Any, to_numpy: Callable[[Any], np.ndarray]) -> Any:
    """A scalar that is finite if every value of ``a`` is: ``a·a`` (one BLAS dot, no
    allocation) for NumPy; ``a.sum()`` on the device for torch and CuPy arrays (no
    transfer); other framework arrays (JAX, whose float64 lives only inside the
    backend's x64 scope) are converted with the backend's ``to_numpy`` first.  Any NaN
    or ±Inf makes it non-finite; very large finite values may too (an overflow), which
    the exact check in :meth:`Model._check_finite_step` then clears."""
    if not isinstance(a, np.ndarray):
        if type(a).__module__.split(".")[0] in ("torch", "cupy"):
            return a.sum()
        a = np.asarray(to_numpy(a))
    flat = a.reshape(-1)
    return np.dot(flat, flat)


def _step_tensors(names: list[str], params: dict[str, Any], opt_state: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(description, array)`` of every parameter, then every optimiser moment, in the spec's
    parameter order (``blocks.0.weight`` first)."""
    out = [(f"parameter {k!r}", params[k]) for k in names]
    for slot in sorted(k for k in opt_state if k != "step"):
        out += [(f"optimiser state {slot}[{k!r}]", opt_state[slot][k]) for k in names]
    return out


def _non_finite_detail(a: np.ndarray) -> str:
    """E.g. ``"holds 16384 NaN and 0 Inf values (of 16384; first at flat index 0: nan)"``."""
    a = np.asarray(a)
    flat = a.reshape(-1)
    nan, inf = int(np.isnan(flat).sum()), int(np.isinf(flat).sum())
    first = int(np.flatnonzero(~np.isfinite(flat))[0]) if nan + inf else -1
    return (f"holds {nan} NaN and {inf} Inf values (of {flat.size}; first at flat index {first}: "
            f"{float(flat[first]) if first >= 0 else ''})")


def _checked_arrays(shapes: dict[str, tuple[int, ...]], arrays: Any, what: str, dtype: str,
                    error: type[Exception] = CheckpointError, *, nonnegative: bool = False) -> dict[str, np.ndarray]:
    """``arrays`` (name → array) as fresh ``dtype`` arrays after checking names, shapes,
    float type and that every value is finite in ``dtype`` (and ≥ 0 with ``nonnegative``).
    ``what`` names the group in messages (``"parameter"``, ``"optimiser state 'v'"``)."""
    if not isinstance(arrays, dict):
        raise error(f"{what} must be a dict of arrays by name, got {type(arrays).__name__}")
    if set(arrays) != set(shapes):
        extra, missing = sorted(map(str, set(arrays) - set(shapes))), sorted(set(shapes) - set(arrays))
        raise error(f"{what} names do not match the network: missing {missing}, unexpected {extra}")
    out: dict[str, np.ndarray] = {}
    for k in shapes:
        item = f"{what} {k!r}" if what == "parameter" else f"{what} entry {k!r}"
        try:
            a = np.asarray(arrays[k])
        except (TypeError, ValueError) as exc:
            raise error(f"{item} is not an array: {exc}") from exc
        if a.shape != shapes[k] or not np.issubdtype(a.dtype, np.floating):
            raise error(f"{item}: expected floats of shape {shapes[k]}, got {a.dtype} {a.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            conv = np.array(a, dtype=dtype)
        if not np.isfinite(conv).all():
            cast = f" once converted to {dtype} (its values exceed the {dtype} range)" if np.isfinite(a).all() else ""
            raise error(f"{item} {_non_finite_detail(conv)}{cast}: a model with NaN or Inf values cannot be "
                        "trained or used; take an earlier checkpoint or train anew")
        if nonnegative and (conv < 0).any():
            bad = int(np.flatnonzero(conv.reshape(-1) < 0)[0])
            raise error(f"{item} holds negative values (first at flat index {bad}: "
                        f"{float(conv.reshape(-1)[bad])}); Adam's second moment v is a running mean of squared "
                        "gradients and is never negative: the checkpoint is corrupt")
        out[k] = conv
    return out


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def _restored_generator(rng_state: Any) -> np.random.Generator:
    """A generator in the saved ``bit_generator.state`` ``rng_state``; raises
    :class:`tess.errors.CheckpointError` if it names no known bit generator or does not fit it."""
    name = rng_state.get("bit_generator") if isinstance(rng_state, dict) else None
    if name not in _BIT_GENERATORS:
        raise CheckpointError(f"random generator state is invalid: bit_generator={name!r}, expected one of "
                              f"{list(_BIT_GENERATORS)}")
    try:
        bit_gen = getattr(np.random, name)()
        bit_gen.state = rng_state
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise CheckpointError(f"random generator state is invalid ({type(exc).__name__}: {exc})") from exc
    return np.random.Generator(bit_gen)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _validated_history(history: Any, epoch: int) -> list[EpochMetrics]:
    if not isinstance(history, list):
        raise CheckpointError(f"training history must be a list of epoch records, got {type(history).__name__}")
    out = []
    for i, h in enumerate(history):
        if not isinstance(h, dict):
            raise CheckpointError(f"training history entry {i} is {h!r}, not a mapping of epoch metrics")
        try:
            m = EpochMetrics(**h)
        except TypeError as exc:
            raise CheckpointError(f"training history entry {i} is invalid: {exc}") from exc
        for field in ("train_loss", "train_accuracy", "lr", "seconds"):
            v = getattr(m, field)
            if not _is_real(v) or not math.isfinite(v):
                raise CheckpointError(f"training history entry {i}: {field}={v!r} is invalid: expected a finite number")
        for field in ("test_loss", "test_accuracy"):
            v = getattr(m, field)
            if v is not None and (not _is_real(v) or not math.isfinite(v)):
                raise CheckpointError(f"training history entry {i}: {field}={v!r} is invalid: expected a finite "
                                      "number or null")
        if not _is_int(m.epoch) or m.epoch != i + 1:
            raise CheckpointError(f"training history entry {i} is for epoch {m.epoch!r}; expected epoch {i + 1}")
        out.append(m)
    if out and len(out) != epoch:
        raise CheckpointError(f"training history holds {len(out)} epochs but the state is after epoch {epoch}")
    return out


def _validated_state(config: TessConfig, state: dict[str, Any], dtype: str = "float64") -> dict[str, Any]:
    """Check a state dict against ``config`` and return its parts as fresh objects.

    Checked: the network; parameter and optimiser-moment names, shapes and values
    (finite in ``dtype``; Adam's ``v`` ≥ 0); the optimiser step; the schedule
    (``lr`` finite and > 0, ``best`` a number or +∞, ``bad_epochs`` ≥ 0); the epoch;
    the random generator's state; the training history.  Raises
    :class:`tess.errors.CheckpointError` naming the first bad item.
    """
    if not isinstance(state, dict):
        raise CheckpointError(f"a state dict is a dict, got {type(state).__name__}")
    missing = {"config", "params", "opt_state", "schedule", "epoch", "rng"} - set(state)
    if missing:
        raise CheckpointError(f"the state lacks {sorted(missing)}")
    other = state["config"]
    if not isinstance(other, TessConfig):
        raise CheckpointError(f"state['config'] must be a TessConfig, got {type(other).__name__}")
    diff = _network_difference(config, other)
    if diff:
        raise CheckpointError(f"the checkpoint was made for a different network ({diff}); "
                              "load it with its own config (tess.checkpoint.load_checkpoint) or train anew")
    shapes = param_shapes(config)
    params = _checked_arrays(shapes, state["params"], "parameter", dtype)
    opt = state["opt_state"]
    expected = {"step", "m", "v"} if config.optimizer.name == "adam" else {"step", "buf"}
    if not isinstance(opt, dict) or set(opt) != expected:
        raise CheckpointError(f"optimiser state keys {sorted(map(str, opt)) if isinstance(opt, dict) else opt!r} do "
                              f"not match the {config.optimizer.name!r} optimiser (expected {sorted(expected)})")
    moments = {key: _checked_arrays(shapes, opt[key], f"optimiser state {key!r}", dtype, nonnegative=key == "v")
               for key in sorted(expected - {"step"})}
    step = opt["step"]
    if not _is_int(step) or step < 0:
        raise CheckpointError(f"optimiser step {step!r} is invalid: expected a non-negative integer")
    sch = state["schedule"]
    if not isinstance(sch, dict) or {"lr", "best", "bad_epochs"} - set(sch):
        raise CheckpointError(f"schedule state {sch!r} is invalid: expected a mapping with lr, best and bad_epochs")
    lr, best, bad = sch["lr"], sch["best"], sch["bad_epochs"]
    if not _is_real(lr) or not math.isfinite(lr) or lr <= 0:
        raise CheckpointError(f"schedule state lr={lr!r} is invalid: expected a finite learning rate > 0")
    if not _is_real(best) or math.isnan(best) or best == -math.inf:
        raise CheckpointError(f"schedule state best={best!r} is invalid: expected a number (or +inf before the "
                              "first epoch)")
    if not _is_int(bad) or bad < 0:
        raise CheckpointError(f"schedule state bad_epochs={bad!r} is invalid: expected a non-negative integer")
    schedule = PlateauState(lr=float(lr), best=float(best), bad_epochs=int(bad))
    epoch = state["epoch"]
    if not _is_int(epoch) or epoch < 0:
        raise CheckpointError(f"epoch {epoch!r} is invalid: expected a non-negative integer")
    rng = _restored_generator(state["rng"])
    history = _validated_history(state.get("history", []), int(epoch))
    return {
        "params": params,
        "opt_state": {"step": int(step), **moments},
        "schedule": schedule,
        "epoch": int(epoch),
        "rng": rng,
        "history": history,
    }
