"""Rngs: named PRNG streams whose keys and counters are state.

``rngs.params()`` returns ``fold_in(key, count)`` and increments ``count``; both are
Variables (``RngKey``, ``RngCount``), so they flow through transforms like any other
state and every call returns a fresh key.
"""

from __future__ import annotations

import typing as tp
import warnings
from collections.abc import Iterator, Mapping

import jax
import jax.numpy as jnp

from nnx_graph._errors import RngStreamError, TraceContextError, TraceLeakError
from nnx_graph._filters import to_predicate
from nnx_graph._pytree import Pytree
from nnx_graph._rng_samplers import attach_samplers
from nnx_graph._variables import Variable

__all__ = ["RngCount", "RngKey", "RngState", "RngStream", "Rngs"]

RngValue = int | jax.Array
SplitSpec = int | tuple[int, ...]


class InvalidRngValueError(TypeError, ValueError):
    """A seed that is neither an int, a JAX key nor raw ``uint32`` key data."""


class RngState(Variable[jax.Array]):
    """Base type of the Variables an :class:`RngStream` holds.

    Example::

        >>> import nnx_graph as nnx
        >>> isinstance(nnx.Rngs(0).default.count, nnx.RngState)
        True
    """

    __slots__ = ()


class RngKey(RngState):
    """The key of an RNG stream (a typed JAX key array).

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.Rngs(0).default.key.shape
        ()
    """

    __slots__ = ()


class RngCount(RngState):
    """How many keys an RNG stream has produced (a uint32 scalar).

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(0); _ = rngs(); int(rngs.default.count.value)
        1
    """

    __slots__ = ()


def _to_key(seed: tp.Any, stream: str) -> jax.Array:
    if isinstance(seed, RngStream):  # a stream as a seed: same key, count from zero
        return seed.key.get_value()
    if isinstance(seed, int) or (
        hasattr(seed, "dtype") and jnp.issubdtype(seed.dtype, jnp.integer) and jnp.ndim(seed) == 0
    ):
        return jax.random.key(seed)
    if hasattr(seed, "dtype") and jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        return tp.cast(jax.Array, seed)
    if hasattr(seed, "dtype") and seed.dtype == jnp.uint32 and seed.shape[-1:] == (2,):
        key: jax.Array = jax.random.wrap_key_data(seed)
        return key
    raise InvalidRngValueError(
        f"Invalid rng value for Rngs stream {stream!r}: expected an int seed or a JAX "
        f"key (jax.Array of jax.dtypes.prng_key sub-dtype), found "
        f"{type(seed).__name__} {seed!r:.60}. Fix: nnx.Rngs({stream}=0) or "
        f"nnx.Rngs({stream}=jax.random.key(0))."
    )


def _finished_trace_error(stream: tp.Any) -> TraceContextError:
    """Drawing from a stream made inside a JAX transform that has finished (its key
    and count are that transform's tracers): Flax's TraceContextError."""
    return TraceContextError(
        f"Cannot mutate RngCount from a different trace level: the stream "
        f"{stream.tag!r} ({stream.count._describe()}) was created inside a JAX transform "
        "(jax.jit, jax.vmap, ...) that has finished, so its key and count are that "
        "transform's tracers and no key can be drawn from it here.\n"
        "Expected: a stream created at this level, or passed into the transform.\n"
        "Fix: create the Rngs outside the transform and pass it in (or return it from "
        "an nnx transform, which carries it out)."
    )


def _fold_in(key: jax.Array, count: jax.Array) -> jax.Array:
    if key.ndim == 0:
        return jax.random.fold_in(key, count)
    flat = key.reshape(-1)
    counts = jnp.broadcast_to(count, key.shape).reshape(-1)
    return jax.vmap(jax.random.fold_in)(flat, counts).reshape(key.shape)


class RngStream(Pytree):
    """One named stream: ``stream()`` returns a fresh key each call.

    ``key`` is an int seed, a JAX key, raw ``uint32`` key data or another stream
    (whose key is copied; the count starts at zero).

    Example::

        >>> import nnx_graph as nnx
        >>> stream = nnx.Rngs(params=0).params
        >>> bool((stream() != stream()).any())
        True
    """

    def __init__(self, key: RngValue | RngStream, *, tag: str) -> None:
        key = _to_key(key, tag)
        self.tag = tag
        self.key = RngKey(key, tag=tag)
        self.count = RngCount(jnp.zeros(key.shape, dtype=jnp.uint32), tag=tag)

    def __call__(self) -> jax.Array:
        # Drawing inside a JAX transform the stream was neither created in nor passed
        # to raises TraceContextError ("Cannot mutate RngCount from a different trace
        # level") from the count's set_value, before anything is stored.
        try:
            key = _fold_in(self.key.get_value(), self.count.get_value())
        except TraceLeakError as error:
            if isinstance(error, TraceContextError):
                raise
            raise _finished_trace_error(self) from error
        self.count.set_value(self.count.get_value() + 1)
        return key

    def _derive(self, split: SplitSpec | None) -> RngStream:
        key = self()
        if split is not None:
            key = jax.random.split(key, split)
        return type(self)(key, tag=self.tag)

    def split(self, k: SplitSpec) -> RngStream:
        """A new stream whose key is a fresh key of this one split into shape ``k``
        (a leading axis of independent keys, e.g. for ``vmap``).

        Example::

            >>> import nnx_graph as nnx
            >>> nnx.Rngs(0).default.split((2, 3)).key.shape
            (2, 3)
        """
        return self._derive(k)

    def fork(self, *, split: SplitSpec | None = None) -> RngStream:
        """A new independent stream derived from this one. (``split=`` is
        deprecated, as in Flax: use :meth:`split`.)

        Example::

            >>> import nnx_graph as nnx
            >>> stream = nnx.Rngs(0).default
            >>> stream.fork().key.shape, int(stream.count.value)
            ((), 1)
        """
        if split is not None:
            warnings.warn(
                "RngStream.fork(split=...) is deprecated; use RngStream.split(k) instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        return self._derive(split)

    def broadcast(self, k: SplitSpec) -> RngStream:
        """A new stream whose key is a fresh key of this one repeated over the
        leading shape ``k`` (every slice draws the same numbers).

        Example::

            >>> import nnx_graph as nnx
            >>> nnx.Rngs(0).default.broadcast(3).key.shape
            (3,)
        """
        shape = (k,) if isinstance(k, int) else tuple(k)
        key = self()
        return type(self)(jnp.broadcast_to(key, (*shape, *key.shape)), tag=self.tag)

    def __getattr__(self, name: str) -> tp.Any:  # only called when lookup failed
        raise AttributeError(
            f"RngStream has no attribute {name!r}. Expected a jax.random sampler "
            f"(e.g. stream.normal(shape)) or an initializer (stream.lecun_normal()). "
            "Fix: check the spelling."
        )


def _split_rule(k: tp.Any) -> list[tuple[tp.Callable[..., bool], tp.Any]]:
    """``{filter: value}`` (or a bare value meaning ``{...: value}``) as predicates."""
    if not isinstance(k, Mapping):
        k = {...: k}
    return [(to_predicate(f), v) for f, v in k.items()]


class Rngs(Pytree):
    """Named PRNG streams for explicit, reproducible randomness.

    ``Rngs(0)`` (or ``Rngs(default=0)``) creates a ``default`` stream;
    ``Rngs(params=0, dropout=1)`` creates named ones; a mapping works too:
    ``Rngs({"params": 0})``. ``rngs.params()`` returns a fresh key (falling back to
    ``default`` when there is no ``params`` stream); ``rngs()`` uses ``default``.
    ``rngs.normal((2, 3))`` samples directly from ``default``.

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(0, dropout=1)
        >>> k1, k2 = rngs.params(), rngs.dropout()
        >>> rngs.normal((2,)).shape
        (2,)
    """

    def __init__(
        self,
        default: RngValue | RngStream | Mapping[str, RngValue | RngStream] | None = None,
        **rngs: RngValue | RngStream,
    ) -> None:
        if default is not None:
            if isinstance(default, Mapping):
                rngs = {**default, **rngs}
            else:
                rngs["default"] = default
        for name, seed in rngs.items():
            setattr(self, name, RngStream(seed, tag=name))

    def _streams(self) -> dict[str, RngStream]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, RngStream)}

    def _get_stream(self, name: str) -> RngStream:
        streams = self.__dict__
        if name in streams:
            return tp.cast(RngStream, streams[name])
        if "default" in streams:
            return tp.cast(RngStream, streams["default"])
        available = sorted(self._streams()) or "none"
        if name == "default":
            raise RngStreamError(
                "No RngStream named 'default' found in Rngs (used by rngs(), "
                f"rngs.normal(...) and as the fallback for unknown names). Expected one of "
                f"the streams {available} to be named explicitly, e.g. rngs.params(). "
                "Fix: call a named stream, or give a default seed: nnx.Rngs(0, ...)."
            )
        raise RngStreamError(
            f"No RngStream named {name!r} found in Rngs, and no 'default' stream to fall "
            f"back on. Available streams: {available}.\n"
            f"Fix: create it, e.g. nnx.Rngs({name}=0), or give a default seed: nnx.Rngs(0)."
        )

    def __getattr__(self, name: str) -> tp.Any:  # only called when lookup failed
        if name.startswith("_"):
            raise AttributeError(name)
        return self._get_stream(name)

    def __getitem__(self, name: str) -> RngStream:
        return self._get_stream(name)

    def __call__(self) -> jax.Array:
        return tp.cast(jax.Array, self.default())

    def __contains__(self, name: object) -> bool:
        return name in self._streams()

    def __len__(self) -> int:
        return len(self._streams())

    def __iter__(self) -> Iterator[str]:
        return iter(self._streams())

    def items(self) -> Iterator[tuple[str, RngStream]]:
        """``(name, stream)`` pairs, in creation order.

        Example::

            >>> import nnx_graph as nnx
            >>> [name for name, _ in nnx.Rngs(params=0, dropout=1).items()]
            ['params', 'dropout']
        """
        return iter(self._streams().items())

    def _derived(self, k: tp.Any, make: tp.Callable[[RngStream, tp.Any], RngStream]) -> Rngs:
        rules = _split_rule(k)
        new = Rngs()
        for name, stream in self.items():
            value = next((v for pred, v in rules if pred((), stream)), None)
            # a stream no rule changes is shared with the new Rngs, not re-seeded
            setattr(new, name, stream if value is None else make(stream, value))
        return new

    def split(self, k: Mapping[tp.Any, SplitSpec | None] | SplitSpec) -> Rngs:
        """New Rngs whose streams have keys split into shape ``k``: an int/tuple
        splits every stream, a mapping from filters to sizes (``None``: leave the
        stream as it is) splits some. The first matching filter wins.

        Example::

            >>> import nnx_graph as nnx
            >>> rngs = nnx.Rngs(params=0, dropout=1)
            >>> new = rngs.split({"dropout": 4, ...: None})
            >>> new.dropout.key.shape, new.params is rngs.params
            ((4,), True)
        """
        return self._derived(k, RngStream.split)

    def broadcast(self, k: Mapping[tp.Any, SplitSpec | None] | SplitSpec | None) -> Rngs:
        """New Rngs whose streams hold one fresh key repeated over shape ``k`` (every
        slice draws the same numbers); like :meth:`split`, ``k`` may be a mapping
        from filters to shapes, ``None`` leaves streams as they are.

        Example::

            >>> import nnx_graph as nnx
            >>> nnx.Rngs(0).broadcast((2, 3)).default.key.shape
            (2, 3)
        """
        return self._derived(k, RngStream.broadcast)

    def fork(
        self, /, *, split: Mapping[tp.Any, SplitSpec | None] | SplitSpec | None = None
    ) -> Rngs:
        """New independent Rngs with the same stream names (each stream advances
        once). ``split=`` (deprecated, as in Flax: use :meth:`split`) also gives the
        new keys a leading shape: an int/tuple for every stream, or a mapping from
        filters to shapes.

        Example::

            >>> import nnx_graph as nnx
            >>> rngs = nnx.Rngs(0)
            >>> new = rngs.fork()
            >>> new.default.key.shape, int(rngs.default.count.value)
            ((), 1)
        """
        if split is not None:
            warnings.warn(
                "Rngs.fork(split=...) is deprecated; use Rngs.split(k) instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        rules = _split_rule({} if split is None else split)
        new = Rngs()
        for name, stream in self.items():
            value = next((v for pred, v in rules if pred((), stream)), None)
            setattr(new, name, stream._derive(value))
        return new


attach_samplers(RngStream, Rngs)
