"""Griffe extension for the API reference: a Google-style ``Example:`` section is an examples section.

Google style (as Napoleon reads it) treats ``Example:`` and ``Examples:`` alike; griffe parses only
``Examples:`` into rendered code examples and shows ``Example:`` as a plain admonition, which collapses
the ``>>>`` lines of jaxotdm's runnable docstring examples into one paragraph. This renames the section
title in the docstrings griffe loads for the site (the source files are not touched).
"""

from __future__ import annotations

import re

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and "Example:" in obj.docstring.value:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
