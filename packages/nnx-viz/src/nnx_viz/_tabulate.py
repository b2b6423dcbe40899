"""``tabulate``/``summary``: a table of the submodules a call runs, in call order.

How it works: for the duration of the call, ``__call__`` of every Module class in the
graph is replaced by a recording wrapper (restored afterwards, also on error). The
model runs under ``jax.eval_shape`` on a copy merged from its State, so nothing is
computed and the model itself is untouched: BatchNorm statistics, RNG counters and
attributes set during the call all land on the throw-away copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import typing as tp
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType

import jax
import numpy as np

import nnx_graph
from nnx_graph.internal import format_path
from nnx_viz._flops import abstract, call_counting_flops, call_flops
from nnx_viz._sizes import SizeTotal, variable_sizes
from nnx_viz._tabulate_cells import inputs_cell, value_cell, variables_cell

__all__ = ["CallInfo", "filter_rng_streams", "summary", "tabulate"]

Path = tuple[tp.Any, ...]
_MISSING = object()
_MAX_CELL = 60


@dataclasses.dataclass
class CallInfo:
    """One row of :func:`tabulate`: a Module call made while the model ran.

    ``row_filter`` receives these. ``inputs``/``outputs`` hold the call's arguments
    and result with arrays replaced by ``jax.ShapeDtypeStruct``; ``flops`` and
    ``vjp_flops`` are set when they were asked for (not for calls of sliced copies
    inside nnx transforms, ``through_transform``, whose inputs are per step).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Double(nnx.Module):
        ...     def __call__(self, x):
        ...         return 2 * x
        >>> rows = []
        >>> _ = tabulate(Double(), jnp.ones(3), row_filter=lambda row: rows.append(row) or True)
        >>> rows[0].path, rows[0].type.__name__, rows[0].outputs.shape
        ((), 'Double', (3,))
    """

    call_order: int
    object_id: int
    type: type
    path: Path
    inputs_repr: str
    outputs: tp.Any = None
    outputs_repr: str = ""
    inputs: tuple[tuple[tp.Any, ...], dict[str, tp.Any]] = ((), {})
    method: str = "__call__"
    flops: int | None = None
    vjp_flops: int | None = None
    through_transform: bool = False


def filter_rng_streams(row: CallInfo) -> bool:
    """The default ``row_filter`` of :func:`tabulate`: hide calls of RNG streams.

    Example::

        >>> import nnx_graph as nnx
        >>> row = CallInfo(0, 0, nnx.RngStream, ("rngs", "params"), "")
        >>> filter_rng_streams(row)
        False
    """
    return not (isinstance(row.type, type) and issubclass(row.type, nnx_graph.RngStream))


def _leaf_shapes(module: tp.Any) -> list[tuple[int, ...]]:
    return [tuple(getattr(leaf, "shape", ())) for leaf in jax.tree.leaves(nnx_graph.state(module))]


class _CallRecorder:
    """Records Module calls made on the traced copy of the model."""

    def __init__(self, compute_flops: bool = False) -> None:
        self.compute_flops = compute_flops  # count each call's FLOPs as it runs
        self.modules: dict[Path, tp.Any] = {}  # path -> module of the traced copy
        self.paths: dict[int, Path] = {}  # id(module in the copy) -> its path
        self.types: dict[Path, type] = {}  # path -> type of the module there
        self.keep: list[tp.Any] = []
        self.through_transform: set[int] = set()  # ids of copies made by transforms
        self.calls: list[CallInfo] = []
        self.active: list[tp.Any] = []  # modules whose call is running
        self.active_methods: list[str] = []  # the method running for each of them
        self.seen: set[tuple[int, str, str]] = set()  # (module id, method, inputs)
        self.failed_in: CallInfo | None = None

    def track(self, root: tp.Any) -> None:
        """Index the modules of the traced copy ``root``."""
        self.modules = dict(nnx_graph.iter_modules(root))
        self.paths = {id(m): p for p, m in self.modules.items()}
        self.types = {p: type(m) for p, m in self.modules.items()}
        self.keep = []  # located copies stay alive, so that their ids stay unique

    def _locate(self, module: tp.Any) -> Path | None:
        """The path of a module the model did not hold: a copy an nnx transform made
        (``nnx.scan``/``vmap``/``remat`` run on copies). It is placed at the one module
        of its type below the innermost running module; if there is no single such
        module, the call is not listed. Its own submodules follow from it."""
        below = self.paths.get(id(self.active[-1]), ()) if self.active else ()
        candidates = [
            p
            for p, t in self.types.items()
            if t is type(module) and len(p) > len(below) and p[: len(below)] == below
        ]
        if len(candidates) > 1:
            # Copies made by remat/jit keep their shapes: prefer the one module alike.
            shapes = _leaf_shapes(module)
            candidates = [p for p in candidates if _leaf_shapes(self.modules[p]) == shapes]
        if len(candidates) != 1:
            return None
        path = candidates[0]
        self.keep.append(module)
        # A copy with other shapes (a scan/vmap slice of stacked layers) sees
        # per-step inputs: its row gets no FLOP counts.
        sliced = _leaf_shapes(module) != _leaf_shapes(self.modules[path])
        for sub_path, sub in nnx_graph.iter_modules(module):
            self.paths.setdefault(id(sub), path + tuple(sub_path))
            if sliced:
                self.through_transform.add(id(sub))
        return path

    def call(
        self,
        original: tp.Any,
        module: tp.Any,
        args: tuple[tp.Any, ...],
        kwargs: dict[str, tp.Any],
        method: str = "__call__",
    ) -> tp.Any:
        bound = original.__get__(module, type(module))
        path = self.paths.get(id(module))
        if path is None:
            path = self._locate(module)
        # Modules that cannot be placed (created during the call, ambiguous copies) and
        # `super().__call__` chains of a module already being recorded pass through.
        if path is None or (
            self.active and self.active[-1] is module and self.active_methods[-1] == method
        ):
            return bound(*args, **kwargs)
        if method != "__call__":  # other methods get their own row: "block/forward"
            path = (*path, method)
        inputs_repr = inputs_cell(args, kwargs)
        # a repeated call (a shared Module, a loop) with the same input shapes is
        # listed once, as Flax does
        if (id(module), method, inputs_repr) in self.seen:
            return bound(*args, **kwargs)
        self.seen.add((id(module), method, inputs_repr))
        record = CallInfo(
            call_order=len(self.calls),
            object_id=id(module),
            type=type(module),
            path=path,
            inputs_repr=inputs_repr,
            inputs=abstract((args, dict(kwargs))),
            method=method,
            through_transform=id(module) in self.through_transform,
        )
        self.calls.append(record)
        self.active.append(module)
        self.active_methods.append(method)
        try:
            if self.compute_flops and not record.through_transform:
                out = self._call_counting_flops(original, module, args, kwargs, record)
            else:
                out = bound(*args, **kwargs)
        except BaseException:
            if self.failed_in is None:
                self.failed_in = record
            raise
        finally:
            self.active.pop()
            self.active_methods.pop()
        record.outputs = abstract(out)
        record.outputs_repr = value_cell(out)
        return out

    def _call_counting_flops(
        self,
        original: tp.Any,
        module: tp.Any,
        args: tuple[tp.Any, ...],
        kwargs: dict[str, tp.Any],
        record: CallInfo,
    ) -> tp.Any:
        """Run the call once, jitted, reading its FLOPs from the lowering (as Flax
        does): the body and the calls nested in it run only once. It runs on a copy
        of ``module`` whose submodules stand at the same paths. A call that cannot be
        jitted as a whole (e.g. it returns a string) runs plainly, without FLOPs."""
        base = _module_path(record)

        def on_copy(copy: tp.Any) -> None:
            self.keep.append(copy)
            for sub_path, sub in nnx_graph.iter_modules(copy):
                self.paths[id(sub)] = base + tuple(sub_path)
            self.active[-1] = copy  # so that a super() call on it is not a new row

        def call(copy: tp.Any, a: tuple[tp.Any, ...], kw: dict[str, tp.Any]) -> tp.Any:
            return original.__get__(copy, type(copy))(*a, **kw)

        count, seen = len(self.calls), set(self.seen)
        try:
            out, record.flops = call_counting_flops(call, module, args, kwargs, on_copy)
            return out
        except Exception:
            del self.calls[count:]  # rows recorded by the attempt come again
            self.seen = seen
            self.active[-1] = module
            return original.__get__(module, type(module))(*args, **kwargs)


def _recorded_methods(cls: type) -> dict[str, tp.Any]:
    """The methods of ``cls`` whose calls are listed: ``__call__`` and the public
    methods (plain functions, not static/class methods), except those of the
    nnx_graph base classes (``sow``, ``train``, ...)."""
    found: dict[str, tp.Any] = {}
    for klass in cls.__mro__:
        if klass.__module__.startswith("nnx_graph") or klass is object:
            continue
        for name, member in vars(klass).items():
            if name in found or not (name == "__call__" or not name.startswith("_")):
                continue
            if inspect.isfunction(member):
                found[name] = member
            else:
                found.setdefault(name, None)  # shadowed by a non-method: leave alone
    return {name: fn for name, fn in found.items() if fn is not None}


@contextlib.contextmanager
def _recording_calls(classes: Iterable[type], recorder: _CallRecorder) -> Iterator[None]:
    """Replace ``__call__`` and the public methods on ``classes`` by recording
    wrappers; always restore."""
    saved: list[tuple[type, str, tp.Any]] = []

    def wrapper_for(original: tp.Any, name: str) -> Callable[..., tp.Any]:
        @functools.wraps(original)
        def recorded(module: tp.Any, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
            return recorder.call(original, module, args, kwargs, name)

        return recorded

    try:
        for cls in classes:
            for name, original in _recorded_methods(cls).items():
                saved.append((cls, name, vars(cls).get(name, _MISSING)))
                setattr(cls, name, wrapper_for(original, name))
        yield
    finally:
        for cls, name, previous in reversed(saved):
            if previous is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, previous)


def _is_traceable(leaf: tp.Any) -> bool:
    """Arrays become abstract inputs; everything else (flags, strings, Python numbers)
    stays a static Python value so that the model's control flow sees it as is."""
    return isinstance(leaf, (jax.Array, np.ndarray, jax.ShapeDtypeStruct))


def _trace_calls(
    model: nnx_graph.Module,
    method: str,
    args: tuple[tp.Any, ...],
    kwargs: dict[str, tp.Any],
    compute_flops: bool = False,
) -> list[CallInfo]:
    graphdef, state = nnx_graph.split(model)
    leaves, treedef = jax.tree.flatten((args, kwargs))
    traced_at = [i for i, leaf in enumerate(leaves) if _is_traceable(leaf)]
    recorder = _CallRecorder(compute_flops)

    def run(state: tp.Any, traced: list[tp.Any]) -> None:
        copy = nnx_graph.merge(graphdef, state)
        recorder.track(copy)
        call_leaves = list(leaves)
        for i, value in zip(traced_at, traced):
            call_leaves[i] = value
        call_args, call_kwargs = jax.tree.unflatten(treedef, call_leaves)
        # Flattening sorted the keyword names: call with the caller's order.
        ordered = {name: call_kwargs[name] for name in kwargs}
        getattr(copy, method)(*call_args, **ordered)

    classes = {type(m) for _, m in nnx_graph.iter_modules(model)}
    try:
        with _recording_calls(classes, recorder):
            jax.eval_shape(run, state, [leaves[i] for i in traced_at])
    except Exception as error:
        where = recorder.failed_in
        location = (
            f"{format_path(where.path, 'model')} ({where.type.__name__})"
            if where
            else f"the call of {type(model).__name__}"
        )
        error.add_note(
            f"nnx_viz.tabulate: raised in {location}, which ran on abstract inputs "
            "under jax.eval_shape (values are tracers: code that needs concrete values "
            "cannot run). Fix: check that the model runs on these inputs, e.g. "
            "`model(*inputs)`."
        )
        raise
    return recorder.calls


def _module_path(call: CallInfo) -> Path:
    """The path of the Module a row's call was made on (rows of other methods than
    ``__call__`` end with the method's name)."""
    return call.path if call.method == "__call__" else call.path[:-1]


def _clip(cell: str) -> str:
    return "\n".join(
        line if len(line) <= _MAX_CELL else line[: _MAX_CELL - 1] + "…" for line in cell.split("\n")
    )


def _render(
    title: str,
    header: list[str],
    rows: list[list[str]],
    footer: list[str],
    caption: str,
    table_kwargs: Mapping[str, tp.Any],
    column_kwargs: Mapping[str, tp.Any],
    console_kwargs: Mapping[str, tp.Any],
) -> str:
    """The table drawn by rich (imported here: ``import nnx_viz`` stays cheap)."""
    import io

    import rich.console
    import rich.table
    import rich.text

    table = rich.table.Table(
        **{"title": title, "show_lines": True, "caption": caption, **table_kwargs}
    )
    for name in header:
        table.add_column(name, **{"no_wrap": True, **column_kwargs})
    for row in rows:
        table.add_row(*(_clip(c) for c in row))
    # "Total" is right-aligned next to the size columns, whatever its column's side.
    table.add_row(
        *(rich.text.Text(c, justify="right") if c == "Total" else c for c in footer),
        style="bold",
    )
    options = dict(console_kwargs)
    if "width" not in options:
        # As wide as the table wants, so that cells are never wrapped or cut.
        probe = rich.console.Console(file=io.StringIO(), width=100_000)
        options["width"] = max(probe.measure(table).maximum, len(title), len(caption))
    console = rich.console.Console(file=io.StringIO(), **options)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


def tabulate(
    obj: nnx_graph.Module,
    *input_args: tp.Any,
    depth: int | None = None,
    method: str = "__call__",
    row_filter: Callable[[CallInfo], bool] = filter_rng_streams,
    table_kwargs: Mapping[str, tp.Any] = MappingProxyType({}),
    column_kwargs: Mapping[str, tp.Any] = MappingProxyType({}),
    console_kwargs: Mapping[str, tp.Any] = MappingProxyType({}),
    compute_flops: bool = False,
    compute_vjp_flops: bool = False,
    **input_kwargs: tp.Any,
) -> str:
    """A table of the submodules that ``obj.<method>(*input_args, **input_kwargs)``
    calls, in call order: path, type, input and output shapes, optionally the FLOPs
    of each call, and a column per Variable type (sorted by name) listing the
    Variables the submodule holds itself (shape, and metadata when there is more
    than ``hijax``/``ref``/``eager_sharding``) above the elements and bytes of its
    whole subtree; a total row and a caption with the grand total. Structured
    inputs and outputs are written one entry a line (``- item``, ``key: value``),
    as Flax NNX writes them.

    The call runs under ``jax.eval_shape`` on a copy of the model, so it computes
    nothing and leaves ``obj`` unchanged (BatchNorm statistics, RNG counts and
    attributes stay as they were). While it runs, ``__call__`` of the Module classes
    in ``obj`` is temporarily wrapped (for the whole process: do not call those
    classes from other threads meanwhile). Submodules the model calls through nnx
    transforms (``nnx.scan`` over stacked layers, ``nnx.remat``, ...) run on copies:
    such a copy is listed at the path of the one module of its type below the calling
    module (or, among several, the one with the same Variable shapes), with the
    shapes it sees (one step of a scan over stacked layers: no FLOP counts then);
    it is not listed when that is ambiguous.

    Args:
        obj: the Module to run.
        *input_args: positional inputs: arrays or ``jax.ShapeDtypeStruct`` (traced)
            and other values (passed as they are).
        depth: show only submodules at most this many attributes below the root
            (``0``: the root alone); None (default) shows all.
        method: the method of ``obj`` to call (default ``"__call__"``).
        row_filter: keeps the rows (:class:`CallInfo`) it returns True for; the
            default hides RNG-stream calls.
        table_kwargs: keyword arguments for ``rich.table.Table`` (``title``, ...).
        column_kwargs: keyword arguments for every ``Table.add_column``.
        console_kwargs: keyword arguments for the ``rich.console.Console`` that
            renders the table (``width``, ``force_terminal`` for colours, ...).
        compute_flops: add a ``flops`` column: XLA's cost analysis of each call,
            compiled on its own (slower: one compilation per row).
        compute_vjp_flops: add a ``vjp_flops`` column: the same for the call's
            forward and backward pass.
        **input_kwargs: keyword inputs of the call.

    Returns:
        The table as text. A module called twice has two rows.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class Linear(nnx.Module):
        ...     def __init__(self, din, dout):
        ...         self.w = nnx.Param(jnp.zeros((din, dout)))
        ...     def __call__(self, x):
        ...         return x @ self.w
        >>> class MLP(nnx.Module):
        ...     def __init__(self):
        ...         self.up, self.down = Linear(2, 8), Linear(8, 1)
        ...     def __call__(self, x):
        ...         return self.down(jax.nn.relu(self.up(x)))
        >>> print(tabulate(MLP(), jnp.ones((4, 2)), compute_flops=True))
                                       MLP Summary
        ┏━━━━━━┳━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━━━━━━━━━━━┓
        ┃ path ┃ type   ┃ inputs       ┃ outputs      ┃ flops ┃ Param           ┃
        ┡━━━━━━╇━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━━━━━━━━━━━┩
        │      │ MLP    │ float32[4,2] │ float32[4,1] │ 224   │ 24 (96 B)       │
        ├──────┼────────┼──────────────┼──────────────┼───────┼─────────────────┤
        │ up   │ Linear │ float32[4,2] │ float32[4,8] │ 128   │ w: float32[2,8] │
        │      │        │              │              │       │                 │
        │      │        │              │              │       │ 16 (64 B)       │
        ├──────┼────────┼──────────────┼──────────────┼───────┼─────────────────┤
        │ down │ Linear │ float32[4,8] │ float32[4,1] │ 64    │ w: float32[8,1] │
        │      │        │              │              │       │                 │
        │      │        │              │              │       │ 8 (32 B)        │
        ├──────┼────────┼──────────────┼──────────────┼───────┼─────────────────┤
        │      │        │              │              │ Total │ 24 (96 B)       │
        └──────┴────────┴──────────────┴──────────────┴───────┴─────────────────┘
        <BLANKLINE>
                               Total Parameters: 24 (96 B)
    """
    if not isinstance(obj, nnx_graph.Module):
        raise TypeError(
            f"nnx_viz.tabulate expected an nnx Module as its first argument, found "
            f"{type(obj).__name__}. Fix: pass the model first and its inputs after "
            "it: tabulate(model, x)."
        )
    if depth is not None and depth < 0:
        raise ValueError(f"nnx_viz.tabulate: depth={depth} must be None or >= 0.")
    if not callable(getattr(obj, method, None)):
        raise AttributeError(
            f"nnx_viz.tabulate: {type(obj).__name__} has no method {method!r} (method= "
            "names the method of the model to call). Fix: pass an existing method "
            "name, e.g. method='__call__'."
        )
    calls = [
        call
        for call in _trace_calls(obj, method, input_args, input_kwargs, compute_flops)
        if (depth is None or len(call.path) <= depth) and row_filter(call)
    ]
    modules = {path: module for path, module in nnx_graph.iter_modules(obj)}
    for call in calls:
        call_args, call_kwargs = call.inputs
        if call.through_transform:
            continue  # a copy inside a transform: its inputs are per step, not the model's
        # (forward FLOPs were counted while the call was recorded)
        if compute_vjp_flops:
            call.vjp_flops = call_flops(
                modules[_module_path(call)], call.method, call_args, call_kwargs, backward=True
            )
    totals = variable_sizes(obj)
    groups = sorted(totals)  # by type name, as Flax orders the columns

    def size_cells(module: tp.Any) -> list[str]:
        sizes = variable_sizes(module)
        return [variables_cell(module, g, sizes.get(g)) for g in groups]

    def flop_cells(call: CallInfo) -> list[str]:
        cells = []
        if compute_flops:
            cells.append("" if call.flops is None else f"{call.flops:,}")
        if compute_vjp_flops:
            cells.append("" if call.vjp_flops is None else f"{call.vjp_flops:,}")
        return cells

    flop_header = ["flops"] * compute_flops + ["vjp_flops"] * compute_vjp_flops
    rows = [
        [
            "/".join(str(key) for key in call.path),  # Flax's spelling: "blocks/0/linear"
            call.type.__name__,
            call.inputs_repr,
            call.outputs_repr,
            *flop_cells(call),
            *size_cells(modules[_module_path(call)]),
        ]
        for call in calls
    ]
    header = ["path", "type", "inputs", "outputs", *flop_header, *groups]
    footer = [""] * (len(header) - len(groups) - 1) + ["Total", *(str(totals[g]) for g in groups)]
    grand = SizeTotal()
    for total in totals.values():
        grand.add(total.count, total.bytes)
    return _render(
        f"{type(obj).__name__} Summary",
        header,
        rows,
        footer,
        f"\nTotal Parameters: {grand}",
        table_kwargs,
        column_kwargs,
        console_kwargs,
    )


def summary(
    obj: nnx_graph.Module,
    *input_args: tp.Any,
    depth: int | None = None,
    **kwargs: tp.Any,
) -> None:
    """Print :func:`tabulate` ``(obj, *input_args, depth=depth, **kwargs)`` (every
    keyword of :func:`tabulate` is accepted).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Scale(nnx.Module):
        ...     def __init__(self):
        ...         self.s = nnx.Param(jnp.ones(3))
        ...     def __call__(self, x):
        ...         return x * self.s
        >>> summary(Scale(), jnp.ones(3))
                              Scale Summary
        ┏━━━━━━┳━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
        ┃ path ┃ type  ┃ inputs     ┃ outputs    ┃ Param         ┃
        ┡━━━━━━╇━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
        │      │ Scale │ float32[3] │ float32[3] │ s: float32[3] │
        │      │       │            │            │               │
        │      │       │            │            │ 3 (12 B)      │
        ├──────┼───────┼────────────┼────────────┼───────────────┤
        │      │       │            │      Total │ 3 (12 B)      │
        └──────┴───────┴────────────┴────────────┴───────────────┘
        <BLANKLINE>
                        Total Parameters: 3 (12 B)
    """
    print(tabulate(obj, *input_args, depth=depth, **kwargs))
