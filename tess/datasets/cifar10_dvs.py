"""CIFAR10-DVS (Li et al., Front. Neurosci. 2017) from local files: 10 classes,
10,000 recordings of 128×128 events → ``(T, 2, 48, 48)`` frames (T = 10 in the
paper), split 9:1 within each class.

On-disk layout (tess never downloads): one folder per class, named as the CIFAR-10
classes, holding one file per recording, under ``<data_dir>/CIFAR10DVS/`` or
directly under ``<data_dir>/``:

    <data_dir>/CIFAR10DVS/airplane/cifar10_airplane_0.aedat
    <data_dir>/CIFAR10DVS/automobile/...

- ``.aedat``: the published AEDAT 2.0 files with DVS128 addresses — unzip the ten
  class archives (``airplane.zip`` …) of https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671
  into ``CIFAR10DVS/``;
- ``.npz`` with arrays ``t, x, y, p`` (e.g. SpikingJelly's ``events_np/<class>/`` folders).
  (tonic's newer release converts to AEDAT4, which is not read here: use the
  figshare originals.)

Split: within each class, the files in natural name order, the first
``⌊0.9·n⌋`` for training and the rest for testing (deterministic, no RNG).
Frames: by default each recording's events are cut into T equal shares in time
order (``split_by="number"``; ``"time"`` gives T equal time windows), and pixel
coordinates are rescaled 128 → 48 by integer floor (``⌊x·48/128⌋``), so each frame
pixel sums the events of the sensor pixels mapping to it.  Converted arrays are
cached under ``<data_dir>/.tess-cache`` (atomic writes).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from tess_spec.errors import ConfigError, DataError

from .base import Dataset, data_root
from .cache import cache_key, load_cached, progress_iter, save_cached
from .formats import read_events
from .frames import FRAME_DTYPE, events_to_frames

__all__ = ["load_cifar10_dvs", "CIFAR10_DVS_CLASSES"]

CIFAR10_DVS_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
"""Class folder names in label order."""

SENSOR = (128, 128)


def _natural(p: Path) -> tuple:
    return tuple(int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name))


def _missing(root: Path, detail: str = "") -> DataError:
    return DataError(
        f"CIFAR10-DVS files not found under {str(root)!r}{detail}. Put one folder per class there, "
        f"{root}/CIFAR10DVS/<class>/*.aedat for <class> in {', '.join(CIFAR10_DVS_CLASSES)} "
        "(or the class folders directly in the data folder): unzip the ten class archives "
        "(airplane.zip, ...) of https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671 "
        "(AEDAT 2.0 files), or use .npz event files with arrays t, x, y, p. "
        "tess never downloads data; pass the folder with --data-dir (CLI), data_dir= (Python) or $TESS_DATA_DIR."
    )


def _find(root: Path) -> Path:
    for base in (root / "CIFAR10DVS", root / "CIFAR10-DVS", root / "cifar10_dvs", root):
        if all((base / c).is_dir() for c in CIFAR10_DVS_CLASSES):
            return base
    raise _missing(root)


def load_cifar10_dvs(
    data_dir: str | os.PathLike | None = None,
    *,
    T: int = 10,
    frame_size: tuple[int, int] = (48, 48),
    split_by: str = "number",
    train_fraction: float = 0.9,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> tuple[Dataset, Dataset]:
    """CIFAR10-DVS as ``(train, test)`` sequences ``(N, T, 2, H, W)`` of ``uint16`` event counts.

    Args:
        data_dir: folder with the class folders (default ``$TESS_DATA_DIR`` or ``./data``).
        T: frames per sample (paper: 10).
        frame_size: ``(H, W)`` (paper: 48×48).
        split_by: ``"number"`` (T equal event shares) or ``"time"`` (T equal time windows).
        train_fraction: share of each class used for training (paper: 0.9).
        cache: reuse / write the converted frames (as in ``load_dvs_gesture``).
        cache_dir: where cached frames go (default ``<data_dir>/.tess-cache``).
        progress: show a progress bar while converting (default: when attached to a terminal).
    """
    if not 0 < train_fraction < 1:
        raise ConfigError(f"train_fraction={train_fraction!r} is invalid: expected a number in (0, 1)")
    if split_by not in ("number", "time"):
        raise ConfigError(f"split_by={split_by!r} is invalid: expected 'number' or 'time'")
    root = data_root(data_dir)
    base = _find(root)
    per_class: list[list[Path]] = []
    for c in CIFAR10_DVS_CLASSES:
        files = sorted((f for f in (base / c).iterdir() if f.suffix.lower() in (".aedat", ".npz")), key=_natural)
        if len(files) < 2:
            raise _missing(root, f" (class folder {base / c} holds {len(files)} .aedat/.npz files; need at least 2)")
        per_class.append(files)
    deps = [f for files in per_class for f in files]
    params: dict[str, Any] = {"T": int(T), "frame_size": list(frame_size), "split_by": split_by,
                              "train_fraction": float(train_fraction)}
    cache_path = Path(cache_dir) if cache_dir is not None else root / ".tess-cache"
    cache_file = cache_path / f"cifar10_dvs-{cache_key('cifar10_dvs', params, deps, root)}.npz"
    arrays = load_cached(cache_file) if cache else None
    if arrays is None:
        frames = np.zeros((len(deps), int(T), 2, *frame_size), FRAME_DTYPE)
        labels = np.concatenate([np.full(len(files), c, np.int64) for c, files in enumerate(per_class)])
        for i, f in enumerate(progress_iter(deps, total=len(deps), desc="CIFAR10-DVS", enabled=progress)):
            events = read_events(f)
            if len(events) == 0:
                raise DataError(f"{str(f)!r} holds no events: a CIFAR10-DVS recording has thousands; the file is "
                                "damaged or truncated — replace it")
            frames[i] = events_to_frames(events, T=int(T), sensor_size=SENSOR,
                                         frame_size=tuple(frame_size), split_by=split_by)
        is_train = np.concatenate([np.arange(len(files)) < int(len(files) * train_fraction) for files in per_class])
        arrays = {"x_train": frames[is_train], "y_train": labels[is_train],
                  "x_test": frames[~is_train], "y_test": labels[~is_train]}
        if cache:
            save_cached(cache_file, arrays)
    n = len(CIFAR10_DVS_CLASSES)
    return (
        Dataset(arrays["x_train"], arrays["y_train"].astype(np.int64), n, "cifar10_dvs/train", sequence=True),
        Dataset(arrays["x_test"], arrays["y_test"].astype(np.int64), n, "cifar10_dvs/test", sequence=True),
    )
