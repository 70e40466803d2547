"""Golden traces: the spec's float64 trajectory of small networks, written to
``.npz`` files that every backend is compared with (``tess.conformance``).

Cases (:data:`GOLDEN_CASES`):

* ``paper``, ``reference-code``, ``paper-ws-dropout``: two conv blocks (the second
  with 2×2 max pooling), one linear block with a bias, and the readout; event-frame
  input ``(4, T=8, 2, 5, 5)``; learning window 5; three Adam steps, each on a fresh
  batch; the ``paper`` and ``reference-code`` profiles, and ``paper`` with weight
  standardisation and dropout.
* ``readout-backprop``, ``released`` (TESS_RULE.md §11, :mod:`tess_spec.signals`): the
  same network under readout back-propagation (``paper`` with weight standardisation
  and dropout), and the public code's released loop — LSG at the three steps before
  the window, readout back-propagation in it — with the public code's layers
  (``reference-code``).
* ``threshold-ties``: a conv block with 2×2 max pooling and a linear block with a
  bias, θ = 0.5, γ = 0.5, soft reset r = 0.75, weights and biases multiples of 0.25,
  binary events — every membrane is a dyadic number computed without rounding, so
  u lands *exactly* on θ (no spike: the inequality is strict) and, after a spike,
  the soft reset lands exactly on θ again.  One Adam step.  Its record's ``u`` and
  ``o`` are exact in any dtype (see :data:`EXACT_QUANTITIES`).

Write missing files, check the committed ones::

    python -m tess_spec.golden                          # writes files that do not exist yet
    python -m tess_spec.golden --only threshold-ties    # one case
    python -m tess_spec.golden --check                  # compare, report deviations, exit 1 if out of tolerance

An existing file is never overwritten without ``--force``.  Regeneration is
compared with the committed files under :data:`GOLDEN_RTOL` / :data:`GOLDEN_ATOL`
(BLAS kernels differ between CPUs in their summation order, so the last bits of
float64 sums differ); spikes, integers and the drawn data must be equal.

Each file holds a ``meta`` JSON string (spec version, dtype, seed, command,
config, NumPy version) and, per step ``k``: the batch (``step{k}/x``, ``/y``,
``/mask/{i}``), the record in the layout of :func:`tess_spec.reference.train_batch`
(``step{k}/record/u/{i}`` …), and the parameters and optimiser state after the
step; ``init/…`` holds the starting parameters and optimiser state.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import replace_file
from .config import BlockConfig, LIFConfig, LSGConfig, NetworkConfig, OptimizerConfig, TessConfig, TraceConfig
from .config import TrainConfig, from_dict, to_dict
from .init import draw_dropout_masks, init_opt_state, init_params, make_rng
from .reference import train_batch

__all__ = ["GOLDEN_CASES", "GOLDEN_SEED", "N_STEPS", "BATCH", "GOLDEN_RTOL", "GOLDEN_ATOL", "EXACT_QUANTITIES",
           "Golden", "Deviation", "golden_config", "generate", "write_npz", "npz_digest", "array_digest", "load",
           "default_dir", "is_exact", "deviations", "compare_arrays", "main"]

GOLDEN_SEED = 20250203
"""Seed of the single generator behind the golden parameters, batches and masks."""
N_STEPS = 3
"""Optimiser steps per golden file (unless the case says otherwise)."""
BATCH = 4
"""Samples per batch."""
EVENT_DENSITY = 0.35
"""Probability of an event per pixel, channel and frame."""
COMMAND = "python -m tess_spec.golden"

GOLDEN_RTOL = 1e-11
"""Relative tolerance of a regenerated float64 golden array against the committed one.

A regenerated value ``a`` matches the committed ``r`` when, elementwise,
``|a - r| <= GOLDEN_RTOL·|r| + GOLDEN_ATOL·max|r|`` (``max|r|`` over the array) —
the form of the conformance suite's policy (``tess.conformance.tolerances``), much
tighter.  What differs between machines is only the summation order inside BLAS
(OpenBLAS picks other kernels on AVX2 and AVX-512 CPUs): measured between a Haswell
and a SkylakeX kernel set, 45, 39 and 46 arrays of the three original cases differ,
by at most 2.2e-16 absolute in the record (one ulp of a loss near 1) and 4.4e-14 in
a weight after three Adam steps (8.4e-14 of the array's scale: Adam's ``1/√v̂``
amplifies a last-bit difference of a small gradient).  1e-11 leaves a margin of
over 100× above that, and stays 100× below the suite's own float64 tolerances
(1e-9) — any change of the rule itself moves values by orders of magnitude more."""
GOLDEN_ATOL = 1e-11
"""Absolute tolerance, as a fraction of the array's largest magnitude (see :data:`GOLDEN_RTOL`)."""

EXACT_QUANTITIES = ("u", "o")
"""Record quantities of a case with ``"exact": True`` (``threshold-ties``) that are
computed without rounding in float64 *and* float32 (dyadic inputs, weights, θ, γ
and r), so every implementation must reproduce them bit for bit."""

GOLDEN_CASES: dict[str, dict[str, Any]] = {
    "paper": {"profile": "paper", "weight_std": False, "dropout": 0.0},
    "reference-code": {"profile": "reference-code", "weight_std": False, "dropout": 0.0},
    "paper-ws-dropout": {"profile": "paper", "weight_std": True, "dropout": 0.25},
    "threshold-ties": {"profile": "paper", "weight_std": False, "dropout": 0.0, "exact": True, "n_steps": 1},
    "readout-backprop": {"profile": "paper", "weight_std": True, "dropout": 0.25,
                         "learning_signal": "readout-backprop"},
    "released": {"profile": "reference-code", "weight_std": False, "dropout": 0.0, "learning_signal": "released"},
}
"""Golden file name (without ``.npz``) → what varies (``exact``: dyadic case, ``n_steps``: optimiser steps)."""


def golden_config(name: str) -> TessConfig:
    """The config of golden case ``name`` (T=8, window 5, batch 4, Adam lr 5e-3).

    ``threshold-ties``: input (2, 4, 4); conv 3 (kernel 3, 2×2 max pool) → linear 6
    with a bias → readout (3 classes); θ = 0.5, γ = 0.5, soft reset r = 0.75;
    factors (0.5, 0.5, 1, 1); LSG pool sizes (2, 2)."""
    try:
        c = GOLDEN_CASES[name]
    except KeyError:
        raise KeyError(f"no golden case {name!r}: expected one of {list(GOLDEN_CASES)}") from None
    train = TrainConfig(T=8, n_learn=5, batch_size=BATCH, epochs=1, seed=GOLDEN_SEED, dtype="float64")
    if c.get("exact"):
        return TessConfig(
            network=NetworkConfig((2, 4, 4), 3, (BlockConfig("conv", 3, pool="max"),
                                                 BlockConfig("linear", 6, bias=True))),
            lif=LIFConfig(theta=0.5, leak=0.5, reset="soft", reset_amount=0.75),
            traces=TraceConfig(factors=(0.5, 0.5, 1.0, 1.0)),
            lsg=LSGConfig(pool_sizes=(2, 2)),
            optimizer=OptimizerConfig(lr=5e-3),
            train=train,
            profile=c["profile"],
        )
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
        train=train,
        profile=c["profile"],
        learning_signal=c.get("learning_signal", "lsg"),
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


def _dyadic_params(config: TessConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Parameters of an exact case: block weights in {-0.5, -0.25, 0, 0.25, 0.5}, biases in
    {-0.25, 0, 0.25} (so every membrane is a sum of dyadic numbers, computed without
    rounding); the readout as :func:`init_params` draws it (it does not touch a membrane)."""
    params = init_params(config, rng)
    for k in params:
        if k.startswith("blocks.") and k.endswith(".weight"):
            params[k] = rng.integers(-2, 3, size=params[k].shape).astype(np.float64) * 0.25
        elif k.startswith("blocks.") and k.endswith(".bias"):
            params[k] = rng.integers(-1, 2, size=params[k].shape).astype(np.float64) * 0.25
    return params


def generate(name: str) -> dict[str, np.ndarray]:
    """All arrays of golden case ``name``, computed by the reference in float64."""
    config = golden_config(name)
    case = GOLDEN_CASES[name]
    n_steps = int(case.get("n_steps", N_STEPS))
    exact = bool(case.get("exact", False))
    rng = make_rng(GOLDEN_SEED)
    params = _dyadic_params(config, rng) if exact else init_params(config, rng)
    opt = init_opt_state(config, params)
    meta = {
        "name": name,
        "spec_version": _spec_version(),
        "dtype": "float64",
        "seed": GOLDEN_SEED,
        "command": COMMAND,
        "n_steps": n_steps,
        "batch": BATCH,
        "event_density": EVENT_DENSITY,
        "numpy": np.__version__,
        "config": to_dict(config),
    }
    if exact:
        meta["exact"] = list(EXACT_QUANTITIES)
    arrays: dict[str, np.ndarray] = {"meta": np.asarray(json.dumps(meta, sort_keys=True))}
    arrays.update({f"init/params/{k}": v for k, v in params.items()})
    arrays.update(_opt_arrays("init/opt", opt))
    T = config.train.T
    for k in range(n_steps):
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


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` whose bytes depend only on the arrays (fixed
    timestamps, fixed order, no pickles); written to a temporary file, then renamed."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(_npz_bytes(arrays))
    replace_file(tmp, path, what="golden file")  # tess_spec.atomic: never onto a link or device


def npz_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex) of the bytes :func:`write_npz` writes for ``arrays``."""
    return hashlib.sha256(_npz_bytes(arrays)).hexdigest()


def array_digest(arrays: dict[str, np.ndarray], keys: Sequence[str] | None = None) -> str:
    """SHA-256 (hex) over each array's key, dtype, shape and bytes, in order (``keys``: a subset)."""
    h = hashlib.sha256()
    for k in (keys if keys is not None else list(arrays)):
        a = np.ascontiguousarray(np.asarray(arrays[k]))
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@dataclass
class Golden:
    """A loaded golden file: ``meta``, ``config``, initial ``params``/``opt_state`` and
    per step a dict with ``x, y, masks, record, params, opt_state``."""

    meta: dict[str, Any]
    config: TessConfig
    params: dict[str, np.ndarray]
    opt_state: dict[str, Any]
    steps: list[dict[str, Any]]

    @property
    def exact(self) -> tuple[str, ...]:
        """Record quantities every implementation must reproduce bit for bit (``threshold-ties``)."""
        return tuple(self.meta.get("exact", ()))


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


# ------------------------------------------------------------------ comparison
_DATA_KEY = re.compile(r"^step\d+/(x|y|mask/\d+)$")
_SPIKE_KEY = re.compile(r"^step\d+/record/(o/\d+|state/\d+/o)$")


def is_exact(key: str, value: np.ndarray, exact_quantities: Sequence[str] = ()) -> bool:
    """Whether array ``key`` must regenerate bit for bit: integers and booleans, spikes
    (``record/o``, ``record/state/i/o``), the drawn data (``x``, ``y``, dropout masks),
    and the record quantities an exact case lists (``u``, ``o`` of ``threshold-ties``)."""
    if np.asarray(value).dtype.kind in "iub":
        return True
    if _DATA_KEY.match(key) or _SPIKE_KEY.match(key):
        return True
    for q in exact_quantities:
        if re.match(rf"^step\d+/record/({q}/\d+|state/\d+/{q})$", key):
            return True
    return False


@dataclass(frozen=True)
class Deviation:
    """How far one regenerated array lies from the committed one.

    ``max_abs``: the largest ``|a - r|``; ``ratio``: the largest ``|a - r| / bound``
    (≤ 1 is within tolerance), ``bound``: the allowed error at that element; for an
    exact array ``bound`` is 0 and ``n_diff`` counts differing elements."""

    key: str
    exact: bool
    max_abs: float
    bound: float
    ratio: float
    n_diff: int
    problem: str = ""

    @property
    def ok(self) -> bool:
        """Within tolerance (exact arrays: equal)."""
        return not self.problem and (self.n_diff == 0 if self.exact else self.ratio <= 1.0)

    def line(self) -> str:
        """One line of the ``--check`` report."""
        status = "ok" if self.ok else "OUT OF TOLERANCE"
        if self.problem:
            return f"  {self.key:<44} {self.problem}  {status}"
        if self.exact:
            what = "equal" if self.n_diff == 0 else f"{self.n_diff} element(s) differ, max |a-r| {self.max_abs:.3g}"
            return f"  {self.key:<44} exact: {what}  {status}"
        return (f"  {self.key:<44} max |a-r| {self.max_abs:9.3g}  tolerance {self.bound:9.3g}  "
                f"ratio {self.ratio:8.2g}  {status}")


def _deviation(key: str, a: np.ndarray, b: np.ndarray, exact: bool) -> Deviation:
    if a.dtype != b.dtype or a.shape != b.shape:
        return Deviation(key, exact, float("nan"), 0.0, float("inf"), -1,
                         f"dtype/shape {a.dtype}{a.shape} != committed {b.dtype}{b.shape}")
    if a.dtype.kind not in "fiub":
        same = a.tobytes() == b.tobytes()
        return Deviation(key, True, 0.0, 0.0, 0.0 if same else float("inf"), 0 if same else 1)
    af, bf = a.astype(np.float64), b.astype(np.float64)
    if a.size == 0:
        return Deviation(key, exact, 0.0, 0.0, 0.0, 0)
    same_nan = np.isnan(af) & np.isnan(bf)
    err = np.where(same_nan, 0.0, np.abs(af - bf))
    err = np.where(np.isnan(err), np.inf, err)
    if exact:
        n = int(np.count_nonzero((a != b) & ~same_nan))
        return Deviation(key, True, float(err.max()), 0.0, 0.0 if n == 0 else float("inf"), n)
    scale = float(np.nanmax(np.abs(bf)))
    bound = GOLDEN_RTOL * np.abs(bf) + GOLDEN_ATOL * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / bound)
    j = int(np.argmax(ratio))
    return Deviation(key, False, float(err.max()), float(bound.reshape(-1)[j]), float(ratio.reshape(-1)[j]),
                     int(np.count_nonzero(err)))


def deviations(arrays: dict[str, np.ndarray], path: str | Path) -> list[Deviation]:
    """One :class:`Deviation` per array of ``arrays`` against the file at ``path``
    (``meta`` is compared as JSON with its ``numpy`` entry ignored; a missing or extra
    key is a deviation with a ``problem``)."""
    out: list[Deviation] = []
    with np.load(path, allow_pickle=False) as z:
        files = set(z.files)
        meta = json.loads(str(z["meta"])) if "meta" in files else {}
        exact_q = tuple(meta.get("exact", ()))
        for k in sorted(files - set(arrays)):
            out.append(Deviation(k, True, float("nan"), 0.0, float("inf"), -1, "in the file, not regenerated"))
        for k, v in arrays.items():
            if k not in files:
                out.append(Deviation(k, True, float("nan"), 0.0, float("inf"), -1, "regenerated, not in the file"))
                continue
            a, b = np.asarray(v), z[k]
            if k == "meta":
                ma, mb = json.loads(str(a)), dict(meta)
                ma.pop("numpy", None)
                mb.pop("numpy", None)
                diff = sorted(f for f in set(ma) | set(mb) if ma.get(f) != mb.get(f))
                out.append(Deviation(k, True, 0.0, 0.0, 0.0 if not diff else float("inf"), len(diff),
                                     f"meta fields differ: {diff}" if diff else ""))
                continue
            out.append(_deviation(k, a, b, is_exact(k, b, exact_q)))
    return out


def compare_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> list[str]:
    """The arrays of ``arrays`` out of tolerance against the file at ``path``, one short
    message each (empty: the regeneration matches)."""
    return [d.line().strip() for d in deviations(arrays, path) if not d.ok]


def _check(out: Path, names: Sequence[str], verbose: bool) -> int:
    status = 0
    print(f"tolerance: |a - r| <= {GOLDEN_RTOL:g}·|r| + {GOLDEN_ATOL:g}·max|r| per array; spikes, integers, "
          "drawn data (and u of exact cases) must be equal")
    for name in names:
        path = out / f"{name}.npz"
        if not path.is_file():
            print(f"{path}: MISSING (write it with {COMMAND} --only {name})")
            status = 1
            continue
        devs = deviations(generate(name), path)
        bad = [d for d in devs if not d.ok]
        inexact = [d for d in devs if not d.exact and not d.problem]
        worst = max(inexact, key=lambda d: d.ratio, default=None)
        n_bits = sum(1 for d in devs if d.n_diff)
        head = "within tolerance" if not bad else f"OUT OF TOLERANCE in {len(bad)} array(s)"
        print(f"{path}: {head}; {len(devs)} arrays, {len(devs) - n_bits} bit-identical (deviation 0), "
              f"{n_bits} not (listed)"
              + (f"; worst {worst.key}: {worst.max_abs:.3g} ({worst.ratio:.2g} of its tolerance)" if worst else ""))
        for d in devs:
            if verbose or not d.ok or d.n_diff:
                print(d.line())
        status |= bool(bad)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write missing golden files (``--only NAME``, ``--out DIR``, ``--force``),
    or ``--check`` them against a regeneration (exit 1 only if out of tolerance)."""
    p = argparse.ArgumentParser(prog="python -m tess_spec.golden", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="golden folder [conformance/golden of the source tree]")
    p.add_argument("--only", action="append", choices=list(GOLDEN_CASES), default=None,
                   help="only this case (repeatable) [all]")
    p.add_argument("--check", action="store_true",
                   help="regenerate in memory, print every array's largest deviation and its tolerance "
                        "(non-identical arrays only, unless --verbose); exit 1 if any is out of tolerance")
    p.add_argument("--verbose", action="store_true", help="with --check: a line for every array")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing files (committed goldens are never regenerated to make a test pass)")
    args = p.parse_args(argv)
    out = args.out or default_dir()
    names = args.only or list(GOLDEN_CASES)
    if not out.parent.is_dir():
        p.error(f"{out.parent} does not exist; pass --out DIR")
    if args.check:
        return _check(out, names, args.verbose)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = out / f"{name}.npz"
        if path.exists() and not args.force:
            print(f"kept {path} (exists; --check compares it, --force overwrites it)")
            continue
        write_npz(path, generate(name))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
