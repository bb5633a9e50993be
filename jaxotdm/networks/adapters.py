"""Networks from anywhere: a flax NNX module, an equinox module or a plain function as a network that
:class:`~jaxotdm.networks.ScoreModel` accepts.

:class:`~jaxotdm.networks.ScoreModel` drives a flax *linen* module: it initialises it with
``network.init(key, x, log_snr, labels)["params"]`` and calls ``network.apply({"params": params}, x_in,
log_snr, labels)``. :func:`as_network` turns any of the following into such a module, so everything
downstream (the DSM objective, every sampler, ``flow_map``, the OT prior of Algorithm 2) works unchanged
(``ScoreModel`` calls it itself, with the defaults, on a network that is not a linen module):

- a flax **linen** module: returned as it is when it is called as ``module(x, log_snr, labels)`` (this includes
  ``flax.nnx.bridge.ToLinen``); one whose ``__call__`` takes ``(x, log_snr)`` only, or given with
  ``conditioning=`` (e.g. ``__call__(self, x, t)`` with ``conditioning=schedule.t_from_log_snr``), is wrapped:
  its own ``init`` gives its weights, under ``{"module": ...}``;
- a flax **NNX** module instance: its ``nnx.Param`` variables become the parameters (a nested dict, the
  module's ``nnx.split`` state as a pure dict); other variables (RNG streams, batch statistics) are held
  fixed at their values when wrapped;
- an **equinox** module: its floating-point arrays become the parameters (the module with every other leaf
  set to ``None``, as ``eqx.partition(module, eqx.is_inexact_array)`` gives); the rest is static;
- a plain **function** ``fn(x, log_snr[, labels])`` (no parameters), or ``fn(params, x, log_snr[, labels])``
  with ``params=`` its initial parameters (any PyTree).

The call convention is the one of the package's own networks: ``x`` is the normalised input of shape
``(..., d)``, ``log_snr`` the log signal-to-noise ratio of shape ``x.shape[:-1]`` (pass
``conditioning=schedule.t_from_log_snr`` to feed the time instead, or any other function of the log-SNR),
``labels`` integer class labels of shape ``x.shape[:-1]`` with ``num_classes`` the null label (only for
class-conditional networks, declared with ``num_classes=``). The output has the shape of ``x``; what it
*means* (noise, data, v, EDM preconditioned ...) is :class:`~jaxotdm.networks.ScoreModel`'s
``parametrisation`` argument, not the adapter's.

``ScoreModel.init(key, x)`` returns the wrapped module's *own* weights (the key is not used, except by
linen modules), so a module trained elsewhere is reused as it is, and a fresh one is trained from its own
initialisation. Parameter layout: ``{"module": ...}`` for NNX and equinox modules, ``{"fn": params}`` for
functions (``{"fn": {}}`` without parameters).

Each call of :func:`as_network` makes a new network that compares equal only to itself: jit caches keyed on
it (every sampler's, through ``LearnedScore``) are never shared between two wrapped objects, at the cost of
one compilation per wrapped object. Wrap once and reuse the result.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["as_network"]

_CALL = "(x, log_snr[, labels])"


class _Held:
    """An opaque holder compared and hashed by identity: a static field of a linen module that must not be
    traversed by linen (it would look for submodules in PyTrees) and must never collide with another."""

    __slots__ = ("kind", "obj", "graphdef", "initial", "with_params", "rest", "takes_labels", "conditioning", "what")

    def __init__(self, **kw):
        for k, v in kw.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name, value):
        raise AttributeError("read-only")

    def __getstate__(self):  # picklable when what it holds is (a copy is a new network: identity semantics)
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def __repr__(self):
        return f"<{self.what}>"


def _describe(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _signature_of(fn) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # builtins, some C callables: checked when first called instead
        return None


def _accepts(sig: inspect.Signature, n: int) -> bool:
    try:
        sig.bind(*range(n))
    except TypeError:
        return False
    return True


def _takes_labels(fn, *, lead: int, num_classes: int | None, what: str) -> bool | None:
    """Whether ``fn`` is called with labels, from its signature (``lead`` leading arguments, e.g. params);
    a clear TypeError when the signature cannot fit; ``None`` when it cannot be inspected."""
    sig = _signature_of(fn)
    if sig is None:
        return None if num_classes is None else True
    expected = "(params, x, log_snr[, labels])" if lead else _CALL
    can2, can3 = _accepts(sig, lead + 2), _accepts(sig, lead + 3)
    if not (can2 or can3):
        raise TypeError(f"`obj` ({what}) must be callable as {expected} (x: inputs (..., d), log_snr: (...,), "
                        f"labels: (...,) integer class labels), but its signature is {sig}.")
    if num_classes is None:
        if not can2:
            raise TypeError(f"`obj` ({what}) must be callable as {expected}; its signature {sig} requires "
                            "`labels`: pass `num_classes=` (the number of classes) for a class-conditional network.")
        return False
    if not can3:
        raise TypeError(f"`obj` ({what}) must be callable as {expected} with labels since `num_classes="
                        f"{num_classes}` was given, but its signature {sig} takes no `labels` argument.")
    return True


def _check_num_classes(num_classes):
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int or None, got {num_classes!r}.")
    return num_classes


class _AdaptedNetwork(nn.Module):
    """A linen module driving a wrapped NNX module, equinox module or function (see :func:`as_network`)."""

    held: _Held
    num_classes: int | None = None

    @nn.compact
    def __call__(self, x, log_snr, labels=None):
        h = self.held
        cond = log_snr if h.conditioning is None else h.conditioning(log_snr)
        args = [x, cond]
        if h.takes_labels is not False and self.num_classes is not None:
            if labels is None:
                labels = jnp.full(x.shape[:-1], self.num_classes, jnp.int32)
            args.append(jnp.broadcast_to(jnp.asarray(labels, jnp.int32), x.shape[:-1]))
        if h.kind == "linen":  # a linen module with another call convention: its own init, its own weights
            params = self.param("module", lambda key: h.obj.init(key, *args)["params"])
        else:
            params = self.param("fn" if h.kind == "function" else "module", lambda _key: h.initial)
        if h.kind == "linen":
            fn = lambda *a: h.obj.apply({"params": params}, *a)
        elif h.kind == "nnx":
            fn = nnx.merge(h.graphdef, params, *h.rest)
        elif h.kind == "equinox":
            fn = eqx.combine(params, h.obj)
        else:
            fn = h.obj
            if h.with_params:
                args.insert(0, params)
        try:
            out = fn(*args)
        except TypeError as err:
            if h.takes_labels is None:  # signature not inspectable: say what was expected
                raise TypeError(f"`obj` ({h.what}) must be callable as {_CALL} (called with {len(args)} "
                                f"arguments): {err}") from err
            raise
        if not hasattr(out, "shape") or not hasattr(out, "dtype"):
            raise TypeError(f"{h.what} must return an array shaped like `x` {tuple(x.shape)}, got "
                            f"{type(out).__name__}.")
        if tuple(out.shape) != tuple(x.shape):
            raise ValueError(f"{h.what} must return an array shaped like its input `x` {tuple(x.shape)} (the "
                             f"parametrisation gives its meaning), got shape {tuple(out.shape)}.")
        if not jnp.issubdtype(out.dtype, jnp.floating):
            raise TypeError(f"{h.what} must return floating-point values, got dtype {out.dtype}.")
        return out


def as_network(
    obj: Any,
    *,
    params: Any = None,
    num_classes: int | None = None,
    conditioning: Callable[[jax.Array], jax.Array] | None = None,
) -> nn.Module:
    """A network :class:`~jaxotdm.networks.ScoreModel` accepts, from a linen, NNX or equinox module or a function.

    Args:
        obj: a flax linen module (returned unchanged), a flax NNX module instance, an equinox module, or a
            function ``fn(x, log_snr[, labels])`` (or ``fn(params, x, log_snr[, labels])`` with ``params``).
            Modules are called as ``module(x, log_snr[, labels])``.
        params: initial parameters (any PyTree) of a function ``fn(params, x, log_snr[, labels])``; only for
            functions (a module carries its own).
        num_classes: the number of classes of a class-conditional network (labels are then passed, with
            ``num_classes`` as the null label); ``None`` for an unconditional one.
        conditioning: a function of the log-SNR fed to the network in its place, e.g.
            ``schedule.t_from_log_snr`` for a network conditioned on the time ``t``.

    Returns:
        A flax linen module: pass it to :class:`~jaxotdm.networks.ScoreModel` with the parametrisation that
        says what its output means.

    Raises:
        TypeError: ``obj`` is none of the above (an NNX module *class* instead of an instance included), or
            its call signature cannot take ``(x, log_snr[, labels])`` (checked here with :mod:`inspect`; when
            the signature cannot be read, at ``ScoreModel.init``), or it returns something that is not a
            floating-point array.
        ValueError: ``num_classes`` is not a positive int; ``params`` given with a module or a linen module
            given with ``params``/``num_classes``; at ``ScoreModel.init``: an output not shaped like ``x``.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from flax import nnx
        >>> from jaxotdm.networks import ScoreModel, NoisePrediction, as_network
        >>> class Net(nnx.Module):
        ...     def __init__(self, rngs):
        ...         self.lin = nnx.Linear(3, 2, rngs=rngs)
        ...     def __call__(self, x, log_snr):
        ...         return self.lin(jnp.concatenate([x, log_snr[..., None]], -1))
        >>> model = ScoreModel(as_network(Net(nnx.Rngs(0))), jo.OU(), NoisePrediction())
        >>> params = model.init(jax.random.key(0), jnp.zeros((1, 2)))
        >>> sorted(params["module"]["lin"])
        ['bias', 'kernel']
        >>> model.bind(params)(jnp.ones((5, 2)), 0.5).shape
        (5, 2)
    """
    num_classes = _check_num_classes(num_classes)
    if conditioning is not None and not callable(conditioning):
        raise TypeError(f"`conditioning` must be a function of the log-SNR or None, got {conditioning!r}.")
    if isinstance(obj, nn.Module):
        if params is not None or num_classes is not None:
            raise ValueError("`params` and `num_classes` do not apply to a flax linen module (it declares its own "
                             "parameters and `num_classes` attribute).")
        what = f"the linen module {type(obj).__qualname__}"
        sig = _signature_of(obj.__call__)
        if conditioning is None and (sig is None or _accepts(sig, 3)):
            return obj  # ScoreModel's own convention: used as it is
        takes = _takes_labels(obj.__call__, lead=0, num_classes=None, what=what)
        held = _Held(kind="linen", obj=obj, graphdef=None, initial=None, with_params=True, rest=(),
                     takes_labels=takes, conditioning=conditioning, what=what)
        return _AdaptedNetwork(held=held, num_classes=None)
    if isinstance(obj, type):
        raise TypeError(f"`obj` must be a module *instance* or a function, got the class {obj.__qualname__}; "
                        "construct it first (e.g. MyNet(nnx.Rngs(0)) or MyNet(key=key)).")
    if params is not None and isinstance(obj, (nnx.Module, eqx.Module)):
        raise ValueError("`params` is only for a function fn(params, x, log_snr[, labels]); a module carries "
                         "its own parameters.")
    if isinstance(obj, nnx.Module):
        what = f"the NNX module {type(obj).__qualname__}"
        takes = _takes_labels(obj, lead=0, num_classes=num_classes, what=what)
        graphdef, state, rest = nnx.split(obj, nnx.Param, ...)
        rest_pure = nnx.to_pure_dict(rest)
        held = _Held(kind="nnx", obj=None, graphdef=graphdef, initial=nnx.to_pure_dict(state),
                     with_params=True, rest=(rest_pure,) if rest_pure else (), takes_labels=takes,
                     conditioning=conditioning, what=what)
    elif isinstance(obj, eqx.Module):
        what = f"the equinox module {type(obj).__qualname__}"
        if not callable(obj):
            raise TypeError(f"`obj` ({what}) has no __call__: it must be callable as module{_CALL}.")
        takes = _takes_labels(obj, lead=0, num_classes=num_classes, what=what)
        arrays, static = eqx.partition(obj, eqx.is_inexact_array)
        held = _Held(kind="equinox", obj=static, graphdef=None, initial=arrays, with_params=True, rest=(),
                     takes_labels=takes, conditioning=conditioning, what=what)
    elif callable(obj):
        name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
        what = f"the function {name}"
        takes = _takes_labels(obj, lead=0 if params is None else 1, num_classes=num_classes, what=what)
        held = _Held(kind="function", obj=obj, graphdef=None, initial={} if params is None else params,
                     with_params=params is not None, rest=(), takes_labels=takes, conditioning=conditioning,
                     what=what)
    else:
        raise TypeError(f"`obj` must be a flax linen or NNX module, an equinox module or a function "
                        f"fn{_CALL}, got {_describe(obj)}.")
    return _AdaptedNetwork(held=held, num_classes=num_classes)
