"""The stateful wrapper over a backend's functional core: parameters, optimiser
state, learning-rate schedule, and the epoch loop (shuffling, batching, dropout
masks — all from the spec's single NumPy generator, so every backend sees the
same numbers)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol

import numpy as np

from tess_spec import TessConfig, draw_dropout_masks, init_opt_state, init_params, make_rng
from tess_spec.errors import CheckpointError, ConfigError, DataError
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
        n = len(train.y)
        if n == 0:
            raise DataError("the training set is empty")
        epochs = self.config.train.epochs if epochs is None else epochs
        if not isinstance(epochs, int) or epochs < 0:
            raise ConfigError(f"epochs={epochs!r} is invalid: expected a non-negative integer")
        bs = self.config.train.batch_size
        sc = self.config.schedule
        for _ in range(epochs):
            t0 = time.perf_counter()
            order = self.rng.permutation(n)
            loss_sum, correct = 0.0, 0
            transform = getattr(train, "transform", None)
            for s in range(0, n, bs):
                idx = order[s : s + bs]
                xb = train.x[idx]
                if transform is not None:
                    xb = transform(xb, self.rng)
                out = self.train_batch(xb, train.y[idx])
                loss_sum += out.loss * len(idx)
                correct += out.n_correct
                if on_batch is not None:
                    on_batch(min(s + bs, n), n, out)
            train_loss = loss_sum / n
            if not np.isfinite(train_loss):
                raise DataError(
                    f"training diverged in epoch {self.epoch + 1}: the loss is {train_loss}; "
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



class Model(EpochLoop):
    """A TESS network bound to a backend.

    Args:
        config: the run's :class:`tess_spec.TessConfig`.
        backend: a :class:`tess.Backend` or a backend name (default ``"numpy"``);
            with a name, ``backend_options`` go to :func:`tess.get_backend` and the
            dtype defaults to ``config.train.dtype``.
        params: NumPy initial parameters; default: drawn from ``config.train.seed``.
    """

    def __init__(
        self,
        config: TessConfig,
        backend: Backend | str = "numpy",
        params: dict[str, np.ndarray] | None = None,
        **backend_options: Any,
    ) -> None:
        if not isinstance(config, TessConfig):
            raise ConfigError(f"config must be a tess_spec.TessConfig, got {type(config).__name__}")
        if isinstance(backend, str):
            backend_options.setdefault("dtype", config.train.dtype)
            backend = get_backend(backend, **backend_options)
        elif backend_options:
            raise ConfigError("backend options are only accepted with a backend name")
        self.config = config
        self.backend = backend
        self.rng = make_rng(config.train.seed)
        np_params = init_params(config, self.rng) if params is None else params
        self.params = backend.params_from_numpy(np_params)
        self.opt_state = backend.opt_state_from_numpy(
            init_opt_state(config, {k: np.asarray(v, dtype=backend.dtype) for k, v in np_params.items()})
        )
        self.schedule = PlateauState(lr=config.optimizer.lr)
        self.epoch = 0
        self.history: list[EpochMetrics] = []

    def train_batch(self, x: np.ndarray, y: np.ndarray, *, record: bool = False) -> TrainOutput:
        """One mini-batch: draw dropout masks from the model's generator, run the
        backend's train step, keep the updated parameters."""
        masks = draw_dropout_masks(self.config, int(np.shape(x)[0]), self.rng, self.backend.dtype)
        out = self.backend.train_batch(
            self.config, self.params, self.opt_state, x, y, masks=masks, lr=self.lr, record=record
        )
        self.params, self.opt_state = out.params, out.opt_state
        return out

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Time-summed logits ``(N, n_classes)``, computed in batches."""
        x = np.asarray(x)
        if x.shape[:1] == (0,):
            raise DataError("cannot predict on an empty array")
        parts = [
            self.backend.predict(self.config, self.params, x[s : s + batch_size])
            for s in range(0, x.shape[0], batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> tuple[float, float]:
        """``(loss, accuracy)`` of the time-summed logits on ``(x, y)``."""
        x, y = np.asarray(x), np.asarray(y)
        validate_batch(self.config, x, y)
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
            new = _validated_state(self.config, state)
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


def _validated_state(config: TessConfig, state: dict[str, Any]) -> dict[str, Any]:
    """Check a state dict against ``config`` and return its parts as fresh objects."""
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
    params = state["params"]
    if set(params) != set(shapes):
        raise CheckpointError(f"parameter names differ: checkpoint {sorted(params)} vs model {sorted(shapes)}")
    for k, shp in shapes.items():
        a = np.asarray(params[k])
        if a.shape != shp or not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)):
            raise CheckpointError(f"parameter {k!r}: expected finite floats of shape {shp}, got {a.dtype} {a.shape}")
    opt = state["opt_state"]
    expected = {"step", "m", "v"} if config.optimizer.name == "adam" else {"step", "buf"}
    if not isinstance(opt, dict) or set(opt) != expected:
        raise CheckpointError(f"optimiser state keys {sorted(opt) if isinstance(opt, dict) else opt!r} do not match "
                              f"the {config.optimizer.name!r} optimiser (expected {sorted(expected)})")
    for key in expected - {"step"}:
        if set(opt[key]) != set(shapes) or any(np.shape(opt[key][k]) != shapes[k] for k in shapes):
            raise CheckpointError(f"optimiser state {key!r} does not match the parameters' names and shapes")
    step = opt["step"]
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise CheckpointError(f"optimiser step {step!r} is invalid: expected a non-negative integer")
    sch = state["schedule"]
    try:
        schedule = PlateauState(lr=float(sch["lr"]), best=float(sch["best"]), bad_epochs=int(sch["bad_epochs"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"schedule state {sch!r} is invalid: {exc}") from exc
    epoch = state["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise CheckpointError(f"epoch {epoch!r} is invalid: expected a non-negative integer")
    rng_state = state["rng"]
    try:
        bit_gen = getattr(np.random, rng_state["bit_generator"])()
        bit_gen.state = rng_state
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"random generator state is invalid: {exc}") from exc
    try:
        history = [EpochMetrics(**h) for h in state.get("history", [])]
    except TypeError as exc:
        raise CheckpointError(f"training history is invalid: {exc}") from exc
    return {
        "params": {k: np.array(params[k]) for k in shapes},
        "opt_state": {k: (int(v) if k == "step" else {n: np.array(a) for n, a in v.items()})
                      for k, v in opt.items()},
        "schedule": schedule,
        "epoch": int(epoch),
        "rng": np.random.Generator(bit_gen),
        "history": history,
    }
