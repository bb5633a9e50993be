"""Griffe extension for the API reference: reads two Sphinx/Napoleon habits of the docstrings the way
Sphinx would, in the copies griffe loads for the site (the source files are not touched).

- A Google-style ``Example:`` section is an examples section. Napoleon treats ``Example:`` and
  ``Examples:`` alike; griffe parses only ``Examples:`` into code examples and shows ``Example:`` as a
  plain admonition, which collapses the ``>>>`` lines of the runnable examples into one paragraph.
- Sphinx cross-reference roles (``:func:`~jaxotdm.flow.flow_map```, ``:class:`X```, ...) become code
  spans (``flow_map``, ``X``); markdown has no roles, so they would otherwise show as literal text.
  (Links are left to explicit mkdocstrings cross-references, ``[`flow_map`][jaxotdm.flow.flow_map]``.)
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


class SphinxHabits(griffe.Extension):
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
