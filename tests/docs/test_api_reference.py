"""Every public name (``__all__``) of tess, tess_spec and the backends appears in the
API reference, with a docstring."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

SECTION_PAGES = {"tess": "tess", "tess_spec": "tess_spec", "backends": "backends", "conformance": "conformance"}


@pytest.fixture(scope="module")
def tree(hooks, tmp_path_factory):
    return hooks.build_api_tree(tmp_path_factory.mktemp("api-src"))


@pytest.fixture(scope="module")
def griffe_pkgs(hooks, tree):
    return hooks.load_griffe(tree)


def _section(hooks, module: str) -> str:
    return next(s for s, pred in hooks.API_SECTIONS.items() if pred(module))


def _ids(site: Path, section: str) -> set[str]:
    html = (site / "api" / f"{SECTION_PAGES[section]}.html").read_text(encoding="utf-8")
    return set(re.findall(r'id="([^"]+)"', html))


def test_module_discovery_covers_the_packages(hooks, tree):
    mods = hooks.public_modules(tree)
    for expected in ("tess", "tess.backend", "tess.registry", "tess_spec", "tess_spec.neuron",
                     "tess_spec.lsg", "tess.backends", "tess.backends.numpy", "tess.backends.numpy.kernels"):
        assert expected in mods
    assert not [m for m in mods if any(p.startswith("_") for p in m.split("."))]


def test_every_public_module_has_its_section(hooks, tree, site):
    missing = []
    for module in hooks.public_modules(tree):
        if module not in _ids(site, _section(hooks, module)):
            missing.append(module)
    assert not missing, f"modules without an API entry: {missing}"


def test_every_public_name_is_documented_with_a_docstring(hooks, tree, griffe_pkgs, site):
    mods = hooks.public_modules(tree)
    documented = set(mods)
    all_ids = set().union(*(_ids(site, s) for s in SECTION_PAGES))
    problems, checked = [], 0
    for module in mods:
        mod = hooks._get(griffe_pkgs, module)
        here, links = hooks.classify_exports(griffe_pkgs, module, documented)
        targets = dict(links)
        for name in mod.exports or []:
            checked += 1
            path = f"{module}.{name}"
            member = mod.members.get(name)
            if member is None:
                problems.append(f"{path}: in __all__ but not defined")
                continue
            try:
                obj = member.final_target if member.is_alias else member
                doc = obj.docstring.value.strip() if obj.docstring else ""
            except Exception as exc:  # an alias that resolves to nothing
                problems.append(f"{path}: cannot be resolved ({type(exc).__name__}: {exc})")
                continue
            if not doc:
                problems.append(f"{path}: no docstring")
            anchor = targets.get(name, path)
            if anchor not in all_ids:
                problems.append(f"{path}: no API entry (expected anchor {anchor!r})")
    assert checked > 100, f"only {checked} public names found: the walk is broken"
    assert not problems, "\n".join(problems)


def test_static_exports_match_runtime(hooks, tree, griffe_pkgs):
    """What the docs read statically is what Python exports (for modules importable here)."""
    mismatched, imported = [], 0
    for module in hooks.public_modules(tree):
        static = hooks._get(griffe_pkgs, module).exports
        try:
            runtime_mod = importlib.import_module(module)
        except ImportError:
            continue  # a framework missing here: documented statically, nothing to compare
        imported += 1
        runtime = getattr(runtime_mod, "__all__", None)
        if runtime is not None and static is not None and sorted(map(str, static)) != sorted(runtime):
            mismatched.append(f"{module}: static {sorted(map(str, static))} != runtime {sorted(runtime)}")
    assert imported >= 10
    assert not mismatched, "\n".join(mismatched)
