"""The pytest side of the conformance suite: options, fixtures, profiles and the
per-backend skip/xfail lists.

Loaded by ``conformance/conftest.py``, so both ``pytest --pyargs tess.conformance
--tess-backend NAME`` and ``python -m tess.conformance --backend NAME`` use it.

Options: ``--tess-backend`` (a registered name, an entry-point name or
``module:attribute``; default ``$TESS_BACKEND`` or ``numpy``), ``--tess-dtype``
(``float32``, ``float64`` or ``both``), ``--tess-device``, ``--tess-profile``
(``ci`` or ``thorough``), ``--tess-expectations`` (an extra list file),
``--tess-examples`` and ``--tess-oracle`` (``auto``, ``autodiff`` or
``finite-differences``).  A test marked ``@pytest.mark.tess_dtypes("float64")``
is collected only for those dtypes (a float64-only property is not a float32 skip).
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

__all__ = [
    "REQUIRED_GROUPS",
    "GROUPS",
    "PROFILES",
    "Expectation",
    "load_expectations",
    "expectation_files",
    "group_of",
    "test_id",
    "pytest_addoption",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_collection_modifyitems",
    "pytest_sessionfinish",
    "note",
    "profile",
]

GROUPS: tuple[str, ...] = ("strategies", "equations", "properties", "golden", "errors", "dataset", "baseline")
"""Test groups, one module ``test_<group>.py`` each, in report order."""

REQUIRED_GROUPS: frozenset[str] = frozenset({"strategies", "equations", "properties", "golden", "errors", "dataset"})
"""Groups a backend must pass; ``baseline`` (the BPTT gap) is reported only."""

PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 20, "derandomize": True,
           "phases": ("explicit", "reuse", "generate")},  # no shrinking: failures print as drawn
    "thorough": {"max_examples": 150, "derandomize": False},
}
"""Hypothesis examples per property test in each profile."""

EXPECTATIONS_DIR = Path(__file__).parent / "expectations"
_LINE = re.compile(r"^(?P<action>skip|xfail)\s+(?P<pattern>\S+)\s+(?P<reason>\S.*)$")


@dataclass(frozen=True)
class Expectation:
    """One line of a skip/xfail list: ``ACTION PATTERN REASON`` (the reason is mandatory)."""

    action: str
    pattern: str
    reason: str
    source: str


def load_expectations(path: Path) -> list[Expectation]:
    """Parse a list file; ``#`` starts a comment.  A line without a reason is an error."""
    out = []
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _LINE.match(line)
        if not m:
            raise pytest.UsageError(
                f"{path}:{n}: {raw!r} is not 'skip|xfail PATTERN REASON' (every line needs a reason)"
            )
        out.append(Expectation(m["action"], m["pattern"], m["reason"].strip(), f"{Path(path).name}:{n}"))
    return out


def expectation_files(backend: str, extra: str | None = None) -> list[Path]:
    """The committed list of ``backend`` (``expectations/<name>.txt``) plus ``extra``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", backend)
    files = [p for p in [EXPECTATIONS_DIR / f"{safe}.txt"] if p.is_file()]
    if extra:
        if not Path(extra).is_file():
            raise pytest.UsageError(f"--tess-expectations {extra!r}: no such file")
        files.append(Path(extra))
    return files


def group_of(nodeid: str) -> str:
    """The group of a test from its node id (``.../test_<group>.py::...``)."""
    m = re.search(r"test_([a-z_]+)\.py", nodeid)
    return m.group(1) if m else "other"


def test_id(nodeid: str) -> str:
    """``group::test_name[params]`` — what list patterns and reports use."""
    return f"{group_of(nodeid)}::{nodeid.split('::', 1)[-1]}"


test_id.__test__ = False  # type: ignore[attr-defined]  # not a test


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``--tess-*`` options."""
    g = parser.getgroup("tess conformance")
    g.addoption("--tess-backend", default=os.environ.get("TESS_BACKEND", "numpy"),
                help="backend under test: a name, an entry-point name or module:attribute [numpy]")
    g.addoption("--tess-dtype", default="both", choices=("float32", "float64", "both"),
                help="dtype(s) to test [both]")
    g.addoption("--tess-device", default=None, help="backend device, e.g. cuda [backend default]")
    g.addoption("--tess-profile", default="ci", choices=tuple(PROFILES), help="ci (fast) or thorough [ci]")
    g.addoption("--tess-expectations", default=None, help="extra skip/xfail list file")
    g.addoption("--tess-examples", type=int, default=None,
                help="Hypothesis examples per property test [profile: ci 20, thorough 150]")
    g.addoption("--tess-oracle", default="auto", choices=("auto", "autodiff", "finite-differences"),
                help="oracle of the gradient properties: autodiff (torch), finite-differences (NumPy) or auto "
                     "(autodiff when torch is importable) [auto]")


SUITE_DIR = Path(__file__).resolve().parent


def in_suite(path: Any) -> bool:
    """Whether a collected file belongs to this package (the plugin touches nothing else)."""
    try:
        return Path(str(path)).resolve().parent == SUITE_DIR
    except (OSError, ValueError):  # pragma: no cover
        return False


def pytest_configure(config: pytest.Config) -> None:
    """Check the options; load the Hypothesis profile of ``--tess-profile`` when the session
    runs the suite (Hypothesis is imported only then, so other pytest runs are not burdened)."""
    config.addinivalue_line("markers", "tess_dtypes(*dtypes): collect the test only for these backend dtypes")
    n = config.getoption("--tess-examples", default=None)
    if n is not None and n < 1:
        raise pytest.UsageError(f"--tess-examples={n} is invalid: expected a positive integer")
    # Hypothesis fixes a test's settings when its module is imported, so the profile is
    # loaded here — but only in a session that is asked to run the suite.
    if any("conformance" in str(a) for a in config.args):
        _load_profile(config)
        from tess_spec.errors import TessError

        from .oracles import select

        try:
            select(config.getoption("--tess-oracle", default="auto"))
        except TessError as exc:
            raise pytest.UsageError(f"--tess-oracle: {exc}") from None


def _load_profile(config: pytest.Config) -> None:
    from hypothesis import HealthCheck, Phase, settings

    for name, opts in PROFILES.items():
        opts = dict(opts)
        if "phases" in opts:
            opts["phases"] = tuple(getattr(Phase, p) for p in opts["phases"])
        settings.register_profile(
            f"tess-{name}", deadline=None, database=None, print_blob=True,
            suppress_health_check=list(HealthCheck), **opts,
        )
    prof = config.getoption("--tess-profile", default="ci")
    settings.load_profile(f"tess-{prof}")
    n = config.getoption("--tess-examples", default=None)
    if n is not None:
        settings.register_profile(f"tess-{prof}-{n}", parent=settings.get_profile(f"tess-{prof}"), max_examples=n)
        settings.load_profile(f"tess-{prof}-{n}")


def _targets(config: pytest.Config) -> list[Any]:
    from .harness import Target

    dt = config.getoption("--tess-dtype")
    dtypes = ["float32", "float64"] if dt == "both" else [dt]
    return [Target(config.getoption("--tess-backend"), d, config.getoption("--tess-device")) for d in dtypes]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test taking ``target`` over the selected dtypes."""
    if "target" in metafunc.fixturenames and in_suite(metafunc.definition.path):
        targets = _targets(metafunc.config)
        metafunc.parametrize("target", targets, ids=[t.dtype for t in targets])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Apply the skip/xfail lists; remember which required tests they touch."""
    exps: list[Expectation] = []
    for f in expectation_files(config.getoption("--tess-backend"), config.getoption("--tess-expectations")):
        exps += load_expectations(f)
    config._tess_listed_required = []  # type: ignore[attr-defined]
    keep, dropped = [], []
    for item in items:
        mark = item.get_closest_marker("tess_dtypes") if in_suite(item.path) else None
        target = getattr(getattr(item, "callspec", None), "params", {}).get("target")
        if mark is not None and target is not None and target.dtype not in mark.args:
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    for item in [item for item in items if in_suite(item.path)]:
        tid = test_id(item.nodeid)
        item.user_properties.append(("group", group_of(item.nodeid)))
        for e in exps:
            if fnmatch.fnmatchcase(tid, e.pattern):
                reason = f"{e.action} by {e.source}: {e.reason}"
                item.add_marker(pytest.mark.skip(reason=reason) if e.action == "skip"
                                else pytest.mark.xfail(reason=reason, strict=False))
                item.user_properties.append(("listed", reason))
                if group_of(item.nodeid) in REQUIRED_GROUPS:
                    config._tess_listed_required.append(tid)  # type: ignore[attr-defined]
                break


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A required test skipped or xfailed by a list never lets the run pass."""
    listed = getattr(session.config, "_tess_listed_required", [])
    if listed and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say which required tests a list touched (they make the run fail)."""
    listed = getattr(config, "_tess_listed_required", [])
    if listed:
        terminalreporter.write_line(
            f"tess conformance: {len(listed)} required test(s) skipped/xfailed by a list — the run fails: "
            + ", ".join(listed[:10])
        )


@pytest.fixture
def note(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``note(text)`` attaches a remark to the test's report row (e.g. a float32 flip)."""

    def add(text: str) -> None:
        if ("note", text) not in request.node.user_properties:
            request.node.user_properties.append(("note", text))

    return add


@pytest.fixture
def profile(request: pytest.FixtureRequest) -> str:
    """The suite profile, ``ci`` or ``thorough``."""
    return str(request.config.getoption("--tess-profile"))


def iter_notes(props: list[tuple[str, Any]]) -> Iterator[str]:
    """The notes among a report's user properties."""
    for k, v in props:
        if k == "note":
            yield str(v)
