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
import typing as tp
from collections.abc import Callable, Iterable, Iterator, Mapping

import jax
import numpy as np

import nnx_graph
from nnx_viz._sizes import SizeTotal, variable_sizes

__all__ = ["summary", "tabulate"]

Path = tuple[tp.Any, ...]
_MISSING = object()
_MAX_CELL = 60


def _format_path(path: Path, root: str = "") -> str:
    """``('blocks', 0, 'linear')`` -> ``blocks[0].linear`` (prefixed with ``root``)."""
    text = root
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _describe(value: tp.Any) -> str:
    """Shapes instead of values: ``float32[3,2]``, ``(float32[3], None)``, ..."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{dtype}[{','.join(str(d) for d in shape)}]"
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        inner = ", ".join(_describe(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_describe(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, int, float, complex, str)):
        text = repr(value)
        return text if len(text) <= 20 else text[:17] + "..."
    return type(value).__name__


def _describe_call(args: tuple[tp.Any, ...], kwargs: Mapping[str, tp.Any]) -> str:
    parts = [_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


@dataclasses.dataclass
class _Call:
    path: Path
    module_type: str
    inputs: str
    outputs: str = ""


class _CallRecorder:
    """Records Module calls made on the traced copy of the model."""

    def __init__(self) -> None:
        self.paths: dict[int, Path] = {}  # id(module in the copy) -> its path
        self.calls: list[_Call] = []
        self.active: list[tp.Any] = []  # modules whose call is running
        self.failed_in: _Call | None = None

    def call(
        self, original: tp.Any, module: tp.Any, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]
    ) -> tp.Any:
        bound = original.__get__(module, type(module))
        path = self.paths.get(id(module))
        # Unknown modules (created during the call) and `super().__call__` chains of
        # a module already being recorded pass straight through.
        if path is None or (self.active and self.active[-1] is module):
            return bound(*args, **kwargs)
        record = _Call(path, type(module).__name__, _describe_call(args, kwargs))
        self.calls.append(record)
        self.active.append(module)
        try:
            out = bound(*args, **kwargs)
        except BaseException:
            if self.failed_in is None:
                self.failed_in = record
            raise
        finally:
            self.active.pop()
        record.outputs = _describe(out)
        return out


def _own_call(cls: type) -> tp.Any:
    """The ``__call__`` instances of ``cls`` use, or None when they are not callable."""
    for klass in cls.__mro__:
        if "__call__" in vars(klass):
            return vars(klass)["__call__"]
    return None


@contextlib.contextmanager
def _recording_calls(classes: Iterable[type], recorder: _CallRecorder) -> Iterator[None]:
    """Replace ``__call__`` on ``classes`` by recording wrappers; always restore."""
    saved: list[tuple[type, tp.Any]] = []

    def wrapper_for(original: tp.Any) -> Callable[..., tp.Any]:
        @functools.wraps(original)
        def __call__(module: tp.Any, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
            return recorder.call(original, module, args, kwargs)

        return __call__

    try:
        for cls in classes:
            original = _own_call(cls)
            if original is None:
                continue
            saved.append((cls, vars(cls).get("__call__", _MISSING)))
            setattr(cls, "__call__", wrapper_for(original))  # noqa: B010
        yield
    finally:
        for cls, previous in reversed(saved):
            if previous is _MISSING:
                delattr(cls, "__call__")
            else:
                setattr(cls, "__call__", previous)  # noqa: B010


def _is_traceable(leaf: tp.Any) -> bool:
    """Arrays become abstract inputs; everything else (flags, strings, Python numbers)
    stays a static Python value so that the model's control flow sees it as is."""
    return isinstance(leaf, (jax.Array, np.ndarray, jax.ShapeDtypeStruct))


def _trace_calls(
    model: nnx_graph.Module, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]
) -> list[_Call]:
    graphdef, state = nnx_graph.split(model)
    leaves, treedef = jax.tree.flatten((args, kwargs))
    traced_at = [i for i, leaf in enumerate(leaves) if _is_traceable(leaf)]
    recorder = _CallRecorder()

    def run(state: tp.Any, traced: list[tp.Any]) -> None:
        copy = nnx_graph.merge(graphdef, state)
        recorder.paths = {id(m): p for p, m in nnx_graph.iter_modules(copy)}
        call_leaves = list(leaves)
        for i, value in zip(traced_at, traced):
            call_leaves[i] = value
        call_args, call_kwargs = jax.tree.unflatten(treedef, call_leaves)
        # Flattening sorted the keyword names: call with the caller's order.
        copy(*call_args, **{name: call_kwargs[name] for name in kwargs})

    classes = {type(m) for _, m in nnx_graph.iter_modules(model)}
    try:
        with _recording_calls(classes, recorder):
            jax.eval_shape(run, state, [leaves[i] for i in traced_at])
    except Exception as error:
        where = recorder.failed_in
        location = (
            f"{_format_path(where.path, 'model')} ({where.module_type})"
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


def _format_table(
    header: list[str], rows: list[list[str]], footer: list[str], right_aligned_from: int
) -> str:
    def clip(cell: str) -> str:
        return cell if len(cell) <= _MAX_CELL else cell[: _MAX_CELL - 1] + "…"

    body = [[clip(c) for c in row] for row in [header, *rows, footer]]
    widths = [max(len(row[i]) for row in body) for i in range(len(header))]

    def line(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (w + 2) for w in widths) + right

    def cells(row: list[str]) -> str:
        padded = [
            f" {c.rjust(w) if i >= right_aligned_from else c.ljust(w)} "
            for i, (c, w) in enumerate(zip(row, widths))
        ]
        return "│" + "│".join(padded) + "│"

    out = [line("┌", "─", "┬", "┐"), cells(body[0]), line("├", "─", "┼", "┤")]
    out += [cells(row) for row in body[1:-1]]
    out += [line("├", "─", "┼", "┤"), cells(body[-1]), line("└", "─", "┴", "┘")]
    return "\n".join(out)


def tabulate(
    model: nnx_graph.Module, *inputs: tp.Any, depth: int | None = None, **input_kwargs: tp.Any
) -> str:
    """A table of the submodules that ``model(*inputs, **input_kwargs)`` calls, in call
    order: path, type, input and output shapes, and the elements and bytes of each
    Variable type held by the submodule (its whole subtree), plus a total row.

    The call runs under ``jax.eval_shape`` on a copy of the model, so it computes
    nothing and leaves ``model`` unchanged (BatchNorm statistics, RNG counts and
    attributes stay as they were). While it runs, ``__call__`` of the Module classes
    in ``model`` is temporarily wrapped (for the whole process: do not call those
    classes from other threads meanwhile). Submodules that the model calls through
    nnx transforms (which run on copies of them) are not listed.

    Args:
        model: the Module to run.
        *inputs: positional inputs: arrays or ``jax.ShapeDtypeStruct`` (traced) and
            other values (passed as they are).
        depth: show only submodules at most this many attributes below the root
            (``0``: the root alone); None (default) shows all.
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
        >>> print(tabulate(MLP(), jnp.ones((4, 2))))
        ┌────────┬────────┬──────────────┬──────────────┬───────────┐
        │ path   │ type   │ inputs       │ outputs      │     Param │
        ├────────┼────────┼──────────────┼──────────────┼───────────┤
        │ (root) │ MLP    │ float32[4,2] │ float32[4,1] │ 24 (96 B) │
        │ up     │ Linear │ float32[4,2] │ float32[4,8] │ 16 (64 B) │
        │ down   │ Linear │ float32[4,8] │ float32[4,1] │  8 (32 B) │
        ├────────┼────────┼──────────────┼──────────────┼───────────┤
        │ Total  │        │              │              │ 24 (96 B) │
        └────────┴────────┴──────────────┴──────────────┴───────────┘
    """
    if not isinstance(model, nnx_graph.Module):
        raise TypeError(
            f"nnx_viz.tabulate expected an nnx Module as its first argument, found "
            f"{type(model).__name__}. Fix: pass the model first and its inputs after "
            "it: tabulate(model, x)."
        )
    if depth is not None and depth < 0:
        raise ValueError(f"nnx_viz.tabulate: depth={depth} must be None or >= 0.")
    calls = _trace_calls(model, inputs, input_kwargs)
    modules = {path: module for path, module in nnx_graph.iter_modules(model)}
    totals = variable_sizes(model)
    groups = list(totals)

    def size_cells(sizes: Mapping[str, SizeTotal]) -> list[str]:
        return [str(sizes[g]) if g in sizes else "" for g in groups]

    rows = [
        [
            _format_path(call.path) or "(root)",
            call.module_type,
            call.inputs,
            call.outputs,
            *size_cells(variable_sizes(modules[call.path])),
        ]
        for call in calls
        if depth is None or len(call.path) <= depth
    ]
    header = ["path", "type", "inputs", "outputs", *groups]
    footer = ["Total", "", "", "", *size_cells(totals)]
    return _format_table(header, rows, footer, right_aligned_from=4)


def summary(
    model: nnx_graph.Module, *inputs: tp.Any, depth: int | None = None, **input_kwargs: tp.Any
) -> None:
    """Print :func:`tabulate` ``(model, *inputs, depth=depth, **input_kwargs)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Scale(nnx.Module):
        ...     def __init__(self):
        ...         self.s = nnx.Param(jnp.ones(3))
        ...     def __call__(self, x):
        ...         return x * self.s
        >>> summary(Scale(), jnp.ones(3))
        ┌────────┬───────┬────────────┬────────────┬──────────┐
        │ path   │ type  │ inputs     │ outputs    │    Param │
        ├────────┼───────┼────────────┼────────────┼──────────┤
        │ (root) │ Scale │ float32[3] │ float32[3] │ 3 (12 B) │
        ├────────┼───────┼────────────┼────────────┼──────────┤
        │ Total  │       │            │            │ 3 (12 B) │
        └────────┴───────┴────────────┴────────────┴──────────┘
    """
    print(tabulate(model, *inputs, depth=depth, **input_kwargs))
