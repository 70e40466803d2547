"""Initial parameters, optimiser state and dropout masks, all drawn from one NumPy
``Generator`` so that every backend sees identical numbers."""

from __future__ import annotations

import numpy as np

from .config import TessConfig
from .shapes import block_shapes

__all__ = [
    "param_names",
    "param_shapes",
    "init_params",
    "init_opt_state",
    "draw_dropout_masks",
    "make_rng",
]


def make_rng(seed: int) -> np.random.Generator:
    """The single generator behind init, shuffling, dropout masks and synthetic data."""
    return np.random.default_rng(seed)


def param_shapes(config: TessConfig) -> dict[str, tuple[int, ...]]:
    """Name → shape of every trainable parameter, in canonical order.

    ``blocks.{i}.weight`` (F, C, k, k) or (F, N); ``blocks.{i}.gain`` (F,) with weight
    standardisation; ``blocks.{i}.bias`` (F,) with a bias; ``readout.weight``
    (n_classes, F_L); ``readout.bias`` (n_classes,).
    """
    net = config.network
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (b, bs) in enumerate(zip(net.blocks, block_shapes(net))):
        shapes[f"blocks.{i}.weight"] = bs.weight
        if b.weight_std:
            shapes[f"blocks.{i}.gain"] = (b.features,)
        if b.bias:
            shapes[f"blocks.{i}.bias"] = (b.features,)
    shapes["readout.weight"] = (net.n_classes, net.blocks[-1].features)
    if net.readout.bias:
        shapes["readout.bias"] = (net.n_classes,)
    return shapes


def param_names(config: TessConfig) -> list[str]:
    """The parameter names of :func:`param_shapes`, in order."""
    return list(param_shapes(config))


def init_params(config: TessConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Float64 initial parameters, drawn in :func:`param_names` order.

    conv weight: Kaiming normal, fan_out, ReLU gain: ``N(0, 2 / (F·k·k))``;
    linear weight: Kaiming normal, fan_in: ``N(0, 2 / N)``; gain 1; bias 0;
    readout weight and bias: ``U(-1/√F_L, 1/√F_L)`` (torch's Linear default).
    """
    params: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(config).items():
        if name.startswith("readout."):
            bound = 1.0 / np.sqrt(config.network.blocks[-1].features)
            params[name] = rng.uniform(-bound, bound, size=shape)
        elif name.endswith(".weight"):
            fan = shape[0] * shape[2] * shape[3] if len(shape) == 4 else shape[1]
            params[name] = rng.normal(0.0, np.sqrt(2.0 / fan), size=shape)
        elif name.endswith(".gain"):
            params[name] = np.ones(shape)
        else:
            params[name] = np.zeros(shape)
    return params


def init_opt_state(config: TessConfig, params: dict[str, np.ndarray]) -> dict:
    """Zero optimiser state: ``{"step": 0, "m": {...}, "v": {...}}`` for Adam,
    ``{"step": 0, "buf": {...}}`` for SGD (same dtype as the params)."""
    zeros = {k: np.zeros_like(v) for k, v in params.items()}
    if config.optimizer.name == "adam":
        return {"step": 0, "m": zeros, "v": {k: np.zeros_like(v) for k, v in params.items()}}
    return {"step": 0, "buf": zeros}


def draw_dropout_masks(
    config: TessConfig, batch: int, rng: np.random.Generator, dtype: str = "float64"
) -> list[np.ndarray | None]:
    """One inverted-dropout mask per block with dropout p > 0, fixed for a whole sequence:
    ``mask = (U[0,1) ≥ p) / (1 - p)`` of shape ``(batch, *neurons)``; ``None`` otherwise."""
    masks: list[np.ndarray | None] = []
    for b, bs in zip(config.network.blocks, block_shapes(config.network)):
        if b.dropout > 0:
            keep = rng.random((batch, *bs.neurons)) >= b.dropout
            masks.append((keep / (1.0 - b.dropout)).astype(dtype))
        else:
            masks.append(None)
    return masks
