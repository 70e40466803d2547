"""CIFAR-10 and CIFAR-100 from the standard "python version" pickle batches, as
direct input (the same 3×32×32 image at every one of the T = 6 steps).

On-disk layout (tess never downloads), from https://www.cs.toronto.edu/~kriz/cifar.html:

- CIFAR-10: ``<data_dir>/cifar-10-batches-py/data_batch_1 … data_batch_5, test_batch``
  (unpacked ``cifar-10-python.tar.gz``; the tarball itself in ``<data_dir>`` is read too);
- CIFAR-100: ``<data_dir>/cifar-100-python/train, test`` (or ``cifar-100-python.tar.gz``).

Each batch is a pickled dict with ``data`` (N × 3072 uint8, channel-major 3×32×32)
and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100, the 100-class labels
used here).  The pickles are read with a restricted unpickler that only builds
dicts, lists, strings, numbers and NumPy arrays — a crafted file cannot run code.

Preprocessing: pixels scaled to [0, 1] and normalised per channel,
``x̂ = (x/255 - mean_c) / std_c``.  Training batches are augmented by
:class:`CropFlip` — a random 32×32 crop of the image zero-padded by 4 pixels (zero
*before* normalisation, so the pad value is ``-mean_c/std_c``) and a horizontal flip
with probability ½ — drawn from the model's spec generator.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tess_spec.errors import ConfigError, DataError

from .base import Dataset, data_root

__all__ = ["load_cifar10", "load_cifar100", "CropFlip", "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN",
           "CIFAR100_STD", "read_cifar_batch", "normalise"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
"""Per-channel mean of the CIFAR-10 training images (pixels in [0, 1])."""
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
"""Per-channel standard deviation of the CIFAR-10 training images."""
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
"""Per-channel mean of the CIFAR-100 training images."""
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
"""Per-channel standard deviation of the CIFAR-100 training images."""

_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz",
                [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz", ["train"], ["test"], "fine_labels", 100),
}

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"), ("builtins", "bytearray"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except NumPy array reconstruction."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: a CIFAR batch holds only arrays and lists")
        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core" + module[len("numpy.core"):]
        return super().find_class(module, name)


def read_cifar_batch(raw: bytes, label_key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled batch: ``(images (N, 3, 32, 32) uint8, labels (N,) int64)``."""
    try:
        d = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{where} is not a readable CIFAR python batch: {exc}") from exc
    if not isinstance(d, dict):
        raise DataError(f"{where}: expected a pickled dict, got {type(d).__name__}")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or label_key not in d:
        raise DataError(f"{where}: missing key 'data' or {label_key!r} "
                        f"(keys: {sorted(k if isinstance(k, str) else repr(k) for k in d)})")
    try:
        data = np.asarray(d["data"])
        labels = np.asarray(d[label_key])
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{where}: 'data' and {label_key!r} must be arrays of numbers: {exc}") from exc
    if data.dtype != np.uint8 and (data.dtype.kind not in "iu" or data.size and (data.min() < 0 or data.max() > 255)):
        raise DataError(f"{where}: 'data' must hold pixel values 0..255, got {data.dtype}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{where}: {label_key!r} must hold integer labels, got {labels.dtype}")
    if data.ndim != 2 or data.shape[1] != 3072 or labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{where}: expected data (N, 3072) and N labels, got {data.shape} and {labels.shape}")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels.astype(np.int64)


def normalise(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(x/255 - mean_c) / std_c`` as float32, for uint8 images ``(N, 3, H, W)``."""
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return ((images.astype(np.float32) / np.float32(255.0)) - m) / s


@dataclass(frozen=True)
class CropFlip:
    """Random crop (after padding by ``padding`` with ``fill_c``) and horizontal flip, per sample.

    Called as ``f(x, rng)`` on a batch ``(B, C, H, W)``; draws, in this order,
    ``rng.integers(0, 2·padding+1, size=(2, B))`` (row and column offsets) and
    ``rng.random(B) < 0.5`` (flip), so it is reproducible from the spec generator.
    """

    fill: tuple[float, ...]
    padding: int = 4

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x)
        B, C, H, W = x.shape
        p = self.padding
        padded = np.empty((B, C, H + 2 * p, W + 2 * p), x.dtype)
        padded[...] = np.asarray(self.fill, x.dtype).reshape(1, C, 1, 1)
        padded[:, :, p:p + H, p:p + W] = x
        off = rng.integers(0, 2 * p + 1, size=(2, B))
        flip = rng.random(B) < 0.5
        rows = off[0][:, None] + np.arange(H)
        cols = off[1][:, None] + np.arange(W)
        cols = np.where(flip[:, None], cols[:, ::-1], cols)
        b = np.arange(B)[:, None, None, None]
        c = np.arange(C)[None, :, None, None]
        return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]


def _missing(variant: str, root: Path) -> DataError:
    folder, tarball, train, test, _, _ = _LAYOUT[variant]
    name = "CIFAR-10" if variant == "cifar10" else "CIFAR-100"
    return DataError(
        f"{name} files not found under {str(root)!r}. Put {root}/{folder}/ with {', '.join(train + test)} "
        f"there (unpack {tarball} from https://www.cs.toronto.edu/~kriz/cifar.html), or put {tarball} itself "
        f"in {root}. tess never downloads data; pass the folder with --data-dir (CLI), data_dir= (Python) "
        "or $TESS_DATA_DIR."
    )


def _read_batches(variant: str, root: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    folder, tarball, _, _, label_key, _ = _LAYOUT[variant]
    blobs: list[tuple[bytes, str]] = []
    candidates = [root / folder, root] if root.name != folder else [root]
    base = next((b for b in candidates if all((b / n).is_file() for n in names)), None)
    if base is not None:
        try:
            blobs = [((base / n).read_bytes(), str(base / n)) for n in names]
        except OSError as exc:
            raise DataError(f"cannot read the CIFAR batch {exc.filename!r}: {exc.strerror or exc}") from exc
    elif (root / tarball).is_file():
        try:
            with tarfile.open(root / tarball, "r:gz") as tf:
                for n in names:
                    member = tf.extractfile(f"{folder}/{n}")
                    if member is None:
                        raise KeyError(n)
                    blobs.append((member.read(), f"{root / tarball}:{folder}/{n}"))
        except (KeyError, tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as exc:
            raise DataError(f"{root / tarball} is damaged or lacks {folder}/{names}: {exc}") from exc
    else:
        raise _missing(variant, root)
    parts = [read_cifar_batch(raw, label_key, where) for raw, where in blobs]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _load(variant: str, data_dir: str | os.PathLike | None, augment: bool,
          mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[Dataset, Dataset]:
    root = data_root(data_dir)
    _, _, train_names, test_names, _, n_classes = _LAYOUT[variant]
    xtr, ytr = _read_batches(variant, root, train_names)
    xte, yte = _read_batches(variant, root, test_names)
    for y, split in ((ytr, "train"), (yte, "test")):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise DataError(f"{variant} {split} labels leave [0, {n_classes}): {int(y.min())}..{int(y.max())}")
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ConfigError(f"mean={mean!r}, std={std!r} are invalid: expected three means and three positive stds")
    fill = tuple(float(-m / s) for m, s in zip(mean, std))
    transform = CropFlip(fill) if augment else None
    return (
        Dataset(normalise(xtr, mean, std), ytr, n_classes, f"{variant}/train", transform=transform),
        Dataset(normalise(xte, mean, std), yte, n_classes, f"{variant}/test"),
    )


def load_cifar10(data_dir: str | os.PathLike | None = None, *, augment: bool = True,
                 mean: tuple[float, ...] = CIFAR10_MEAN, std: tuple[float, ...] = CIFAR10_STD) -> tuple[Dataset, Dataset]:
    """CIFAR-10 as ``(train, test)``: normalised float32 ``(N, 3, 32, 32)`` direct input;
    the training set carries the :class:`CropFlip` augmentation when ``augment``."""
    return _load("cifar10", data_dir, augment, mean, std)


def load_cifar100(data_dir: str | os.PathLike | None = None, *, augment: bool = True,
                  mean: tuple[float, ...] = CIFAR100_MEAN, std: tuple[float, ...] = CIFAR100_STD) -> tuple[Dataset, Dataset]:
    """CIFAR-100 (fine labels) as ``(train, test)``, preprocessed as :func:`load_cifar10`."""
    return _load("cifar100", data_dir, augment, mean, std)
