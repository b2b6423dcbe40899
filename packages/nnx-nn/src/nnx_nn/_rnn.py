"""RNN and Bidirectional: run a recurrent cell over the time axis.

The loop is a ``jax.lax.scan`` over the cell's state: the cell is split into a
GraphDef and State, merged back inside the scan body, and the State it leaves is
carried to the next step and written back to the cell afterwards. So cells that
update Variables (RNG counts, statistics) work, and the whole thing runs under
``jax.jit``.
"""

from __future__ import annotations

import contextlib
import typing as tp
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

import nnx_graph
from nnx_nn._errors import (
    InputShapeError,
    LayerConfigError,
    check_axis_size,
    child_path,
    describe,
)
from nnx_nn._recurrent import RNNCellBase
from nnx_nn._typing import Array

__all__ = ["RNN", "Bidirectional", "RNNBase", "flip_sequences"]

Carry = tp.Any


class RNNBase(tp.Protocol):
    """The call interface shared by :class:`RNN` and :class:`Bidirectional` (a
    typing protocol: anything with this ``__call__`` can be used where an RNN is
    expected).

    Example::

        >>> import nnx_graph, nnx_nn
        >>> from nnx_nn.recurrent import RNNBase
        >>> rnn: RNNBase = nnx_nn.RNN(nnx_nn.GRUCell(2, 3, rngs=nnx_graph.Rngs(0)))
    """

    def __call__(
        self,
        inputs: Array,
        *,
        initial_carry: Carry | None = None,
        rngs: nnx_graph.Rngs | nnx_graph.RngStream | None = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
    ) -> tp.Any: ...


def flip_sequences(
    inputs: Array, seq_lengths: Array | None, num_batch_dims: int, time_major: bool
) -> Array:
    """Reverse each sequence along the time axis, keeping padding at the end: with
    ``seq_lengths`` only the first ``seq_lengths[b]`` steps of sequence ``b`` are
    reversed.

    Example::

        >>> import jax.numpy as jnp
        >>> from nnx_nn.nn import flip_sequences
        >>> x = jnp.array([[1, 2, 3], [4, 5, 6]])
        >>> flip_sequences(x, jnp.array([2, 3]), num_batch_dims=1, time_major=False).tolist()
        [[2, 1, 3], [6, 5, 4]]
    """
    time_axis = 0 if time_major else num_batch_dims
    steps = inputs.shape[time_axis]
    if seq_lengths is None:
        return jnp.flip(inputs, axis=time_axis)
    lengths = jnp.expand_dims(seq_lengths, axis=time_axis)
    idxs = jnp.arange(steps - 1, -1, -1)
    if time_major:
        idxs = jnp.reshape(idxs, [steps] + [1] * num_batch_dims)
    else:
        idxs = jnp.reshape(idxs, [1] * num_batch_dims + [steps])
    idxs = (idxs + lengths) % steps
    idxs = idxs.reshape(list(idxs.shape) + [1] * (inputs.ndim - idxs.ndim))
    return jnp.take_along_axis(inputs, idxs, axis=time_axis)


def _select_last_carry(carries: Carry, seq_lengths: Array) -> Carry:
    """From carries stacked on a leading time axis, take step ``seq_lengths[b] - 1``
    of every batch entry ``b``."""
    last = seq_lengths - 1
    return jax.tree.map(lambda x: x[last, jnp.arange(x.shape[1])], carries)


def _carry_stream(rngs: tp.Any, where: str) -> nnx_graph.RngStream | None:
    if rngs is True:
        return nnx_graph.RngStream(0, tag="carry")
    if rngs is False or rngs is None:
        return None
    if isinstance(rngs, nnx_graph.Rngs):
        return tp.cast(nnx_graph.RngStream, rngs.carry.fork())
    if isinstance(rngs, nnx_graph.RngStream):
        return rngs.fork()
    raise LayerConfigError(
        f"{where}: rngs must be True, False, an nnx.Rngs or an RngStream, found "
        f"{type(rngs).__name__}. Fix: rngs=nnx.Rngs(carry=0), or leave the default."
    )


class RNN(nnx_graph.Module):
    """Apply a recurrent cell over the time axis of a sequence.

    Args:
        cell: an :class:`RNNCellBase` (e.g. :class:`LSTMCell`).
        time_major: inputs are ``(time, *batch, features)`` instead of the default
            ``(*batch, time, features)``.
        return_carry: also return the final carry: ``(carry, outputs)``.
        reverse: process the sequence from the end (padding stays at the end when
            ``seq_lengths`` is given).
        keep_order: with ``reverse``, flip the outputs back to input order.
        unroll: loop iterations unrolled per scan step.
        state_axes: only the default (``None``: all cell state is carried from step
            to step) is supported.
        broadcast_rngs: filter selecting RNG streams of the cell that give the same
            keys at every time step (e.g. one dropout mask for the whole sequence).
        rngs: where initial carries draw keys: ``True`` (default, a ``carry``
            stream seeded 0), an ``Rngs``/``RngStream`` (its ``carry`` stream is
            forked) or ``False``.

    Shapes: ``(*batch, time, in_features) -> (*batch, time, hidden)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> rnn = nnx_nn.RNN(nnx_nn.LSTMCell(3, 4, rngs=nnx_graph.Rngs(0)))
        >>> rnn(jnp.ones((2, 7, 3))).shape
        (2, 7, 4)
        >>> (c, h), y = rnn(jnp.ones((2, 7, 3)), return_carry=True)
        >>> h.shape
        (2, 4)
    """

    _config_fields = ("time_major", "reverse")

    def __init__(
        self,
        cell: RNNCellBase,
        *,
        time_major: bool = False,
        return_carry: bool = False,
        reverse: bool = False,
        keep_order: bool = False,
        unroll: int = 1,
        state_axes: tp.Any = None,
        broadcast_rngs: tp.Any = None,
        rngs: nnx_graph.Rngs | nnx_graph.RngStream | bool = True,
    ) -> None:
        if state_axes is not None:
            raise LayerConfigError(
                "RNN: state_axes other than the default (carry all cell state) is not "
                f"supported, found {state_axes!r}. Fix: leave state_axes=None; use "
                "broadcast_rngs to give RNG streams the same keys at every step."
            )
        self.cell = cell
        self.time_major = time_major
        self.return_carry = return_carry
        self.reverse = reverse
        self.keep_order = keep_order
        self.unroll = unroll
        self.rngs = _carry_stream(rngs, "RNN")
        self.state_axes = state_axes
        self.broadcast_rngs = broadcast_rngs

    def __call__(
        self,
        inputs: Array,
        *,
        initial_carry: Carry | None = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
        rngs: nnx_graph.Rngs | nnx_graph.RngStream | None = None,
    ) -> tp.Any:
        """Run the cell over ``inputs``; keyword arguments override the layer's
        settings for this call. ``seq_lengths`` ``(batch,)`` marks padded sequences
        (used for ``reverse`` and for the returned carry)."""
        return_carry = self.return_carry if return_carry is None else return_carry
        time_major = self.time_major if time_major is None else time_major
        reverse = self.reverse if reverse is None else reverse
        keep_order = self.keep_order if keep_order is None else keep_order
        inputs = jnp.asarray(inputs)
        features = self.cell.num_feature_axes
        if inputs.ndim < features + 1:
            raise InputShapeError(
                describe(self),
                f"expected inputs with a time axis and {features} feature axis/axes, found "
                f"inputs of shape {inputs.shape}. Fix: pass (*batch, time, features) (or "
                "(time, *batch, features) with time_major=True).",
            )
        in_features = getattr(self.cell, "in_features", None)
        if features == 1 and isinstance(in_features, int):
            with child_path("cell"):
                check_axis_size(self.cell, inputs, -1, in_features, "in_features")
        time_axis = 0 if time_major else inputs.ndim - (features + 1)
        batch_dims = inputs.shape[1:-features] if time_major else inputs.shape[:time_axis]
        if reverse:
            inputs = flip_sequences(inputs, seq_lengths, len(batch_dims), time_major)

        stream = (
            self.rngs
            if rngs is None
            else (rngs.carry.fork() if isinstance(rngs, nnx_graph.Rngs) else rngs)
        )
        if initial_carry is None:
            step_shape = inputs.shape[:time_axis] + inputs.shape[time_axis + 1 :]
            with child_path("cell"):
                carry = self.cell.initialize_carry(step_shape, stream)
        else:
            carry = initial_carry

        slice_carry = seq_lengths is not None and return_carry
        with child_path("cell"):
            carry, outputs = self._scan(carry, jnp.moveaxis(inputs, time_axis, 0), slice_carry)
        if slice_carry:
            assert seq_lengths is not None
            carries, outputs = outputs
            carry = _select_last_carry(carries, seq_lengths)
        outputs = jnp.moveaxis(outputs, 0, time_axis)
        if reverse and keep_order:
            outputs = flip_sequences(outputs, seq_lengths, len(batch_dims), time_major)
        return (carry, outputs) if return_carry else outputs

    def _scan(self, carry: Carry, steps: Array, keep_carries: bool) -> tuple[Carry, tp.Any]:
        """``lax.scan`` of the cell over the leading axis of ``steps``, threading the
        cell's State through the loop and writing it back at the end."""
        broadcast = self.broadcast_rngs
        # Like Flax: broadcast streams are split once for the whole loop, so every step
        # sees the same keys; the split is undone afterwards.
        split: contextlib.AbstractContextManager[tp.Any] = contextlib.nullcontext()
        if broadcast is not None:
            split = nnx_graph.split_rngs(
                self.cell, splits=1, only=broadcast, squeeze=True, graph=True, graph_updates=True
            )  # in place whatever nnx.set_graph_mode/set_graph_updates say
        with split:
            if broadcast is not None:
                graphdef, fixed, state = tp.cast(
                    tuple[tp.Any, tp.Any, tp.Any],
                    nnx_graph.split(self.cell, nnx_graph.All(nnx_graph.RngState, broadcast), ...),
                )
            else:
                graphdef, state = nnx_graph.split(self.cell)
                fixed = None

            def body(loop: tuple[tp.Any, Carry], x: Array) -> tuple[tuple[tp.Any, Carry], tp.Any]:
                cell_state, cell_carry = loop
                if fixed is None:
                    cell = nnx_graph.merge(graphdef, cell_state)
                else:
                    # copies: the broadcast streams' Variables belong to the outer trace,
                    # drawing from them here must not write this trace's values into them
                    cell = nnx_graph.merge(graphdef, fixed, cell_state, copy=True)
                cell_carry, y = cell(cell_carry, x)
                if fixed is None:
                    new_state = nnx_graph.state(cell)
                else:
                    # split, not state: nnx_graph.state(node, f, ...) does not partition
                    # (each filter matches on its own), unlike Flax's.
                    _, _, new_state = tp.cast(
                        tuple[tp.Any, tp.Any, tp.Any],
                        nnx_graph.split(cell, nnx_graph.All(nnx_graph.RngState, broadcast), ...),
                    )
                return (new_state, cell_carry), ((cell_carry, y) if keep_carries else y)

            (state, carry), outputs = lax.scan(body, (state, carry), steps, unroll=self.unroll)
        nnx_graph.update(self.cell, state)
        return carry, outputs


def _concatenate(a: Array, b: Array) -> Array:
    return jnp.concatenate([a, b], axis=-1)


class Bidirectional(nnx_graph.Module):
    """Run one RNN forward and another backward over the sequence and merge their
    outputs (by default concatenated on the feature axis).

    Args:
        forward_rnn: the forward :class:`RNN`.
        backward_rnn: the backward :class:`RNN` (run with ``reverse=True,
            keep_order=True``, so its outputs line up with the inputs).
        merge_fn: ``merge_fn(forward_outputs, backward_outputs)``.
        time_major: as in :class:`RNN`.
        return_carry: also return ``(forward_carry, backward_carry)``.
        rngs: as in :class:`RNN`; passed to both RNNs.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> rngs = nnx_graph.Rngs(0)
        >>> bi = nnx_nn.Bidirectional(nnx_nn.RNN(nnx_nn.GRUCell(3, 4, rngs=rngs)),
        ...                           nnx_nn.RNN(nnx_nn.GRUCell(3, 4, rngs=rngs)))
        >>> bi(jnp.ones((2, 5, 3))).shape
        (2, 5, 8)
    """

    _config_fields = ("time_major",)

    # Class-level defaults, as in Flax (``Bidirectional.merge_fn`` etc. exist on the class).
    merge_fn: Callable[[Array, Array], Array] = staticmethod(_concatenate)
    time_major: bool = False
    return_carry: bool = False

    def __init__(
        self,
        forward_rnn: RNN,
        backward_rnn: RNN,
        *,
        merge_fn: Callable[[Array, Array], Array] = _concatenate,
        time_major: bool = False,
        return_carry: bool = False,
        rngs: nnx_graph.Rngs | nnx_graph.RngStream | bool = True,
    ) -> None:
        self.forward_rnn = forward_rnn
        self.backward_rnn = backward_rnn
        self.merge_fn = merge_fn
        self.time_major = time_major
        self.return_carry = return_carry
        self.rngs = (
            rngs if isinstance(rngs, nnx_graph.RngStream) else _carry_stream(rngs, "Bidirectional")
        )

    def __call__(
        self,
        inputs: Array,
        *,
        initial_carry: tuple[Carry, Carry] | None = None,
        rngs: nnx_graph.Rngs | nnx_graph.RngStream | None = None,
        seq_lengths: Array | None = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        reverse: bool | None = None,
        keep_order: bool | None = None,
    ) -> tp.Any:
        """Run both directions and merge; ``reverse``/``keep_order`` are accepted
        for interface compatibility and ignored."""
        del reverse, keep_order
        time_major = self.time_major if time_major is None else time_major
        return_carry = self.return_carry if return_carry is None else return_carry
        stream = (
            self.rngs
            if rngs is None
            else (rngs.carry if isinstance(rngs, nnx_graph.Rngs) else rngs)
        )
        forward_carry, backward_carry = (None, None) if initial_carry is None else initial_carry

        def run(name: str, carry: Carry | None, backward: bool) -> tuple[Carry, tp.Any]:
            with child_path(name):
                # The backward pass reads the sequence in reverse and keeps its outputs
                # in input order, so both directions line up step by step.
                rnn = self.backward_rnn if backward else self.forward_rnn
                extra = {"keep_order": True} if backward else {}
                return rnn(  # type: ignore[no-any-return]
                    inputs,
                    initial_carry=carry,
                    rngs=stream,
                    seq_lengths=seq_lengths,
                    return_carry=True,
                    time_major=time_major,
                    reverse=backward,
                    **extra,
                )

        carry_f, out_f = run("forward_rnn", forward_carry, backward=False)
        carry_b, out_b = run("backward_rnn", backward_carry, backward=True)
        outputs = jax.tree.map(self.merge_fn, out_f, out_b)
        return ((carry_f, carry_b), outputs) if return_carry else outputs
