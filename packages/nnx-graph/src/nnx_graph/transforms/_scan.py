"""``nnx.scan``: ``jax.lax.scan`` over functions of graph nodes.

Each argument is either the carry (``nnx.Carry``), scanned along an axis (an int),
or broadcast (``None``); graph-node arguments may mix these per Variable with
``StateAxes``.  Variables that are not scanned (carry or broadcast) are threaded
through the loop as carry, so updates to them (RNG counts, statistics) come out.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import typing as tp
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from nnx_graph._errors import GraphStructureError
from nnx_graph._hashing import hashable
from nnx_graph._sharding import PARTITION_NAME, add_axis, remove_axis
from nnx_graph.transforms._axes import Carry, StateAxes, check_state_axes_used, leaf_axes
from nnx_graph.transforms._bridge import Outcome, Static, Updates, fill_tree, split_tree
from nnx_graph.transforms._lift import (
    Lifted,
    bind_positional,
    carry_type_error,
    check_aliasing,
    describe_aval,
    positions_of_nodes,
    spread_specs,
)
from nnx_graph.transforms._modes import (
    Mode,
    check_prefix,
    reject_bound_method,
    resolve,
    with_mode,
)
from nnx_graph.transforms._scan_growth import grown_values, split_step_values
from nnx_graph.transforms._scan_outputs import YsNodes, is_spec_leaf, lift_ys_nodes

__all__ = ["scan"]


def _move(x: tp.Any, src: int, dst: int) -> tp.Any:
    return x if src == dst or x is None else jnp.moveaxis(x, src, dst)


def _same_structure(a: tp.Any, b: tp.Any) -> bool:
    structure: tp.Any = jax.tree.structure(a)
    return bool(structure == jax.tree.structure(b))


def _is_scanned(axis: tp.Any) -> bool:
    return isinstance(axis, int) and not isinstance(axis, bool)


def _is_axis(spec: tp.Any) -> bool:
    return spec is None or spec is Carry or _is_scanned(spec)


def _check_out_axes(out_axes: tp.Any) -> None:
    """At most one ``nnx.Carry`` in ``out_axes``, and no broadcast (None) outputs."""
    if out_axes is None:
        raise ValueError(
            "nnx.scan: Cannot broadcast output state: out_axes=None. Expected nnx.Carry, "
            "an int axis, or a tuple of them. Fix: stack the per-step outputs (out_axes=0) "
            "or return them through the carry."
        )
    if not isinstance(out_axes, (tuple, list)):
        return
    carries = [i for i, s in enumerate(out_axes) if s is Carry]
    if len(carries) > 1:
        raise ValueError(
            f"nnx.scan: Found multiple Carry definitions at out_axes[{carries[0]}] and "
            f"out_axes[{carries[1]}]. Expected at most one nnx.Carry. Fix: return the carry "
            "once (pack several carries into one tuple)."
        )
    broadcast = [i for i, s in enumerate(out_axes) if s is None]
    if broadcast:
        raise ValueError(
            f"nnx.scan: Cannot broadcast output state: out_axes[{broadcast[0]}] is None. "
            "Expected per-step outputs on an int axis (or nnx.Carry). Fix: use 0 and take "
            "the last entry, or return the value through the carry."
        )
    for i, s in enumerate(out_axes):
        if isinstance(s, StateAxes) and any(a is None for a in s.axes):
            raise ValueError(
                f"nnx.scan: Cannot broadcast output state. Got StateAxes {s!r} at "
                f"out_axes[{i}], which maps some state to None (broadcast). Expected an int "
                "axis (or nnx.Carry) for every output filter. Fix: stack that state (use 0) "
                "or return it through the carry."
            )


def _check_not_nested(axes: tp.Any, what: str) -> None:
    """``nnx.Carry`` may only be one whole entry of in_axes/out_axes."""
    if not isinstance(axes, (tuple, list)):
        return
    for k, spec in enumerate(axes):
        if spec is Carry or not isinstance(spec, (tuple, list, dict)):
            continue
        if any(leaf is Carry for leaf in jax.tree.leaves(spec, is_leaf=lambda x: x is Carry)):
            raise ValueError(
                f"nnx.scan: Carry must be at the top-level, it cannot be nested: {what}[{k}] "
                f"is {spec!r}. Expected nnx.Carry as a whole entry of {what}. Fix: make the "
                f"carry one argument/output, e.g. {what}=(nnx.Carry, 0)."
            )


def _check_axes(in_axes: tp.Any, out_axes: tp.Any) -> None:
    """The checks that need only ``in_axes``/``out_axes``: run when ``scan`` is
    applied to the function, before it is ever called."""
    _check_not_nested(in_axes, "in_axes")
    _check_not_nested(out_axes, "out_axes")
    in_list = in_axes if isinstance(in_axes, (tuple, list)) else [in_axes]
    carries = [i for i, s in enumerate(in_list) if s is Carry]
    if len(carries) > 1:
        raise ValueError(
            f"nnx.scan: Found multiple Carry definitions at in_axes[{carries[0]}] and "
            f"in_axes[{carries[1]}]: in_axes marks arguments {carries} as nnx.Carry; "
            "expected at most one. Fix: pack the carries into one tuple argument."
        )
    _check_out_axes(out_axes)
    carry_out = out_axes is Carry or (
        isinstance(out_axes, (tuple, list)) and any(s is Carry for s in out_axes)
    )
    if bool(carries) != carry_out:
        raise ValueError(
            "nnx.scan: If one of in_axes or out_axes has Carry, the other must also have "
            f"Carry. Got in_axes={in_axes!r} and out_axes={out_axes!r}. Expected a carry "
            "going in and coming out, or neither. Fix: e.g. in_axes=(nnx.Carry, 0) with "
            "out_axes=(nnx.Carry, 0), or in_axes=0 with out_axes=0."
        )


class _Scan:
    """One call of a scanned function."""

    def __init__(
        self,
        f: tp.Callable[..., tp.Any],
        args: tuple[tp.Any, ...],
        in_axes: tp.Any,
        out_axes: tp.Any,
        metadata: Mapping[str, tp.Any],
        mode: Mode | None = None,
    ) -> None:
        self.f, self.args, self.out_axes, self.metadata = f, args, out_axes, metadata
        self.mode = mode
        if in_axes is Carry and len(args) != 1:
            raise ValueError(
                "nnx.scan: When in_axes=Carry, the function must take exactly one argument, "
                f"got {len(args)} arguments. Fix: pack them into one tuple argument, or give "
                "one spec per argument, e.g. in_axes=(nnx.Carry, 0)."
            )
        specs = list(in_axes) if isinstance(in_axes, (tuple, list)) else [in_axes] * len(args)
        if len(specs) != len(args):
            raise ValueError(
                f"nnx.scan: in_axes has {len(specs)} entries but the function got {len(args)} "
                "arguments. Expected one spec per argument (nnx.Carry, an int, None or "
                "nnx.StateAxes). Fix: e.g. in_axes=(nnx.Carry, 0)."
            )
        carries = [i for i, s in enumerate(specs) if s is Carry]
        self.specs = specs
        self.carry_position = carries[0] if carries else None
        # first: it refuses prefix trees for containers of graph nodes
        self.dyn_spec = spread_specs(args, specs, _is_axis, "nnx.scan", "in_axes entry")
        self.lifted = lifted = Lifted("scan", args, {}, fun=f)
        bridge = lifted.bridge
        self.node_pos = positions_of_nodes(args)
        leaf_arg = [self.node_pos[p[0]] for p in bridge.paths]
        check_state_axes_used(
            specs, leaf_arg, bridge.paths, bridge.leaves, "nnx.scan", lifted.root_names
        )
        self.axes = leaf_axes(
            specs, leaf_arg, bridge.paths, bridge.leaves, "nnx.scan", lifted.root_names
        )
        check_aliasing(lifted, specs, self.node_pos, self.axes, "nnx.scan")
        self.scanned = [i for i, a in enumerate(self.axes) if _is_scanned(a)]
        self.looped = [i for i, a in enumerate(self.axes) if not _is_scanned(a)]
        self.values = lifted.values()
        for spec in (*specs, *self.dyn_spec):
            if not (_is_axis(spec) or isinstance(spec, (StateAxes, tuple, list, dict, Mapping))):
                raise TypeError(
                    f"nnx.scan: an in_axes entry is {spec!r}; expected nnx.Carry, an int, "
                    "None or nnx.StateAxes."
                )
        self.dyn_scanned = [i for i, s in enumerate(self.dyn_spec) if _is_scanned(s)]
        self.dyn_carry = [i for i, s in enumerate(self.dyn_spec) if s is Carry]
        # broadcast arrays enter the loop as (unchanged) carry, never as constants
        # closed over: the traced step is cached by its structure (``key``), so it
        # must not hold any value of this call
        dyn = lifted.dyn
        self.dyn_bcast = [
            i
            for i, s in enumerate(self.dyn_spec)
            if s is None and isinstance(dyn[i], (jax.Array, np.ndarray, np.generic))
        ]
        self.out_specs = out_axes if isinstance(out_axes, (tuple, list)) else None

    def key(self) -> tp.Any:
        """Everything the traced step depends on besides the avals of its inputs:
        the graph structure, the argument tree and the static (non-array) broadcast
        arguments. Equal keys let JAX reuse the step's trace from an earlier call."""
        lifted = self.lifted
        traced = {*self.dyn_carry, *self.dyn_scanned, *self.dyn_bcast}
        statics = tuple((i, hashable(v)) for i, v in enumerate(lifted.dyn) if i not in traced)
        return _StepKey((lifted.bridge.graphdef, lifted.treedef, statics))

    # ------------------------------------------------------------- checks
    def check_lengths(self, length: int | None) -> None:
        lifted, dyn = self.lifted, self.lifted.dyn
        entries = [
            (lifted.describe_leaf(i), self.axes[i], np.shape(self.values[i]))
            for i in self.scanned
            if self.values[i] is not None  # an empty data attribute (nnx.data(None))
        ]
        names = lifted.dyn_names()
        entries += [(names[i], self.dyn_spec[i], np.shape(dyn[i])) for i in self.dyn_scanned]
        by_length: dict[int, list[str]] = {} if length is None else {length: ["length"]}
        for name, axis, shape in entries:
            if not -len(shape) <= axis < len(shape):
                raise ValueError(
                    f"nnx.scan: {name} has shape {shape} but is scanned over axis {axis}. "
                    "Expected a stacked value with that axis (e.g. created with nnx.vmap + "
                    "nnx.split_rngs). Fix: broadcast it with None / nnx.StateAxes, or stack it."
                )
            by_length.setdefault(shape[axis], []).append(name)
        if len(by_length) > 1:
            detail = "; ".join(
                f"length {n}: {', '.join(p[:4])}"
                + (f" and {len(p) - 4} more" if len(p) > 4 else "")
                for n, p in by_length.items()
            )
            raise ValueError(
                f"nnx.scan: the scanned inputs have different lengths along their scan axes "
                f"({detail}). Expected one length. Fix: make them agree, or broadcast the odd "
                "ones out with None / nnx.StateAxes."
            )

    # ------------------------------------------------------------- inside
    def body(self, carry: tp.Any, xs: tp.Any) -> tp.Any:
        lifted, bridge = self.lifted, self.lifted.bridge
        c_graph, c_dyn, c_bcast = carry
        x_graph, x_dyn, _ = xs
        full = list(self.values)
        for i, v in zip(self.looped, c_graph):
            full[i] = v
        for i, v in zip(self.scanned, x_graph):
            full[i] = v
        dyn_full = list(lifted.dyn)
        for i, v in zip(self.dyn_carry, c_dyn):
            dyn_full[i] = v
        for i, v in zip(self.dyn_scanned, x_dyn):
            dyn_full[i] = v
        for i, v in zip(self.dyn_bcast, c_bcast):
            dyn_full[i] = v
        trace, args, _ = lifted.enter(full, dyn_full)
        roots = trace.roots
        inner_vars = bridge.inner_variables(trace) if self.metadata else []
        for i in self.scanned if self.metadata else ():
            if inner_vars[i] is not None:
                remove_axis([inner_vars[i]], self.axes[i], self.metadata)
        out = self.f(*args)
        for i in self.scanned if self.metadata else ():
            if inner_vars[i] is not None:
                add_axis([inner_vars[i]], self.axes[i], self.metadata)
        carry_out, ys = self._split_output(out)
        carry_tree, carry_nodes = split_tree(carry_out)
        in_carry_nodes = [roots[k] for k, p in enumerate(self.node_pos) if p == self.carry_position]
        if [id(n) for n in carry_nodes] != [id(n) for n in in_carry_nodes]:
            raise GraphStructureError(
                "nnx.scan: Carry references must be the same between iterations (scan "
                "Variable identity must be preserved across iterations): the carry returned "
                "holds different Modules/Variables than the carry passed in "
                f"({len(carry_nodes)} graph node(s) out, {len(in_carry_nodes)} in). Expected "
                "the same objects, updated in place. Fix: return the carry argument itself."
            )
        new_values, created, grown = split_step_values(
            lifted, self.specs, self.node_pos, trace, self.metadata
        )
        new_c_dyn = jax.tree.leaves(carry_tree)
        in_tree = (
            split_tree(self.args[self.carry_position])[0]
            if self.carry_position is not None
            else None
        )
        if not _same_structure(carry_tree, in_tree):
            raise GraphStructureError(
                "nnx.scan: the carry returned by the function has a different structure than "
                f"the carry passed in.\nIn:  {jax.tree.structure(in_tree)}\nOut: "
                f"{jax.tree.structure(carry_tree)}\nExpected the same structure every step. "
                "Fix: return a carry shaped like the one passed in."
            )
        self.check_carry([*c_dyn, *c_graph], [*new_c_dyn, *(new_values[i] for i in self.looped)])
        ys_tree, ys_nodes = split_tree(ys)
        if self.mode is not None and ys_nodes:
            self._check_ys_aliasing(trace, ys_nodes)
        ys_info: YsNodes | None = None
        ys_state = None
        if ys_nodes:
            ys_info, ys_state = lift_ys_nodes(
                lifted, trace, self.axes, ys_tree, ys_nodes, self._ys_spec()
            )
        return (
            ([new_values[i] for i in self.looped], new_c_dyn, c_bcast),
            (
                ([new_values[i] for i in self.scanned], created),
                (ys_tree, ys_state),
                Static(jax.tree.structure(carry_tree)),
                Static((ys_info, grown)),
            ),
        )

    def _check_ys_aliasing(self, trace: tp.Any, ys_nodes: tp.Sequence[tp.Any]) -> None:
        """Flax's graph=False/graph_updates=False check: an input returned as a
        per-step output."""
        inputs = {id(n) for n in trace.roots}
        inputs.update(id(v) for v in self.lifted.bridge.inner_variables(trace) if v is not None)
        for k, node in enumerate(ys_nodes):
            if id(node) in inputs:
                assert self.mode is not None
                raise ValueError(
                    f"nnx.scan with {self.mode.flag} does not support Variable aliasing: "
                    f"the per-step output (graph node {k}, a {type(node).__name__}) is an "
                    "input of the function. Expected new objects (or arrays) as per-step "
                    "outputs. Fix: return its value (v[...]) or a copy (nnx.clone), or use "
                    "the default mode (graph=True, graph_updates=True)."
                )

    def _ys_spec(self) -> tp.Any:
        """The out spec of the per-step outputs (a tuple when out_axes is one)."""
        if self.out_specs is None:
            return self.out_axes
        return tuple(s for s in self.out_specs if s is not Carry)

    def _split_output(self, out: tp.Any) -> tuple[tp.Any, tp.Any]:
        if self.out_axes is Carry:
            return out, ()
        if self.out_specs is None:
            return None, out
        n = len(self.out_specs)
        if not isinstance(out, (tuple, list)) or len(out) != n:
            raise ValueError(
                f"nnx.scan: out_axes {self.out_axes!r} expects the function to return a tuple "
                f"of {n}; found {type(out).__name__}. Fix: return (carry, y) or change out_axes."
            )
        carry = tuple(o for o, s in zip(out, self.out_specs) if s is Carry)
        ys = tuple(o for o, s in zip(out, self.out_specs) if s is not Carry)
        return (carry[0] if len(carry) == 1 else None), ys

    def check_carry(self, inputs: tp.Sequence[tp.Any], outputs: tp.Sequence[tp.Any]) -> None:
        """Inside the body: name every carry entry whose shape or dtype changed."""
        ins, outs = list(map(describe_aval, inputs)), list(map(describe_aval, outputs))
        if ins == outs:
            return
        dyn_names = self.lifted.dyn_names()
        names = [
            *(dyn_names[i] for i in self.dyn_carry),
            *(self.lifted.describe_leaf(i) for i in self.looped),
        ]
        error = carry_type_error("nnx.scan", "the carry", names, ins, outs)
        if error is not None:
            raise error

    # ------------------------------------------------------------- outside
    def run(
        self,
        step: _Step,
        length: int | None,
        reverse: bool,
        unroll: int | bool,
        split_transpose: bool,
    ) -> tp.Any:
        self.check_lengths(length)
        lifted, dyn = self.lifted, self.lifted.dyn
        xs_graph = [_move(self.values[i], self.axes[i], 0) for i in self.scanned]
        xs_dyn = [_move(dyn[i], self.dyn_spec[i], 0) for i in self.dyn_scanned]
        carry = (
            [self.values[i] for i in self.looped],
            [dyn[i] for i in self.dyn_carry],
            [dyn[i] for i in self.dyn_bcast],
        )
        kwargs: dict[str, tp.Any] = {"length": length, "reverse": reverse, "unroll": unroll}
        if split_transpose:
            kwargs["_split_transpose"] = True
        with step.running(self):
            (c_graph, c_dyn, _), ((ys_graph, created), (ys, ys_state), carry_tree, info) = (
                jax.lax.scan(step, carry, (xs_graph, xs_dyn, Static(self.key())), **kwargs)
            )
        ys_info, grown = info.value
        values = list(self.values)
        for i, v in zip(self.looped, c_graph):
            values[i] = v
        for i, v in zip(self.scanned, ys_graph):
            values[i] = _move(v, 0, self.axes[i])
        if grown is None:
            lifted.write_back(None, Updates(Outcome(None, None), values))
        else:
            full = grown_values(grown, values, created)
            lifted.write_back(None, Updates(Outcome(None, grown.structure), full))
        carry_nodes = (
            [n for n, p in zip(lifted.nodes, self.node_pos) if p == self.carry_position]
            if self.carry_position is not None
            else []
        )
        carry_value = fill_tree(jax.tree.unflatten(carry_tree.value, c_dyn), carry_nodes)
        if self.out_axes is Carry:
            return carry_value
        ys = _move_ys(ys, self._ys_spec())
        if ys_info is not None:
            ys = ys_info.rebuild(ys, ys_state, lifted.nodes, self.metadata)
        if self.out_specs is None:
            return ys
        y_iter = iter(ys)
        return tuple(carry_value if s is Carry else next(y_iter) for s in self.out_specs)


class _StepKey:
    """The structure a traced step depends on (see ``_Scan.key``), as the aux data
    of a ``Static`` input: JAX's trace cache compares it by value."""

    __slots__ = ("parts", "_hash")

    def __init__(self, parts: tuple[tp.Any, ...]) -> None:
        self.parts = parts
        self._hash = hash(parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _StepKey)
            and self._hash == other._hash
            and (self.parts == other.parts)
        )

    def __repr__(self) -> str:
        return "<scan step structure>"


class _Step:
    """The loop body ``jax.lax.scan`` sees: one object per scanned function, so
    JAX caches its trace across calls (keyed by the structure in the inputs); the
    call being traced is the innermost running ``_Scan`` of this thread."""

    def __init__(self, f: tp.Callable[..., tp.Any]) -> None:
        self.__name__ = getattr(f, "__name__", "scan_step")
        self.__qualname__ = getattr(f, "__qualname__", self.__name__)
        self._local = threading.local()

    @contextlib.contextmanager
    def running(self, call: _Scan) -> tp.Iterator[None]:
        stack: list[_Scan] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(call)
        try:
            yield
        finally:
            stack.pop()

    def __call__(self, carry: tp.Any, xs: tp.Any) -> tp.Any:
        return self._local.stack[-1].body(carry, xs)


def _move_ys(ys: tp.Any, spec: tp.Any) -> tp.Any:
    """Move the stacked axis (0) of the per-step output arrays to their out axis
    (graph nodes are left to ``YsNodes.rebuild``)."""

    def move(s: tp.Any, sub: tp.Any) -> tp.Any:
        if not _is_scanned(s) or s == 0:
            return sub
        return jax.tree.map(lambda v: _move(v, 0, s), sub)

    if is_spec_leaf(spec):
        return move(spec, ys)
    return jax.tree.map(move, spec, ys, is_leaf=is_spec_leaf)


def scan(
    f: tp.Any = None,
    *,
    length: int | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    _split_transpose: bool = False,
    in_axes: tp.Any = (Carry, 0),
    out_axes: tp.Any = (Carry, 0),
    transform_metadata: Mapping[str, tp.Any] = {},
    graph: tp.Any = None,
    graph_updates: tp.Any = None,
) -> tp.Any:
    """Scan a function over the leading (or given) axis of some arguments.

    ``in_axes`` gives per argument ``nnx.Carry``, an int axis to scan over, ``None``
    (broadcast) or a :class:`StateAxes`. ``out_axes`` is ``nnx.Carry`` (the
    function returns only the carry) or a tuple such as ``(nnx.Carry, 0)`` (carry
    and per-step outputs stacked on axis 0). A stack of layers created with
    ``vmap`` applies with ``scan`` (scan over layers).

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class Lin(nnx.Module):
        ...     def __init__(self, rngs):
        ...         self.w = nnx.Param(jax.random.normal(rngs.params(), (3, 3)) * 0.1)
        ...     def __call__(self, x):
        ...         return jnp.tanh(x @ self.w)
        >>> @nnx.split_rngs(splits=4)
        ... @nnx.vmap
        ... def create(rngs):
        ...     return Lin(rngs)
        >>> stack = create(nnx.Rngs(0))
        >>> @nnx.scan(in_axes=(0, nnx.Carry), out_axes=nnx.Carry)
        ... def forward(layer, x):
        ...     return layer(x)
        >>> forward(stack, jnp.ones((2, 3))).shape
        (2, 3)
    """
    if f is None:
        return functools.partial(
            scan,
            length=length,
            reverse=reverse,
            unroll=unroll,
            _split_transpose=_split_transpose,
            in_axes=in_axes,
            out_axes=out_axes,
            transform_metadata=transform_metadata,
            graph=graph,
            graph_updates=graph_updates,
        )
    reject_bound_method(f, "scan")
    mode = resolve("nnx.scan", graph, graph_updates)
    check_prefix(in_axes, "in_axes", "scan", mode, StateAxes)
    check_prefix(out_axes, "out_axes", "scan", mode, StateAxes)
    _check_axes(in_axes, out_axes)
    metadata = dict(transform_metadata) if PARTITION_NAME in transform_metadata else {}
    step = _Step(f)

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        args = bind_positional("scan", f, args, kwargs)
        return _Scan(f, args, in_axes, out_axes, metadata, mode).run(
            step, length, reverse, unroll, _split_transpose
        )

    return with_mode(wrapper, "nnx.scan", graph, graph_updates)
