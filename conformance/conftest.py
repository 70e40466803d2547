"""Loads the conformance plugin (options ``--tess-*``, fixtures, lists) for pytest runs
of this package's folder (``pytest path/to/tess/conformance --tess-backend NAME``).

When the plugin is already registered (``pytest -p tess.conformance.plugin --pyargs
tess.conformance ...``, or the ``pytest11`` entry point of an installed tess) these
delegating hooks stand aside.
"""

from __future__ import annotations

from typing import Any

import pytest

from tess.conformance import plugin as _plugin
from tess.conformance.plugin import note, profile  # noqa: F401  (fixtures)

def _mine(pm: Any) -> bool:
    # registered already through `-p tess.conformance.plugin` or the pytest11 entry point?
    return not pm.is_registered(_plugin)


def pytest_addoption(parser: pytest.Parser, pluginmanager: Any) -> None:
    if _mine(pluginmanager):
        _plugin.pytest_addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    if _mine(config.pluginmanager):
        _plugin.pytest_configure(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if _mine(metafunc.config.pluginmanager):
        _plugin.pytest_generate_tests(metafunc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _mine(config.pluginmanager):
        _plugin.pytest_collection_modifyitems(config, items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _mine(session.config.pluginmanager):
        _plugin.pytest_sessionfinish(session, exitstatus)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _mine(config.pluginmanager):
        _plugin.pytest_terminal_summary(terminalreporter, exitstatus, config)
