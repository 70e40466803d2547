"""Named configurations: the published VGG-9 runs (TESS_RULE.md §8) and small
networks for the embedded data."""

from __future__ import annotations

import math
from typing import Callable

from .config import (
    INT_MAX,
    BlockConfig,
    LSGConfig,
    NetworkConfig,
    TessConfig,
    TraceConfig,
    TrainConfig,
)
from .errors import ConfigError

__all__ = ["vgg9", "vgg9_widths", "mlp_digits", "mlp_events", "mlp_order", "cnn_digits", "PAPER_DATASETS", "PRESETS", "get_preset"]

PAPER_DATASETS: dict[str, dict] = {
    "dvs_gesture": dict(input_shape=(2, 32, 32), n_classes=11, T=20, n_learn=20,
                        factors=(0.2, 0.5, 0.0, 1.0), batch_size=16),
    "cifar10_dvs": dict(input_shape=(2, 48, 48), n_classes=10, T=10, n_learn=10,
                        factors=(0.2, 0.5, 0.0, 1.0), batch_size=64),
    "cifar10": dict(input_shape=(3, 32, 32), n_classes=10, T=6, n_learn=6,
                    factors=(0.2, 0.5, 1.0, 1.0), batch_size=128),
    "cifar100": dict(input_shape=(3, 32, 32), n_classes=100, T=6, n_learn=6,
                     factors=(0.2, 0.5, 1.0, 1.0), batch_size=128),
}
"""Per-dataset settings of the published runs (TESS_RULE.md §8)."""

VGG9_WIDTHS = (64, 128, 256, 256, 512, 512, 512, 512)
VGG9_POOLS: tuple[str | None, ...] = (None, "max", None, "max", None, "max", None, "global_avg")
VGG9_LSG_POOLS = (4, 2, 2, 2, 2, 2, 2, 1)


def vgg9(dataset: str = "dvs_gesture", *, width_scale: float = 1.0, epochs: int = 200) -> TessConfig:
    """VGG-9 (8 conv blocks + readout) with the published settings of ``dataset``.

    ``width_scale`` shrinks every block's channels (a "reduced VGG" that fits a
    small machine keeps the depth, pooling and LSG pools).  Weight standardisation
    is on, dropout 0, Adam lr 1e-3, plateau schedule.
    """
    if not isinstance(dataset, str) or dataset not in PAPER_DATASETS:
        raise ConfigError(f"dataset={dataset!r} has no VGG-9 preset; expected one of {list(PAPER_DATASETS)}")
    d = PAPER_DATASETS[dataset]
    blocks = tuple(
        BlockConfig("conv", w, pool=p, weight_std=True) for w, p in zip(vgg9_widths(width_scale), VGG9_POOLS)
    )
    return TessConfig(
        network=NetworkConfig(d["input_shape"], d["n_classes"], blocks),
        traces=TraceConfig(factors=d["factors"]),
        lsg=LSGConfig(pool_sizes=VGG9_LSG_POOLS),
        train=TrainConfig(T=d["T"], n_learn=d["n_learn"], epochs=epochs, batch_size=d["batch_size"]),
    )


def vgg9_widths(width_scale: float = 1.0) -> tuple[int, ...]:
    """Channels of the eight VGG-9 blocks scaled by ``width_scale``: ``round(w · width_scale)``.

    ``width_scale`` must be a finite number > 0 that leaves the narrowest (64-channel)
    block at least one channel, i.e. ``width_scale > 1/128``; anything else raises
    :class:`~tess_spec.errors.ConfigError` (no width is silently clamped).
    """
    ok = isinstance(width_scale, (int, float)) and not isinstance(width_scale, bool)
    if ok:
        try:
            ok = math.isfinite(float(width_scale)) and width_scale > 0
        except OverflowError:
            ok = False
    if not ok:
        raise ConfigError(f"width_scale={width_scale!r} is invalid: expected a finite number > 0 "
                          "(e.g. 0.125 for an eighth of the published widths)")
    widths = tuple(int(round(w * width_scale)) for w in VGG9_WIDTHS)
    if min(widths) < 1:
        raise ConfigError(f"width_scale={width_scale!r} is too small: the {min(VGG9_WIDTHS)}-channel block would get "
                          f"{min(widths)} channels; use width_scale > {1 / 128} (at least one channel in the narrowest block)")
    if max(widths) > INT_MAX:
        raise ConfigError(f"width_scale={width_scale!r} is too large: {max(widths)} channels per block")
    return widths


def mlp_digits(epochs: int = 10, T: int = 6) -> TessConfig:
    """MLP 64-256-256 + readout for the embedded 8×8 digits, direct input, T = 6."""
    return TessConfig(
        network=NetworkConfig((64,), 10, (BlockConfig("linear", 256), BlockConfig("linear", 256))),
        traces=TraceConfig(factors=(0.2, 0.5, 1.0, 1.0)),
        train=TrainConfig(T=T, epochs=epochs, batch_size=32),
    )


def cnn_digits(epochs: int = 10, T: int = 6) -> TessConfig:
    """Small CNN for 1×8×8 digits: conv16 → conv32 (max 2) → linear 128 + readout."""
    return TessConfig(
        network=NetworkConfig(
            (1, 8, 8),
            10,
            (
                BlockConfig("conv", 16, weight_std=True),
                BlockConfig("conv", 32, pool="max", weight_std=True),
                BlockConfig("linear", 128),
            ),
        ),
        traces=TraceConfig(factors=(0.2, 0.5, 1.0, 1.0)),
        lsg=LSGConfig(pool_sizes=(2, 2, 128)),
        train=TrainConfig(T=T, epochs=epochs, batch_size=32),
    )


def mlp_events(epochs: int = 10, T: int = 8) -> TessConfig:
    """MLP 128-256-256 + readout for the synthetic order-coded events (2×8×8 frames, flattened), T = 8."""
    return TessConfig(
        network=NetworkConfig((128,), 6, (BlockConfig("linear", 256), BlockConfig("linear", 256))),
        traces=TraceConfig(factors=(0.2, 0.5, 1.0, 1.0)),
        train=TrainConfig(T=T, epochs=epochs, batch_size=32),
    )


def mlp_order(epochs: int = 10, T: int = 12) -> TessConfig:
    """MLP 32-256-256 + readout for the synthetic temporal-order task (2×4×4 frames, flattened;
    4 classes: the order and spacing of two pulses), T = 12."""
    return TessConfig(
        network=NetworkConfig((32,), 4, (BlockConfig("linear", 256), BlockConfig("linear", 256))),
        traces=TraceConfig(factors=(0.2, 0.5, 1.0, 1.0)),
        train=TrainConfig(T=T, epochs=epochs, batch_size=32),
    )


PRESETS: dict[str, Callable[..., TessConfig]] = {
    "mlp_digits": mlp_digits,
    "mlp_events": mlp_events,
    "mlp_order": mlp_order,
    "cnn_digits": cnn_digits,
    **{f"vgg9_{name}": (lambda name=name, **kw: vgg9(name, **kw)) for name in PAPER_DATASETS},
}
"""Preset name → factory."""


def get_preset(name: str, **kwargs) -> TessConfig:
    """Build a preset by name (``mlp_digits``, ``mlp_events``, ``mlp_order``, ``cnn_digits``, ``vgg9_<dataset>``)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    factory = PRESETS[name]
    try:
        return factory(**kwargs)
    except TypeError as exc:  # an unknown or mistyped keyword of the factory
        raise ConfigError(f"preset {name!r} does not accept {sorted(kwargs)}: {exc}") from exc
