"""Fuzz: :func:`tess_spec.from_dict` and :meth:`TessConfig.replace` (the CLI's ``--set``)
raise nothing but :class:`tess.errors.ConfigError` for any JSON value, at any depth.

Two kinds of input: arbitrary JSON-like values (mostly rejected at the top), and valid
configs (the presets, as :func:`to_dict` writes them) with one value somewhere replaced
by an arbitrary JSON value, or one key added or removed — the inputs that reach deep into
the validation.  Every success must round-trip; every failure must be a ConfigError whose
message is not the catch-all of ``from_dict``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tess_spec as ts
from tess_spec.config import _MALFORMED
from tess_spec.errors import ConfigError

JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
                | st.sampled_from(["conv", "linear", "max", "avg", "global_avg", "adam", "sgd", "paper",
                                   "float32", "float64", "triangle", "soft", "plateau", ""]))
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)

PRESETS = [ts.to_dict(ts.get_preset(name)) for name in ("mlp_digits", "cnn_digits", "mlp_events",
                                                        "vgg9_cifar10", "vgg9_dvs_gesture")]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) into a nested dict/list, the root included."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _set(root: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    node = root
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return root


@st.composite
def mutated_configs(draw: st.DrawFn) -> Any:
    d = copy.deepcopy(draw(st.sampled_from(PRESETS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(d)[1:] or [()]  # the root itself is the other test's job
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace" or not path:
            d = _set(d, path, draw(JSON))
        elif action == "delete":
            parent = d
            for p in path[:-1]:
                parent = parent[p]
            del parent[path[-1]]
        else:
            parent = d
            for p in path[:-1]:
                parent = parent[p]
            if isinstance(parent, dict):
                parent[draw(st.text(max_size=6))] = draw(JSON)
            else:
                parent.append(draw(JSON))
        if not isinstance(d, (dict, list)):
            break
    return d


def _check(d: Any) -> None:
    try:
        cfg = ts.from_dict(d)
    except ConfigError as exc:
        assert _MALFORMED not in str(exc), f"uncaught case reached the safety net: {exc}"
        return
    assert ts.from_dict(json.loads(json.dumps(ts.to_dict(cfg), allow_nan=False))) == cfg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_from_dict_of_any_json_value_is_a_config_or_a_config_error(d: Any) -> None:
    _check(d)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_configs())
def test_from_dict_of_a_mutated_config_is_a_config_or_a_config_error(d: Any) -> None:
    _check(d)


DOTTED = sorted({".".join(str(p) for p in path) for d in PRESETS for path in _paths(d) if path})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["mlp_digits", "cnn_digits", "vgg9_cifar10"]),
       st.dictionaries(st.sampled_from(DOTTED) | st.text(max_size=10), JSON, min_size=1, max_size=3))
def test_replace_of_any_dotted_key_and_json_value_is_a_config_or_a_config_error(preset: str, changes: dict) -> None:
    cfg = ts.get_preset(preset)
    try:
        new = cfg.replace(**changes)
    except ConfigError as exc:
        assert _MALFORMED not in str(exc), f"uncaught case reached the safety net: {exc}"
        return
    assert isinstance(new, ts.TessConfig)


@pytest.mark.parametrize("d,names", [
    ({}, "network"), ({"network": None}, "None"), ({"network": []}, "list"), ([1], "list"),
    ({"network": {"input_shape": [64], "n_classes": 10, "blocks": 5}}, "blocks=5"),
    ({"network": {"input_shape": [64], "n_classes": 10, "blocks": [{}]}}, "features"),
    ({**PRESETS[0], "train": 5}, "train=5"),
    ({**PRESETS[0], "lsg": {"omega_min": 600.0, "omega_max": 512.0}}, "600"),
    ({**PRESETS[0], "optimizer": {"lr": 10**400}}, "lr=1000"),
    ({**PRESETS[0], "network": {**PRESETS[0]["network"], "readout": {"bias": "yes"}}}, "'yes'"),
])
def test_named_bad_configs(d: Any, names: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ts.from_dict(d)
    assert names in str(exc.value)
