"""A network tied to a schedule and an output parametrisation (:class:`ScoreModel`), and the trained score
as a PyTree callable (:class:`LearnedScore`) that every sampler, flow map and OT tool accepts."""

from __future__ import annotations

import inspect
import math

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxotdm import _validation as V
from jaxotdm._pytree import pytree_dataclass, static_field
from jaxotdm._types import Array, ArrayLike, Float
from jaxotdm.networks.adapters import _AdaptedNetwork, as_network
from jaxotdm.networks.parametrisations import NoisePrediction, Parametrisation
from jaxotdm.schedules import Schedule

__all__ = ["ScoreModel", "LearnedScore", "classifier_free_guidance"]


def classifier_free_guidance(conditional, unconditional, guidance):
    """Classifier-free guidance (Ho & Salimans 2022): ``(1 + w) conditional - w unconditional``.

    The one place the package writes the formula; it applies to scores, noise predictions and denoisers
    alike (all are affine in each other at fixed ``(x, t)``).

    Example:
        >>> from jaxotdm.networks import classifier_free_guidance
        >>> float(classifier_free_guidance(2.0, 1.0, 0.5))
        2.5
    """
    if guidance is None or isinstance(guidance, (str, bytes, bool)):
        raise TypeError(f"`guidance` must be a real number, got {guidance!r}.")
    if V.is_concrete(guidance) and not np.all(np.isfinite(np.asarray(guidance, np.float64))):
        raise ValueError(f"`guidance` must be finite, got {guidance!r}.")
    return (1.0 + guidance) * conditional - guidance * unconditional


def _is_zero(guidance) -> bool:
    return guidance is None or (isinstance(guidance, (int, float)) and guidance == 0.0)


def _network_init(network, key, x, labels):
    return network.init(key, x, jnp.zeros(x.shape[:-1], x.dtype), labels)["params"]


# Cached across calls (the network is a hashable, static argument).
_network_init_compiled = jax.jit(
    _network_init, static_argnums=0, compiler_options={"xla_backend_optimization_level": 0}
)


def _check_labels(labels, num_classes: int | None):
    """Labels must be integers in ``[0, num_classes]`` (``num_classes`` is the null label): eagerly when
    concrete, with an equinox run-time check inside a trace."""
    if labels is None:
        return None
    if num_classes is None:
        raise ValueError("`labels` were given but the network has no class conditioning (num_classes=None).")
    if V.is_concrete(labels):
        lab = np.asarray(labels)
        if lab.dtype == bool or not (np.issubdtype(lab.dtype, np.integer) or (
                np.issubdtype(lab.dtype, np.floating) and np.all(lab == np.round(lab)))):
            raise ValueError(f"`labels` must be integers in [0, {num_classes}] ({num_classes} = the null label), "
                             f"got dtype {lab.dtype}.")
        if lab.size and (lab.min() < 0 or lab.max() > num_classes):
            raise ValueError(f"`labels` must be in [0, {num_classes}) (or {num_classes}, the null label for "
                             f"classifier-free guidance), got values in [{int(lab.min())}, {int(lab.max())}].")
        return jnp.asarray(lab, jnp.int32)
    labels = jnp.asarray(labels, jnp.int32)
    return eqx.error_if(labels, (labels < 0) | (labels > num_classes),
                        f"`labels` must be in [0, {num_classes}] ({num_classes} = the null label).")


def _check_linen_call(network: nn.Module) -> None:
    """A linen network must take ScoreModel's call ``network(x_in, log_snr, labels)``; say how to adapt it."""
    try:
        sig = inspect.signature(network.__call__)
        sig.bind(0, 0, 0)
    except TypeError:
        name = type(network).__qualname__
        raise TypeError(
            f"`network` {name}.__call__{sig} cannot be called as network(x, log_snr, labels), ScoreModel's call. "
            f"Wrap it: ScoreModel(as_network(network), ...) feeds it (x, log_snr), and "
            f"as_network(network, conditioning=schedule.t_from_log_snr) feeds it (x, t) when its second argument is "
            f"the time (as_network is jaxotdm.networks.as_network); or give {name}.__call__ a `labels=None` "
            "parameter.") from None
    except ValueError:  # no inspectable signature: checked when first called
        return


@pytree_dataclass
class ScoreModel:
    """A network with its schedule and output parametrisation: a pure, parameter-free description.

    The network sees ``c_in x`` with ``c_in = 1 / sqrt(sigma_t^2 + alpha_t^2 sigma_data^2)`` (unit-variance
    input when the data have per-coordinate scale ``sigma_data``) and the log-SNR ``lambda(t)``.

    Labels (class-conditional networks) are integers in ``[0, num_classes)``; ``num_classes`` itself, or
    ``labels=None``, is the null label of classifier-free guidance. Other values raise a ValueError (inside
    ``jit``: an equinox run-time error), as do times outside ``(0, schedule.t_max)`` given eagerly.

    Attributes:
        network: a flax linen module called as ``network(x_in, log_snr, labels)`` (e.g. :class:`MLP`,
            :class:`UNet`); a flax NNX module, an equinox module or a function ``fn(x_in, log_snr)`` is wrapped
            with :func:`~jaxotdm.networks.as_network` (its defaults; call it yourself for ``num_classes``,
            ``params`` or ``conditioning``, and wrap once: each wrap compiles anew).
        schedule: the forward schedule.
        parametrisation: what the network's raw output means.
        sigma_data: the data's per-coordinate scale, used for input normalisation. ``None`` (the default)
            takes it from a parametrisation that has one (:class:`EDMPreconditioning`), else 1.0; given
            together with such a parametrisation, the two must agree (one value, one meaning).

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> from jaxotdm.networks import MLP, ScoreModel, NoisePrediction
        >>> model = ScoreModel(MLP(features=32, depth=2), jo.OU(), NoisePrediction())
        >>> params = model.init(jax.random.key(0), jnp.zeros((1, 2)))
        >>> score = model.bind(params)
        >>> score(jnp.ones((5, 2)), 0.5).shape
        (5, 2)
    """

    network: nn.Module = static_field()
    schedule: Schedule
    parametrisation: Parametrisation = NoisePrediction()
    sigma_data: float | None = None

    def __post_init__(self):  # construction only (PyTree unflattening does not call __init__)
        if isinstance(self.network, nn.Module) and not isinstance(self.network, _AdaptedNetwork):
            _check_linen_call(self.network)
        if not isinstance(self.network, nn.Module):  # NNX, equinox, a function: wrapped (one jit cache per wrap)
            try:
                object.__setattr__(self, "network", as_network(self.network))
            except TypeError as err:
                raise TypeError(str(err).replace("`obj`", "`network`", 1)) from None
        if not isinstance(self.schedule, Schedule):
            raise TypeError(f"`schedule` must be a Schedule object (e.g. jaxotdm.OU()), got {self.schedule!r}.")
        if not isinstance(self.parametrisation, Parametrisation):
            raise TypeError(f"`parametrisation` must be a Parametrisation (e.g. NoisePrediction()), got "
                            f"{self.parametrisation!r}.")
        own = getattr(self.parametrisation, "sigma_data", None)
        if self.sigma_data is None:
            object.__setattr__(self, "sigma_data", 1.0 if own is None else own)
        V.positive_scalar(self.sigma_data, "sigma_data")
        if own is not None and V.is_concrete(self.sigma_data) and V.is_concrete(own) \
                and not math.isclose(float(self.sigma_data), float(own), rel_tol=1e-6):
            raise ValueError(
                f"`sigma_data` = {float(self.sigma_data):g} disagrees with the parametrisation's "
                f"{type(self.parametrisation).__name__}(sigma_data={float(own):g}); give it once (leave "
                "ScoreModel's `sigma_data` out and it is taken from the parametrisation) or give equal values.")

    @property
    def num_classes(self) -> int | None:
        return getattr(self.network, "num_classes", None)

    def init(self, key, x: Float[ArrayLike, "... d"], labels: ArrayLike | None = None):
        """Initial parameters for inputs shaped like ``x`` (values are ignored); pure.

        Called with concrete arrays, the initialiser is compiled once with XLA's backend optimisation
        level 0: it runs once, and the many inlined random initialisers otherwise take tens of seconds
        to compile on CPU for a U-Net. Inside a trace it is a plain ``network.init``.
        """
        x = jnp.asarray(x)
        labels = None if labels is None else jnp.asarray(labels)
        if any(isinstance(a, jax.core.Tracer) for a in (key, x, labels)):
            return _network_init(self.network, key, x, labels)
        return _network_init_compiled(self.network, key, x, labels)

    def coefficients(self, x: Array, t: ArrayLike) -> tuple[Array, Array]:
        """``(alpha_t, sigma_t)`` broadcast against ``x`` (shape ``x.shape[:-1] + (1,)``)."""
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:-1])
        return self.schedule.alpha(t)[..., None], self.schedule.sigma(t)[..., None]

    def raw(self, params, x: Array, t: ArrayLike, labels: ArrayLike | None = None) -> Array:
        """The network's raw output at ``(x, t)`` in its parametrisation."""
        t = V.checked_time(t, "t", t_max=self.schedule.t_max)
        labels = _check_labels(labels, self.num_classes)
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:-1])
        a, s = self.coefficients(x, t)
        c_in = jax.lax.rsqrt(jnp.square(s) + jnp.square(a * self.sigma_data))
        return self.network.apply({"params": params}, c_in * x, self.schedule.log_snr(t), labels)

    def pair(self, params, x, t, labels=None, guidance: float = 0.0) -> tuple[Array, Array]:
        """``(x0_hat, eps_hat)``; with ``guidance = w != 0``, classifier-free guidance
        ``(1 + w) cond - w uncond`` (the unconditional branch uses the null label; both branches run as one
        network call on a doubled batch)."""
        a, s = self.coefficients(x, t)
        if _is_zero(guidance):
            return self.parametrisation.to_pair(self.raw(params, x, t, labels), x, a, s)
        if self.num_classes is None:
            raise ValueError("`guidance` needs a class-conditional network (num_classes set).")
        batch = x.shape[:-1]
        labels = jnp.broadcast_to(jnp.asarray(self.num_classes if labels is None else labels, jnp.int32), batch)
        both = jnp.stack([labels, jnp.full(batch, self.num_classes, jnp.int32)])
        tt = jnp.broadcast_to(jnp.asarray(t, x.dtype), batch)
        out = self.raw(params, jnp.stack([x, x]), jnp.stack([tt, tt]), both)
        x0, eps = self.parametrisation.to_pair(out, x, a, s)
        return classifier_free_guidance(x0[0], x0[1], guidance), classifier_free_guidance(eps[0], eps[1], guidance)

    def score(self, params, x, t, labels=None, guidance: float = 0.0) -> Array:
        """The learned score ``grad_x log p_t(x)``."""
        _, s = self.coefficients(x, t)
        return -self.pair(params, x, t, labels, guidance)[1] / s

    def denoiser(self, params, x, t, labels=None, guidance: float = 0.0) -> Array:
        """The learned posterior mean ``E[X_0 | X_t = x]``."""
        return self.pair(params, x, t, labels, guidance)[0]

    def bind(self, params, labels: ArrayLike | None = None, guidance: float = 0.0) -> LearnedScore:
        """A :class:`LearnedScore` callable ``score(x, t)`` with ``params`` (and optional labels/guidance)."""
        g = float(guidance)
        if not math.isfinite(g):
            raise ValueError(f"`guidance` must be a finite number, got {guidance!r}.")
        if g != 0.0 and self.num_classes is None:
            raise ValueError("`guidance` needs a class-conditional network (num_classes set).")
        labels = _check_labels(labels, self.num_classes)
        return LearnedScore(self, params, labels, g)


@pytree_dataclass
class LearnedScore:
    """A trained score as a PyTree callable ``score(x, t)``, interchangeable with :class:`~jaxotdm.ExactScore`.

    ``x`` has shape ``(..., d)``; ``t`` is a scalar or broadcastable to ``x.shape[:-1]``. Also exposes
    :meth:`denoiser`. ``labels`` (broadcastable to ``x.shape[:-1]``) and ``guidance`` select
    class-conditional sampling with classifier-free guidance. Load a trained one with
    :func:`~jaxotdm.networks.load_score`.
    """

    model: ScoreModel
    params: object
    labels: Array | None = None
    guidance: float = static_field(0.0)

    def __post_init__(self):  # runs when built by hand, not when JAX rebuilds the tree
        object.__setattr__(self, "labels", _check_labels(self.labels, self.model.num_classes))

    @property
    def schedule(self) -> Schedule:
        return self.model.schedule

    @property
    def dim(self) -> int | None:
        """The data dimension ``d`` the network was built for (None when the network does not say)."""
        net = self.model.network
        shape = getattr(net, "image_shape", None)
        if shape is not None:
            return int(np.prod(shape))
        kernel = (self.params or {}).get("input", {}).get("kernel") if isinstance(self.params, dict) else None
        return None if kernel is None else int(kernel.shape[0])

    def _check(self, x, t) -> Array:
        """``x`` as a float array of shape ``(..., d)``, finite when concrete; ``t`` a valid time."""
        x = V.as_float_array(x, "x")
        d = self.dim
        if x.ndim < 1 or (d is not None and x.shape[-1] != d):
            raise ValueError(f"`x` must have shape (..., {'d' if d is None else d}), got {tuple(x.shape)}.")
        V.check_finite(x, "x")
        return x, V.checked_time(t, "t", t_max=self.schedule.t_max)

    def __call__(self, x: Float[ArrayLike, "... d"], t: ArrayLike) -> Float[Array, "... d"]:
        x, t = self._check(x, t)
        return self.model.score(self.params, x, t, self.labels, self.guidance)

    def denoiser(self, x: Float[ArrayLike, "... d"], t: ArrayLike) -> Float[Array, "... d"]:
        x, t = self._check(x, t)
        return self.model.denoiser(self.params, x, t, self.labels, self.guidance)
