"""Griffe extension for the API reference: reads two Sphinx/Napoleon habits of the docstrings the way
Sphinx would, in the copies griffe loads for the site (the source files are not touched).

- A Google-style ``Example:`` section is an examples section. Napoleon treats ``Example:`` and
  ``Examples:`` alike; griffe parses only ``Examples:`` into code examples and shows ``Example:`` as a
  plain admonition, which collapses the ``>>>`` lines of the runnable examples into one paragraph.
- Sphinx cross-reference roles (``:func:`~jaxotdm.flow.flow_map```, ``:class:`X```, ...) become code
  spans (``flow_map``, ``X``); markdown has no roles, so they would otherwise show as literal text.
  (Links are left to explicit mkdocstrings cross-references, ``[`flow_map`][jaxotdm.flow.flow_map]``.)

It also reads the package's own dataclass decorator the way griffe reads ``@dataclasses.dataclass``:
a class decorated with ``jaxotdm._pytree.pytree_dataclass`` gets its generated ``__init__`` (the annotated
fields in source order, with their defaults, ``static_field(default=...)`` included), so the page shows the
real signature and the docstring's ``Args:`` match it; the identity ``__eq__``/``__hash__`` and the shape
``__repr__`` that such classes assign are implementation details and are not listed as members.
"""

from __future__ import annotations

import re

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc|const):`(~?)([^`<]*?)(?:\s*<([^`>]+)>)?`")


def _role(m: re.Match) -> str:
    tilde, text, target = m.groups()
    if target:  # :func:`title <target>`
        return f"`{text.strip()}`"
    return f"`{text.rsplit('.', 1)[-1] if tilde else text}`"


_PYTREE_DATACLASS = "jaxotdm._pytree.pytree_dataclass"
_FIELD_CALLS = ("jaxotdm._pytree.static_field", "dataclasses.field")
_HIDDEN_DUNDERS = ("__repr__", "__eq__", "__hash__")


def _is_pytree_dataclass(cls: griffe.Class) -> bool:
    return any(isinstance(d.value, griffe.Expr) and d.value.canonical_path == _PYTREE_DATACLASS
               for d in cls.decorators)


def _field_default(attr: griffe.Attribute):
    """The ``__init__`` default of a dataclass field (None where it has none)."""
    value = attr.value
    if isinstance(value, griffe.ExprCall) and value.canonical_path in _FIELD_CALLS:
        for i, arg in enumerate(value.arguments):
            if isinstance(arg, griffe.ExprKeyword):
                if arg.name == "default":
                    return arg.value
                if arg.name == "default_factory":
                    return griffe.ExprCall(function=arg.value, arguments=[])
            elif i == 0 and value.canonical_path.endswith("static_field"):
                return arg  # static_field(default) positionally
        return None
    return value


def _pytree_dataclass_init(cls: griffe.Class) -> None:
    params = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for member in list(cls.members.values()):
        if member.is_alias or not member.is_attribute:
            continue
        if member.name in _HIDDEN_DUNDERS:
            cls.del_member(member.name)
            continue
        if member.annotation is None or "instance-attribute" not in member.labels:
            continue  # ClassVar or an unannotated class constant: not a field
        params.append(griffe.Parameter(member.name, annotation=member.annotation,
                                       kind=griffe.ParameterKind.positional_or_keyword,
                                       default=_field_default(member), docstring=member.docstring))
    if "__init__" not in cls.members:
        cls.set_member("__init__", griffe.Function("__init__", lineno=0, endlineno=0, parent=cls,
                                                   parameters=griffe.Parameters(*params), returns="None"))
    cls.labels.add("dataclass")


def _walk(obj, seen: set) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    for member in list(obj.members.values()):
        if member.is_alias:
            continue
        if member.is_class:
            if _is_pytree_dataclass(member):
                _pytree_dataclass_init(member)
            _walk(member, seen)
        elif member.is_module:
            _walk(member, seen)


class SphinxHabits(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        _walk(pkg, set())

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        doc = obj.docstring
        if doc is None:
            return
        value = doc.value
        if "Example:" in value:
            value = _EXAMPLE.sub(r"\1Examples:", value)
        if ":`" in value:
            value = _ROLE.sub(_role, value)
        doc.value = value
