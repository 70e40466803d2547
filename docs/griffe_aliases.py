"""Griffe extension used by the docs build (and the docs tests).

Every backend package exports its class twice: under its own name
(``NumpyBackend``) and as ``Backend = NumpyBackend`` (the name the registry
loads).  Statically, griffe sees ``Backend`` as an undocumented attribute.  This
extension turns a module-level assignment ``Name = Other``, where ``Other`` is a
class or function defined in, or imported into, the same module and ``Name`` is exported (``__all__``) and
has no docstring of its own, into an alias of ``Other`` — so the API reference
shows ``tess.backends.numpy.Backend`` with the class's docstring, as Python's
``help()`` would.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["BackendAliases", "alias_assignments", "plain_roles", "SPHINX_ROLE"]

SPHINX_ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|exc|obj|const):`~?\.?([^`]+)`")
"""A Sphinx cross-reference role such as ``:func:`tess.get_backend```."""


def plain_roles(text: str) -> str:
    """Turn Sphinx roles (which mkdocstrings does not read) into inline code: ``:class:`X``` → ```X```."""
    return SPHINX_ROLE.sub(r"`\1`", text)


def alias_assignments(mod: griffe.Module) -> list[tuple[str, str]]:
    """``(name, target_name)`` of exported, undocumented ``name = target`` assignments in ``mod``."""
    exports = set(mod.exports or ())
    found = []
    for name, member in list(mod.members.items()):
        if member.is_alias or not member.is_attribute or member.docstring is not None:
            continue
        if name not in exports:
            continue
        value = getattr(member, "value", None)
        target = str(value) if value is not None else ""
        if not target.isidentifier() or target == name:
            continue
        other = mod.members.get(target)
        if other is None or not (other.is_alias or other.is_class or other.is_function):
            continue
        found.append((name, target))
    return found


class BackendAliases(griffe.Extension):
    """Replace ``Backend = NumpyBackend``-style attributes by aliases of their target, and
    show the docstrings' Sphinx roles as inline code instead of raw markup."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: D102
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)

    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:  # noqa: D102
        for name, target in alias_assignments(mod):
            other = mod.members[target]
            # An imported class (``from .backend import X; Backend = X``) is itself an alias:
            # point at what it points at.
            mod.set_member(name, griffe.Alias(name, other.target_path if other.is_alias else other, parent=mod))


def _selftest() -> None:  # pragma: no cover - used while developing the extension
    code = "__all__ = ['A', 'Backend']\nclass A:\n    '''doc'''\nBackend = A\n"
    mod = griffe.visit("m", filepath=__file__, code=code, extensions=griffe.load_extensions(BackendAliases))
    assert mod["Backend"].is_alias and mod["Backend"].docstring.value == "doc", mod["Backend"]


if __name__ == "__main__":  # pragma: no cover
    _selftest()
    print("ok")
