"""Recurrent cells: one time step ``(carry, x) -> (new_carry, y)``.

``RNNCellBase`` is the interface :class:`~nnx_nn.RNN` scans over time;
``LSTMCell``, ``OptimizedLSTMCell`` (same maths, fused matmuls), ``GRUCell`` and
``SimpleCell`` implement it with :class:`~nnx_nn.Linear` sub-layers, built by the
shared :class:`~nnx_nn._cell_base.GatedCell` construction.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Callable, Mapping
from types import MappingProxyType

import jax.numpy as jnp

import nnx_graph
from nnx_nn import initializers
from nnx_nn._activations import sigmoid, tanh
from nnx_nn._cell_base import (
    Carry,
    GatedCell,
    GateLinears,
    RNNCellBase,
    default_kernel_init,
    default_recurrent_kernel_init,
    modified_orthogonal,
)
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._typing import Array, Dtype, Initializer, PromoteDtypeFn

__all__ = [
    "Carry",
    "GRUCell",
    "LSTMCell",
    "OptimizedLSTMCell",
    "RNNCellBase",
    "SimpleCell",
    "modified_orthogonal",
]


class LSTMCell(GatedCell):
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

    _carry_parts = 2  # (c, h)

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
        # Only the default recurrent_kernel_init differs from the other gated cells.
        super().__init__(
            in_features,
            hidden_features,
            gate_fn=gate_fn,
            activation_fn=activation_fn,
            kernel_init=kernel_init,
            recurrent_kernel_init=recurrent_kernel_init,
            bias_init=bias_init,
            dtype=dtype,
            param_dtype=param_dtype,
            carry_init=carry_init,
            promote_dtype=promote_dtype,
            keep_rngs=keep_rngs,
            rngs=rngs,
            kernel_metadata=kernel_metadata,
            recurrent_kernel_metadata=recurrent_kernel_metadata,
            bias_metadata=bias_metadata,
        )

    def _build(self, linears: GateLinears) -> None:
        hidden = self.hidden_features
        self.ii, self.if_, self.ig, self.io = (linears.inputs(hidden, False) for _ in range(4))
        self.hi, self.hf, self.hg, self.ho = (linears.hidden(hidden, True) for _ in range(4))

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


class OptimizedLSTMCell(GatedCell):
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

    _carry_parts = 2  # (c, h)

    def _build(self, linears: GateLinears) -> None:
        self.dense_i = linears.inputs(4 * self.hidden_features, False)
        self.dense_h = linears.hidden(4 * self.hidden_features, True)

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


class GRUCell(GatedCell):
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

    def _build(self, linears: GateLinears) -> None:
        self.dense_i = linears.inputs(3 * self.hidden_features, True)
        self.dense_h = linears.hidden(3 * self.hidden_features, False)

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


class SimpleCell(GatedCell):
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
        self.residual = residual
        self.activation_fn = activation_fn
        linears = self._setup(
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
        self.dense_h = linears.hidden(hidden_features, False)
        self.dense_i = linears.inputs(hidden_features, True)

    def __call__(self, carry: Array, inputs: Array) -> tuple[Array, Array]:
        """One step."""
        self._check_step((carry,), inputs)
        new_carry = self.dense_i(inputs) + self.dense_h(carry)
        if self.residual:
            new_carry += carry
        new_carry = self.activation_fn(new_carry)
        return new_carry, new_carry
