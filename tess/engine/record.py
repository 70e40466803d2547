"""The record of a mini-batch, assembled once for every backend.

With ``record=True`` the engine returns one stacked row part per scanned segment
(:func:`~tess.engine.record_row` per step); :func:`assemble_record` turns them into
the NumPy layout of :func:`tess_spec.reference.train_batch`: ``u, o, psi, q, h, m``
(lists over blocks of ``(T, B, ...)``, NCHW), ``logits`` ``(T, B, n_classes)``,
``lsg_loss`` ``(T, L)``, the window sums ``dw_causal`` / ``dw_noncausal``, the
``grads`` handed to the optimiser, ``loss``, ``n_correct`` and the final ``state``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tess_spec.plan import NetworkPlan

from .kernels import Kernels
from .train import TrainResult
from .types import params_to_flat

__all__ = ["STEP_KEYS", "assemble_record"]

STEP_KEYS: tuple[str, ...] = ("u", "o", "psi", "q", "h", "m")
"""Per-block quantities recorded at every step."""


def _host(K: Kernels, a: Any) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else K.to_numpy(a)


def _spec_layout(K: Kernels, a: np.ndarray) -> np.ndarray:
    """``(T, B, H, W, C)`` → ``(T, B, C, H, W)`` for a channels-last backend."""
    if K.layout == "NHWC" and a.ndim == 5:
        return np.ascontiguousarray(a.transpose(0, 1, 4, 2, 3))
    return a


def assemble_record(K: Kernels, plan: NetworkPlan, result: TrainResult, n: int, loss: float, n_correct: int,
                    state: list[dict[str, Any]]) -> dict[str, Any]:
    """The record of :func:`tess_spec.reference.train_batch` from a recorded :class:`TrainResult`.

    ``n``: the real samples (rows beyond it, which pad a batch, are dropped); ``state``:
    the final state as the backend returns it (spec layout, framework arrays)."""
    parts = result.rows or []
    L = len(plan.blocks)

    def cat(get: Any) -> np.ndarray:
        return np.concatenate([_host(K, get(p)) for p in parts], axis=0)

    rec: dict[str, Any] = {
        key: [_spec_layout(K, cat(lambda p, i=i, key=key: p[key][i])[:, :n]) for i in range(L)] for key in STEP_KEYS
    }
    rec["logits"] = cat(lambda p: p["logits"])[:, :n]
    rec["lsg_loss"] = np.stack([cat(lambda p, i=i: p["lsg_loss"][i]) for i in range(L)], axis=1).astype(np.float64)
    rec["dw_causal"] = [K.to_numpy(bs.causal) for bs in result.sums.blocks]
    rec["dw_noncausal"] = [K.to_numpy(bs.noncausal) for bs in result.sums.blocks]
    rec["grads"] = {k: K.to_numpy(v) for k, v in params_to_flat(plan, result.grads).items()}
    rec["loss"] = loss
    rec["n_correct"] = n_correct
    rec["state"] = [{k: K.to_numpy(v) for k, v in s.items()} for s in state]
    return rec
