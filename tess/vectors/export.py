"""``tess vectors export``: write each case as a self-describing folder.

A case folder holds ``manifest.json`` (validated by ``manifest.schema.json``),
``case.txt`` (the same facts as ``key value`` lines, for readers without a JSON
parser, such as ``examples/c_linear``), ``inputs/`` and ``expected/`` (every array
as ``.npy`` and as raw ``.bin``; names in :mod:`tess.vectors.layout`).

Expected values are the spec's float64 reference (:func:`tess_spec.reference.train_batch`)
run on the inputs rounded to the case's dtype, exactly as the conformance harness
computes them (:func:`tess.conformance.harness.run_reference`): a float32 case stores
float32 inputs and float64 expected values.  Export is deterministic: the same
case, dtype and software give the same bytes.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tess_spec import SPEC_VERSION, to_dict
from tess_spec.config import TessConfig
from tess_spec.lsg import basis
from tess_spec.neuron import reset_amount
from tess_spec.shapes import block_shapes

from .cases import CASES, CaseInputs, family, features, learning_signal_of, select_cases
from .layout import OPTIONAL_RESULTS, bin_bytes, expected_layout, input_axes, neuron_axes, npy_bytes, param_axes

__all__ = ["FORMAT", "FORMAT_VERSION", "DTYPES", "lsg_basis_arrays", "case_arrays", "tolerance_section",
           "build_manifest", "c_sidecar", "export_case", "export_vectors"]

log = logging.getLogger(__name__)

FORMAT = "tess-vectors"
"""The ``format`` field of every manifest."""
FORMAT_VERSION = 1
"""Version of the folder layout and manifest; bumped on any incompatible change."""
DTYPES: tuple[str, ...] = ("float32", "float64")
"""The dtypes a case can be exported in."""


def _check_dtype(dtype: str) -> None:
    from tess.errors import ConfigError

    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r} is invalid: expected one of {', '.join(DTYPES)}")


def lsg_basis_arrays(cfg: TessConfig) -> list[np.ndarray]:
    """Per block the LSG basis ``B`` ``(n_classes, D)``, ``D = C·k²`` (conv) or ``k`` (linear),
    from :func:`tess_spec.lsg.basis` — shipped so that no reader depends on its libm's ``sin``."""
    out = []
    for i, bs in enumerate(block_shapes(cfg.network)):
        k = cfg.lsg_pool(i)
        dim = bs.output[0] * k * k if len(bs.output) == 3 else k
        out.append(basis(cfg.network.n_classes, dim, cfg.lsg.omega_min, cfg.lsg.omega_max))
    return out


def case_arrays(inputs: CaseInputs, dtype: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """``(inputs, expected, info)`` arrays of a case in ``dtype``.

    Inputs are rounded to ``dtype`` (labels stay int64); expected values are float64
    from the reference on those rounded inputs (``n_correct`` and ``opt.step`` int64);
    ``info`` holds the optimiser step count before the step and the moment names.
    """
    from tess.conformance.harness import round_to, round_tree, run_reference

    _check_dtype(dtype)
    cfg = inputs.config
    L = len(cfg.network.blocks)
    params = {k: np.asarray(v, dtype=dtype) for k, v in inputs.params.items()}
    moments = [k for k in inputs.opt_state if k != "step"]
    ins: dict[str, np.ndarray] = {"x": np.asarray(inputs.x, dtype=dtype), "y": np.asarray(inputs.y, dtype=np.int64)}
    for i, m in enumerate(inputs.masks):
        if m is not None:
            ins[f"mask.{i}"] = np.asarray(m, dtype=dtype)
    for i, B in enumerate(lsg_basis_arrays(cfg)):
        ins[f"lsg_basis.{i}"] = np.asarray(B, dtype=dtype)
    for p, v in params.items():
        ins[f"params.{p}"] = v
    for mom in moments:
        for p in params:
            ins[f"opt.{mom}.{p}"] = np.asarray(inputs.opt_state[mom][p], dtype=dtype)

    opt_in = {"step": int(inputs.opt_state["step"]), **{m: dict(inputs.opt_state[m]) for m in moments}}
    masks = [None if m is None else round_to(m, dtype) for m in inputs.masks]
    want = run_reference(cfg, round_tree(inputs.params, dtype), round_tree(opt_in, dtype), inputs.x,
                         np.asarray(inputs.y), masks, None, dtype)
    rec = want.record
    exp: dict[str, np.ndarray] = {}
    for key in ("u", "o", "psi", "q", "h", "m"):
        for i in range(L):
            exp[f"{key}.{i}"] = np.asarray(rec[key][i], dtype=np.float64)
    exp["logits"] = np.asarray(rec["logits"], dtype=np.float64)
    exp["lsg_loss"] = np.asarray(rec["lsg_loss"], dtype=np.float64)
    exp["loss"] = np.asarray(float(rec["loss"]), dtype=np.float64)
    exp["n_correct"] = np.asarray(int(rec["n_correct"]), dtype=np.int64)
    for key in ("dw_causal", "dw_noncausal"):
        for i in range(L):
            exp[f"{key}.{i}"] = np.asarray(rec[key][i], dtype=np.float64)
    for p, v in rec["grads"].items():
        exp[f"grads.{p}"] = np.asarray(v, dtype=np.float64)
    for p, v in want.params.items():
        exp[f"params.{p}"] = np.asarray(v, dtype=np.float64)
    for mom in moments:
        for p in params:
            exp[f"opt.{mom}.{p}"] = np.asarray(want.opt_state[mom][p], dtype=np.float64)
    exp["opt.step"] = np.asarray(int(want.opt_state["step"]), dtype=np.int64)
    layout = expected_layout(cfg, int(inputs.x.shape[0]), moments)
    assert list(exp) == list(layout), (list(exp), list(layout))
    return ins, exp, {"opt_step": opt_in["step"], "moments": moments}


def _input_entry(cfg: TessConfig, name: str, a: np.ndarray) -> dict[str, Any]:
    shapes = block_shapes(cfg.network)
    if name == "x":
        axes = ["batch", "t", *input_axes(tuple(cfg.network.input_shape))]
        what = "the batch: one input frame per sample and step"
    elif name == "y":
        axes, what = ["batch"], "integer class labels"
    elif name.startswith("mask."):
        i = int(name.split(".")[1])
        axes, what = ["batch", *neuron_axes(shapes[i].neurons)], f"dropout mask of block {i}, fixed over time"
    elif name.startswith("lsg_basis."):
        i = int(name.split(".")[1])
        axes = ["class", "j"]
        what = f"LSG basis B[c, j] = sign(sin(ω_c·j)) of block {i} (entries -1, 0, 1; B̃ = B / D)"
    elif name.startswith("params."):
        p = name[len("params."):]
        axes, what = param_axes(p, a.shape), f"parameter {p} before the step"
    else:
        _, mom, p = name.split(".", 2)
        axes, what = param_axes(p, a.shape), f"optimiser moment {mom} of {p} before the step"
    return _entry("inputs", name, a, axes, what)


def _entry(folder: str, name: str, a: np.ndarray, axes: list[str], what: str) -> dict[str, Any]:
    assert len(axes) == a.ndim, (name, axes, a.shape)
    return {"npy": f"{folder}/{name}.npy", "bin": f"{folder}/{name}.bin", "dtype": str(a.dtype),
            "shape": [int(s) for s in a.shape], "axes": axes, "description": what}


_EXPECTED_WHAT = {
    "u": "membrane potential u[t]", "o": "spikes o[t] (0 or 1)", "psi": "surrogate ψ[t]",
    "q": "presynaptic trace q[t] (one per input element)", "h": "postsynaptic trace h[t]",
    "m": "learning signal m[t] (0 outside the learning window)", "logits": "readout logits[t]",
    "lsg_loss": "local LSG loss L_l[t] per block (0 outside the window)",
    "loss": "cross-entropy of the time-summed logits", "n_correct": "correct predictions from the time-summed logits",
    "dw_causal": "window-summed causal term α_pre·(m⊙ψ)⊗q, w.r.t. Ŵ",
    "dw_noncausal": "window-summed non-causal term α_post·(m⊙h̃)⊗x, w.r.t. Ŵ",
    "grads": "gradient handed to the optimiser (after weight standardisation)",
    "params": "parameter after the optimiser step", "opt": "optimiser state after the step",
}


def tolerance_section(cfg: TessConfig, dtype: str) -> dict[str, Any]:
    """The tolerance policy of ``dtype`` as written in :mod:`tess.conformance.tolerances`
    (read through its public functions), for the manifest."""
    from tess.conformance import tolerances as tol

    quantities = {}
    for q in tol.QUANTITIES:
        t = tol.tolerance(q, dtype)
        vals = dataclasses.asdict(t) if dataclasses.is_dataclass(t) else dict(vars(t))
        quantities[q] = {**{k: float(v) for k, v in vals.items()}, "description": tol.QUANTITIES[q]}
    return {
        "dtype": dtype,
        "policy": inspect.cleandoc(tol.__doc__ or ""),
        "quantities": quantities,
        "spike_band": float(tol.spike_band(cfg.lif.theta, dtype)),
        "spikes": ("o is compared exactly; in float32 a spike may differ only where the expected membrane u lies "
                   "within spike_band of θ, and the flipped sample is then compared only before the flip"),
        "checker": "tess vectors check DIR RESULTS_DIR (the conformance harness's compare_step on these arrays)",
    }


def build_manifest(name: str, description: str, inputs: CaseInputs, dtype: str, ins: dict[str, np.ndarray],
                   exp: dict[str, np.ndarray], info: dict[str, Any], exact: tuple[str, ...] = ()) -> dict[str, Any]:
    """The manifest of one case (see ``manifest.schema.json``)."""
    cfg = inputs.config
    batch = int(inputs.x.shape[0])
    layout = expected_layout(cfg, batch, info["moments"])
    blocks = []
    for i, (b, bs) in enumerate(zip(cfg.network.blocks, block_shapes(cfg.network))):
        blocks.append({
            "kind": b.kind, "features": b.features, "input_shape": list(bs.input), "neuron_shape": list(bs.neurons),
            "output_shape": list(bs.output), "weight_shape": list(bs.weight), "psi": cfg.psi_name(i),
            "reset_amount": float(reset_amount(cfg.lif, cfg.profile, b.kind)), "lsg_pool": int(cfg.lsg_pool(i)),
            "lsg_dim": int(ins[f"lsg_basis.{i}"].shape[1]), "pool": b.pool, "pool_size": b.pool_size,
            "weight_std": b.weight_std, "dropout": float(b.dropout), "bias": b.bias,
        })
    expected = {}
    for key, arr in exp.items():
        shape, axes = layout[key]
        root = key.split(".")[0]
        entry = _entry("expected", key, arr, axes, _EXPECTED_WHAT[root])
        if root in ("u", "o", "psi", "q", "h", "m", "dw_causal", "dw_noncausal"):
            entry["block"] = int(key.split(".")[1])
        entry["per_step"] = bool(axes and axes[0] == "t")
        entry["result_dtype"] = "int64" if arr.dtype.kind == "i" else dtype
        entry["required"] = root not in OPTIONAL_RESULTS
        expected[key] = entry
    import tess

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description,
        "spec_version": SPEC_VERSION,
        "generator": {"tool": "tess vectors export", "tess": tess.__version__},
        "dtype": dtype,
        "expected_dtype": "float64",
        "expected_from": ("the spec's float64 reference (tess_spec.reference.train_batch) on the inputs as stored "
                          f"({dtype}), as tess.conformance.harness.run_reference computes it"),
        "profile": cfg.profile,
        "learning_signal": learning_signal_of(cfg),
        "family": family(cfg),
        "features": features(cfg),
        "config": to_dict(cfg),
        "sizes": {"T": cfg.train.T, "batch": batch, "n_classes": cfg.network.n_classes,
                  "n_blocks": len(cfg.network.blocks), "window_start": cfg.train.window_start,
                  "n_learn": cfg.train.n_learn, "input_shape": list(cfg.network.input_shape)},
        "blocks": blocks,
        "optimizer_state": {"step": info["opt_step"], "moments": info["moments"]},
        "layout": {"order": "C (row-major)", "byte_order": "little", "npy_version": "1.0",
                   "bin": "raw array bytes only; dtype and shape are given here",
                   "results": ("an implementation writes RESULTS_DIR/<case>/<name>.npy or .bin for every entry of "
                               "'expected' (same name, shape and axes; .bin in result_dtype); entries with "
                               "required = false may be left out")},
        "inputs": {k: _input_entry(cfg, k, a) for k, a in ins.items()},
        "expected": expected,
        "tolerances": tolerance_section(cfg, dtype),
        "exact": list(exact),
    }


def c_sidecar(manifest: dict[str, Any]) -> str:
    """``case.txt``: the facts a plain C reader needs, one ``key value`` per line."""
    cfg = manifest["config"]
    lif, tr, opt, lsg = cfg["lif"], cfg["traces"], cfg["optimizer"], cfg["lsg"]
    f = lambda v: repr(float(v))  # noqa: E731  (shortest text that parses back to the same double)
    rows: list[tuple[str, Any]] = [
        ("format", f"{FORMAT}-c {FORMAT_VERSION}"), ("case", manifest["name"]), ("dtype", manifest["dtype"]),
        ("family", manifest["family"]), ("profile", manifest["profile"]),
        ("learning_signal", manifest["learning_signal"]),
        ("T", manifest["sizes"]["T"]), ("batch", manifest["sizes"]["batch"]),
        ("window_start", manifest["sizes"]["window_start"]), ("n_classes", manifest["sizes"]["n_classes"]),
        ("n_blocks", manifest["sizes"]["n_blocks"]),
        ("input_size", int(np.prod(manifest["sizes"]["input_shape"]))),
        ("theta", f(lif["theta"])), ("leak", f(lif["leak"])), ("reset", lif["reset"]),
        ("lambda_post", f(tr["factors"][0])), ("lambda_pre", f(tr["factors"][1])),
        ("alpha_post", f(tr["factors"][2])), ("alpha_pre", f(tr["factors"][3])),
        ("temperature", f(lsg["temperature"])),
        ("optimizer", opt["name"]), ("lr", f(opt["lr"])), ("beta1", f(opt["betas"][0])),
        ("beta2", f(opt["betas"][1])), ("eps", f(opt["eps"])), ("momentum", f(opt["momentum"])),
        ("weight_decay", f(opt["weight_decay"])), ("opt_step", manifest["optimizer_state"]["step"]),
        ("readout_bias", int(cfg["network"]["readout"]["bias"])),
    ]
    for i, b in enumerate(manifest["blocks"]):
        rows += [(f"block.{i}.kind", b["kind"]), (f"block.{i}.features", b["features"]),
                 (f"block.{i}.inputs", int(np.prod(b["input_shape"]))), (f"block.{i}.bias", int(b["bias"])),
                 (f"block.{i}.weight_std", int(b["weight_std"])), (f"block.{i}.dropout", f(b["dropout"])),
                 (f"block.{i}.pool", b["pool"] or "none"), (f"block.{i}.psi", b["psi"]),
                 (f"block.{i}.reset_amount", f(b["reset_amount"])), (f"block.{i}.lsg_k", b["lsg_pool"])]
    head = [f"# {manifest['name']} ({manifest['dtype']}): written by tess vectors export; the manifest.json",
            "# next to it says the same and more. Arrays: inputs/NAME.bin, raw little-endian C order."]
    return "\n".join(head + [f"{k} {v}" for k, v in rows]) + "\n"


def export_case(name: str, out_dir: str | os.PathLike, dtype: str = "float64") -> Path:
    """Write case ``name`` to ``out_dir/name/`` (replacing an earlier export of it) and return that folder.

    The folder is written under a temporary name and renamed when complete, so an
    interrupted export never leaves a half-written case."""
    from tess.errors import ConfigError

    _check_dtype(dtype)
    if name not in CASES:
        raise ConfigError(f"unknown vector case {name!r}; available: {', '.join(CASES)}")
    case = CASES[name]
    inputs = case.build()
    ins, exp, info = case_arrays(inputs, dtype)
    manifest = build_manifest(name, case.description, inputs, dtype, ins, exp, info, case.exact)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    try:
        for folder, arrays in (("inputs", ins), ("expected", exp)):
            (tmp / folder).mkdir()
            for key, a in arrays.items():
                (tmp / folder / f"{key}.npy").write_bytes(npy_bytes(a))
                (tmp / folder / f"{key}.bin").write_bytes(bin_bytes(a))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
        (tmp / "case.txt").write_text(c_sidecar(manifest), encoding="utf-8")
        os.chmod(tmp, 0o755)
        final = out / name
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote vector case %s (%s) to %s", name, dtype, final)
    return final


def export_vectors(out_dir: str | os.PathLike, cases: list[str] | None = None, dtype: str = "float64") -> list[Path]:
    """Export the cases matching ``cases`` (names or shell patterns; all when ``None``) in
    ``dtype`` to ``out_dir``; return their folders."""
    _check_dtype(dtype)
    return [export_case(n, out_dir, dtype) for n in select_cases(cases)]
