"""The backend contract: what every backend offers the user, and the checks every
backend inherits.

A backend is a thin object over a framework (NumPy, PyTorch, JAX, CuPy).  Its
functional core is :meth:`Backend.train_batch` — T steps of TESS on one
mini-batch followed by one optimiser step — and :meth:`Backend.predict`.
Parameters and optimiser state are dicts of framework arrays keyed by
:func:`tess_spec.param_names`; everything crossing the boundary to the user or
the conformance suite is NumPy.  The public methods validate their inputs with
the spec (so every backend raises the same errors) and then call the
underscore methods.  The built-in backends do not write those themselves: they
implement the kernel protocol of :mod:`tess.engine` and inherit
:class:`tess.engine.EngineBackend`, whose underscore methods run the engine.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tess_spec import TessConfig, state_shapes, validate_batch
from tess_spec.errors import ConfigError

__all__ = ["Backend", "TrainOutput"]


@dataclass
class TrainOutput:
    """Result of :meth:`Backend.train_batch`.

    Attributes:
        params: updated parameters (framework arrays).
        opt_state: updated optimiser state (``step`` plus per-parameter moments).
        loss: mean cross-entropy of the time-summed logits (before the update).
        n_correct: samples whose time-summed logits predict the label.
        state: final per-block state ``[{u, o, q, h}, ...]`` (framework arrays).
        record: with ``record=True``, NumPy arrays laid out as
            :func:`tess_spec.reference.train_batch` records them; else ``None``.
    """

    params: dict[str, Any]
    opt_state: dict[str, Any]
    loss: float
    n_correct: int
    state: list[dict[str, Any]]
    record: dict[str, Any] | None = field(default=None)


class Backend(abc.ABC):
    """Base class of every backend (built-in or third-party).

    Subclasses set :attr:`name` and implement :meth:`asarray`, :meth:`to_numpy`,
    :meth:`_train_batch` and :meth:`_predict` (or inherit :class:`tess.engine.EngineBackend`,
    which implements the last two with the engine).

    ``method`` selects the training method among :attr:`methods` (``"tess"``; the torch
    backend also offers ``"bptt"``, the baseline trained by autodiff).
    """

    name: ClassVar[str] = "abstract"
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    methods: ClassVar[tuple[str, ...]] = ("tess",)

    def __init__(self, *, dtype: str = "float32", device: str | None = None, method: str = "tess") -> None:
        if dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype={dtype!r} is invalid: expected 'float32' or 'float64'")
        device = device or self.devices[0]
        if device.split(":")[0] not in self.devices:
            raise ConfigError(
                f"device={device!r} is invalid for the {self.name!r} backend: expected one of {list(self.devices)}"
            )
        if method not in self.methods:
            raise ConfigError(
                f"method={method!r} is invalid for the {self.name!r} backend: expected one of {list(self.methods)}"
            )
        self.dtype: str = dtype
        self.device: str = device
        self.method: str = method

    def __repr__(self) -> str:
        method = "" if self.method == "tess" else f" method={self.method}"
        return f"<tess backend {self.name!r} dtype={self.dtype} device={self.device}{method}>"

    # -- conversions -------------------------------------------------------
    @abc.abstractmethod
    def asarray(self, a: np.ndarray) -> Any:
        """A framework array of this backend's dtype and device holding ``a``."""

    @abc.abstractmethod
    def to_numpy(self, a: Any) -> np.ndarray:
        """A NumPy copy of a framework array."""

    def params_from_numpy(self, params: dict[str, np.ndarray]) -> dict[str, Any]:
        """Convert a NumPy parameter dict to framework arrays of this backend's dtype."""
        return {k: self.asarray(np.asarray(v, dtype=self.dtype)) for k, v in params.items()}

    def params_to_numpy(self, params: dict[str, Any]) -> dict[str, np.ndarray]:
        """Convert framework parameters to NumPy."""
        return {k: self.to_numpy(v) for k, v in params.items()}

    def opt_state_from_numpy(self, opt_state: dict[str, Any]) -> dict[str, Any]:
        """Convert a NumPy optimiser state (``step`` + moment dicts) to framework arrays."""
        return {k: (v if k == "step" else self.params_from_numpy(v)) for k, v in opt_state.items()}

    def opt_state_to_numpy(self, opt_state: dict[str, Any]) -> dict[str, Any]:
        """Convert a framework optimiser state to NumPy."""
        return {k: (int(v) if k == "step" else self.params_to_numpy(v)) for k, v in opt_state.items()}

    def init_state(self, config: TessConfig, batch: int) -> list[dict[str, Any]]:
        """Zero per-block state ``[{u, o, q, h}, ...]``; shapes from :func:`tess_spec.state_shapes`."""
        return [
            {k: self.asarray(np.zeros(s, dtype=self.dtype)) for k, s in d.items()}
            for d in state_shapes(config.network, batch)
        ]

    def info(self) -> dict[str, str]:
        """Name, dtype, device and framework version (for reports)."""
        info = {"backend": self.name, "dtype": self.dtype, "device": self.device}
        if self.method != "tess":
            info["method"] = self.method
        return info

    # -- the functional core ----------------------------------------------
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
        """T steps of TESS on a batch and one optimiser step.

        ``x``: ``(B, *input_shape)`` (direct input) or ``(B, T, *input_shape)``;
        ``y``: ``(B,)`` integer labels; ``masks``: per-block dropout masks or
        ``None`` (drawn by the caller from the spec RNG); ``lr`` overrides the
        configured learning rate (the schedule's current value).
        """
        x, y, masks = self.validated_batch(config, x, y, masks)
        xb = self.asarray(x)
        mb = [None if m is None else self.asarray(m) for m in masks]
        return self._train_batch(
            config, params, opt_state, xb, y, mb, float(config.optimizer.lr if lr is None else lr), bool(record)
        )

    def validated_batch(
        self, config: TessConfig, x: np.ndarray, y: np.ndarray, masks: list[np.ndarray | None] | None
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
        """The checks every backend's :meth:`train_batch` makes, on the host: config type,
        batch shape/values/labels (:func:`tess_spec.validate_batch`) and one mask per block.
        Returns ``x`` and the masks in this backend's dtype and ``y`` as int64 (NumPy)."""
        self._check_config(config)
        x = np.asarray(x)
        y = np.asarray(y)
        validate_batch(config, x, y, dtype=self.dtype)
        if masks is None:
            masks = [None] * len(config.network.blocks)
        if len(masks) != len(config.network.blocks):
            raise ConfigError(f"got {len(masks)} dropout masks for {len(config.network.blocks)} blocks")
        dropout = [m if m is None else np.asarray(m, dtype=self.dtype) for m in masks]
        return x.astype(self.dtype, copy=False), y.astype(np.int64), dropout

    def predict(self, config: TessConfig, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        """Time-summed logits ``(B, n_classes)`` as NumPy (no learning, no dropout)."""
        return self.to_numpy(self._predict(config, params, self.asarray(self.validated_input(config, x))))

    def validated_input(self, config: TessConfig, x: np.ndarray) -> np.ndarray:
        """:meth:`predict`'s host-side checks; returns ``x`` in this backend's dtype (NumPy)."""
        self._check_config(config)
        x = np.asarray(x)
        validate_batch(config, x, dtype=self.dtype)
        return x.astype(self.dtype, copy=False)

    def _check_config(self, config: TessConfig) -> None:
        if not isinstance(config, TessConfig):
            raise ConfigError(f"config must be a tess_spec.TessConfig, got {type(config).__name__}")

    @abc.abstractmethod
    def _train_batch(
        self,
        config: TessConfig,
        params: dict[str, Any],
        opt_state: dict[str, Any],
        x: Any,
        y: np.ndarray,
        masks: list[Any],
        lr: float,
        record: bool,
    ) -> TrainOutput:
        """Backend implementation of :meth:`train_batch` (inputs already validated)."""

    @abc.abstractmethod
    def _predict(self, config: TessConfig, params: dict[str, Any], x: Any) -> Any:
        """Backend implementation of :meth:`predict`."""
