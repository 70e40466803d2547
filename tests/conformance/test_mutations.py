"""Mutation meta-tests: the conformance suite must FAIL every deliberately broken
variant of the NumPy backend (``tess.conformance.mutants``), and pass the real one.

Each mutant is run through the suite's own check functions (golden traces, fixed
differential cases, rule properties); the test asserts that at least one named suite
test fails and records it (``-rA`` or the JUnit properties show it).  The checks stop at
the first that fails — goldens first, which catch most — so a mutant costs at most one
full pass (measured: the whole file runs in ~7 s on an idle 2-core machine).
"""

from __future__ import annotations

import importlib
from typing import Callable

import pytest

from tess.conformance import mutants
from tess.conformance import strategies as S
from tess.conformance.harness import Target
from tess_spec import golden as G

eq = importlib.import_module("tess.conformance.test_equations")
gold = importlib.import_module("tess.conformance.test_golden")
props = importlib.import_module("tess.conformance.test_properties")


def _fixed_cases() -> list[S.Case]:
    cfgs = eq.named_configs()
    return [S.make_case(cfgs[n], 100, batch=3, sequence=seq, binary=seq, input_scale=1.0 if seq else 1.5,
                        weight_scale=2.0, warm_steps=3) for n in cfgs for seq in (False, True)]


def _each(check: Callable[[Target, S.Case], None]) -> Callable[[Target], None]:
    def run(target: Target) -> None:
        for case in _fixed_cases():
            check(target, case)
    return run


def _each_signal(check: Callable[[Target, S.Case], None]) -> Callable[[Target], None]:
    """``check`` on the fixed cases under every learning signal beside the LSG."""
    def run(target: Target) -> None:
        for case in _fixed_cases():
            for signal in eq.SIGNALS:
                check(target, S.Case(case.config.replace(learning_signal=signal), case.params, case.opt_state,
                                     case.x, case.y, case.masks, case.lr))
    return run


def _golden(name: str) -> Callable[[Target], None]:
    return lambda t: gold.check_golden_steps(t, name)


def _ties(reset: str) -> Callable[[Target], None]:
    return lambda t: eq.check_threshold_ties(t, reset)


CHECKS: dict[str, Callable[[Target], None]] = {
    **{f"golden::test_golden_steps_match[{n}]": _golden(n) for n in G.GOLDEN_CASES},
    "equations::test_named_network_matches_spec": _each(eq.check_case),
    "equations::test_threshold_ties_are_exact[soft]": _ties("soft"),
    "equations::test_threshold_ties_are_exact[hard]": _ties("hard"),
    "properties::test_trace_closed_forms": _each(props.check_trace_closed_forms),
    "properties::test_update_is_bilinear_in_m": _each(props.check_update_bilinear),
    "properties::test_lsg_signal_is_local_loss_gradient": _each(props.check_lsg_gradient),
    "properties::test_profiles_differ_where_spec_says": props.check_profiles,
    "equations::test_named_network_signal_matches_spec": _each_signal(eq.check_case),
    "properties::test_readout_backprop_equals_autodiff_on_fixed_networks":
        lambda t: [props.check_readout_autodiff(t, c) for c in props.readout_autodiff_cases()],
}
"""Suite test id → the check function it runs, on fixed inputs."""


def _caught(target: Target, *, first: bool = False, only: tuple[str, ...] | None = None) -> dict[str, str]:
    """Suite test id → first line of its failure, for the checks ``target`` fails; ``first``:
    stop at the first failing check (a mutant's cost stays bounded: the goldens come first
    and catch most); ``only``: run just these checks."""
    out = {}
    for name, check in CHECKS.items():
        if only is not None and name not in only:
            continue
        try:
            check(target)
        except AssertionError as exc:
            out[name] = str(exc).splitlines()[0][:200]
            if first:
                break
    return out


@pytest.mark.parametrize("bug,cls", list(mutants.MUTANTS.items()), ids=list(mutants.MUTANTS.values()))
def test_suite_catches_mutant(bug: str, cls: str, record_property: Callable[[str, object], None]) -> None:
    """Every mutant fails at least one named suite test."""
    caught = _caught(Target(f"tess.conformance.mutants:{cls}", "float64"), first=True)
    record_property("caught_by", sorted(caught))
    print(f"{cls} ({bug}) caught by: {sorted(caught)}")
    assert caught, f"the suite lets the mutant {cls!r} ({bug}) pass"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_spike_at_threshold_is_caught_by_the_exact_cases(dtype: str) -> None:
    """``u >= θ`` passes every check on continuous draws; the exact threshold-tie cases (the
    named case, both resets, and the ``threshold-ties`` golden) catch it in either dtype."""
    want = ("equations::test_threshold_ties_are_exact[soft]", "equations::test_threshold_ties_are_exact[hard]",
            "golden::test_golden_steps_match[threshold-ties]")
    caught = _caught(Target("tess.conformance.mutants:SpikeAtThreshold", dtype), only=want)
    assert set(want) <= set(caught), f"caught only by {sorted(caught)}"
    with pytest.raises(AssertionError, match="where u == θ = 0.5 exactly"):
        eq.check_threshold_ties(Target("tess.conformance.mutants:SpikeAtThreshold", dtype), "soft")


@pytest.mark.parametrize("cls", mutants.READOUT_MUTANTS)
def test_readout_mutants_are_caught_by_the_independent_oracle(cls: str) -> None:
    """A bug of readout back-propagation leaves every LSG check passing (the LSG never crosses
    a block): the readout-backprop cases catch it — against the spec's oracle and, without
    the spec, against the autodiff property's independent oracle."""
    target = Target(f"tess.conformance.mutants:{cls}", "float64")
    caught = _caught(target)
    assert "equations::test_named_network_matches_spec" not in caught, "an LSG check saw a readout-backprop bug"
    assert "properties::test_readout_backprop_equals_autodiff_on_fixed_networks" in caught, sorted(caught)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_real_backend_passes_the_same_checks(dtype: str) -> None:
    """The same checks pass on the unmodified NumPy backend (so a catch is not noise)."""
    assert _caught(Target("numpy", dtype)) == {}
