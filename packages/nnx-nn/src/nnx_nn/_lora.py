"""Low-rank adaptation: LoRA (a standalone low-rank update, optionally around a
base module) and LoRALinear (a Linear with a LoRA update)."""

from __future__ import annotations

import typing as tp
from types import MappingProxyType

import jax.numpy as jnp

import nnx_graph
from nnx_nn import initializers
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import (
    LayerConfigError,
    check_axis_size,
    check_positive_int,
    child_path,
    params_key,
)
from nnx_nn._linear import Linear
from nnx_nn._typing import Array, Dtype, Initializer, PromoteDtypeFn

__all__ = ["LoRA", "LoRALinear", "LoRAParam"]

A = tp.TypeVar("A")

default_a_initializer: Initializer = initializers.he_uniform()
default_b_initializer: Initializer = initializers.zeros


class LoRAParam(nnx_graph.Param[A]):
    """The Variable type of LoRA matrices: a ``Param`` subclass, so filters can
    select only the adapters (``nnx.split(model, nnx.LoRAParam, ...)``).

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> isinstance(nnx_nn.LoRAParam(jnp.zeros(2)), nnx_graph.Param)
        True
    """

    __slots__ = ()


class LoRA(nnx_graph.Module):
    """A low-rank update ``x @ lora_a @ lora_b``, added to ``base_module(x)`` when
    one is given (model surgery: ``model.linear = LoRA(..., base_module=model.linear)``).

    Args:
        in_features: input size.
        lora_rank: rank of the update.
        out_features: output size.
        base_module: a callable Module whose output the update is added to.
        dtype: computation dtype (default: inferred from inputs and Params).
        param_dtype: dtype of the LoRA matrices (default ``float32``).
        a_initializer: initializer of ``lora_a`` (default ``he_uniform()``).
        b_initializer: initializer of ``lora_b`` (default zeros, so the update
            starts at zero).
        lora_param_type: Variable type of the matrices (default :class:`LoRAParam`).
        promote_dtype: casts ``(x, lora_a, lora_b)`` to one dtype.
        rngs: ``Rngs`` for the matrices.
        a_metadata / b_metadata: metadata of the matrices.

    Params: ``lora_a`` ``(in_features, lora_rank)``, ``lora_b`` ``(lora_rank,
    out_features)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> rngs = nnx_graph.Rngs(0)
        >>> base = nnx_nn.Linear(3, 4, rngs=rngs)
        >>> lora = nnx_nn.LoRA(3, 2, 4, base_module=base, rngs=rngs)
        >>> lora.lora_a.shape, lora.lora_b.shape
        ((3, 2), (2, 4))
        >>> bool(jnp.allclose(lora(jnp.ones((5, 3))), base(jnp.ones((5, 3)))))  # b starts at 0
        True
    """

    _config_fields = ("in_features", "out_features")

    def __init__(
        self,
        in_features: int,
        lora_rank: int,
        out_features: int,
        *,
        base_module: nnx_graph.Module | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        a_initializer: Initializer = default_a_initializer,
        b_initializer: Initializer = default_b_initializer,
        lora_param_type: type[nnx_graph.Variable[tp.Any]] = LoRAParam,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        rngs: nnx_graph.Rngs,
        a_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        b_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        where = (
            f"LoRA(in_features={in_features!r}, lora_rank={lora_rank!r}, "
            f"out_features={out_features!r})"
        )
        check_positive_int(
            where, in_features=in_features, lora_rank=lora_rank, out_features=out_features
        )
        if base_module is not None and not callable(base_module):
            raise LayerConfigError(
                f"{where}: base_module must be callable, found {type(base_module).__name__}. "
                "Fix: pass the layer the update is added to (e.g. a Linear)."
            )
        self.in_features = in_features
        self.out_features = out_features
        self.lora_rank = lora_rank
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.lora_param_type = lora_param_type
        self.base_module = base_module
        self.promote_dtype = promote_dtype
        self.lora_a = lora_param_type(
            a_initializer(params_key(rngs, self), (in_features, lora_rank), param_dtype),
            **a_metadata,
        )
        self.lora_b = lora_param_type(
            b_initializer(params_key(rngs, self), (lora_rank, out_features), param_dtype),
            **b_metadata,
        )

    def __call__(self, x: Array, **kwargs: tp.Any) -> Array:
        """``x @ lora_a @ lora_b`` (``+ base_module(x, **kwargs)``)."""
        x = jnp.asarray(x)
        check_axis_size(self, x, -1, self.in_features, "in_features")
        x, lora_a, lora_b = self.promote_dtype(
            (x, self.lora_a[...], self.lora_b[...]), dtype=self.dtype
        )
        out: Array = x @ lora_a @ lora_b
        if self.base_module is not None:
            with child_path("base_module"):
                out += self.base_module(x, **kwargs)
        return out


class LoRALinear(Linear):
    """A :class:`~nnx_nn.Linear` whose output gets a LoRA update: ``x @ kernel +
    bias + x @ lora.lora_a @ lora.lora_b``. Its ``kernel``/``bias`` are laid out
    as in ``Linear``, so a Linear's State loads into it.

    Args:
        in_features, out_features: as in :class:`~nnx_nn.Linear` (other Linear
            arguments are passed through ``**kwargs``).
        lora_rank: rank of the update.
        lora_dtype, lora_param_dtype, lora_promote_dtype: ``dtype``,
            ``param_dtype`` and ``promote_dtype`` of the :class:`LoRA` sub-layer.
        a_initializer, b_initializer, lora_param_type, a_metadata, b_metadata:
            as in :class:`LoRA`.
        rngs: ``Rngs`` for all Params.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> layer = nnx_nn.LoRALinear(3, 4, lora_rank=2, rngs=nnx_graph.Rngs(0))
        >>> layer.kernel.shape, layer.lora.lora_a.shape
        ((3, 4), (3, 2))
        >>> layer(jnp.ones((5, 3))).shape
        (5, 4)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        lora_rank: int,
        lora_dtype: Dtype | None = None,
        lora_param_dtype: Dtype = jnp.float32,
        a_initializer: Initializer = default_a_initializer,
        b_initializer: Initializer = default_b_initializer,
        lora_param_type: type[nnx_graph.Variable[tp.Any]] = LoRAParam,
        lora_promote_dtype: PromoteDtypeFn = default_promote_dtype,
        rngs: nnx_graph.Rngs,
        a_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        b_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        **kwargs: tp.Any,
    ) -> None:
        super().__init__(in_features, out_features, rngs=rngs, **kwargs)
        self.lora = LoRA(
            in_features,
            lora_rank,
            out_features,
            dtype=lora_dtype,
            param_dtype=lora_param_dtype,
            a_initializer=a_initializer,
            b_initializer=b_initializer,
            lora_param_type=lora_param_type,
            promote_dtype=lora_promote_dtype,
            rngs=rngs,
            a_metadata=a_metadata,
            b_metadata=b_metadata,
        )

    def __call__(self, x: Array, out_sharding: tp.Any = None) -> Array:
        """The Linear output plus the LoRA update."""
        y = super().__call__(x, out_sharding=out_sharding)
        with child_path("lora"):
            out: Array = y + self.lora(x)
        return out
