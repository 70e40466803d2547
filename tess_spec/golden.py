"""Golden traces: the spec's float64 trajectory of a small network, written to
``.npz`` files that every backend is compared with (``tess.conformance``).

Network: two conv blocks (the second with 2×2 max pooling), one linear block with
a bias, and the readout; event-frame input ``(4, T=8, 2, 5, 5)``; learning window
5; three Adam steps, each on a fresh batch.  Three cases: the ``paper`` and
``reference-code`` profiles, and ``paper`` with weight standardisation and dropout.

Regenerate (bit-identically; a test checks it)::

    python -m tess_spec.golden            # writes conformance/golden/*.npz
    python -m tess_spec.golden --out DIR  # anywhere else

Each file holds a ``meta`` JSON string (spec version, dtype, seed, command,
config, NumPy version) and, per step ``k``: the batch (``step{k}/x``, ``/y``,
``/mask/{i}``), the record in the layout of :func:`tess_spec.reference.train_batch`
(``step{k}/record/u/{i}`` …), and the parameters and optimiser state after the
step; ``init/…`` holds the starting parameters and optimiser state.
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import replace_file
from .config import BlockConfig, LSGConfig, NetworkConfig, OptimizerConfig, TessConfig, TraceConfig, TrainConfig
from .config import from_dict, to_dict
from .init import draw_dropout_masks, init_opt_state, init_params, make_rng
from .reference import train_batch

__all__ = ["GOLDEN_CASES", "GOLDEN_SEED", "N_STEPS", "BATCH", "Golden", "golden_config", "generate",
           "write_npz", "load", "default_dir", "main"]

GOLDEN_SEED = 20250203
"""Seed of the single generator behind the golden parameters, batches and masks."""
N_STEPS = 3
"""Optimiser steps per golden file."""
BATCH = 4
"""Samples per batch."""
EVENT_DENSITY = 0.35
"""Probability of an event per pixel, channel and frame."""
COMMAND = "python -m tess_spec.golden"

GOLDEN_CASES: dict[str, dict[str, Any]] = {
    "paper": {"profile": "paper", "weight_std": False, "dropout": 0.0},
    "reference-code": {"profile": "reference-code", "weight_std": False, "dropout": 0.0},
    "paper-ws-dropout": {"profile": "paper", "weight_std": True, "dropout": 0.25},
}
"""Golden file name (without ``.npz``) → what varies."""


def golden_config(name: str) -> TessConfig:
    """The config of golden case ``name`` (T=8, window 5, batch 4, Adam lr 5e-3)."""
    c = GOLDEN_CASES[name]
    ws, p = c["weight_std"], c["dropout"]
    blocks = (
        BlockConfig("conv", 3, weight_std=ws, dropout=p),
        BlockConfig("conv", 4, pool="max", weight_std=ws, dropout=p),
        BlockConfig("linear", 6, bias=True, weight_std=ws, dropout=p),
    )
    return TessConfig(
        network=NetworkConfig((2, 5, 5), 3, blocks),
        traces=TraceConfig(factors=(0.2, 0.5, 1.0, 1.0)),
        lsg=LSGConfig(pool_sizes=(2, 2, 3)),
        optimizer=OptimizerConfig(lr=5e-3),
        train=TrainConfig(T=8, n_learn=5, batch_size=BATCH, epochs=1, seed=GOLDEN_SEED, dtype="float64"),
        profile=c["profile"],
    )


def _record_arrays(prefix: str, rec: dict[str, Any]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key in ("u", "o", "psi", "q", "h", "m", "dw_causal", "dw_noncausal"):
        for i, a in enumerate(rec[key]):
            out[f"{prefix}/{key}/{i}"] = np.asarray(a)
    out[f"{prefix}/logits"] = rec["logits"]
    out[f"{prefix}/lsg_loss"] = rec["lsg_loss"]
    out[f"{prefix}/loss"] = np.asarray(rec["loss"], dtype=np.float64)
    out[f"{prefix}/n_correct"] = np.asarray(rec["n_correct"], dtype=np.int64)
    for k, v in rec["grads"].items():
        out[f"{prefix}/grads/{k}"] = v
    for i, s in enumerate(rec["state"]):
        for k, v in s.items():
            out[f"{prefix}/state/{i}/{k}"] = v
    return out


def _opt_arrays(prefix: str, opt: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {f"{prefix}/step": np.asarray(opt["step"], dtype=np.int64)}
    for mom, d in opt.items():
        if mom != "step":
            for k, v in d.items():
                out[f"{prefix}/{mom}/{k}"] = v
    return out


def generate(name: str) -> dict[str, np.ndarray]:
    """All arrays of golden case ``name``, computed by the reference in float64."""
    config = golden_config(name)
    rng = make_rng(GOLDEN_SEED)
    params = init_params(config, rng)
    opt = init_opt_state(config, params)
    meta = {
        "name": name,
        "spec_version": _spec_version(),
        "dtype": "float64",
        "seed": GOLDEN_SEED,
        "command": COMMAND,
        "n_steps": N_STEPS,
        "batch": BATCH,
        "event_density": EVENT_DENSITY,
        "numpy": np.__version__,
        "config": to_dict(config),
    }
    arrays: dict[str, np.ndarray] = {"meta": np.asarray(json.dumps(meta, sort_keys=True))}
    arrays.update({f"init/params/{k}": v for k, v in params.items()})
    arrays.update(_opt_arrays("init/opt", opt))
    T = config.train.T
    for k in range(N_STEPS):
        x = (rng.random((BATCH, T, *config.network.input_shape)) < EVENT_DENSITY).astype(np.float64)
        y = rng.integers(0, config.network.n_classes, size=BATCH).astype(np.int64)
        masks = draw_dropout_masks(config, BATCH, rng)
        s = f"step{k}"
        arrays[f"{s}/x"] = x
        arrays[f"{s}/y"] = y
        for i, m in enumerate(masks):
            if m is not None:
                arrays[f"{s}/mask/{i}"] = m
        params, opt, rec = train_batch(config, params, opt, x, y, masks, None)
        arrays.update(_record_arrays(f"{s}/record", rec))
        arrays.update({f"{s}/params/{kk}": v for kk, v in params.items()})
        arrays.update(_opt_arrays(f"{s}/opt", opt))
    return arrays


def _spec_version() -> str:
    from . import SPEC_VERSION

    return SPEC_VERSION


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` whose bytes depend only on the arrays (fixed
    timestamps, fixed order, no pickles); written to a temporary file, then renamed."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    replace_file(tmp, path, what="golden file")  # tess_spec.atomic: never onto a link or device


@dataclass
class Golden:
    """A loaded golden file: ``meta``, ``config``, initial ``params``/``opt_state`` and
    per step a dict with ``x, y, masks, record, params, opt_state``."""

    meta: dict[str, Any]
    config: TessConfig
    params: dict[str, np.ndarray]
    opt_state: dict[str, Any]
    steps: list[dict[str, Any]]


def _opt_from(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    opt: dict[str, Any] = {"step": int(arrays[f"{prefix}/step"])}
    for key, v in arrays.items():
        if key.startswith(prefix + "/") and key != f"{prefix}/step":
            mom, name = key[len(prefix) + 1:].split("/", 1)
            opt.setdefault(mom, {})[name] = v
    return opt


def load(path: str | Path) -> Golden:
    """Read a golden file into the reference's layout."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    config = from_dict(meta["config"])
    L = len(config.network.blocks)
    names = [k[len("init/params/"):] for k in arrays if k.startswith("init/params/")]
    steps = []
    for k in range(int(meta["n_steps"])):
        s = f"step{k}"
        r = f"{s}/record"
        rec: dict[str, Any] = {key: [arrays[f"{r}/{key}/{i}"] for i in range(L)]
                               for key in ("u", "o", "psi", "q", "h", "m", "dw_causal", "dw_noncausal")}
        rec["logits"] = arrays[f"{r}/logits"]
        rec["lsg_loss"] = arrays[f"{r}/lsg_loss"]
        rec["loss"] = float(arrays[f"{r}/loss"])
        rec["n_correct"] = int(arrays[f"{r}/n_correct"])
        rec["grads"] = {n: arrays[f"{r}/grads/{n}"] for n in names}
        rec["state"] = [{q: arrays[f"{r}/state/{i}/{q}"] for q in ("u", "o", "q", "h")} for i in range(L)]
        steps.append({
            "x": arrays[f"{s}/x"],
            "y": arrays[f"{s}/y"],
            "masks": [arrays.get(f"{s}/mask/{i}") for i in range(L)],
            "record": rec,
            "params": {n: arrays[f"{s}/params/{n}"] for n in names},
            "opt_state": _opt_from(arrays, f"{s}/opt"),
        })
    return Golden(meta, config, {n: arrays[f"init/params/{n}"] for n in names}, _opt_from(arrays, "init/opt"), steps)


def default_dir() -> Path:
    """``conformance/golden`` of the source tree this module sits in."""
    return Path(__file__).resolve().parent.parent / "conformance" / "golden"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: regenerate every golden file (``--out DIR``, ``--check`` compares instead)."""
    p = argparse.ArgumentParser(prog="python -m tess_spec.golden", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="output folder [conformance/golden of the source tree]")
    p.add_argument("--check", action="store_true", help="regenerate in memory and compare with the files; exit 1 if any differs")
    args = p.parse_args(argv)
    out = args.out or default_dir()
    if not out.parent.is_dir():
        p.error(f"{out.parent} does not exist; pass --out DIR")
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    for name in GOLDEN_CASES:
        arrays = generate(name)
        path = out / f"{name}.npz"
        if args.check:
            diff = compare_arrays(arrays, path)
            print(f"{path}: {'identical' if not diff else 'DIFFERS: ' + '; '.join(diff[:5])}")
            status |= bool(diff)
        else:
            write_npz(path, arrays)
            print(f"wrote {path}")
    return status


def compare_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> list[str]:
    """Keys whose dtype, shape or bytes differ between ``arrays`` and the file at ``path``
    (``meta`` is compared with its ``numpy`` entry ignored)."""
    diffs = []
    with np.load(path, allow_pickle=False) as z:
        if set(z.files) != set(arrays):
            diffs.append(f"keys differ: {sorted(set(z.files) ^ set(arrays))[:5]}")
        for k in arrays:
            if k not in z.files:
                continue
            a, b = np.asarray(arrays[k]), z[k]
            if k == "meta":
                ma, mb = json.loads(str(a)), json.loads(str(b))
                ma.pop("numpy", None)
                mb.pop("numpy", None)
                if ma != mb:
                    diffs.append("meta")
            elif a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
                diffs.append(k)
    return diffs


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
