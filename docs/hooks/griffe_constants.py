"""Griffe extension for the API reference: a parameter default (or a dataclass field's default) that names
a module constant not meant as public API (``DEFAULT_BATCH``, ``DEFAULT_POINT_CHUNK``: not in its module's
``__all__``) is shown as its value (``4096``), so the pages never show a private name the reader cannot
look up. Constants that are public (in an ``__all__``, e.g. ``jaxotdm.flow.SOLVERS``) stay named.
"""

from __future__ import annotations

import re

import griffe

_CONSTANT = re.compile(r"^_?[A-Z][A-Z0-9_]*$")


def _public(module: griffe.Object, name: str) -> bool:
    exported = getattr(module, "exports", None)
    return exported is not None and name in {str(e) for e in exported}


def _literal(pkg: griffe.Module, expr):
    """The literal value of the private constant ``expr`` names, or None to leave it as it is."""
    if not isinstance(expr, griffe.ExprName) or not _CONSTANT.match(expr.name):
        return None
    path = expr.canonical_path
    if not path.startswith(pkg.path + "."):
        return None
    try:
        target = pkg[path[len(pkg.path) + 1:]]
        while target.is_alias:
            target = target.final_target
    except Exception:  # unresolvable: leave the name
        return None
    if not target.is_attribute or target.value is None or _public(target.parent, target.name):
        return None
    value = target.value
    return value if isinstance(value, str) else str(value)


def _fix(obj, pkg, seen: set) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    for member in list(obj.members.values()):
        if member.is_alias:
            continue
        if member.is_function:
            for param in member.parameters:
                value = _literal(pkg, param.default)
                if value is not None:
                    param.default = value
        elif member.is_attribute and isinstance(member.value, griffe.ExprCall):
            args = member.value.arguments
            for i, arg in enumerate(args):
                value = _literal(pkg, arg.value if isinstance(arg, griffe.ExprKeyword) else arg)
                if value is not None:
                    if isinstance(arg, griffe.ExprKeyword):
                        arg.value = value
                    else:
                        args[i] = value
        if member.is_class or member.is_module:
            _fix(member, pkg, seen)


class PrivateConstants(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        _fix(pkg, pkg, set())
