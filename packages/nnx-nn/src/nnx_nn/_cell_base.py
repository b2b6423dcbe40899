"""The cell interface (``RNNCellBase``) and what the built-in cells share:
construction, the gate ``Linear`` factory and carry creation."""

from __future__ import annotations

import typing as tp
import warnings
from collections.abc import Callable, Mapping
from types import MappingProxyType

import jax.numpy as jnp

import nnx_graph
from nnx_nn import initializers
from nnx_nn._activations import sigmoid, tanh
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import (
    InputShapeError,
    LayerInputError,
    check_axis_size,
    check_positive_int,
    describe,
    rng_stream,
)
from nnx_nn._linear import Linear
from nnx_nn._typing import Array, Dtype, Initializer, PromoteDtypeFn, Shape

__all__ = ["Carry", "GateLinears", "GatedCell", "RNNCellBase", "modified_orthogonal"]

Carry = tp.Any
RngsLike = nnx_graph.Rngs | nnx_graph.RngStream | None

default_kernel_init: Initializer = initializers.lecun_normal()
default_recurrent_kernel_init: Initializer = initializers.orthogonal()
_zeros: Initializer = initializers.zeros


def modified_orthogonal(key: Array, shape: Shape, dtype: Dtype = jnp.float32) -> Array:
    """An orthogonal initializer computed in float32 and cast to ``dtype`` (so it
    also works for half precision).

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from nnx_nn.nn import modified_orthogonal
        >>> w = modified_orthogonal(jax.random.key(0), (3, 3), jnp.bfloat16)
        >>> w.dtype
        dtype(bfloat16)
    """
    return initializers.orthogonal()(key, shape).astype(dtype)


class RNNCellBase(nnx_graph.Module):
    """The interface of a recurrent cell.

    Subclasses implement ``__call__(carry, inputs) -> (new_carry, outputs)`` for
    one time step, ``initialize_carry(input_shape, rngs)`` and the
    ``num_feature_axes`` property (the number of trailing feature axes of an
    input; 1 for the built-in cells).

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> class Accumulate(nnx_nn.RNNCellBase):
        ...     def __call__(self, carry, x):
        ...         return carry + x, carry + x
        ...     def initialize_carry(self, input_shape, rngs=None, carry_init=None):
        ...         return jnp.zeros(input_shape)
        ...     @property
        ...     def num_feature_axes(self):
        ...         return 1
        >>> nnx_nn.RNN(Accumulate())(jnp.ones((1, 3, 2)))[0, :, 0].tolist()
        [1.0, 2.0, 3.0]
    """

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: RngsLike = None,
        carry_init: Initializer | None = None,
    ) -> Carry:
        """The initial carry for one step's input shape ``(*batch, features)``."""
        raise NotImplementedError

    def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
        """One time step: ``(carry, inputs) -> (new_carry, outputs)``."""
        raise NotImplementedError

    @property
    def num_feature_axes(self) -> int:
        """Number of trailing feature axes of the inputs."""
        raise NotImplementedError


class GateLinears:
    """Builds the Linear sub-layers of a gated cell: ``inputs(width, bias)`` maps
    ``in_features -> width`` with the input kernel init/metadata, ``hidden(width,
    bias)`` maps ``hidden_features -> width`` with the recurrent ones. Not stored
    on the cell (it only lives during construction)."""

    def __init__(
        self,
        cell: tp.Any,
        rngs: nnx_graph.Rngs,
        inits: tuple[Initializer, Initializer, Initializer],
        metadata: tuple[Mapping[str, tp.Any], ...],
    ) -> None:
        self.cell = cell
        self.rngs = rngs
        self.kernel_init, self.recurrent_kernel_init, self.bias_init = inits
        self.kernel_metadata, self.recurrent_kernel_metadata, self.bias_metadata = metadata

    def _linear(
        self, n_in: int, width: int, use_bias: bool, init: Initializer, meta: Mapping[str, tp.Any]
    ) -> Linear:
        return Linear(
            n_in,
            width,
            use_bias=use_bias,
            kernel_init=init,
            bias_init=self.bias_init,
            dtype=self.cell.dtype,
            param_dtype=self.cell.param_dtype,
            promote_dtype=self.cell.promote_dtype,
            rngs=self.rngs,
            kernel_metadata=meta,
            bias_metadata=self.bias_metadata if use_bias else MappingProxyType({}),
        )

    def inputs(self, width: int, use_bias: bool) -> Linear:
        """``in_features -> width``."""
        return self._linear(
            self.cell.in_features, width, use_bias, self.kernel_init, self.kernel_metadata
        )

    def hidden(self, width: int, use_bias: bool) -> Linear:
        """``hidden_features -> width``."""
        return self._linear(
            self.cell.hidden_features,
            width,
            use_bias,
            self.recurrent_kernel_init,
            self.recurrent_kernel_metadata,
        )


class GatedCell(RNNCellBase):
    """Shared construction and carry handling of the built-in cells."""

    _config_fields = ("in_features", "hidden_features")

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        gate_fn: Callable[..., tp.Any] = sigmoid,
        activation_fn: Callable[..., tp.Any] = tanh,
        kernel_init: Initializer = default_kernel_init,
        recurrent_kernel_init: Initializer = default_recurrent_kernel_init,
        bias_init: Initializer = initializers.zeros,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        carry_init: Initializer | None = None,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        keep_rngs: bool = False,
        rngs: nnx_graph.Rngs,
        kernel_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
        recurrent_kernel_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
        bias_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        self.gate_fn = gate_fn
        self.activation_fn = activation_fn
        self._build(
            self._setup(
                in_features,
                hidden_features,
                dtype=dtype,
                param_dtype=param_dtype,
                carry_init=carry_init,
                promote_dtype=promote_dtype,
                keep_rngs=keep_rngs,
                rngs=rngs,
                inits=(kernel_init, recurrent_kernel_init, bias_init),
                metadata=(kernel_metadata, recurrent_kernel_metadata, bias_metadata),
            )
        )

    def _build(self, linears: GateLinears) -> None:
        """Create the cell's sub-layers (in Flax's order, so keys match)."""
        raise NotImplementedError

    def _setup(
        self,
        in_features: int,
        hidden_features: int,
        *,
        dtype: Dtype | None,
        param_dtype: Dtype,
        carry_init: Initializer | None,
        promote_dtype: PromoteDtypeFn,
        keep_rngs: bool,
        rngs: nnx_graph.Rngs,
        inits: tuple[Initializer, Initializer, Initializer],
        metadata: tuple[Mapping[str, tp.Any], ...],
    ) -> GateLinears:
        """Check and store the configuration; return the factory of gate Linears."""
        check_positive_int(
            f"{type(self).__name__}(in_features={in_features!r}, "
            f"hidden_features={hidden_features!r})",
            in_features=in_features,
            hidden_features=hidden_features,
        )
        rng_stream(rngs, "params", self)
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.promote_dtype = promote_dtype
        self.rngs: nnx_graph.RngStream | None
        if keep_rngs:
            warnings.warn(
                "keep_rngs is deprecated: pass rngs to initialize_carry (or to RNN) instead.",
                DeprecationWarning,
                stacklevel=3,
            )
            self.rngs = rng_stream(rngs, "carry", self).fork()
        else:
            self.rngs = None
        if carry_init is not None:
            warnings.warn(
                "carry_init given to the cell constructor: pass it to initialize_carry "
                "instead (a function stored on the cell becomes part of its structure).",
                stacklevel=3,
            )
        self.carry_init = carry_init
        return GateLinears(self, rngs, inits, metadata)

    _carry_parts = 1
    """How many ``(*batch, hidden)`` arrays the carry has (LSTMs: 2, ``(c, h)``)."""

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: RngsLike = None,
        carry_init: Initializer | None = None,
    ) -> Carry:
        """The carry for inputs of shape ``(*batch, in_features)``: ``h``, or
        ``(c, h)`` for the LSTMs. Zeros unless ``carry_init`` says otherwise (a
        random initializer needs ``rngs``)."""
        parts = self._new_carry(input_shape, rngs, carry_init, self._carry_parts)
        return parts[0] if self._carry_parts == 1 else tuple(parts)

    def _new_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: RngsLike,
        carry_init: Initializer | None,
        count: int,
    ) -> list[Array]:
        """``count`` arrays of shape ``(*batch, hidden_features)``."""
        if rngs is None:
            rngs = self.rngs
        stream = rngs.carry if isinstance(rngs, nnx_graph.Rngs) else rngs
        init = carry_init if carry_init is not None else self.carry_init
        if init is None:
            init = _zeros
        shape = (*tuple(input_shape)[:-1], self.hidden_features)
        if init is _zeros:
            # Zeros need no randomness: leave the RNG state alone (so a closure over the
            # model under plain jax.jit does not leak a traced RNG count).
            return [jnp.zeros(shape, self.param_dtype) for _ in range(count)]
        if stream is None:
            raise LayerInputError(
                describe(self),
                "initialize_carry needs rngs for a random carry_init. Fix: pass "
                "rngs=nnx.Rngs(carry=0) (or any Rngs / RngStream).",
            )
        return [init(stream(), shape, self.param_dtype) for _ in range(count)]

    def _check_step(self, carry_parts: tp.Sequence[Array], inputs: Array) -> None:
        check_axis_size(self, inputs, -1, self.in_features, "in_features")
        for part in carry_parts:
            if jnp.shape(part)[-1:] != (self.hidden_features,):
                raise InputShapeError(
                    describe(self),
                    f"expected a carry with {self.hidden_features} features on its last axis "
                    f"(hidden_features), found shape {jnp.shape(part)}. Fix: build the carry "
                    "with cell.initialize_carry(inputs.shape).",
                )

    @property
    def num_feature_axes(self) -> int:
        return 1
