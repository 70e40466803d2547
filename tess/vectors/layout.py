"""Names, shapes, axis names and file formats of the exported arrays — shared by the
exporter and the checker, so that both read one description.

Every array is a C-order (row-major), little-endian array written twice: as
``NAME.npy`` (NumPy's format, version 1.0 header) and as ``NAME.bin`` (the raw
bytes, nothing else; its dtype and shape are in the manifest).  Names:

* inputs: ``x``, ``y``, ``mask.{i}``, ``lsg_basis.{i}``, ``params.{p}``,
  ``opt.m.{p}`` / ``opt.v.{p}`` (Adam) or ``opt.buf.{p}`` (SGD);
* expected (and the results an implementation writes, same names): per block
  ``u.{i}, o.{i}, psi.{i}, q.{i}, h.{i}, m.{i}`` ``(T, batch, ...)``, ``logits``,
  ``lsg_loss``, ``loss``, ``n_correct``, ``dw_causal.{i}``, ``dw_noncausal.{i}``,
  ``grads.{p}``, ``params.{p}`` (after the optimiser step), ``opt.{moment}.{p}``
  and ``opt.step``;

with ``i`` the block index and ``p`` a parameter name such as ``blocks.0.weight``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tess_spec.config import TessConfig
from tess_spec.init import param_shapes
from tess_spec.shapes import block_shapes

__all__ = ["PER_STEP", "OPTIONAL_RESULTS", "QUANTITY_OF", "neuron_axes", "input_axes", "param_axes",
           "expected_layout", "npy_bytes", "bin_bytes", "read_array"]

PER_STEP: tuple[str, ...] = ("u", "o", "psi", "q", "h", "m")
"""Per-block, per-step record quantities, in the order a block computes them within a step."""

OPTIONAL_RESULTS: tuple[str, ...] = ("lsg_loss", "loss", "n_correct")
"""Results an implementation may leave out (reported as not written, not as a failure)."""

QUANTITY_OF: dict[str, str] = {
    "u": "u", "o": "o", "psi": "psi", "q": "q", "h": "h", "m": "m", "logits": "logits", "lsg_loss": "lsg_loss",
    "loss": "loss", "n_correct": "loss", "dw_causal": "dw", "dw_noncausal": "dw", "grads": "grads",
    "params": "params", "opt": "params",
}
"""Result name (its first dotted part) → the tolerance-policy quantity it is judged by
(``o`` is compared exactly, with the spike band in float32)."""


def neuron_axes(shape: tuple[int, ...]) -> list[str]:
    """Axis names of a block's neurons: ``[neuron]`` or ``[channel, row, col]``."""
    return ["neuron"] if len(shape) == 1 else ["channel", "row", "col"]


def input_axes(shape: tuple[int, ...]) -> list[str]:
    """Axis names of a block's input (a linear block's input is flattened)."""
    return ["input"] if len(shape) == 1 else ["channel", "row", "col"]


def param_axes(name: str, shape: tuple[int, ...]) -> list[str]:
    """Axis names of a parameter (or its gradient / optimiser moment)."""
    if name.endswith(".weight"):
        if name.startswith("readout."):
            return ["class", "feature"]
        return ["out", "in"] if len(shape) == 2 else ["out", "in_channel", "kernel_row", "kernel_col"]
    return ["class"] if name.startswith("readout.") else ["out"]


def expected_layout(config: TessConfig, batch: int, moments: list[str]) -> dict[str, tuple[tuple[int, ...], list[str]]]:
    """Name → ``(shape, axes)`` of every expected result, in export order."""
    T = config.train.T
    L = len(config.network.blocks)
    out: dict[str, tuple[tuple[int, ...], list[str]]] = {}
    shapes = block_shapes(config.network)
    for key in PER_STEP:
        for i, bs in enumerate(shapes):
            sh = bs.input if key == "q" else bs.neurons
            ax = input_axes(sh) if key == "q" else neuron_axes(sh)
            out[f"{key}.{i}"] = ((T, batch, *sh), ["t", "batch", *ax])
    out["logits"] = ((T, batch, config.network.n_classes), ["t", "batch", "class"])
    out["lsg_loss"] = ((T, L), ["t", "block"])
    out["loss"] = ((), [])
    out["n_correct"] = ((), [])
    for key in ("dw_causal", "dw_noncausal"):
        for i, bs in enumerate(shapes):
            out[f"{key}.{i}"] = (bs.weight, param_axes(f"blocks.{i}.weight", bs.weight))
    pshapes = param_shapes(config)
    for p, sh in pshapes.items():
        out[f"grads.{p}"] = (sh, param_axes(p, sh))
    for p, sh in pshapes.items():
        out[f"params.{p}"] = (sh, param_axes(p, sh))
    for mom in moments:
        for p, sh in pshapes.items():
            out[f"opt.{mom}.{p}"] = (sh, param_axes(p, sh))
    out["opt.step"] = ((), [])
    return out


def npy_bytes(a: np.ndarray) -> bytes:
    """``a`` as a ``.npy`` file (format 1.0, little-endian, C order, no pickle): bytes that
    depend only on the array."""
    a = np.asarray(a, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=(1, 0), allow_pickle=False)
    return buf.getvalue()


def bin_bytes(a: np.ndarray) -> bytes:
    """``a`` as raw little-endian C-order bytes."""
    a = np.asarray(a, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
    return a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes(order="C")


def read_array(directory: Path, name: str, shape: tuple[int, ...], dtype: str) -> tuple[np.ndarray | None, str]:
    """Read ``directory/name.npy`` if it exists (any real dtype, its own header) else
    ``directory/name.bin`` (``shape`` and ``dtype`` as given); ``(array, "")`` or ``(None, why not)``."""
    npy, raw = Path(directory) / f"{name}.npy", Path(directory) / f"{name}.bin"
    if npy.is_file():
        try:
            a = np.load(npy, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            return None, f"{npy.name} is not a readable .npy file ({exc})"
        if a.dtype.kind not in "fiub":
            return None, f"{npy.name} has dtype {a.dtype}; expected a real number dtype"
        return a, ""
    if raw.is_file():
        data = raw.read_bytes()
        dt = np.dtype(dtype).newbyteorder("<")
        want = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if len(data) != want:
            return None, (f"{raw.name} has {len(data)} bytes; expected {want} (shape {list(shape)}, {dtype}, "
                          "little-endian)")
        return np.frombuffer(data, dtype=dt).reshape(shape), ""
    return None, f"missing: neither {npy.name} nor {raw.name} was written"

