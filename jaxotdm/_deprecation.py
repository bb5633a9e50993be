"""Renamed keyword arguments: the old name keeps working for a while, with a ``DeprecationWarning``.

Example:
    >>> import warnings
    >>> from jaxotdm._deprecation import renamed
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     value = renamed(None, 3, new="solver", old="method", where="semidiscrete_ot")
    >>> value, caught[0].category.__name__
    (3, 'DeprecationWarning')
"""

from __future__ import annotations

import warnings

__all__ = ["renamed"]


def renamed(new_value, old_value, *, new: str, old: str, where: str):
    """The value of keyword ``new``, taking it from its deprecated name ``old`` (with a warning) if given there.

    Raises:
        ValueError: both names were given.
    """
    if old_value is None:
        return new_value
    if new_value is not None:
        raise ValueError(f"{where}: give `{new}` only (`{old}` is its deprecated name).")
    warnings.warn(f"{where}({old}=...) is deprecated; use {new}=... (same meaning).", DeprecationWarning, stacklevel=3)
    return old_value
