"""Operations on the RNG streams found anywhere in an object graph: ``split_rngs``,
``fork_rngs``, ``with_rngs``, ``reseed``, ``backup_keys`` and ``restore_rngs``.

In place (``graph=True`` and ``graph_updates=True``, the defaults) the streams are
changed on the objects and a :class:`SplitBackups` handle undoes the change. With
``graph=False`` or ``graph_updates=False`` a copy of the node is returned whose
streams are replaced; the original streams only advance (one key drawn each).
"""

from __future__ import annotations

import functools
import typing as tp
from collections.abc import Iterable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp

from nnx_graph._filters import to_predicate
from nnx_graph._graph_config import graph_mode_default, graph_updates_default
from nnx_graph._graph_iter import iter_graph, recursive_map
from nnx_graph._rng_streams import RngCount, RngKey, Rngs, RngStream, SplitSpec

__all__ = [
    "SplitBackups",
    "backup_keys",
    "fork_rngs",
    "reseed",
    "restore_rngs",
    "split_rngs",
    "with_rngs",
]

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])
Path = tuple[tp.Any, ...]
StreamBackup = tuple[RngStream, jax.Array, jax.Array] | tuple[RngStream, jax.Array]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: tp.Any = _Missing()


def _modes(graph: bool | None, graph_updates: bool | None) -> tuple[bool, bool]:
    return (
        graph_mode_default() if graph is None else graph,
        graph_updates_default() if graph_updates is None else graph_updates,
    )


def _selected(path: Path, stream: RngStream, predicate: tp.Callable[..., bool]) -> bool:
    return bool(predicate((*path, "key"), stream.key) and predicate((*path, "count"), stream.count))


def _streams_in(node: tp.Any) -> list[tuple[Path, RngStream]]:
    return [(p, v) for p, v in iter_graph(node) if isinstance(v, RngStream)]


class SplitBackups(Iterable[StreamBackup]):
    """What :func:`split_rngs`/:func:`fork_rngs` changed in place: ``(stream, key,
    count)`` tuples. :func:`restore_rngs` (or leaving a ``with`` block, or
    ``restore()``) puts the saved keys and counts back.

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(0)
        >>> backups = nnx.split_rngs(rngs, splits=2)
        >>> rngs.default.key.shape
        (2,)
        >>> nnx.restore_rngs(backups); rngs.default.key.shape
        ()
    """

    def __init__(self, backups: list[StreamBackup]) -> None:
        self.backups = backups

    def __iter__(self) -> Iterator[StreamBackup]:
        return iter(self.backups)

    def __len__(self) -> int:
        return len(self.backups)

    def restore(self) -> None:
        """Same as ``restore_rngs(self)``."""
        restore_rngs(self)

    def __enter__(self) -> SplitBackups:
        return self

    def __exit__(self, *exc: object) -> None:
        restore_rngs(self)


def restore_rngs(backups: Iterable[StreamBackup], /) -> None:
    """Put back the keys (and counts, when saved) recorded by :func:`split_rngs`,
    :func:`fork_rngs` or :func:`backup_keys`.

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(0)
        >>> saved = nnx.backup_keys(rngs)
        >>> nnx.reseed(rngs, default=1)
        >>> nnx.restore_rngs(saved)
        >>> bool((nnx.Rngs(0).default.key.value == rngs.default.key.value))
        True
    """
    for backup in backups:
        stream = backup[0]
        stream.key.set_value(backup[1])
        if len(backup) == 3:
            stream.count.set_value(backup[2])


def backup_keys(node: tp.Any, /, *, graph: bool | None = None) -> list[StreamBackup]:
    """Save the key of every stream in ``node`` as ``(stream, key)`` pairs, for
    :func:`restore_rngs` (counts are not saved: restoring keeps them).

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(params=0, dropout=1)
        >>> [stream.tag for stream, key in nnx.backup_keys(rngs)]
        ['dropout', 'params']
    """
    return [(stream, stream.key.get_value()) for _, stream in _streams_in(node)]


# ------------------------------------------------------------------ decorators
def _decorator(apply: tp.Callable[[tp.Any, bool], tp.Any], in_place: bool) -> tp.Callable[[F], F]:
    """Apply a stream change to each call's ``(args, kwargs)``: in place and undone
    when the call returns or raises, or on a copy of the arguments."""

    def decorator(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
            if in_place:
                with apply((args, kwargs), True):
                    return f(*args, **kwargs)
            args, kwargs = apply((args, kwargs), False)
            return f(*args, **kwargs)

        return tp.cast(F, wrapper)

    return decorator


# ------------------------------------------------------------------ split_rngs
def _split_key(stream: RngStream, splits: SplitSpec, squeeze: bool) -> jax.Array:
    new_key = jax.random.split(stream(), splits)
    return new_key[0] if squeeze else new_key


def _split(node: tp.Any, splits: SplitSpec, only: tp.Any, squeeze: bool, in_place: bool) -> tp.Any:
    predicate = to_predicate(only)
    if in_place:
        backups: list[StreamBackup] = []
        for path, stream in _streams_in(node):
            if _selected(path, stream, predicate):
                # Draw first, back up after: restoring keeps the stream advanced, so the
                # next split (e.g. the next call of a decorated vmap) gets new keys.
                new_key = _split_key(stream, splits, squeeze)
                backups.append((stream, stream.key.get_value(), stream.count.get_value()))
                stream.key.set_value(new_key)
                stream.count.set_value(jnp.zeros(new_key.shape, jnp.uint32))
        return SplitBackups(backups)

    def replace(path: Path, value: tp.Any) -> tp.Any:
        if isinstance(value, RngStream) and _selected(path, value, predicate):
            new_key = _split_key(value, splits, squeeze)
            value.key = RngKey(new_key, tag=value.tag)
            value.count = RngCount(jnp.zeros(new_key.shape, jnp.uint32), tag=value.tag)
        return value

    return recursive_map(replace, node)


@tp.overload
def split_rngs(
    *,
    splits: SplitSpec,
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
    splits: SplitSpec,
    only: tp.Any = ...,
    squeeze: bool = False,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any: ...
def split_rngs(
    node: tp.Any = MISSING,
    /,
    *,
    splits: SplitSpec,
    only: tp.Any = ...,
    squeeze: bool = False,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """Give the RNG streams in ``node`` (those matching ``only``) a leading shape
    of ``splits`` keys, for ``vmap``/``scan``.

    In place (the default) it returns a :class:`SplitBackups` whose ``with`` exit
    or :func:`restore_rngs` undoes the split; with ``graph=False`` or
    ``graph_updates=False`` it returns a copy of ``node`` with split streams.
    ``squeeze=True`` (only with ``splits=1``) drops the new axis. Without ``node``
    it is a decorator applying the split to each call's arguments.

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(0)
        >>> with nnx.split_rngs(rngs, splits=5):
        ...     print(rngs.default.key.shape)
        (5,)
        >>> rngs.default.key.shape
        ()
        >>> nnx.split_rngs(rngs, splits=3, graph_updates=False).default.key.shape
        (3,)
    """
    graph, graph_updates = _modes(graph, graph_updates)
    in_place = graph and graph_updates
    if node is MISSING:
        return _decorator(lambda n, inplace: _split(n, splits, only, squeeze, inplace), in_place)
    if squeeze and splits != 1:
        raise ValueError(
            f"split_rngs: squeeze=True is only supported for splits=1, found "
            f"splits={splits!r}. Fix: pass splits=1 or squeeze=False."
        )
    return _split(node, splits, only, squeeze, in_place)


# ------------------------------------------------------------------ fork_rngs
def _fork(node: tp.Any, split: tp.Any, in_place: bool) -> tp.Any:
    if split is None:
        split = {...: None}
    elif not isinstance(split, Mapping):
        split = {...: split}
    rules = [(to_predicate(f), s) for f, s in split.items()]

    def rule(path: Path, stream: RngStream) -> tuple[bool, tp.Any]:
        for predicate, s in rules:  # the first matching filter wins
            if _selected(path, stream, predicate):
                return True, s
        return False, None

    if in_place:
        backups: list[StreamBackup] = []
        for path, stream in _streams_in(node):
            matched, s = rule(path, stream)
            if matched:
                new = stream._derive(s)  # advances the stream; the backup keeps that
                backups.append((stream, stream.key.get_value(), stream.count.get_value()))
                stream.key.set_value(new.key.get_value())
                stream.count.set_value(new.count.get_value())
        return SplitBackups(backups)

    def replace(path: Path, value: tp.Any) -> tp.Any:
        if isinstance(value, RngStream):
            matched, s = rule(path, value)
            if matched:
                return value._derive(s)
        return value

    return recursive_map(replace, node)


@tp.overload
def fork_rngs(
    *,
    split: Mapping[tp.Any, SplitSpec | None] | SplitSpec | None = None,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Callable[[F], F]: ...
@tp.overload
def fork_rngs(
    node: tp.Any,
    /,
    *,
    split: Mapping[tp.Any, SplitSpec | None] | SplitSpec | None = None,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any: ...
def fork_rngs(
    node: tp.Any = MISSING,
    /,
    *,
    split: Mapping[tp.Any, SplitSpec | None] | SplitSpec | None = None,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """Move every stream in ``node`` to a fresh key derived from it (optionally
    split: an int/tuple for all streams, or a mapping from filters to shapes where
    ``None`` forks without splitting; unmatched streams are left alone).

    In place (the default) it returns a :class:`SplitBackups` to undo the fork;
    with ``graph=False`` or ``graph_updates=False`` it returns a forked copy.
    Without ``node`` it is a decorator applying the fork to each call's arguments.

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(0)
        >>> with nnx.fork_rngs(rngs, split=2):
        ...     print(rngs.default.key.shape)
        (2,)
    """
    graph, graph_updates = _modes(graph, graph_updates)
    in_place = graph and graph_updates
    if node is MISSING:
        return _decorator(lambda n, inplace: _fork(n, split, inplace), in_place)
    return _fork(node, split, in_place)


# ------------------------------------------------------------------ with_rngs
def _rules(value: tp.Any) -> list[tuple[tp.Any, tp.Callable[..., bool], tp.Any]]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        value = {...: value}
    return [(f, to_predicate(f), v) for f, v in value.items()]


def _with_rngs_replace(
    split: tp.Any, fork: tp.Any, broadcast: tp.Any, only: tp.Any
) -> tp.Callable[[Path, tp.Any], tp.Any]:
    """``path, value -> value``: the stream split, broadcast or forked by the first
    matching rule of each kind (``split`` before ``broadcast`` before ``fork``)."""
    split_rules, broadcast_rules = _rules(split), _rules(broadcast)
    if fork is None:
        fork = []
    elif isinstance(fork, str) or not isinstance(fork, Sequence):
        fork = [fork]
    fork_rules = [(f, to_predicate(f), None) for f in fork]
    only_predicate = to_predicate(only)

    def new_stream(path: Path, value: tp.Any) -> tp.Any:
        if not isinstance(value, RngStream) or not only_predicate(path, value):
            return None
        found: dict[str, tuple[tp.Any, tp.Any]] = {}
        for kind, rules in (
            ("split", split_rules),
            ("broadcast", broadcast_rules),
            ("fork", fork_rules),
        ):
            for f, predicate, v in rules:
                if predicate(path, value):
                    found[kind] = (f, v)
                    break
        specific = [k for k, (f, _) in found.items() if f is not ... and f is not True]
        if len(specific) > 1:
            rules_text = "\n".join(f"  - {k} matches filter {f!r}" for k, (f, _) in found.items())
            raise ValueError(
                f"with_rngs: RngStream at path {path} matches multiple rules:\n{rules_text}\n"
                "Expected each stream to be split, broadcast or forked by one specific "
                "filter. Fix: make the filters disjoint (e.g. fork=nnx.Not('params'))."
            )
        if "split" in found:
            return value.split(found["split"][1])
        if "broadcast" in found:
            return value.broadcast(found["broadcast"][1])
        if "fork" in found:
            return value._derive(None)
        return None

    return new_stream


@tp.overload
def with_rngs(
    *,
    split: Mapping[tp.Any, SplitSpec] | SplitSpec | None = None,
    fork: tp.Any = None,
    broadcast: Mapping[tp.Any, SplitSpec] | SplitSpec | None = None,
    only: tp.Any = True,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Callable[[F], F]: ...
@tp.overload
def with_rngs(
    node: tp.Any,
    /,
    *,
    split: Mapping[tp.Any, SplitSpec] | SplitSpec | None = None,
    fork: tp.Any = None,
    broadcast: Mapping[tp.Any, SplitSpec] | SplitSpec | None = None,
    only: tp.Any = True,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any: ...
def with_rngs(
    node: tp.Any = MISSING,
    /,
    *,
    split: Mapping[tp.Any, SplitSpec] | SplitSpec | None = None,
    fork: tp.Any = None,
    broadcast: Mapping[tp.Any, SplitSpec] | SplitSpec | None = None,
    only: tp.Any = True,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """Replace the RNG streams in ``node`` (those matching ``only``): ``split``
    (an int/tuple for every stream, or ``{filter: shape}``) gives them a leading
    axis of independent keys, ``broadcast`` one fresh key repeated over a shape,
    ``fork`` (a filter or list of filters, ``...`` for all) a fresh derived key.
    A stream takes the first matching rule, ``split`` before ``broadcast`` before
    ``fork``; matching two specific filters is a ValueError.

    With ``graph=False`` or ``graph_updates=False`` (as Flax requires) it returns a
    copy of ``node`` with the new streams. In place (``graph`` and
    ``graph_updates`` both true, the default) it changes the streams and returns a
    :class:`SplitBackups` to undo the change in a ``with`` block. Without ``node``
    it is a decorator applying the change to each call's arguments.

    Example::

        >>> import nnx_graph as nnx
        >>> rngs = nnx.Rngs(params=0, dropout=1)
        >>> new = nnx.with_rngs(rngs, split={"params": 4}, fork=..., graph=False)
        >>> new.params.key.shape, new.dropout.key.shape
        ((4,), ())
        >>> with nnx.with_rngs(rngs, broadcast=3):
        ...     print(rngs.dropout.key.shape)
        (3,)
    """
    graph, graph_updates = _modes(graph, graph_updates)
    in_place = graph and graph_updates
    new_stream = _with_rngs_replace(split, fork, broadcast, only)

    def apply(target: tp.Any, inplace: bool) -> tp.Any:
        if not inplace:

            def replace(path: Path, value: tp.Any) -> tp.Any:
                new = new_stream(path, value)
                return value if new is None else new

            return recursive_map(replace, target)
        backups: list[StreamBackup] = []
        for path, stream in _streams_in(target):
            new = new_stream(path, stream)
            if new is not None:
                backups.append((stream, stream.key.get_value(), stream.count.get_value()))
                stream.key.set_value(new.key.get_value())
                stream.count.set_value(new.count.get_value())
        return SplitBackups(backups)

    if node is MISSING:
        return _decorator(apply, in_place)
    return apply(node, in_place)


# ------------------------------------------------------------------ reseed
def _scalars_only(path: Path, key: jax.Array, target_shape: tuple[int, ...]) -> jax.Array:
    if target_shape != ():
        raise ValueError(
            f"reseed: Cannot reseed stream at path {path!r} because it has a non-scalar "
            f"key, found key with shape {target_shape}. Expected a scalar key with the "
            "default policy='scalars_only'. Fix: if every slice of the key should get "
            'its own value, set policy="match_shape", else provide a custom reseed policy.'
        )
    return key


def _match_shape(path: Path, key: jax.Array, target_shape: tuple[int, ...]) -> jax.Array:
    return key if target_shape == () else jax.random.split(key, target_shape)


def reseed(
    node: tp.Any,
    /,
    *,
    graph: bool | None = None,
    policy: tp.Literal["scalars_only", "match_shape"]
    | tp.Callable[[Path, jax.Array, tuple[int, ...]], jax.Array] = "scalars_only",
    **stream_keys: int | jax.Array,
) -> None:
    """Give the named streams found anywhere in ``node`` new keys (counts go back
    to zero). Each new key is drawn from ``nnx.Rngs(**stream_keys)``: the first
    stream named ``params`` gets ``Rngs(params=seed).params()``, the next one the
    following key. ``policy`` handles split (non-scalar) keys: ``"scalars_only"``
    raises, ``"match_shape"`` splits the new key to the stream's shape, a callable
    ``(path, key, shape) -> key`` decides.

    Example::

        >>> import jax, nnx_graph as nnx
        >>> rngs = nnx.Rngs(params=3); _ = rngs.params()
        >>> nnx.reseed(rngs, params=0)
        >>> new = jax.random.key_data(rngs.params.key.value)
        >>> bool((new == jax.random.key_data(nnx.Rngs(params=0).params())).all())
        True
    """
    if policy == "scalars_only":
        policy = _scalars_only
    elif policy == "match_shape":
        policy = _match_shape
    elif not callable(policy):
        raise ValueError(
            f'reseed: policy must be "scalars_only", "match_shape" or a callable, '
            f"got {policy!r}. Fix: pass one of those."
        )
    seeds = Rngs(**stream_keys)
    for path, stream in _streams_in(node):
        if stream.tag in stream_keys:
            key = policy(path, seeds[stream.tag](), stream.key.shape)
            stream.key.set_value(key)
            stream.count.set_value(jnp.zeros(key.shape, jnp.uint32))
