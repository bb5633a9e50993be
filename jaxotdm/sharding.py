"""Sharding of a points/targets axis across devices, chosen by the caller.

The library never picks devices. The caller builds a :class:`jax.sharding.Mesh` and names the mesh
axis the points (data points of an exact score, targets of a semi-discrete map) are split over:

    >>> import jax, jaxotdm as jo
    >>> mesh = jax.make_mesh((jax.device_count(),), ("points",))
    >>> sharding = jo.PointSharding(mesh, "points")
    >>> sharding.num_shards == jax.device_count()
    True

Functions that accept ``sharding=`` then run under :func:`jax.shard_map`: each device streams over its
own contiguous block of points (padded with weight zero, i.e. log-weight or height ``-inf``, when the
number of points is not a multiple of the number of shards), queries are replicated, and the small
per-query partial results (running max, sum of exponentials, weighted sums, best candidates) are
combined with ``pmax``/``psum``/``pmin`` collectives. Other mesh axes, if any, are replicated over.

To speed up a computation, the mesh needs several devices: accelerators, or host CPU devices forced
with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before JAX starts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxotdm._pytree import pytree_dataclass, static_field

__all__ = ["PointSharding"]


@pytree_dataclass
class PointSharding:
    """Split the points (or OT targets) axis over the mesh axis ``axis`` of ``mesh``.

    A PyTree with only static fields, so it can be stored on other PyTrees (e.g.
    :class:`~jaxotdm.ExactScore`) and passed through ``jit`` at no cost.

    Attributes:
        mesh: a :class:`jax.sharding.Mesh` built by the caller, e.g. ``jax.make_mesh((8,), ("points",))``.
        axis: the name of the mesh axis the points are split over.

    Example:
        >>> import jax, jax.numpy as jnp, jaxotdm as jo
        >>> mesh = jax.make_mesh((jax.device_count(),), ("points",))
        >>> mu = jo.EmpiricalMeasure(jnp.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        >>> score = jo.exact_score(mu, jo.OU(), sharding=jo.PointSharding(mesh, "points"))
        >>> score(jnp.zeros((4, 2)), 0.5).shape
        (4, 2)
    """

    mesh: Mesh = static_field()
    axis: str = static_field()

    def __post_init__(self):
        if not isinstance(self.mesh, Mesh):
            raise ValueError(f"`mesh` must be a jax.sharding.Mesh, got {type(self.mesh).__name__}.")
        if not isinstance(self.axis, str) or self.axis not in self.mesh.axis_names:
            raise ValueError(f"`axis` must be one of the mesh's axis names {tuple(self.mesh.axis_names)}, "
                             f"got {self.axis!r}.")

    @property
    def num_shards(self) -> int:
        """Number of devices along ``axis`` (the number of blocks the points are split into)."""
        return int(self.mesh.shape[self.axis])

    @property
    def spec(self) -> PartitionSpec:
        """``PartitionSpec(axis)``: leading axis split over ``axis``."""
        return PartitionSpec(self.axis)

    def shard_size(self, n: int) -> int:
        """Points per shard, ``ceil(n / num_shards)`` (the last shards hold padding)."""
        return -(-n // self.num_shards)

    def pad(self, a: jax.Array, fill) -> jax.Array:
        """``a`` padded along its leading axis with ``fill`` to a multiple of :attr:`num_shards`."""
        pad = self.shard_size(a.shape[0]) * self.num_shards - a.shape[0]
        if pad == 0:
            return a
        return jnp.concatenate([a, jnp.full((pad,) + a.shape[1:], fill, a.dtype)], axis=0)

    def shard_map(self, f, *, in_specs, out_specs):
        """``jax.shard_map(f)`` over this mesh; use ``self.spec`` for point-sharded inputs and
        ``PartitionSpec()`` for replicated ones.

        Outside a ``jax.set_mesh`` context, the mesh is used with ``Auto`` axis types (whatever
        :func:`jax.make_mesh` chose), so plain arrays go in and come out, and ``grad``/``vmap`` work.
        Under ``jax.set_mesh(mesh)`` with ``axis`` an ``Explicit`` axis, the inputs are resharded to
        ``in_specs`` first (explicit sharding mode).
        """
        if self._explicit_context():
            mapped = jax.shard_map(f, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs)

            def call(*args):
                args = [jax.reshard(a, NamedSharding(self.mesh, s)) for a, s in zip(args, in_specs, strict=True)]
                return mapped(*args)

            return call
        auto = Mesh(self.mesh.devices, self.mesh.axis_names, axis_types=(AxisType.Auto,) * len(self.mesh.axis_names))
        return jax.shard_map(f, mesh=auto, in_specs=in_specs, out_specs=out_specs)

    def _explicit_context(self) -> bool:
        ctx = jax.sharding.get_abstract_mesh()
        if ctx.empty or self.axis not in ctx.axis_names:
            return False
        return dict(zip(ctx.axis_names, ctx.axis_types, strict=True))[self.axis] == AxisType.Explicit

    def shard_index(self) -> jax.Array:
        """Inside :meth:`shard_map`: this device's index along ``axis``."""
        return jax.lax.axis_index(self.axis)

    def shard_offset(self, n_local: int) -> jax.Array:
        """Inside :meth:`shard_map`: global index of this shard's first point (``n_local`` points per shard)."""
        return self.shard_index().astype(jnp.int32) * n_local


def check_sharding(sharding, name: str = "sharding") -> PointSharding | None:
    """``None`` or a :class:`PointSharding`; anything else is a ValueError naming ``name``."""
    if sharding is not None and not isinstance(sharding, PointSharding):
        raise ValueError(f"`{name}` must be a jaxotdm.PointSharding or None, got {type(sharding).__name__}.")
    return sharding


def vary_like(tree, ref):
    """``tree`` marked as varying over the same manual mesh axes as ``ref`` (a no-op outside
    ``shard_map``): initial scan carries built from constants need it when the loop body mixes in
    per-device points."""
    aval = jax.typeof(ref)
    mat = getattr(aval, "manual_axis_type", None)  # jax 0.10; older versions: ``aval.vma``
    axes = tuple(sorted(mat.varying if mat is not None else getattr(aval, "vma", ())))
    if not axes:
        return tree
    return jax.tree_util.tree_map(lambda a: jax.lax.pcast(a, axes, to="varying"), tree)


def merge_lse(sharding: PointSharding, m, l, acc):
    """Merges per-device online log-sum-exp partials into global ones (inside :meth:`~PointSharding.shard_map`).

    Each device holds, per query, ``m`` (its running max of the logits), ``l = sum exp(logit - m)`` and
    ``acc = sum exp(logit - m) y`` (trailing dims). Returns the same triple for all devices' points,
    identical on every device. A device whose points are all padding has ``m = -inf, l = 0, acc = 0``.
    The shift ``M`` carries no gradient (the result does not depend on it).
    """
    big = jax.lax.pmax(jax.lax.stop_gradient(m), sharding.axis)
    safe = jnp.where(jnp.isneginf(big), 0.0, big)
    scale = jnp.exp(m - safe)
    l = jax.lax.psum(l * scale, sharding.axis)
    acc = jax.lax.psum(acc * scale.reshape(scale.shape + (1,) * (acc.ndim - scale.ndim)), sharding.axis)
    return big, l, acc


def pick_best(sharding: PointSharding, v, i):
    """Global ``(max v, index attaining it, this device owns it)`` from per-device ``(v, i)`` with global
    indices ``i``; ties go to the lowest device index (inside :meth:`~PointSharding.shard_map`).

    The max is taken as the owner's own ``v`` (a ``psum`` of one value and zeros, so exact), which
    keeps it differentiable: ``pmax`` has no differentiation rule.
    """
    best = jax.lax.pmax(jax.lax.stop_gradient(v), sharding.axis)
    dev = sharding.shard_index().astype(jnp.int32)
    owner = jax.lax.pmin(jnp.where(v == best, dev, sharding.num_shards), sharding.axis)
    mine = dev == owner
    value = jax.lax.psum(jnp.where(mine, v, jnp.zeros_like(v)), sharding.axis)
    idx = jax.lax.psum(jnp.where(mine, i, jnp.zeros_like(i)), sharding.axis)
    return value, idx, mine
