"""``Traced``, ``Lowered`` and ``Compiled``: the ahead-of-time stages of an
``nnx.jit`` function (``JitWrapped.trace/lower`` and ``Lowered.compile``).

Each wraps JAX's own stage object (kept as ``.traced``/``.lowered``/``.compiled``)
and the ``JitWrapped`` it came from. JAX's methods are all available (``as_text``,
``cost_analysis``, ``compiler_ir``, ``jaxpr``, ...: unknown attributes are read
from the JAX object); what the wrappers add is that the next stage is again an nnx
stage, and that a :class:`Compiled` is called like the jitted function itself: with
the Modules, whose Variable updates are carried back.
"""

from __future__ import annotations

import typing as tp

import jax

__all__ = ["Compiled", "Lowered", "Stage", "Traced", "static_args_of", "with_static_args"]

Args = tuple[tp.Any, ...]
Kwargs = dict[str, tp.Any]


def static_args_of(jit_wrapped: tp.Any, args: Args, kwargs: Kwargs) -> tp.Any:
    """The static arguments of a call (kept by the stages): ``((position, value),
    ...), {name: value}``."""
    n = len(args)
    positions = sorted({p % n for p in jit_wrapped.static_argnums if -n <= p < n})
    names = {k: v for k, v in kwargs.items() if k in jit_wrapped.static_argnames}
    return tuple((p, args[p]) for p in positions), names


def with_static_args(args: Args, kwargs: Kwargs, static_args: tp.Any) -> tuple[Args, Kwargs]:
    """The call's arguments with the kept static ones put back in place."""
    positional, named = static_args
    full = list(args)
    for p, value in positional:
        full.insert(p, value)
    return tuple(full), {**kwargs, **named}


class Stage:
    """What the three stages share: JAX's stage object, the jitted function and the
    static arguments it was traced with (a :class:`Compiled` is called, as JAX's
    is, without them)."""

    __slots__ = ("jit_wrapped", "static_args")
    jit_wrapped: tp.Any
    static_args: tp.Any  # ((position, value), ...), {name: value}; or None

    @property
    def _inner_obj(self) -> tp.Any:
        raise NotImplementedError

    def __getattr__(self, name: str) -> tp.Any:
        # everything JAX's stage offers that is not spelled out here
        if name.startswith("__") or name in (
            "jit_wrapped",
            "static_args",
            "traced",
            "lowered",
            "compiled",
        ):
            raise AttributeError(name)
        return getattr(self._inner_obj, name)

    @property
    def in_tree(self) -> jax.tree_util.PyTreeDef:
        """The tree structure of the inner function's inputs (Variable values first)."""
        return tp.cast(jax.tree_util.PyTreeDef, self._inner_obj.in_tree)

    @property
    def in_avals(self) -> tp.Any:
        return self._inner_obj.in_avals

    @property
    def donate_argnums(self) -> tp.Any:
        return self._inner_obj.donate_argnums

    def __repr__(self) -> str:
        return f"nnx.{type(self).__name__}({self.jit_wrapped!r})"


class Traced(Stage):
    """``nnx.jit(f).trace(*args)``: the traced program, ready to lower.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> traced = nnx.jit(lambda x: x * 2).trace(jnp.ones(2))
        >>> "mul" in str(traced.jaxpr), type(traced.lower()).__name__
        (True, 'Lowered')
    """

    __slots__ = ("traced",)

    def __init__(
        self, traced: jax.stages.Traced, jit_wrapped: tp.Any, static_args: tp.Any = None
    ) -> None:
        self.traced = traced
        self.jit_wrapped = jit_wrapped
        self.static_args = static_args

    @property
    def _inner_obj(self) -> tp.Any:
        return self.traced

    @property
    def out_info(self) -> tp.Any:
        return self.traced.out_info

    def lower(self, *, lowering_platforms: tuple[str, ...] | None = None) -> Lowered:
        """Lower to the compiler's input: a :class:`Lowered`."""
        lowered = self.traced.lower(lowering_platforms=lowering_platforms)
        return Lowered(lowered, self.jit_wrapped, self.static_args)


class Lowered(Stage):
    """``nnx.jit(f).lower(*args)``: the lowered program, ready to compile.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> lowered = nnx.jit(lambda x: x * 2).lower(jnp.ones(2))
        >>> "stablehlo" in lowered.as_text(), lowered.compile()(jnp.ones(2)).tolist()
        (True, [2.0, 2.0])
    """

    __slots__ = ("lowered",)

    def __init__(
        self, lowered: jax.stages.Lowered, jit_wrapped: tp.Any, static_args: tp.Any = None
    ) -> None:
        self.lowered = lowered
        self.jit_wrapped = jit_wrapped
        self.static_args = static_args

    @property
    def _inner_obj(self) -> tp.Any:
        return self.lowered

    @property
    def args_info(self) -> tp.Any:
        return self.lowered.args_info

    @property
    def out_tree(self) -> tp.Any:
        return self.lowered.out_tree

    @classmethod
    def from_flat_info(
        cls,
        lowering: tp.Any,
        in_tree: tp.Any,
        in_avals: tp.Any,
        donate_argnums: tuple[int, ...],
        out_tree: tp.Any,
        no_kwargs: bool = False,
    ) -> Lowered:
        """Not supported (as in Flax): a Lowered comes from ``JitWrapped.lower``."""
        raise NotImplementedError(
            "nnx Lowered.from_flat_info is not supported: obtain a Lowered from "
            "nnx.jit(f).lower(*args)."
        )

    def compile(self, compiler_options: dict[str, tp.Any] | None = None) -> Compiled:
        """Compile: a :class:`Compiled`, called with the same arguments as the jitted
        function."""
        compiled = self.lowered.compile(compiler_options)
        return Compiled(compiled, self.jit_wrapped, self.static_args)

    def as_text(self, dialect: str | None = None, *, debug_info: bool = False) -> str:
        """The lowered program as text (StableHLO unless ``dialect`` says otherwise)."""
        return self.lowered.as_text(dialect=dialect, debug_info=debug_info)

    def compiler_ir(self, dialect: str | None = None) -> tp.Any:
        return self.lowered.compiler_ir(dialect=dialect)

    def cost_analysis(self) -> tp.Any:
        return self.lowered.cost_analysis()


class Compiled(Stage):
    """``nnx.jit(f).lower(*args).compile()``: the executable. Calling it takes the
    arguments of the jitted function (Modules included, which must have the
    structure it was lowered for) except the static ones, which are those given to
    ``lower`` (as with JAX's), and carries the Variable updates back.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> def step(c):
        ...     c.n += 1
        >>> c = C(); exe = nnx.jit(step).lower(c).compile()
        >>> exe(c); exe(c); int(c.n.value)
        2
    """

    __slots__ = ("compiled",)

    def __init__(
        self, compiled: jax.stages.Compiled, jit_wrapped: tp.Any, static_args: tp.Any = None
    ) -> None:
        self.compiled = compiled
        self.jit_wrapped = jit_wrapped
        self.static_args = static_args

    @property
    def _inner_obj(self) -> tp.Any:
        return self.compiled

    def __call__(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        return self.jit_wrapped._call_with(self.compiled, args, kwargs, self.static_args)

    @staticmethod
    def call(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        """Not supported (as in Flax): call the ``Compiled`` object itself."""
        raise NotImplementedError(
            "nnx Compiled.call is not supported: call the Compiled object itself, "
            "compiled(*args), with the same arguments as the jitted function."
        )

    @property
    def args_info(self) -> tp.Any:
        return self.compiled.args_info

    @property
    def out_tree(self) -> tp.Any:
        return self.compiled.out_tree

    def as_text(self) -> str | None:
        text: str | None = self.compiled.as_text()
        return text

    def cost_analysis(self) -> tp.Any:
        return self.compiled.cost_analysis()

    def memory_analysis(self) -> tp.Any:
        return self.compiled.memory_analysis()

    def runtime_executable(self) -> tp.Any:
        return self.compiled.runtime_executable()

    @property
    def input_shardings(self) -> tp.Any:
        return self.compiled.input_shardings

    @property
    def output_shardings(self) -> tp.Any:
        return self.compiled.output_shardings

    @property
    def input_layouts(self) -> tp.Any:
        return self.compiled.input_formats
