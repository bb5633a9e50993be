"""``pytree_dataclass``: frozen dataclasses registered as PyTrees whose structure includes the class.

Why not ``flax.struct.dataclass``: with flax 0.12 / jax 0.10, two flax dataclasses with the same
field names have *equal* tree structures (e.g. ``VPLinear`` and ``SubVP``), so compilation caches
keyed on structure can hand one class the other's compiled code. Here the class is part of the
node type, so structures of different classes never compare equal.

Fields marked ``static_field()`` go into the tree's auxiliary data (hashable, not traced).
"""

from __future__ import annotations

import dataclasses

import jax

__all__ = ["pytree_dataclass", "static_field"]


def static_field(default=dataclasses.MISSING, **kwargs):
    """A dataclass field stored as static (non-traced, hashable) auxiliary data."""
    return dataclasses.field(default=default, metadata={"static": True}, **kwargs)


def pytree_dataclass(cls):
    """Makes ``cls`` a frozen dataclass and registers it as a PyTree node (type-distinct)."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    data = tuple(f.name for f in fields if not f.metadata.get("static", False))
    meta = tuple(f.name for f in fields if f.metadata.get("static", False))

    def flatten_with_keys(obj):
        children = tuple((jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in data)
        return children, tuple(getattr(obj, n) for n in meta)

    def unflatten(aux, children):
        obj = object.__new__(cls)
        for n, v in zip(data, children, strict=True):
            object.__setattr__(obj, n, v)
        for n, v in zip(meta, aux, strict=True):
            object.__setattr__(obj, n, v)
        return obj

    def flatten(obj):
        return tuple(getattr(obj, n) for n in data), tuple(getattr(obj, n) for n in meta)

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    cls.replace = lambda self, **changes: dataclasses.replace(self, **changes)
    return cls
