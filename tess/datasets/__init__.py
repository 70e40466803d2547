"""Datasets as NumPy arrays, offline.

``digits`` is embedded (scikit-learn's bundled 8×8 handwritten digits, 1,797
images, BSD-3-Clause; originally the UCI optical-recognition set) and is
presented as direct input: the same image at every time step.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Callable

import numpy as np

from tess_spec.errors import ConfigError, DataError

__all__ = ["Dataset", "load_digits", "load_dataset", "DATASETS", "register_dataset"]


@dataclass(frozen=True)
class Dataset:
    """Samples and labels.

    Attributes:
        x: ``(N, *frame_shape)`` for direct input or ``(N, T, *frame_shape)`` for sequences.
        y: ``(N,)`` int64 labels in ``[0, n_classes)``.
        n_classes: number of classes.
        name: dataset name (and split).
        sequence: whether ``x`` carries a time axis.
    """

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    name: str
    sequence: bool = False

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(f"{self.name}: {len(self.x)} samples but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one input frame."""
        return tuple(self.x.shape[2:] if self.sequence else self.x.shape[1:])


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


def _load_events(**kwargs) -> tuple[Dataset, Dataset]:
    """The synthetic order-coded events (:func:`tess.datasets.synthetic.load_synthetic_events`)."""
    from .synthetic import load_synthetic_events

    return load_synthetic_events(**kwargs)


DATASETS: dict[str, Callable[..., tuple[Dataset, Dataset]]] = {"digits": load_digits, "events": _load_events}
"""Dataset name → loader returning ``(train, test)``."""


def register_dataset(name: str, loader: Callable[..., tuple[Dataset, Dataset]]) -> None:
    """Register a loader under ``name`` (used by the CLI's ``--dataset``)."""
    DATASETS[name] = loader


def load_dataset(name: str, **kwargs) -> tuple[Dataset, Dataset]:
    """Load ``(train, test)`` of a registered dataset by name."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}") from None
    return loader(**kwargs)
