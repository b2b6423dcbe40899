"""Rngs: named PRNG streams whose keys and counters are state.

``rngs.params()`` returns ``fold_in(key, count)`` and increments ``count``; both are
Variables (``RngKey``, ``RngCount``), so they flow through transforms like any other
state and every call returns a fresh key.
"""

from __future__ import annotations

import contextlib
import functools
import typing as tp
from collections.abc import Iterator

import jax
import jax.numpy as jnp

from nnx_graph._errors import RngStreamError
from nnx_graph._filters import to_predicate
from nnx_graph._graph_iter import iter_graph
from nnx_graph._pytree import Pytree
from nnx_graph._variables import Variable

__all__ = [
    "RngCount",
    "RngKey",
    "RngState",
    "RngStream",
    "Rngs",
    "fork_rngs",
    "reseed",
    "restore_rngs",
    "split_rngs",
    "with_rngs",
]

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])
SeedLike = int | jax.Array


class RngState(Variable[jax.Array]):
    """Base type of the Variables an :class:`RngStream` holds."""

    __slots__ = ()


class RngKey(RngState):
    """The key of an RNG stream (a typed JAX key array)."""

    __slots__ = ()


class RngCount(RngState):
    """How many keys an RNG stream has produced (a uint32 scalar)."""

    __slots__ = ()


def _to_key(seed: SeedLike, stream: str) -> jax.Array:
    if isinstance(seed, RngStream):
        return seed()
    if isinstance(seed, int) or (
        hasattr(seed, "dtype") and jnp.issubdtype(seed.dtype, jnp.integer) and jnp.ndim(seed) == 0
    ):
        return jax.random.key(seed)
    if hasattr(seed, "dtype") and jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        return seed
    if hasattr(seed, "dtype") and seed.dtype == jnp.uint32 and seed.shape[-1:] == (2,):
        key: jax.Array = jax.random.wrap_key_data(seed)
        return key
    raise TypeError(
        f"Rngs stream {stream!r}: expected an int seed or a JAX key, found "
        f"{type(seed).__name__} {seed!r:.60}. Fix: nnx.Rngs({stream}=0) or "
        f"nnx.Rngs({stream}=jax.random.key(0))."
    )


def _fold_in(key: jax.Array, count: jax.Array) -> jax.Array:
    if key.ndim == 0:
        return jax.random.fold_in(key, count)
    flat = key.reshape(-1)
    counts = jnp.broadcast_to(count, key.shape).reshape(-1)
    return jax.vmap(jax.random.fold_in)(flat, counts).reshape(key.shape)


class RngStream(Pytree):
    """One named stream: ``stream()`` returns a fresh key each call.

    Example::

        >>> import nnx_graph as nnx
        >>> stream = nnx.Rngs(params=0).params
        >>> bool((stream() != stream()).any())
        True
    """

    def __init__(self, key: SeedLike, *, tag: str) -> None:
        key = _to_key(key, tag)
        self.tag = tag
        self.key = RngKey(key, tag=tag)
        self.count = RngCount(jnp.zeros(key.shape, dtype=jnp.uint32), tag=tag)

    def __call__(self) -> jax.Array:
        key = _fold_in(self.key.get_value(), self.count.get_value())
        self.count.set_value(self.count.get_value() + 1)
        return key

    def fork(self, *, split: int | tuple[int, ...] | None = None) -> RngStream:
        """A new independent stream derived from this one (``split`` adds leading
        key axes, e.g. for ``vmap``)."""
        key = self()
        if split is not None:
            key = jax.random.split(key, split)
        return RngStream(key, tag=self.tag)

    def split(self, n: int | tuple[int, ...]) -> RngStream:
        return self.fork(split=n)

    def __getattr__(self, name: str) -> tp.Any:  # only called when lookup failed
        raise AttributeError(
            f"RngStream has no attribute {name!r}. Expected a jax.random sampler "
            f"(e.g. stream.normal(shape)) or an initializer (stream.lecun_normal()). "
            "Fix: check the spelling."
        )

    def broadcast(self, k: int | tuple[int, ...]) -> RngStream:
        """A new stream whose key is a fresh key of this one repeated over the
        leading shape ``k`` (every slice draws the same numbers).

        Example::

            >>> import nnx_graph as nnx
            >>> nnx.Rngs(0).default.broadcast(3).key.shape
            (3,)
        """
        shape = (k,) if isinstance(k, int) else tuple(k)
        key = self()
        return RngStream(jnp.broadcast_to(key, (*shape, *key.shape)), tag=self.tag)


# jax.random samplers offered as ``stream.normal(shape)`` / ``rngs.normal(shape)``
_SAMPLERS = (
    "ball", "bernoulli", "beta", "binomial", "bits", "categorical", "cauchy",
    "chisquare", "choice", "dirichlet", "double_sided_maxwell", "exponential", "f",
    "gamma", "generalized_normal", "geometric", "gumbel", "laplace", "loggamma",
    "logistic", "lognormal", "maxwell", "multinomial", "multivariate_normal", "normal",
    "orthogonal", "pareto", "permutation", "poisson", "rademacher", "randint",
    "rayleigh", "t", "triangular", "truncated_normal", "uniform", "wald", "weibull_min",
)  # fmt: skip
# initializers offered key-less: ``rngs.lecun_normal()(shape)``
_INITIALIZERS = (
    "delta_orthogonal", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
    "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform",
    "variance_scaling", "xavier_normal", "xavier_uniform",
)  # fmt: skip


def _stream_of(owner: tp.Any) -> RngStream:
    return owner if isinstance(owner, RngStream) else owner.default


def _make_sampler(name: str) -> tp.Callable[..., jax.Array]:
    sampler = getattr(jax.random, name)

    def method(self: tp.Any, *args: tp.Any, **kwargs: tp.Any) -> jax.Array:
        return tp.cast(jax.Array, sampler(_stream_of(self)(), *args, **kwargs))

    method.__name__ = name
    method.__doc__ = f"``jax.random.{name}`` with a fresh key from this stream."
    return method


def _make_initializer(name: str) -> tp.Callable[..., tp.Callable[..., jax.Array]]:
    factory = getattr(jax.nn.initializers, name)

    def method(self: tp.Any, *args: tp.Any, **kwargs: tp.Any) -> tp.Callable[..., jax.Array]:
        init = factory(*args, **kwargs)
        stream = _stream_of(self)

        def keyless(shape: tp.Any, dtype: tp.Any = jnp.float32) -> jax.Array:
            return tp.cast(jax.Array, init(stream(), shape, dtype))

        return keyless

    method.__name__ = name
    method.__doc__ = f"``jax.nn.initializers.{name}(...)`` taking keys from this stream."
    return method


class Rngs(Pytree):
    """Named PRNG streams for explicit, reproducible randomness.

    ``Rngs(0)`` creates a ``default`` stream; ``Rngs(params=0, dropout=1)`` creates
    named ones. ``rngs.params()`` returns a fresh key (falling back to ``default``
    when there is no ``params`` stream); ``rngs()`` uses ``default``.
    ``rngs.normal((2, 3))`` samples directly from ``default``.

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(0, dropout=1)
        >>> k1, k2 = rngs.params(), rngs.dropout()
        >>> rngs.normal((2,)).shape
        (2,)
    """

    def __init__(self, default: SeedLike | None = None, /, **streams: SeedLike) -> None:
        if default is not None:
            if isinstance(default, tp.Mapping):
                streams = {**default, **streams}
            else:
                streams = {"default": default, **streams}
        for name, seed in sorted(streams.items()):
            setattr(self, name, RngStream(seed, tag=name))

    def _streams(self) -> dict[str, RngStream]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, RngStream)}

    def __getattr__(self, name: str) -> tp.Any:
        if name.startswith("_"):
            raise AttributeError(name)
        streams = self.__dict__
        if "default" in streams:
            return streams["default"]
        available = sorted(self._streams()) or "none"
        if name == "default":
            raise RngStreamError(
                "Rngs has no 'default' stream (used by rngs(), rngs.normal(...) and "
                f"as the fallback for unknown names). Expected one of the streams "
                f"{available} to be named explicitly, e.g. rngs.params(). "
                "Fix: call a named stream, or give a default seed: nnx.Rngs(0, ...)."
            )
        raise RngStreamError(
            f"Rngs has no stream {name!r} and no 'default' stream to fall back on. "
            f"Available streams: {available}.\n"
            f"Fix: create it, e.g. nnx.Rngs({name}=0), or give a default seed: nnx.Rngs(0)."
        )

    def __getitem__(self, name: str) -> RngStream:
        return tp.cast(RngStream, getattr(self, name))

    def __call__(self) -> jax.Array:
        return tp.cast(jax.Array, self.default())

    def __contains__(self, name: object) -> bool:
        return name in self._streams()

    def __len__(self) -> int:
        return len(self._streams())

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._streams()))

    def items(self) -> list[tuple[str, RngStream]]:
        return sorted(self._streams().items())

    def fork(self, *, split: tp.Any = None) -> Rngs:
        """New independent Rngs with the same stream names.

        ``split`` is an int/tuple (split every stream) or a mapping from filters to
        splits (``{"dropout": 4, ...: None}``).

        Example::

            >>> import nnx_graph as nnx
            >>> rngs = nnx.Rngs(0)
            >>> rngs.fork(split=4).default.key.shape
            (4,)
        """
        new = object.__new__(Rngs)
        for name, stream in self.items():
            if isinstance(split, tp.Mapping):
                value = None
                for f, s in split.items():
                    if to_predicate(f)((name,), stream.key):
                        value = s
                        break
            else:
                value = split
            object.__setattr__(new, name, stream.fork(split=value))
        return new

    def split(self, n: int | tuple[int, ...]) -> Rngs:
        """``fork(split=n)``."""
        return self.fork(split=n)


for _owner in (RngStream, Rngs):
    for _name in _SAMPLERS:
        if hasattr(jax.random, _name):
            setattr(_owner, _name, _make_sampler(_name))
    for _name in _INITIALIZERS:
        if hasattr(jax.nn.initializers, _name):
            setattr(_owner, _name, _make_initializer(_name))


# ------------------------------------------------------------------ graph helpers
def _streams_in(node: tp.Any, only: tp.Any) -> list[tuple[tuple[tp.Any, ...], RngStream]]:
    predicate = to_predicate(only)
    return [
        (path, value)
        for path, value in iter_graph(node)
        if isinstance(value, RngStream) and predicate(path, value.key)
    ]


def reseed(
    node: tp.Any,
    /,
    *,
    graph: bool | None = None,
    policy: str = "scalars_only",
    **stream_seeds: SeedLike,
) -> None:
    """Reset the named streams found anywhere in ``node`` to new seeds (counts go
    back to zero).

    Example::

        >>> import jax, nnx_graph as nnx
        >>> rngs = nnx.Rngs(params=0); a = rngs.params()
        >>> nnx.reseed(rngs, params=0); b = rngs.params()
        >>> bool((jax.random.key_data(a) == jax.random.key_data(b)).all())
        True
    """
    for _, stream in _streams_in(node, ...):
        if stream.tag in stream_seeds:
            key = _to_key(stream_seeds[stream.tag], stream.tag)
            old = stream.key.get_value()
            if old.shape and not key.shape:
                key = jax.random.split(key, old.shape)
            stream.key.set_value(key)
            stream.count.set_value(jnp.zeros(key.shape, jnp.uint32))


class _SplitBackup(tp.NamedTuple):
    stream: RngStream
    key_value: jax.Array
    count_value: jax.Array


class SplitRngs:
    """Result of :func:`split_rngs`: restores the streams on ``restore()``/exit."""

    def __init__(self, backups: list[_SplitBackup]) -> None:
        self.backups = backups

    def restore(self) -> None:
        for b in self.backups:
            b.stream.key.set_value(b.key_value)
            b.stream.count.set_value(b.count_value)

    def __enter__(self) -> SplitRngs:
        return self

    def __exit__(self, *exc: tp.Any) -> None:
        self.restore()


def _around_calls(change: tp.Callable[[tp.Any], SplitRngs]) -> tp.Callable[[F], F]:
    """A decorator that applies ``change`` to the streams in each call's
    ``(args, kwargs)`` and restores them when the call returns or raises."""

    def decorator(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
            handle = change((args, kwargs))
            try:
                return f(*args, **kwargs)
            finally:
                handle.restore()

        return tp.cast(F, wrapper)

    return decorator


def _split_streams(
    node: tp.Any, splits: int | tuple[int, ...], only: tp.Any, squeeze: bool
) -> SplitRngs:
    backups = []
    for _, stream in _streams_in(node, only):
        # Draw first, back up after: restoring keeps the stream advanced, so the next
        # split (e.g. the next call of a split_rngs-decorated vmap) gets new keys.
        drawn = stream()
        backups.append(_SplitBackup(stream, stream.key.get_value(), stream.count.get_value()))
        new_key = jax.random.split(drawn, splits)
        if squeeze and isinstance(splits, int) and splits == 1:
            new_key = new_key[0]
        stream.key.set_value(new_key)
        stream.count.set_value(jnp.zeros(new_key.shape, jnp.uint32))
    return SplitRngs(backups)


@tp.overload
def split_rngs(
    *,
    splits: int | tuple[int, ...],
    only: tp.Any = ...,
    squeeze: bool = False,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Callable[[F], F]: ...
@tp.overload
def split_rngs(
    node: tp.Any,
    /,
    *,
    splits: int | tuple[int, ...],
    only: tp.Any = ...,
    squeeze: bool = False,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> SplitRngs: ...
def split_rngs(
    node: tp.Any = None,
    /,
    *,
    splits: int | tuple[int, ...],
    only: tp.Any = ...,
    squeeze: bool = False,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """Give RNG streams a leading axis of ``splits`` keys, for ``vmap``/``scan``.

    As a decorator, splits the streams found in the decorated function's arguments
    for the duration of the call and restores them afterwards. Called on an object,
    splits now and returns a handle whose ``restore()`` (or ``with`` exit) undoes it.

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(0)
        >>> with nnx.split_rngs(rngs, splits=5):
        ...     print(rngs.default.key.shape)
        (5,)
        >>> rngs.default.key.shape
        ()
    """
    if node is None:
        return _around_calls(lambda args: _split_streams(args, splits, only, squeeze))
    return _split_streams(node, splits, only, squeeze)


def fork_rngs(
    node: tp.Any = None,
    /,
    *,
    split: tp.Any = None,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """Advance every stream in ``node`` to a fresh derived key (optionally split);
    restore with ``restore()`` or a ``with`` block.

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(0)
        >>> with nnx.fork_rngs(rngs, split=2):
        ...     print(rngs.default.key.shape)
        (2,)

    Without ``node`` it is a decorator: the streams found in the decorated
    function's arguments are forked for the call and restored after it.
    """
    if node is None:
        return _around_calls(lambda args: fork_rngs(args, split=split))
    backups = []
    for _, stream in _streams_in(node, ...):
        new = stream.fork(split=split)  # advances the stream; the backup keeps that
        backups.append(_SplitBackup(stream, stream.key.get_value(), stream.count.get_value()))
        stream.key.set_value(new.key.get_value())
        stream.count.set_value(new.count.get_value())
    return SplitRngs(backups)


def restore_rngs(handle: SplitRngs, /) -> None:
    """Undo :func:`split_rngs` / :func:`fork_rngs`."""
    handle.restore()


@contextlib.contextmanager
def with_rngs(node: tp.Any, /, *, split: tp.Any = None, fork: tp.Any = None) -> Iterator[tp.Any]:
    """Context manager: split (``split=n``) or fork the streams in ``node`` for the
    block and restore them after.

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(0)
        >>> with nnx.with_rngs(rngs, split=3):
        ...     print(rngs.default.key.shape)
        (3,)
    """
    handle = (
        _split_streams(node, split, ..., False)
        if split is not None
        else fork_rngs(node, split=fork)
    )
    try:
        yield node
    finally:
        handle.restore()
