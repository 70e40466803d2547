"""The :class:`Dataset` container and where datasets live on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from tess_spec.errors import DataError

__all__ = ["Dataset", "Transform", "data_root", "DATA_DIR_ENV"]

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""A batch transform ``f(x_batch, rng) -> x_batch`` (training-time augmentation); all of its
randomness comes from ``rng``, the model's single spec generator."""

DATA_DIR_ENV = "TESS_DATA_DIR"
"""Environment variable naming the default data folder (else ``./data``)."""


@dataclass(frozen=True)
class Dataset:
    """Samples and labels.

    Attributes:
        x: ``(N, *frame_shape)`` for direct input or ``(N, T, *frame_shape)`` for sequences
            (event frames are stored as ``uint16`` counts; backends cast to their float dtype).
        y: ``(N,)`` int64 labels in ``[0, n_classes)``.
        n_classes: number of classes.
        name: dataset name (and split).
        sequence: whether ``x`` carries a time axis.
        transform: optional training-time augmentation ``f(x_batch, rng)`` that
            :meth:`tess.Model.fit` applies to every mini-batch with the model's generator.
    """

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    name: str
    sequence: bool = False
    transform: Optional[Transform] = None

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(f"{self.name}: {len(self.x)} samples but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one input frame."""
        return tuple(self.x.shape[2:] if self.sequence else self.x.shape[1:])


def data_root(data_dir: str | os.PathLike | None) -> Path:
    """The data folder: ``data_dir``, else ``$TESS_DATA_DIR``, else ``./data``."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or "data"
    return Path(data_dir).expanduser()
