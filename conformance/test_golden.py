"""Group "golden": the backend reproduces the committed float64 golden traces of the
spec (``conformance/golden/*.npz``, made by ``python -m tess_spec.golden``) step by
step — u, o, ψ, q, h, m, per-block updates, gradients and the weights after each of
the three optimiser steps — and the goldens themselves are not vacuous."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from tess.conformance.harness import Comparison, StepResult, Target, compare_step, run_backend
from tess_spec import golden as G
from tess_spec.lsg import learning_signal
from tess_spec.reference import effective_weights, lsg_bases
from tess_spec.signals import readout_backprop, signal_schedule

__all__ = ["GOLDEN_DIR", "golden_path", "check_exact", "check_golden_steps", "check_golden_chained"]

GOLDEN_DIR = Path(__file__).parent / "golden"
"""Where the committed golden files live (package data)."""


def golden_path(name: str) -> Path:
    """Path of golden case ``name``."""
    return GOLDEN_DIR / f"{name}.npz"


def _want(step: dict) -> StepResult:
    rec = step["record"]
    return StepResult(step["params"], step["opt_state"], rec, rec["state"], rec["loss"], rec["n_correct"])


def check_exact(config, want: dict, got: dict, quantities: tuple[str, ...], cmp: Comparison, what: str) -> None:  # noqa: ANN001
    """Bit-exact comparison of record ``quantities`` (any dtype: the exact case's numbers are
    dyadic, so every IEEE implementation computes them without rounding) — no spike band,
    no tolerance.  A flip at ``u == θ`` is named as what it is."""
    theta = config.lif.theta
    for q in sorted(quantities, key=lambda q: q != "o"):  # spikes first: a wrong spike explains the rest
        for i in range(len(config.network.blocks)):
            w = np.asarray(want[q][i], np.float64)
            g = np.asarray(got[q][i])
            if g.shape != w.shape:
                cmp.fail(f"{what}: {q}[block {i}] shape {g.shape} != {w.shape}")
                continue
            bad = g.astype(np.float64) != w
            if bad.any():
                idx = tuple(int(j) for j in np.argwhere(bad)[0])
                ties = int(np.count_nonzero(bad & (np.asarray(want["u"][i], np.float64) == theta)))
                cmp.fail(f"{what}: {q}[block {i}] differs from the exact value at {int(bad.sum())}/{w.size} places, "
                         f"{ties} of them where u == θ = {theta:g} exactly (spike is u > θ, strict); first at t={idx[0]}, "
                         f"index {idx[1:]}: got {g[idx]!r}, expected {w[idx]!r}")


def check_golden_steps(target: Target, name: str, note: Callable[[str], None] | None = None) -> None:
    """Each step from the golden's own parameters and optimiser state before it (and, for an
    exact golden such as ``threshold-ties``, its u and o bit for bit in any dtype)."""
    g = G.load(golden_path(name))
    backend = target.backend()
    params, opt = g.params, g.opt_state
    for k, step in enumerate(g.steps):
        got = run_backend(backend, g.config, params, opt, step["x"], step["y"], step["masks"])
        cmp = compare_step(g.config, _want(step), got, target.dtype, params_before=params, opt_before=opt,
                           x=step["x"], masks=step["masks"])
        if g.exact:
            check_exact(g.config, step["record"], got.record, g.exact, cmp, f"exact golden {name!r}")
        if note is not None:
            for n in cmp.notes:
                note(f"step {k}: {n}")
        cmp.raise_if_failed(f"golden {name!r}, optimiser step {k}")
        params, opt = step["params"], step["opt_state"]


def check_golden_chained(target: Target, name: str) -> None:
    """All steps chained on the backend's own parameters (float64)."""
    g = G.load(golden_path(name))
    backend = target.backend()
    params = backend.params_from_numpy(g.params)
    opt = backend.opt_state_from_numpy(g.opt_state)
    for k, step in enumerate(g.steps):
        out = backend.train_batch(g.config, params, opt, step["x"], step["y"], masks=step["masks"], record=True)
        got = StepResult(backend.params_to_numpy(out.params), backend.opt_state_to_numpy(out.opt_state), out.record,
                         [{q: backend.to_numpy(v) for q, v in s.items()} for s in out.state])
        cmp = compare_step(g.config, _want(step), got, target.dtype)
        cmp.raise_if_failed(f"golden {name!r} chained, after optimiser step {k}")
        params, opt = out.params, out.opt_state


@pytest.mark.parametrize("name", list(G.GOLDEN_CASES))
def test_golden_steps_match(target: Target, note: Callable[[str], None], name: str) -> None:
    """Per step from the golden's state: every recorded quantity and the weights after the step."""
    check_golden_steps(target, name, note)


@pytest.mark.tess_dtypes("float64")
@pytest.mark.parametrize("name", [n for n in G.GOLDEN_CASES if G.GOLDEN_CASES[n].get("n_steps", G.N_STEPS) > 1])
def test_golden_chained_float64(target: Target, name: str) -> None:
    """The optimiser steps chained on the backend's own weights match — collected in float64
    only: in float32, Adam turns rounding of near-zero gradients into steps of size lr, so
    chained float32 weights drift by design (float32 is checked step by step above)."""
    check_golden_chained(target, name)


@pytest.mark.parametrize("name", list(G.GOLDEN_CASES))
def test_golden_is_not_vacuous(name: str) -> None:
    """Spikes in every block at every step (not saturated), both trace terms non-zero,
    the window matters (m = 0 at the steps without a learning signal — before the window,
    unless the signal is ``released`` — and a step before it would change G), every
    signal of the schedule is non-zero, weights move, dropout masks drop something."""
    g = G.load(golden_path(name))
    cfg = g.config
    start = cfg.train.window_start
    assert 0 < start < cfg.train.T, "the learning window must be a proper suffix"
    bases = lsg_bases(cfg)
    schedule = signal_schedule(cfg)  # per step: "lsg", "readout-backprop" or None (TESS_RULE.md §11)
    for k, step in enumerate(g.steps):
        rec = step["record"]
        before = g.params if k == 0 else g.steps[k - 1]["params"]
        edge = None  # the signal the step just before the window would get, were it in the window
        if schedule[start - 1] is None and schedule[start] == "readout-backprop":
            edge = readout_backprop(cfg, step["y"], rec["logits"][start - 1], before["readout.weight"],
                                    effective_weights(cfg, before), [o[start - 1] for o in rec["o"]],
                                    [p[start - 1] for p in rec["psi"]], step["masks"])
        for i, b in enumerate(cfg.network.blocks):
            o = rec["o"][i]
            assert 0 < o.mean() < 0.9, f"step {k} block {i}: spike rate {o.mean():.3f}"
            assert o[:start].sum() > 0 and o[start:].sum() > 0, f"step {k} block {i}: no spikes before/in the window"
            assert np.abs(rec["dw_causal"][i]).max() > 1e-4, f"step {k} block {i}: causal term vanishes"
            assert np.abs(rec["dw_noncausal"][i]).max() > 1e-4, f"step {k} block {i}: non-causal term vanishes"
            for sig in set(schedule):  # m = 0 exactly where there is no signal, and not vacuous where there is
                steps_of = [t for t, s in enumerate(schedule) if s == sig]
                m_sig = np.abs(rec["m"][i][steps_of])
                assert (m_sig.max() == 0) if sig is None else (m_sig.max() > 0), \
                    f"step {k} block {i}: m at the steps of signal {sig!r}: max {m_sig.max():.3g}"
            if schedule[start - 1] is not None:
                continue  # (released: the steps before the window learn, from the LSG)
            # the step just before the window would contribute a non-zero update
            if edge is not None:
                m = edge[i]
            else:
                m, _ = learning_signal(o[start - 1], step["y"], bases[i], k=cfg.lsg_pool(i), mask=step["masks"][i],
                                       pool=b.pool, pool_size=b.pool_size)
            assert np.abs(m * rec["psi"][i][start - 1]).max() > 0, f"step {k} block {i}: window edge is inert"
            if b.dropout:
                assert step["masks"][i] is not None and (step["masks"][i] == 0).any()
        for key, before in (g.params if k == 0 else g.steps[k - 1]["params"]).items():
            assert not np.array_equal(step["params"][key], before), f"step {k}: {key} did not change"
    for field in ("spec_version", "dtype", "seed", "command"):
        assert field in g.meta, f"golden {name!r} lacks {field!r}"
    assert g.meta["dtype"] == "float64"
