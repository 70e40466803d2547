"""``tess vectors check``: judge the arrays an external implementation wrote.

For every case of a vectors folder, the results in ``RESULTS_DIR/<case>/`` (same
names and layout as the case's ``expected/``, as ``.npy`` or raw ``.bin``) are
compared with the expected arrays by the conformance harness itself
(:func:`tess.conformance.harness.compare_step`, the judge of every Python backend:
the tolerance policy per quantity and dtype, spikes exact, float32 flips only
inside the spike band, parameters in float32 checked through the implementation's
own gradients).  Each quantity then gets a verdict, and a failing one is located:
the first failing step (time-major), block and index, with the values.  The case's
*first divergence* is the earliest failing per-step quantity in computation order
(step, then block, then u → o → ψ → q → h → m), else the first failing sum.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tess_spec.config import TessConfig, from_dict

from .layout import OPTIONAL_RESULTS, PER_STEP, QUANTITY_OF, read_array

__all__ = ["QuantityVerdict", "CaseVerdict", "ROOTS", "check_case", "check_vectors", "format_verdicts",
           "report_rows", "report_header", "REPORT_GROUP"]

ROOTS: tuple[str, ...] = ("u", "o", "psi", "q", "h", "m", "logits", "lsg_loss", "loss", "n_correct",
                          "dw_causal", "dw_noncausal", "grads", "params", "opt")
"""The quantities a case is judged on (result names without their block or parameter part)."""

REPORT_GROUP = "vectors"
"""The report group of vector cases (one row per case) in the conformance report format."""


@dataclass
class QuantityVerdict:
    """The verdict on one quantity of one case.

    Attributes:
        quantity: a name of :data:`ROOTS`.
        status: ``pass``, ``FAIL``, ``not written`` (an optional result left out) or
            ``not compared`` (excused by a float32 spike flip, as the policy says).
        detail: where it first fails and by how much, or what was compared.
        step: the first failing time step (per-step quantities), else ``None``.
        block: the block of the first failure, where the quantity has blocks.
        index: the first failing index (within the step), as ``axis=value`` pairs.
    """

    quantity: str
    status: str
    detail: str = ""
    step: int | None = None
    block: int | None = None
    index: dict[str, int] | None = None

    @property
    def failed(self) -> bool:
        """Whether this quantity fails the case."""
        return self.status == "FAIL"


@dataclass
class CaseVerdict:
    """The verdict on one case: per quantity, the first divergence, notes (e.g. excused flips).

    Attributes:
        case: the case name.
        dtype: the case's dtype.
        quantities: one :class:`QuantityVerdict` per quantity of :data:`ROOTS`.
        first_divergence: where the results first leave the tolerance, in words ("" if nowhere).
        notes: what the harness reported without failing (float32 flips within the band).
        error: why the case could not be checked at all ("" if it was).
    """

    case: str
    dtype: str
    quantities: list[QuantityVerdict] = field(default_factory=list)
    first_divergence: str = ""
    notes: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def passed(self) -> bool:
        """True when the case could be checked and no quantity failed."""
        return not self.error and not any(q.failed for q in self.quantities)


def _load_manifest(case_dir: Path) -> dict[str, Any]:
    from tess.errors import DataError

    from .export import FORMAT, FORMAT_VERSION

    path = case_dir / "manifest.json"
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the case manifest ({exc}); export the case again with "
                        "`tess vectors export`") from exc
    if man.get("format") != FORMAT or man.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: format {man.get('format')!r} version {man.get('format_version')!r} is not "
                        f"{FORMAT!r} version {FORMAT_VERSION}; export the vectors with this tess")
    return man


def _read_all(directory: Path, entries: dict[str, Any], dtype_key: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    arrays, problems = {}, {}
    for key, e in entries.items():
        a, why = read_array(directory, key, tuple(e["shape"]), e[dtype_key])
        if a is not None and list(a.shape) != list(e["shape"]):
            a, why = None, f"{key}.npy has shape {list(a.shape)}; expected {e['shape']} (axes {e['axes']})"
        if a is None:
            problems[key] = why
        else:
            arrays[key] = a
    return arrays, problems


def _step_result(cfg: TessConfig, arrays: dict[str, np.ndarray], params_names: list[str], moments: list[str]) -> Any:
    from tess.conformance.harness import StepResult

    L = len(cfg.network.blocks)
    rec: dict[str, Any] = {k: [arrays[f"{k}.{i}"] for i in range(L)] for k in (*PER_STEP, "dw_causal", "dw_noncausal")}
    rec["logits"] = arrays["logits"]
    rec["lsg_loss"] = arrays["lsg_loss"]
    rec["loss"] = float(arrays["loss"])
    rec["n_correct"] = int(arrays["n_correct"])
    rec["grads"] = {p: arrays[f"grads.{p}"] for p in params_names}
    opt: dict[str, Any] = {"step": int(arrays["opt.step"])}
    for mom in moments:
        opt[mom] = {p: arrays[f"opt.{mom}.{p}"] for p in params_names}
    return StepResult({p: arrays[f"params.{p}"] for p in params_names}, opt, rec, None, rec["loss"], rec["n_correct"])


def _root_of_message(msg: str) -> str:
    if msg.startswith("params"):
        return "params"
    if msg.startswith("optimiser"):
        return "opt"
    m = re.match(r"[a-z_]+", msg)
    return m.group(0) if m else "?"


def _fmt_index(ix: dict[str, int]) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in ix.items()) + ")"


def _compared(root: str, ent: dict[str, Any], shape: tuple[int, ...], first_flip: np.ndarray, L: int) -> np.ndarray:
    """Which elements the harness compares: a sample only before its first spike flip
    (its flip itself is judged as a spike); sums and parameters everywhere."""
    T = shape[0]
    if ent["per_step"] and root in PER_STEP:
        key = np.arange(T)[:, None] * L + int(ent["block"])
        rows = (key <= first_flip[None, :]) if root == "o" else (key < first_flip[None, :])
    elif root == "logits":
        rows = (np.arange(T)[:, None] * L + (L - 1)) < first_flip[None, :]
    else:
        return np.ones(shape, bool)
    return np.broadcast_to(rows.reshape(*rows.shape, *([1] * (len(shape) - 2))), shape)


def _bad(man: dict, root: str, key: str, w: np.ndarray, g: np.ndarray, exp: dict[str, np.ndarray], dtype: str,
         sel: np.ndarray, theta: float, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(out of tolerance, allowed error)`` elementwise, as the policy says (``exact``: any difference)."""
    from tess.conformance import tolerances as tol

    if exact:
        return g != w, np.zeros_like(w)
    if root == "o":
        band = float(man["tolerances"]["spike_band"])
        u_ref = np.asarray(exp[f"u.{man['expected'][key]['block']}"], np.float64)
        excused = (np.abs(u_ref - theta) <= band) if band > 0 else np.zeros(w.shape, bool)
        return (g != w) & sel & ~excused, np.zeros_like(w)
    finite = np.isfinite(g)
    bound = tol.tolerance(QUANTITY_OF[root], dtype).bound(w, float(np.max(np.abs(w))) if w.size else 0.0)
    return ((np.abs(np.where(finite, g, 0.0) - w) > bound) | ~finite) & sel, bound


def _why(man: dict, root: str, block: int | None, idx: tuple[int, ...], gv: float, wv: float, bound: float,
         exp: dict[str, np.ndarray], got: dict[str, np.ndarray], dtype: str, theta: float, exact: bool) -> str:
    if root == "o":
        u_at = float(np.asarray(exp[f"u.{block}"], np.float64)[idx])
        yours = f", yours u = {_num(np.asarray(got[f'u.{block}'], np.float64)[idx])}" if f"u.{block}" in got else ""
        band = ("; the case is exact, so no flip band applies" if exact
                else f" (flip band ±{man['tolerances']['spike_band']:g} in {dtype})")
        return (f"spikes are compared exactly; there the expected membrane is u = {_num(u_at)}, "
                f"{abs(u_at - theta):.3g} from θ = {theta!r}{yours}{band}")
    if exact:
        return "this case is exact: no rounding happens in it, so it must be equal bit for bit in every dtype"
    if not np.isfinite(gv):
        return "not finite"
    return f"|error| {abs(gv - wv):.3g} > allowed {bound:.3g}"


def _locate(man: dict, root: str, exp: dict[str, np.ndarray], got: dict[str, np.ndarray], dtype: str,
            first_flip: np.ndarray, L: int, theta: float, exact: bool = False
            ) -> tuple[tuple, str, int | None, int | None, dict | None]:
    """The first element of ``root`` out of tolerance — earliest step, then block, then
    C-order index — as ``(sort_key, detail, step, block, index)``; ``detail`` is ""
    when none is found.  ``exact``: any difference counts, in every sample and step."""
    found: list[tuple] = []
    for key in (k for k in man["expected"] if k.split(".")[0] == root):
        ent = man["expected"][key]
        w = np.asarray(exp[key], np.float64)
        g = np.asarray(got[key], np.float64)
        bad, bound = _bad(man, root, key, w, g, exp, dtype, _compared(root, ent, w.shape, first_flip, L), theta, exact)
        if not bad.any():
            continue
        idx = tuple(int(v) for v in np.argwhere(bad)[0])
        step = idx[0] if ent["per_step"] else None
        block = ent.get("block", idx[1] if root == "lsg_loss" else None)
        order = PER_STEP.index(root) if root in PER_STEP else len(PER_STEP)
        skey = (10**9 if step is None else step, L if block is None or root == "logits" else block, order)
        index = dict(zip(ent["axes"][1:], idx[1:]) if ent["per_step"] else zip(ent["axes"], idx))
        where = [f"block {block}"] if block is not None and root != "lsg_loss" else []
        where += [f"step {step}"] if step is not None else []
        where += [key.split(".", 1)[1]] if root in ("grads", "params", "opt") else []
        why = _why(man, root, block, idx, g[idx], w[idx], float(bound[idx]), exp, got, dtype, theta, exact)
        where.append(f"index {_fmt_index(index)}")
        detail = ", ".join(where) + f": got {_num(g[idx])}, expected {_num(w[idx])}; {why}"
        found.append((skey, detail, step, block, index))
    return min(found, key=lambda f: f[0]) if found else ((), "", None, None, None)


def _harness_reference(cfg: TessConfig, root: str, exp: dict[str, np.ndarray], got: dict[str, np.ndarray],
                       before_p: dict[str, np.ndarray], before_o: dict[str, Any], dtype: str) -> dict[str, np.ndarray]:
    """What the harness compares ``root`` with, where that is not the stored expectation:
    parameters and optimiser state from the spec's optimiser on the implementation's own
    gradients; weight-standardised gradients chained from its own Ŵ-gradient."""
    from tess.conformance.harness import expect_optimizer_step, round_to
    from tess_spec.weight_std import standardize_vjp

    ref = dict(exp)
    if root in ("params", "opt"):
        pnames = list(before_p)
        grads = {p: got[f"grads.{p}"] for p in pnames}
        new_p, new_o = expect_optimizer_step(cfg, before_p, before_o, grads, None, dtype)
        if root == "params" and dtype != "float64":  # float64 also compares with the stored values
            ref.update({f"params.{p}": np.asarray(v) for p, v in new_p.items()})
        if root == "opt":
            ref.update({f"opt.{m}.{p}": np.asarray(v) for m in new_o if m != "step" for p, v in new_o[m].items()})
    if root == "grads":
        for i, b in enumerate(cfg.network.blocks):
            if b.weight_std:
                g_hat = np.asarray(got[f"dw_causal.{i}"], np.float64) + np.asarray(got[f"dw_noncausal.{i}"], np.float64)
                w, g = standardize_vjp(round_to(before_p[f"blocks.{i}.weight"], dtype),
                                       round_to(before_p[f"blocks.{i}.gain"], dtype), g_hat)
                ref[f"grads.blocks.{i}.weight"], ref[f"grads.blocks.{i}.gain"] = w, g
    return ref


def _num(v: float) -> str:
    v = float(v)
    return repr(int(v)) if v.is_integer() and abs(v) < 2**53 else f"{v:.9g}"


def check_case(case_dir: str | Path, results_dir: str | Path) -> CaseVerdict:
    """Judge ``results_dir/<case>/`` against the case exported in ``case_dir``."""
    from tess.conformance.harness import Comparison, _flip_steps, compare_step

    case_dir = Path(case_dir)
    man = _load_manifest(case_dir)
    name, dtype = man["name"], man["dtype"]
    verdict = CaseVerdict(name, dtype)
    cfg = from_dict(man["config"])
    L = len(cfg.network.blocks)
    res_dir = Path(results_dir) / name
    if not res_dir.is_dir():
        verdict.error = f"no results: {res_dir} does not exist (the implementation writes one folder per case)"
        verdict.first_divergence = "not run"
        return verdict
    inputs, bad_in = _read_all(case_dir / "inputs", man["inputs"], "dtype")
    exp, bad_exp = _read_all(case_dir / "expected", man["expected"], "dtype")
    if bad_in or bad_exp:
        verdict.error = f"the exported case is incomplete: {'; '.join([*bad_in.values(), *bad_exp.values()][:3])}"
        return verdict
    got, problems = _read_all(res_dir, man["expected"], "result_dtype")
    filled = dict(got)
    for key in problems:  # let the harness judge the rest; these are failures (or "not written") of their own
        filled[key] = exp[key]
    pnames = [k[len("params."):] for k in man["inputs"] if k.startswith("params.")]
    moments = list(man["optimizer_state"]["moments"])
    want = _step_result(cfg, exp, pnames, moments)
    have = _step_result(cfg, filled, pnames, moments)
    before_p = {p: inputs[f"params.{p}"] for p in pnames}
    before_o: dict[str, Any] = {"step": int(man["optimizer_state"]["step"])}
    for mom in moments:
        before_o[mom] = {p: inputs[f"opt.{mom}.{p}"] for p in pnames}
    cmp = compare_step(cfg, want, have, dtype, params_before=before_p, opt_before=before_o)
    first_flip = _flip_steps(cfg, want.record, have.record, dtype, Comparison())
    flipped = bool(np.isfinite(first_flip).any())
    verdict.notes = list(cmp.notes)
    by_root: dict[str, list[str]] = {}
    for msg in cmp.failures:
        by_root.setdefault(_root_of_message(msg), []).append(msg)
    candidates = []
    exact = set(man.get("exact", []))
    for root in ROOTS:
        keys = [k for k in man["expected"] if k.split(".")[0] == root]
        missing = [problems[k] for k in keys if k in problems]
        if missing and root in OPTIONAL_RESULTS and all("missing" in m for m in missing):
            verdict.quantities.append(QuantityVerdict(root, "not written", "optional; left out"))
            continue
        if missing:
            verdict.quantities.append(QuantityVerdict(root, "FAIL", "; ".join(missing[:3])))
            candidates.append(((10**9, L + 1, ROOTS.index(root)), f"{root}: {missing[0]}"))
            continue
        msgs = by_root.get(root, [])
        if root in exact and not np.array_equal(np.concatenate([np.ravel(filled[k]) for k in keys]).astype(np.float64),
                                                 np.concatenate([np.ravel(exp[k]) for k in keys]).astype(np.float64)):
            skey, detail, step, blk, index = _locate(man, root, exp, filled, dtype, first_flip, L, cfg.lif.theta, True)
            verdict.quantities.append(QuantityVerdict(root, "FAIL", detail, step, blk, index))
            candidates.append((skey, f"{root}, {detail}"))
            continue
        if not msgs:
            if flipped and root in ("loss", "n_correct", "dw_causal", "dw_noncausal", "grads", "params", "opt"):
                verdict.quantities.append(QuantityVerdict(
                    root, "not compared", "a spike differs (see o): batch sums are compared only without flips"))
            else:
                n = sum(int(np.size(exp[k])) for k in keys)
                verdict.quantities.append(QuantityVerdict(root, "pass", f"{len(keys)} array(s), {n} values"))
            continue
        ref = _harness_reference(cfg, root, exp, filled, before_p, before_o, dtype)
        skey, detail, step, blk, index = _locate(man, root, ref, filled, dtype, first_flip, L, cfg.lif.theta)
        if not detail:  # the harness's own scale (e.g. a term floor) differs from max|expected|: say what it said
            detail = msgs[0]
            skey = (10**9, L + 1, ROOTS.index(root))
        verdict.quantities.append(QuantityVerdict(root, "FAIL", detail, step, blk, index))
        candidates.append((skey, f"{root}, {detail}"))
    if candidates:
        verdict.first_divergence = min(candidates, key=lambda c: c[0])[1]
    return verdict


def check_vectors(vectors_dir: str | Path, results_dir: str | Path,
                  cases: list[str] | None = None) -> list[CaseVerdict]:
    """Judge every case folder of ``vectors_dir`` (those matching ``cases``, names or shell
    patterns, if given) against ``results_dir``; cases in the order of :data:`tess.vectors.CASES`."""
    import fnmatch

    from tess.errors import DataError

    from .cases import CASES

    root = Path(vectors_dir)
    dirs = sorted(p.parent for p in root.glob("*/manifest.json"))
    if not dirs:
        raise DataError(f"{root}: no case folders (*/manifest.json); write them with `tess vectors export {root}`")
    order = {n: i for i, n in enumerate(CASES)}
    dirs.sort(key=lambda p: (order.get(p.name, len(order)), p.name))
    if cases:
        chosen = [d for d in dirs if any(fnmatch.fnmatchcase(d.name, p) for p in cases)]
        unmatched = [p for p in cases if not any(fnmatch.fnmatchcase(d.name, p) for d in dirs)]
        if unmatched:
            raise DataError(f"no case in {root} matches {unmatched}; present: {', '.join(d.name for d in dirs)}")
        dirs = chosen
    return [check_case(d, results_dir) for d in dirs]


def format_verdicts(verdicts: list[CaseVerdict], verbose: bool = True) -> str:
    """The per-case, per-quantity verdict as text (what ``tess vectors check`` prints)."""
    lines = []
    for v in verdicts:
        head = f"case {v.case} ({v.dtype}): {'PASS' if v.passed else 'FAIL'}"
        if v.error:
            head += f" — {v.error}"
        elif v.first_divergence:
            head += f" — first divergence: {v.first_divergence}"
        lines.append(head)
        for q in v.quantities:
            if verbose or q.status != "pass":
                lines.append(f"  {q.quantity:<13s}{q.status:<13s}{q.detail}")
        for n in v.notes:
            lines.append(f"  note: {n}")
    n_pass = sum(v.passed for v in verdicts)
    lines.append(f"{n_pass}/{len(verdicts)} case(s) pass")
    return "\n".join(lines)


def report_rows(verdicts: list[CaseVerdict]) -> list[dict[str, Any]]:
    """One conformance-report row per case (group :data:`REPORT_GROUP`), for
    :func:`tess.conformance.runner.write_report`."""
    rows = []
    for v in verdicts:
        if v.passed:
            odd = [f"{q.quantity} {q.status}" for q in v.quantities if q.status != "pass"]
            reason = "; ".join([*odd, *v.notes])
        else:
            reason = v.error or f"first divergence: {v.first_divergence}"
        rows.append({"group": REPORT_GROUP, "test": f"{v.case}[{v.dtype}]", "dtype": v.dtype,
                     "outcome": "passed" if v.passed else "failed", "reason": reason})
    return rows


def report_header(verdicts: list[CaseVerdict], name: str, device: str, seconds: float, command: str,
                  versions: dict[str, str] | None = None) -> dict[str, Any]:
    """The report header of an external implementation ``name`` (profile ``vectors``)."""
    import tess
    from tess_spec import SPEC_VERSION

    from .export import FORMAT_VERSION

    dtypes = sorted({v.dtype for v in verdicts})
    return {
        "backend": name, "dtype": ",".join(dtypes), "device": device, "profile": "vectors",
        "versions": {"tess": tess.__version__, "spec": SPEC_VERSION, "vectors": str(FORMAT_VERSION),
                     "python": platform.python_version(), "numpy": np.__version__, **(versions or {})},
        "passed": bool(verdicts) and all(v.passed for v in verdicts), "seconds": round(seconds, 1),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
    }
