"""Recurrent cells: one time step ``(carry, x) -> (new_carry, y)``.

``RNNCellBase`` is the interface :class:`~nnx_nn.RNN` scans over time;
``LSTMCell``, ``OptimizedLSTMCell`` (same maths, fused matmuls), ``GRUCell`` and
``SimpleCell`` implement it with :class:`~nnx_nn.Linear` sub-layers.
"""

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

__all__ = [
    "GRUCell",
    "LSTMCell",
    "OptimizedLSTMCell",
    "RNNCellBase",
    "SimpleCell",
    "modified_orthogonal",
]

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


class _GatedCell(RNNCellBase):
    """Shared construction and carry handling of the built-in cells."""

    _config_fields = ("in_features", "hidden_features")

    def _common_init(
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
    ) -> None:
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

    def _linear(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool,
        kernel_init: Initializer,
        bias_init: Initializer,
        rngs: nnx_graph.Rngs,
        kernel_metadata: Mapping[str, tp.Any],
        bias_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> Linear:
        return Linear(
            in_features,
            out_features,
            use_bias=use_bias,
            kernel_init=kernel_init,
            bias_init=bias_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            promote_dtype=self.promote_dtype,
            rngs=rngs,
            kernel_metadata=kernel_metadata,
            bias_metadata=bias_metadata,
        )

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


class LSTMCell(_GatedCell):
    r"""Long short-term memory cell.

    .. math::
        i = \sigma(W_{ii} x + W_{hi} h + b_{hi}), \quad
        f = \sigma(W_{if} x + W_{hf} h + b_{hf}), \quad
        g = \tanh(W_{ig} x + W_{hg} h + b_{hg}), \quad
        o = \sigma(W_{io} x + W_{ho} h + b_{ho})

        c' = f c + i g, \qquad h' = o \tanh(c')

    Args:
        in_features: input size.
        hidden_features: size of ``c`` and ``h``.
        gate_fn: gate activation (default ``sigmoid``).
        activation_fn: cell activation (default ``tanh``).
        kernel_init: initializer of the input kernels (default ``lecun_normal``).
        recurrent_kernel_init: initializer of the hidden kernels (default
            orthogonal).
        bias_init: initializer of the biases (default zeros).
        dtype, param_dtype, promote_dtype: as in :class:`~nnx_nn.Linear`.
        carry_init: deprecated here; pass it to :meth:`initialize_carry`.
        keep_rngs: deprecated; store a ``carry`` stream on the cell.
        rngs: ``Rngs`` for the Params.
        kernel_metadata, recurrent_kernel_metadata, bias_metadata: Param metadata.

    Sub-layers: ``ii``, ``if_``, ``ig``, ``io`` (input, no bias) and ``hi``,
    ``hf``, ``hg``, ``ho`` (hidden, with bias), each a :class:`~nnx_nn.Linear`.

    Shapes: carry ``(c, h)`` each ``(*batch, hidden)``; inputs ``(*batch, in)``;
    outputs ``h'``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> cell = nnx_nn.LSTMCell(3, 4, rngs=nnx_graph.Rngs(0))
        >>> carry = cell.initialize_carry((2, 3))
        >>> (c, h), y = cell(carry, jnp.ones((2, 3)))
        >>> c.shape, h.shape, y.shape
        ((2, 4), (2, 4), (2, 4))
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        gate_fn: Callable[..., tp.Any] = sigmoid,
        activation_fn: Callable[..., tp.Any] = tanh,
        kernel_init: Initializer = default_kernel_init,
        recurrent_kernel_init: Initializer = modified_orthogonal,
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
        self._common_init(
            in_features,
            hidden_features,
            dtype=dtype,
            param_dtype=param_dtype,
            carry_init=carry_init,
            promote_dtype=promote_dtype,
            keep_rngs=keep_rngs,
            rngs=rngs,
        )
        self.gate_fn = gate_fn
        self.activation_fn = activation_fn

        def dense_i() -> Linear:
            return self._linear(
                in_features,
                hidden_features,
                use_bias=False,
                kernel_init=kernel_init,
                bias_init=bias_init,
                rngs=rngs,
                kernel_metadata=kernel_metadata,
            )

        def dense_h() -> Linear:
            return self._linear(
                hidden_features,
                hidden_features,
                use_bias=True,
                kernel_init=recurrent_kernel_init,
                bias_init=bias_init,
                rngs=rngs,
                kernel_metadata=recurrent_kernel_metadata,
                bias_metadata=bias_metadata,
            )

        self.ii, self.if_, self.ig, self.io = dense_i(), dense_i(), dense_i(), dense_i()
        self.hi, self.hf, self.hg, self.ho = dense_h(), dense_h(), dense_h(), dense_h()

    def __call__(
        self, carry: tuple[Array, Array], inputs: Array
    ) -> tuple[tuple[Array, Array], Array]:
        """One LSTM step."""
        c, h = carry
        self._check_step((c, h), inputs)
        i = self.gate_fn(self.ii(inputs) + self.hi(h))
        f = self.gate_fn(self.if_(inputs) + self.hf(h))
        g = self.activation_fn(self.ig(inputs) + self.hg(h))
        o = self.gate_fn(self.io(inputs) + self.ho(h))
        new_c = f * c + i * g
        new_h = o * self.activation_fn(new_c)
        return (new_c, new_h), new_h

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: RngsLike = None,
        carry_init: Initializer | None = None,
    ) -> tuple[Array, Array]:
        """``(c, h)`` for inputs of shape ``(*batch, in_features)`` (zeros unless
        ``carry_init`` says otherwise; random initializers need ``rngs``)."""
        c, h = self._new_carry(input_shape, rngs, carry_init, 2)
        return c, h


class OptimizedLSTMCell(_GatedCell):
    r"""An LSTM cell that computes the four gates with one input matmul and one
    hidden matmul (often faster than :class:`LSTMCell` for hidden sizes up to a
    few thousand). Same maths as :class:`LSTMCell`.

    Args: as in :class:`LSTMCell` (default ``recurrent_kernel_init`` is
    ``orthogonal()``).

    Sub-layers: ``dense_i`` (``in -> 4 * hidden``, no bias) and ``dense_h``
    (``hidden -> 4 * hidden``, with bias); the gates are the consecutive
    quarters ``i, f, g, o`` of their sum.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> cell = nnx_nn.OptimizedLSTMCell(3, 4, rngs=nnx_graph.Rngs(0))
        >>> cell.dense_i.kernel.shape, cell.dense_h.kernel.shape
        ((3, 16), (4, 16))
        >>> _, y = cell(cell.initialize_carry((2, 3)), jnp.ones((2, 3)))
        >>> y.shape
        (2, 4)
    """

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
        self._common_init(
            in_features,
            hidden_features,
            dtype=dtype,
            param_dtype=param_dtype,
            carry_init=carry_init,
            promote_dtype=promote_dtype,
            keep_rngs=keep_rngs,
            rngs=rngs,
        )
        self.gate_fn = gate_fn
        self.activation_fn = activation_fn
        self.dense_i = self._linear(
            in_features,
            4 * hidden_features,
            use_bias=False,
            kernel_init=kernel_init,
            bias_init=bias_init,
            rngs=rngs,
            kernel_metadata=kernel_metadata,
        )
        self.dense_h = self._linear(
            hidden_features,
            4 * hidden_features,
            use_bias=True,
            kernel_init=recurrent_kernel_init,
            bias_init=bias_init,
            rngs=rngs,
            kernel_metadata=recurrent_kernel_metadata,
            bias_metadata=bias_metadata,
        )

    def __call__(
        self, carry: tuple[Array, Array], inputs: Array
    ) -> tuple[tuple[Array, Array], Array]:
        """One LSTM step."""
        c, h = carry
        self._check_step((c, h), inputs)
        i, f, g, o = jnp.split(self.dense_i(inputs) + self.dense_h(h), 4, axis=-1)
        new_c = self.gate_fn(f) * c + self.gate_fn(i) * self.activation_fn(g)
        new_h = self.gate_fn(o) * self.activation_fn(new_c)
        return (new_c, new_h), new_h

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: RngsLike = None,
        carry_init: Initializer | None = None,
    ) -> tuple[Array, Array]:
        """``(c, h)`` for inputs of shape ``(*batch, in_features)``."""
        c, h = self._new_carry(input_shape, rngs, carry_init, 2)
        return c, h


class GRUCell(_GatedCell):
    r"""Gated recurrent unit.

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h), \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h)

        n = \tanh(W_{in} x + b_{in} + r (W_{hn} h)), \qquad h' = (1 - z) n + z h

    Args: as in :class:`LSTMCell` (default ``recurrent_kernel_init`` is
    ``orthogonal()``).

    Sub-layers: ``dense_i`` (``in -> 3 * hidden``, with bias) and ``dense_h``
    (``hidden -> 3 * hidden``, no bias); gates in the order ``r, z, n``.

    Shapes: carry ``(*batch, hidden)``; outputs ``h'``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> cell = nnx_nn.GRUCell(3, 4, rngs=nnx_graph.Rngs(0))
        >>> h, y = cell(cell.initialize_carry((2, 3)), jnp.ones((2, 3)))
        >>> h.shape
        (2, 4)
    """

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
        self._common_init(
            in_features,
            hidden_features,
            dtype=dtype,
            param_dtype=param_dtype,
            carry_init=carry_init,
            promote_dtype=promote_dtype,
            keep_rngs=keep_rngs,
            rngs=rngs,
        )
        self.gate_fn = gate_fn
        self.activation_fn = activation_fn
        self.dense_i = self._linear(
            in_features,
            3 * hidden_features,
            use_bias=True,
            kernel_init=kernel_init,
            bias_init=bias_init,
            rngs=rngs,
            kernel_metadata=kernel_metadata,
            bias_metadata=bias_metadata,
        )
        self.dense_h = self._linear(
            hidden_features,
            3 * hidden_features,
            use_bias=False,
            kernel_init=recurrent_kernel_init,
            bias_init=bias_init,
            rngs=rngs,
            kernel_metadata=recurrent_kernel_metadata,
        )

    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        """One GRU step."""
        h = carry
        self._check_step((h,), inputs)
        xr, xz, xn = jnp.split(self.dense_i(inputs), 3, axis=-1)
        hr, hz, hn = jnp.split(self.dense_h(h), 3, axis=-1)
        r = self.gate_fn(xr + hr)
        z = self.gate_fn(xz + hz)
        n = self.activation_fn(xn + r * hn)
        new_h = (1.0 - z) * n + z * h
        return new_h, new_h

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: RngsLike = None,
        carry_init: Initializer | None = None,
    ) -> Array:
        """``h`` for inputs of shape ``(*batch, in_features)``."""
        return self._new_carry(input_shape, rngs, carry_init, 1)[0]


class SimpleCell(_GatedCell):
    r"""The Elman cell: ``h' = tanh(W_i x + b_i + W_h h)`` (``+ h`` inside the
    activation when ``residual``).

    Args: as in :class:`LSTMCell`, plus ``residual`` (default ``False``); the
    default ``dtype`` is ``float32``.

    Sub-layers: ``dense_i`` (``in -> hidden``, with bias) and ``dense_h``
    (``hidden -> hidden``, no bias).

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> cell = nnx_nn.SimpleCell(3, 4, rngs=nnx_graph.Rngs(0))
        >>> h, y = cell(cell.initialize_carry((2, 3)), jnp.ones((2, 3)))
        >>> y.shape
        (2, 4)
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        dtype: Dtype = jnp.float32,
        param_dtype: Dtype = jnp.float32,
        carry_init: Initializer | None = None,
        residual: bool = False,
        activation_fn: Callable[..., tp.Any] = tanh,
        kernel_init: Initializer = default_kernel_init,
        recurrent_kernel_init: Initializer = default_recurrent_kernel_init,
        bias_init: Initializer = initializers.zeros,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        keep_rngs: bool = False,
        rngs: nnx_graph.Rngs,
        kernel_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
        recurrent_kernel_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
        bias_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        self._common_init(
            in_features,
            hidden_features,
            dtype=dtype,
            param_dtype=param_dtype,
            carry_init=carry_init,
            promote_dtype=promote_dtype,
            keep_rngs=keep_rngs,
            rngs=rngs,
        )
        self.residual = residual
        self.activation_fn = activation_fn
        self.dense_h = self._linear(
            hidden_features,
            hidden_features,
            use_bias=False,
            kernel_init=recurrent_kernel_init,
            bias_init=bias_init,
            rngs=rngs,
            kernel_metadata=recurrent_kernel_metadata,
        )
        self.dense_i = self._linear(
            in_features,
            hidden_features,
            use_bias=True,
            kernel_init=kernel_init,
            bias_init=bias_init,
            rngs=rngs,
            kernel_metadata=kernel_metadata,
            bias_metadata=bias_metadata,
        )

    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        """One step."""
        self._check_step((carry,), inputs)
        new_carry = self.dense_i(inputs) + self.dense_h(carry)
        if self.residual:
            new_carry += carry
        new_carry = self.activation_fn(new_carry)
        return new_carry, new_carry

    def initialize_carry(
        self,
        input_shape: tuple[int, ...],
        rngs: RngsLike = None,
        carry_init: Initializer | None = None,
    ) -> Array:
        """``h`` for inputs of shape ``(*batch, in_features)``."""
        return self._new_carry(input_shape, rngs, carry_init, 1)[0]
