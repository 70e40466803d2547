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
from tess_spec.errors import ConfigError, DataError
from tess_spec.optim import PlateauState, plateau_update
from tess_spec.validate import validate_batch

from .backend import Backend, TrainOutput
from .registry import get_backend

__all__ = ["Model", "EpochMetrics", "ArrayDataset"]

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


class Model:
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

    @property
    def lr(self) -> float:
        """The current learning rate (after the schedule)."""
        return self.schedule.lr

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

    def fit(
        self,
        train: ArrayDataset,
        test: ArrayDataset | None = None,
        *,
        epochs: int | None = None,
        on_batch: Callable[[int, int, TrainOutput], None] | None = None,
        on_epoch: Callable[[EpochMetrics], None] | None = None,
    ) -> list[EpochMetrics]:
        """Train for ``epochs`` (default ``config.train.epochs``) epochs.

        Each epoch shuffles with the model's generator, trains on mini-batches of
        ``config.train.batch_size`` (the last may be smaller), evaluates on
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
            for s in range(0, n, bs):
                idx = order[s : s + bs]
                out = self.train_batch(train.x[idx], train.y[idx])
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

    def numpy_params(self) -> dict[str, np.ndarray]:
        """Current parameters as NumPy arrays."""
        return self.backend.params_to_numpy(self.params)
