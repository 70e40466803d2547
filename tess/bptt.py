"""The BPTT baseline (TESS_RULE.md §10), selected like TESS: a method of the torch backend.

The algorithm lives with the torch backend (:mod:`tess.backends.torch.bptt`: autograd
through the engine's own forward pass and kernels, the spike's derivative taken as
ψ); train it with ``tess.Model(config, "torch", method="bptt")`` or ``tess train
--method bptt --backend torch``.  This module keeps the names earlier code used —
:class:`BPTTModel` (that :class:`~tess.Model`, plus :meth:`BPTTModel.gradients`),
:func:`fit_bptt` — and the CLI's hook :func:`train_cli`.

    >>> from tess.bptt import BPTTModel
    >>> from tess_spec import mlp_digits
    >>> model = BPTTModel(mlp_digits(epochs=1))
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from tess_spec import TessConfig
from tess_spec.errors import ConfigError
from tess_spec.validate import validate_batch

from .model import ArrayDataset, EpochMetrics, Model

__all__ = ["BPTTModel", "fit_bptt", "train_cli"]


class BPTTModel(Model):
    """``Model(config, "torch", method="bptt")``: a network trained by BPTT with surrogate gradients.

    Args:
        config: the same :class:`tess_spec.TessConfig` a TESS run uses; with the same seed
            both draw the same initial weights, batches and dropout masks.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        dtype: ``"float32"`` / ``"float64"``; default ``config.train.dtype``.
        params: NumPy initial parameters; default: drawn from ``config.train.seed``.
        detach_reset: treat the reset term as a constant in the backward pass.
    """

    def __init__(self, config: TessConfig, *, device: str | None = None, dtype: str | None = None,
                 params: dict[str, np.ndarray] | None = None, detach_reset: bool = False) -> None:
        options: dict[str, Any] = {"dtype": dtype or config.train.dtype}
        if device is not None:
            options["device"] = device
        super().__init__(config, "torch", params, method="bptt", **options)
        self.backend.kernels.detach_reset = bool(detach_reset)  # type: ignore[attr-defined]

    def gradients(self, x: np.ndarray, y: np.ndarray,
                  masks: Sequence[np.ndarray | None] | None = None) -> dict[str, np.ndarray]:
        """The BPTT gradient ``∂L/∂θ`` of every parameter as NumPy (no optimiser step)."""
        from tess.backends.torch.bptt import loss_and_gradients

        validate_batch(self.config, np.asarray(x), np.asarray(y))
        be = self.backend
        mt = None if masks is None else [None if m is None else be.asarray(m) for m in masks]
        _, _, grads = loss_and_gradients(be.kernels, be.plan(self.config), self.params,  # type: ignore[attr-defined]
                                         be.asarray(np.asarray(x, dtype=be.dtype)), be.kernels.labels(y), mt)
        return {k: be.to_numpy(g) for k, g in grads.items()}


def fit_bptt(
    config: TessConfig, train: ArrayDataset, test: ArrayDataset | None = None, *, device: str | None = None,
    dtype: str | None = None, detach_reset: bool = False, on_batch: Callable[[int, int, Any], None] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
) -> BPTTModel:
    """Build a :class:`BPTTModel` and train it for ``config.train.epochs`` epochs."""
    model = BPTTModel(config, device=device, dtype=dtype, detach_reset=detach_reset)
    model.fit(train, test, on_batch=on_batch, on_epoch=on_epoch)
    return model


def train_cli(
    config: TessConfig, backend_name: str, backend_options: dict[str, Any], train: ArrayDataset,
    test: ArrayDataset | None, on_batch: Callable[[int, int, Any], None] | None,
) -> list[dict[str, Any]]:
    """``tess train --method bptt``: train the baseline and return the epoch metric dicts.

    BPTT needs autograd, so it runs on PyTorch only: ``--backend torch`` (with
    ``--device``/``--dtype`` as usual).  This is the CLI's hook, so it prints one
    line per epoch like the TESS path of the CLI does.
    """
    if backend_name != "torch":
        raise ConfigError(
            f"--method bptt runs on PyTorch autograd, not on backend {backend_name!r}; pass --backend torch"
        )
    unknown = set(backend_options) - {"dtype", "device"}
    if unknown:
        raise ConfigError(f"--method bptt does not accept backend options {sorted(unknown)}")

    def on_epoch(m: EpochMetrics) -> None:
        print(f"epoch {m.epoch:3d}  loss {m.train_loss:.4f}  train {100 * m.train_accuracy:6.2f}%  "
              f"test {100 * (m.test_accuracy or 0):6.2f}%  lr {m.lr:.2e}  {m.seconds:.1f}s  [bptt]", flush=True)

    model = Model(config, "torch", method="bptt", **backend_options)
    return [m.to_dict() for m in model.fit(train, test, on_batch=on_batch, on_epoch=on_epoch)]
