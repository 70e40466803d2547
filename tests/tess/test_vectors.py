"""tess.vectors: exported cases are deterministic, self-describing and follow the
tolerance policy; the checker passes a correct implementation (the NumPy backend,
writing its results like an external program) and locates where a wrong one diverges."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from tess import get_backend
from tess.cli import main as tess_main
from tess.conformance import tolerances as tol
from tess.conformance.harness import run_reference
from tess.errors import ConfigError, DataError
from tess.vectors import CASES, check_vectors, export_vectors, family, load_schema, select_cases
from tess.vectors.layout import read_array
from tess_spec import from_dict, to_dict
from tess_spec import golden as G


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module", params=["float64", "float32"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"vectors-{request.param}")
    export_vectors(out, None, request.param)
    return out


def write_results(vec_dir: Path, res_dir: Path, backend: str = "numpy", fmt: str = "bin",
                  cases: list[str] | None = None) -> None:
    """Run a tess backend on each case's inputs and write its arrays as an external program would."""
    for mp in sorted(vec_dir.glob("*/manifest.json")):
        man = json.loads(mp.read_text(encoding="utf-8"))
        if cases is not None and man["name"] not in cases:
            continue
        d, dt = mp.parent, man["dtype"]
        cfg = from_dict(man["config"])
        ld = lambda k: np.load(d / "inputs" / f"{k}.npy")  # noqa: E731
        names = [k[len("params."):] for k in man["inputs"] if k.startswith("params.")]
        moments = man["optimizer_state"]["moments"]
        opt: dict[str, Any] = {"step": man["optimizer_state"]["step"]}
        opt.update({m: {p: ld(f"opt.{m}.{p}") for p in names} for m in moments})
        L = len(cfg.network.blocks)
        masks = [ld(f"mask.{i}") if f"mask.{i}" in man["inputs"] else None for i in range(L)]
        be = get_backend(backend, dtype=dt)
        out = be.train_batch(cfg, be.params_from_numpy({p: ld(f"params.{p}") for p in names}),
                             be.opt_state_from_numpy(opt), ld("x"), ld("y"), masks=masks, record=True)
        rec, P, O = out.record, be.params_to_numpy(out.params), be.opt_state_to_numpy(out.opt_state)
        res: dict[str, Any] = {f"{k}.{i}": rec[k][i] for k in ("u", "o", "psi", "q", "h", "m", "dw_causal",
                                                              "dw_noncausal") for i in range(L)}
        res.update(logits=rec["logits"], lsg_loss=rec["lsg_loss"], loss=float(out.loss), n_correct=int(out.n_correct))
        res.update({f"grads.{p}": rec["grads"][p] for p in names})
        res.update({f"params.{p}": P[p] for p in names})
        res.update({f"opt.{m}.{p}": O[m][p] for m in moments for p in names})
        res["opt.step"] = int(O["step"])
        od = res_dir / man["name"]
        od.mkdir(parents=True, exist_ok=True)
        for k, v in res.items():
            a = np.asarray(v).astype(man["expected"][k]["result_dtype"])
            if fmt == "bin":
                (od / f"{k}.bin").write_bytes(a.astype(a.dtype.newbyteorder("<")).tobytes())
            else:
                np.save(od / f"{k}.npy", a)


def test_export_is_deterministic(tmp_path: Path) -> None:
    for dtype in ("float64", "float32"):
        a, b = tmp_path / f"a-{dtype}", tmp_path / f"b-{dtype}"
        export_vectors(a, None, dtype)
        export_vectors(b, None, dtype)
        da, db = _digests(a), _digests(b)
        assert list(da) == list(db) and len(da) > 100
        differ = [k for k in da if da[k] != db[k]]
        assert not differ, f"{dtype}: {len(differ)} file(s) differ between two exports, e.g. {differ[:3]}"


def test_manifests_validate_against_the_committed_schema(exported: Path) -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    paths = sorted(exported.glob("*/manifest.json"))
    assert {p.parent.name for p in paths} == set(CASES)
    for p in paths:
        errors = sorted(validator.iter_errors(json.loads(p.read_text(encoding="utf-8"))), key=str)
        assert not errors, f"{p.parent.name}: {errors[0].message} at {list(errors[0].absolute_path)}"
    broken = json.loads(paths[0].read_text(encoding="utf-8"))
    broken["expected"]["u.0"]["shape"] = "T×B"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_manifest_carries_the_config_and_the_policy(exported: Path) -> None:
    for name, case in CASES.items():
        man = json.loads((exported / name / "manifest.json").read_text(encoding="utf-8"))
        dtype = man["dtype"]
        cfg = case.build().config
        assert from_dict(man["config"]) == cfg and man["config"] == to_dict(cfg)
        assert man["profile"] == cfg.profile and man["learning_signal"] == cfg.learning_signal and man["family"] == family(cfg)
        tq = man["tolerances"]["quantities"]
        assert set(tq) == set(tol.QUANTITIES)
        for q in tol.QUANTITIES:
            t = tol.tolerance(q, dtype)
            assert (tq[q]["rtol"], tq[q]["atol"]) == (t.rtol, t.atol)
        assert man["tolerances"]["spike_band"] == tol.spike_band(cfg.lif.theta, dtype)
        assert man["sizes"]["window_start"] == cfg.train.window_start


def test_npy_and_bin_hold_the_same_little_endian_arrays(exported: Path) -> None:
    man = json.loads((exported / "linear-two-blocks" / "manifest.json").read_text(encoding="utf-8"))
    for folder in ("inputs", "expected"):
        for key, e in man[folder].items():
            raw = (exported / "linear-two-blocks" / e["bin"]).read_bytes()
            npy = np.load(exported / "linear-two-blocks" / e["npy"])
            assert npy.dtype.byteorder in ("<", "=", "|") and npy.dtype.str.startswith(("<", "|"))
            assert list(npy.shape) == e["shape"] and len(e["axes"]) == npy.ndim and str(npy.dtype) == e["dtype"]
            assert raw == npy.astype(npy.dtype.newbyteorder("<")).tobytes(order="C"), key
    assert man["expected"]["u.1"]["axes"] == ["t", "batch", "neuron"]
    assert man["inputs"]["x"]["axes"] == ["batch", "t", "input"]
    assert man["inputs"]["x"]["dtype"] == man["dtype"] and man["inputs"]["y"]["dtype"] == "int64"


def test_expected_values_are_the_reference_on_the_stored_inputs(exported: Path) -> None:
    d = exported / "linear-block"
    man = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    dtype = man["dtype"]
    ld = lambda k: np.load(d / "inputs" / f"{k}.npy")  # noqa: E731
    cfg = from_dict(man["config"])
    names = [k[len("params."):] for k in man["inputs"] if k.startswith("params.")]
    opt = {"step": man["optimizer_state"]["step"], **{m: {p: ld(f"opt.{m}.{p}") for p in names}
                                                      for m in man["optimizer_state"]["moments"]}}
    assert all(ld(f"params.{p}").dtype == np.dtype(dtype) for p in names)
    want = run_reference(cfg, {p: ld(f"params.{p}") for p in names}, opt, ld("x"), ld("y"), None, None, dtype)
    assert np.array_equal(np.load(d / "expected" / "u.0.npy"), want.record["u"][0])
    assert np.load(d / "expected" / "u.0.npy").dtype == np.float64
    assert np.array_equal(np.load(d / "expected" / "params.blocks.0.weight.npy"), want.params["blocks.0.weight"])


def test_cases_exercise_what_they_say() -> None:
    linear = [n for n, c in CASES.items() if family(c.build().config) == "linear"]
    assert linear == ["lif-neuron", "linear-block", "linear-two-blocks", "linear-hard-reset",
                      "linear-threshold-ties", "linear-threshold-ties-hard"]
    assert [n for n in CASES if n.startswith("golden-")] == [f"golden-{g}" for g in G.GOLDEN_CASES]
    conv = CASES["conv-block"].build().config.network.blocks[0]
    assert conv.kind == "conv" and conv.pool == "max" and conv.weight_std
    from tess_spec.reference import train_batch

    for name in ("linear-threshold-ties", "linear-threshold-ties-hard"):
        ci = CASES[name].build()
        _, _, rec = train_batch(ci.config, ci.params, ci.opt_state, ci.x, ci.y)
        theta = ci.config.lif.theta
        assert all(int((u == theta).sum()) > 0 for u in rec["u"]), f"{name}: no exact tie in some block"
        assert all(o.any() for o in rec["o"]) and all(np.abs(m).max() > 0 for m in rec["m"])
        assert CASES[name].exact == ("u", "o")


def test_golden_cases_start_from_the_golden_set() -> None:
    from importlib.resources import files

    for gname in G.GOLDEN_CASES:
        path = Path(str(files("tess.conformance") / "golden" / f"{gname}.npz"))
        if not path.is_file():
            continue
        g = G.load(path)
        ci = CASES[f"golden-{gname}"].build()
        assert ci.config == g.config
        assert np.array_equal(ci.x, g.steps[0]["x"]) and np.array_equal(ci.y, g.steps[0]["y"])
        assert all(np.array_equal(ci.params[k], g.params[k]) for k in g.params)


def test_select_cases() -> None:
    assert select_cases(["linear-threshold-*"]) == ["linear-threshold-ties", "linear-threshold-ties-hard"]
    assert select_cases(None) == list(CASES)
    with pytest.raises(ConfigError, match="no vector case matches 'nope'"):
        select_cases(["nope"])


@pytest.mark.parametrize("fmt", ["bin", "npy"])
def test_numpy_backend_passes_every_case(exported: Path, tmp_path: Path, fmt: str) -> None:
    write_results(exported, tmp_path, "numpy", fmt)
    verdicts = check_vectors(exported, tmp_path)
    failed = [f"{v.case}: {v.first_divergence or v.error}" for v in verdicts if not v.passed]
    assert not failed and len(verdicts) == len(CASES), failed


def test_check_cli_writes_the_conformance_report(exported: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    write_results(exported, tmp_path / "res", "numpy", cases=["lif-neuron", "linear-block"])
    report = tmp_path / "report" / "ext.md"
    code = tess_main(["vectors", "check", str(exported), str(tmp_path / "res"), "--cases", "lif-neuron",
                      "linear-block", "--report", str(report), "--name", "c-example"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "case linear-block" in out and "2/2 case(s) pass" in out
    data = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["header"]["backend"] == "c-example" and data["header"]["profile"] == "vectors"
    assert data["header"]["passed"] is True
    assert [r["test"] for r in data["rows"]] == [f"lif-neuron[{exported_dtype(exported)}]",
                                                 f"linear-block[{exported_dtype(exported)}]"]
    assert all(r["group"] == "vectors" and r["outcome"] == "passed" for r in data["rows"])
    assert "Tolerances used" in report.read_text(encoding="utf-8")
    # a case without results fails the run
    assert tess_main(["vectors", "check", str(exported), str(tmp_path / "res"), "--cases", "conv-block"]) == 1
    assert "no results" in capsys.readouterr().out


def exported_dtype(d: Path) -> str:
    return json.loads((d / "lif-neuron" / "manifest.json").read_text(encoding="utf-8"))["dtype"]


def test_mutant_backend_is_located(exported: Path, tmp_path: Path) -> None:
    write_results(exported, tmp_path, "tess.conformance.mutants:LambdaPreDropped", cases=["linear-two-blocks"])
    (v,) = check_vectors(exported, tmp_path, ["linear-two-blocks"])
    assert not v.passed
    q = next(x for x in v.quantities if x.quantity == "q")
    assert q.failed and (q.block, q.step) == (0, 1) and set(q.index or {}) == {"batch", "input"}
    assert v.first_divergence.startswith("q, block 0, step 1, index (batch=0, ")


def test_missing_and_malformed_results(exported: Path, tmp_path: Path) -> None:
    write_results(exported, tmp_path, "numpy", cases=["linear-block"])
    d = tmp_path / "linear-block"
    for opt in ("lsg_loss", "loss", "n_correct"):
        (d / f"{opt}.bin").unlink()
    (v,) = check_vectors(exported, tmp_path, ["linear-block"])
    assert v.passed and {q.quantity: q.status for q in v.quantities}["loss"] == "not written"
    (d / "h.0.bin").unlink()
    (d / "logits.bin").write_bytes((d / "logits.bin").read_bytes()[:-4])
    (v,) = check_vectors(exported, tmp_path, ["linear-block"])
    status = {q.quantity: q for q in v.quantities}
    assert not v.passed and status["h"].failed and "missing" in status["h"].detail
    assert status["logits"].failed and "bytes; expected" in status["logits"].detail
    assert status["u"].status == "pass"
    a, why = read_array(d, "nothing", (2,), "float64")
    assert a is None and "missing" in why


def test_check_needs_exported_cases(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no case folders"):
        check_vectors(tmp_path, tmp_path)
    assert tess_main(["vectors", "check", str(tmp_path), str(tmp_path)]) == 2


def test_the_how_to_page_lists_every_case() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "validate-other-language.md").read_text(encoding="utf-8")
    missing = [n for n in CASES if f"`{n}`" not in page]
    assert not missing, f"docs/validate-other-language.md does not list {missing}"
