"""Datasets as NumPy arrays, offline: tess reads local files and never downloads.

- ``digits`` is embedded (scikit-learn's bundled 8×8 handwritten digits, 1,797
  images, BSD-3-Clause; originally the UCI optical-recognition set) and is
  presented as direct input: the same image at every time step.
- ``dvs_gesture`` (:func:`load_dvs_gesture`), ``cifar10_dvs`` (:func:`load_cifar10_dvs`),
  ``cifar10`` / ``cifar100`` (:func:`load_cifar10`, :func:`load_cifar100`): the paper's
  datasets (TESS_RULE.md §8) from the files their publishers distribute; each
  loader's docstring says which files to put where, and the error raised when
  they are missing says it too.  Event data becomes ``uint16`` count frames
  (:mod:`tess.datasets.frames`), converted once and cached.
- :mod:`tess.datasets.fake` writes tiny datasets in those same formats.

Licences: the optional ``tonic`` package (extra ``data``) is GPL-3.0; tess (MIT)
never imports it — it reads the files tonic downloads with its own readers
(:mod:`tess.datasets.formats`).
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Callable

import numpy as np

from tess_spec.errors import ConfigError

from .base import DATA_DIR_ENV, Dataset, Transform, data_root
from .cifar import CropFlip, load_cifar10, load_cifar100
from .cifar10_dvs import load_cifar10_dvs
from .dvs_gesture import load_dvs_gesture
from .frames import Events, events_to_frames

__all__ = [
    "Dataset",
    "Transform",
    "Events",
    "CropFlip",
    "DATA_DIR_ENV",
    "data_root",
    "events_to_frames",
    "load_digits",
    "load_dvs_gesture",
    "load_cifar10_dvs",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "DATASETS",
    "PAPER_DATASETS",
    "register_dataset",
]


DIGITS_SPLIT_SEED = 20250203
"""Seed of the fixed train/test split of digits (independent of the training seed)."""


def load_digits(*, shape: str = "flat", test_fraction: float = 0.2) -> tuple[Dataset, Dataset]:
    """The embedded 8×8 digits as ``(train, test)``, pixel values scaled to [0, 1].

    ``shape="flat"`` gives ``(N, 64)`` (for MLPs), ``"image"`` gives ``(N, 1, 8, 8)``.
    The split is fixed (seeded by :data:`DIGITS_SPLIT_SEED`, stratified by class).
    """
    if shape not in ("flat", "image"):
        raise ConfigError(f"shape={shape!r} is invalid: expected 'flat' or 'image'")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction={test_fraction!r} is invalid: expected a number in (0, 1)")
    with resources.files("tess.data").joinpath("digits.npz").open("rb") as fh:
        data = np.load(fh)
        images, labels = data["images"], data["labels"]
    x = images.astype(np.float32) / 16.0
    x = x.reshape(-1, 64) if shape == "flat" else x.reshape(-1, 1, 8, 8)
    y = labels.astype(np.int64)
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        test_idx.append(rng.permutation(idx)[: int(round(len(idx) * test_fraction))])
    test_mask = np.zeros(len(y), bool)
    test_mask[np.concatenate(test_idx)] = True
    return (
        Dataset(x[~test_mask], y[~test_mask], 10, "digits/train"),
        Dataset(x[test_mask], y[test_mask], 10, "digits/test"),
    )


def _load_events(*, shape: str = "flat", n_train: int = 1200, n_test: int = 300, T: int = 8,
                 seed: int = 0) -> tuple[Dataset, Dataset]:
    """The synthetic order-coded events (:func:`tess.datasets.synthetic.load_synthetic_events`)."""
    from .synthetic import load_synthetic_events

    return load_synthetic_events(shape=shape, n_train=n_train, n_test=n_test, T=T, seed=seed)


def _load_order(*, shape: str = "flat", n_train: int = 1200, n_test: int = 400, T: int = 12,
                seed: int = 0) -> tuple[Dataset, Dataset]:
    """The synthetic temporal-order task: the class is the order and spacing of two pulses, and
    the time-summed input is at chance (:func:`tess.datasets.synthetic.load_temporal_order`)."""
    from .synthetic import load_temporal_order

    return load_temporal_order(shape=shape, n_train=n_train, n_test=n_test, T=T, seed=seed)


DATASETS: dict[str, Callable[..., tuple[Dataset, Dataset]]] = {
    "digits": load_digits,
    "events": _load_events,
    "order": _load_order,
    "dvs_gesture": load_dvs_gesture,
    "cifar10_dvs": load_cifar10_dvs,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
}
"""Dataset name → loader returning ``(train, test)``."""


def register_dataset(name: str, loader: Callable[..., tuple[Dataset, Dataset]]) -> None:
    """Register a loader under ``name`` (used by the CLI's ``--dataset``)."""
    DATASETS[name] = loader


PAPER_DATASETS: tuple[str, ...] = ("dvs_gesture", "cifar10_dvs", "cifar10", "cifar100")
"""The datasets of the published runs (TESS_RULE.md §8), read from ``data_dir``."""


def load_dataset(name: str, **kwargs: Any) -> tuple[Dataset, Dataset]:
    """Load ``(train, test)`` of a registered dataset by name."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}") from None
    return loader(**kwargs)
