"""The public entry points of ``nnx.jit``: ``jit``, ``jit_partial`` and
``cached_partial`` (the machinery is in ``_jit.py``)."""

from __future__ import annotations

import functools
import typing as tp

from nnx_graph._graph_config import graph_mode_default, graph_updates_default
from nnx_graph.transforms._bridge import Bridge, arg_names, split_tree
from nnx_graph.transforms._jit import JitWrapped
from nnx_graph.transforms._jit_stages import Lowered, Traced

__all__ = ["JitPartial", "JitWrapped", "cached_partial", "jit", "jit_partial"]

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])


@tp.overload
def jit(
    fun: F,
    *,
    in_shardings: tp.Any = ...,
    out_shardings: tp.Any = ...,
    static_argnums: int | tp.Sequence[int] | None = ...,
    static_argnames: str | tp.Iterable[str] | None = ...,
    donate_argnums: int | tp.Sequence[int] | None = ...,
    donate_argnames: str | tp.Iterable[str] | None = ...,
    keep_unused: bool = ...,
    device: tp.Any = ...,
    backend: str | None = ...,
    inline: bool = ...,
    compiler_options: dict[str, tp.Any] | None = ...,
    graph: bool | None = ...,
    graph_updates: bool | None = ...,
) -> F: ...
@tp.overload
def jit(
    *,
    in_shardings: tp.Any = ...,
    out_shardings: tp.Any = ...,
    static_argnums: int | tp.Sequence[int] | None = ...,
    static_argnames: str | tp.Iterable[str] | None = ...,
    donate_argnums: int | tp.Sequence[int] | None = ...,
    donate_argnames: str | tp.Iterable[str] | None = ...,
    keep_unused: bool = ...,
    device: tp.Any = ...,
    backend: str | None = ...,
    inline: bool = ...,
    compiler_options: dict[str, tp.Any] | None = ...,
    graph: bool | None = ...,
    graph_updates: bool | None = ...,
) -> tp.Callable[[F], F]: ...
def jit(
    fun: tp.Any = None,
    *,
    in_shardings: tp.Any = None,
    out_shardings: tp.Any = None,
    static_argnums: int | tp.Sequence[int] | None = None,
    static_argnames: str | tp.Iterable[str] | None = None,
    donate_argnums: int | tp.Sequence[int] | None = None,
    donate_argnames: str | tp.Iterable[str] | None = None,
    keep_unused: bool = False,
    device: tp.Any = None,
    backend: str | None = None,
    inline: bool = False,
    compiler_options: dict[str, tp.Any] | None = None,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """Compile a function that takes Modules (and any other graph nodes) with
    ``jax.jit``; Variable updates and structural changes made inside are carried
    back to the caller's objects, and shared references stay shared.

    Works as ``@nnx.jit``, ``@nnx.jit(static_argnums=...)`` and on methods.
    Arguments are those of ``jax.jit``; ``in_shardings``/``out_shardings`` for a
    graph-node argument may be one sharding or a State of shardings (e.g. from
    ``nnx.get_named_sharding``). Donating a graph-node argument donates its
    Variables' buffers.

    Graph semantics are always on here, at flat-call cost. ``graph=False`` (tree
    mode) and ``graph_updates=False`` add Flax's checks for those modes: a Variable
    reached twice in the arguments or outputs (tree mode), or an input Variable
    returned, raises ``ValueError``. ``None`` takes the current default
    (``nnx.set_graph_mode``/``nnx.set_graph_updates``) when ``jit`` is applied.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Counter(nnx.Module):
        ...     def __init__(self):
        ...         self.count = nnx.Variable(jnp.array(0))
        >>> @nnx.jit
        ... def step(counter, x):
        ...     counter.count += 1
        ...     return x * 2
        >>> c = Counter(); _ = step(c, 1.0); _ = step(c, 1.0)
        >>> int(c.count.value)
        2
    """
    kwargs = dict(
        in_shardings=in_shardings,
        out_shardings=out_shardings,
        static_argnums=static_argnums,
        static_argnames=static_argnames,
        donate_argnums=donate_argnums,
        donate_argnames=donate_argnames,
        keep_unused=keep_unused,
        device=device,
        backend=backend,
        inline=inline,
        compiler_options=compiler_options,
        graph=graph_mode_default() if graph is None else graph,
        graph_updates=graph_updates_default() if graph_updates is None else graph_updates,
    )
    if fun is None:
        return functools.partial(JitWrapped, **kwargs)
    return JitWrapped(fun, **kwargs)


class JitPartial:
    """``nnx.jit(fun)`` with leading arguments bound (what :func:`jit_partial`
    returns); also offers ``lower``, ``trace`` and ``eval_shape`` over the remaining
    arguments, and ``lower(...).compile()`` is called with the remaining arguments
    too.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> f = nnx.jit_partial(lambda a, b: a + b, jnp.ones(2))
        >>> f(jnp.ones(2)).tolist(), f.lower(jnp.ones(2)).compile()(jnp.ones(2)).tolist()
        ([2.0, 2.0], [2.0, 2.0])
    """

    def __init__(self, jitted: JitWrapped, partial_args: tuple[tp.Any, ...]) -> None:
        functools.update_wrapper(self, jitted.fun)
        self.jitted = jitted
        self.args = partial_args

    @property
    def partial_args(self) -> tuple[tp.Any, ...]:
        return self.args

    def __call__(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        return self.jitted(*self.args, *args, **kwargs)

    def __get__(self, obj: tp.Any, objtype: tp.Any = None) -> tp.Any:
        if obj is None:
            return self
        return functools.partial(self, obj)

    def lower(self, *args: tp.Any, **kwargs: tp.Any) -> Lowered:
        lowered = self.jitted.lower(*self.args, *args, **kwargs)
        return Lowered(lowered.lowered, self, lowered.static_args)

    def trace(self, *args: tp.Any, **kwargs: tp.Any) -> Traced:
        traced = self.jitted.trace(*self.args, *args, **kwargs)
        return Traced(traced.traced, self, traced.static_args)

    def eval_shape(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        return self.jitted.eval_shape(*self.args, *args, **kwargs)

    def _call_with(
        self,
        executable: tp.Callable[..., tp.Any],
        args: tuple[tp.Any, ...],
        kwargs: dict[str, tp.Any],
        static_args: tp.Any = None,
    ) -> tp.Any:
        return self.jitted._call_with(executable, (*self.args, *args), kwargs, static_args)

    def __repr__(self) -> str:
        return f"nnx.jit_partial({self.jitted._name}, {len(self.args)} bound)"


def jit_partial(
    fun: tp.Callable[..., tp.Any],
    *partial_args: tp.Any,
    in_shardings: tp.Any = None,
    out_shardings: tp.Any = None,
    static_argnums: int | tp.Sequence[int] | None = None,
    static_argnames: str | tp.Iterable[str] | None = None,
    donate_argnums: int | tp.Sequence[int] | None = None,
    donate_argnames: str | tp.Iterable[str] | None = None,
    keep_unused: bool = False,
    device: tp.Any = None,
    backend: str | None = None,
    inline: bool = False,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> JitPartial:
    """``nnx.jit(fun, ...)`` with leading arguments bound (typically the model and
    the optimizer). The keywords are those of :func:`jit`; ``in_shardings``,
    ``static_argnums`` and ``donate_argnums`` count the bound arguments too. Like
    ``functools.partial(nnx.jit(fun), *partial_args)`` (nnx.jit already caches the
    traversal, so this is a convenience, not a speed-up), plus
    ``.lower``/``.trace``/``.eval_shape`` over the remaining arguments. Variable
    updates of the bound arguments are carried back after each call.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> def step(c):
        ...     c.n += 1
        >>> c = C(); f = nnx.jit_partial(step, c); f(); f()
        >>> int(c.n.value)
        2
        >>> "stablehlo" in f.lower().as_text()
        True
    """
    jitted = jit(
        tp.cast(tp.Any, fun),
        in_shardings=in_shardings,
        out_shardings=out_shardings,
        static_argnums=static_argnums,
        static_argnames=static_argnames,
        donate_argnums=donate_argnums,
        donate_argnames=donate_argnames,
        keep_unused=keep_unused,
        device=device,
        backend=backend,
        inline=inline,
        graph=graph,
        graph_updates=graph_updates,
    )
    mode = jitted._mode
    if mode is not None and not mode.graph:
        # tree mode refuses shared Variables among the bound arguments: say so now
        nodes = [n for a in partial_args for n in split_tree(a)[1]]
        if nodes:
            names = arg_names(fun)
            Bridge(nodes, where=mode.where, root_names=lambda: names[: len(nodes)], mode=mode)
    return JitPartial(jitted, partial_args)


def cached_partial(
    f: tp.Callable[..., tp.Any],
    *cached_args: tp.Any,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Callable[..., tp.Any]:
    """Bind graph-node arguments to a transformed function (``nnx.jit`` output).

    Kept for Flax compatibility: there it skips a per-call traversal; here every
    ``nnx.jit`` call already does, so this is ``functools.partial``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> @nnx.jit
        ... def step(c):
        ...     c.n += 1
        >>> c = C(); f = nnx.cached_partial(step, c); f()
        >>> int(c.n.value)
        1
    """
    return functools.partial(f, *cached_args)
