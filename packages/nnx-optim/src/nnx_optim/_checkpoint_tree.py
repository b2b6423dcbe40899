"""Checkpoint machinery shared by the orbax and safetensors formats: the leaves of
the objects being saved or restored, their on-disk form, and the error messages."""

from __future__ import annotations

import os
import typing as tp
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

import nnx_graph
from nnx_graph.internal import format_path as _format_path

Path = tuple[tp.Any, ...]
PathLike = tp.Union[str, "os.PathLike[str]"]
Filter = tp.Any


class CheckpointError(ValueError):
    """A checkpoint on disk is missing, incomplete or damaged, or the objects to
    save cannot be stored without losing data.

    A ``ValueError``: the files could be read, their contents are wrong, and
    retrying will not help (an ``OSError`` would suggest it might). The message
    says what is missing or damaged, where, and what to do; ``directory`` is the
    checkpoint (or file) concerned and ``paths`` the damaged entries, if any.

    Example::

        >>> import os, tempfile, jax.numpy as jnp, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> empty = tempfile.mkdtemp()
        >>> try:
        ...     nnx_optim.restore_checkpoint(empty, Model())
        ... except nnx_optim.CheckpointError as error:
        ...     print(str(error).splitlines()[0])
        The checkpoint folder ... is empty: ...
    """

    def __init__(
        self, message: str, *, directory: str | None = None, paths: tp.Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.directory = directory
        self.paths = tuple(paths)


class CheckpointMismatchError(CheckpointError, nnx_graph.GraphStructureError):
    """A checkpoint's entries do not match the objects it is restored into.

    The message has one line per offending path (missing from the checkpoint, only
    in the checkpoint, other shape or dtype) and a fix.

    Example::

        >>> import tempfile, jax.numpy as jnp, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self, names):
        ...         for name in names:
        ...             setattr(self, name, nnx.Param(jnp.zeros(2)))
        >>> file = tempfile.mkdtemp() + "/weights.safetensors"
        >>> nnx_optim.save_safetensors(file, Model(["a", "b"]))
        >>> try:
        ...     nnx_optim.load_safetensors(file, Model(["a", "c"]))
        ... except nnx_optim.CheckpointMismatchError as error:
        ...     for line in str(error).splitlines()[1:3]:
        ...         print(line)
          - 'c': missing from the file ...; expected shape (2,) float32 (...)
          - 'b': found in the file ... (shape (2,) float32) but not in the target
    """


# ----------------------------------------------------------------------------- leaves
class Targets:
    """The leaves of the objects being saved or restored, by path.

    One graph node contributes its own paths; several objects are indexed by
    position (``(0, ...)``, ``(1, ...)``).  Graph nodes passed together are
    traversed together, so a model shared by an optimizer is stored once.
    """

    def __init__(self, objects: tuple[tp.Any, ...], only: Filter = ...) -> None:
        if not objects:
            raise TypeError("Expected at least one object (a model, an optimizer or a State).")
        self.objects = objects
        self.only = only
        if len(objects) == 1:
            self.parts: list[tuple[Path, tp.Any]] = [((), objects[0])]
        elif not any(isinstance(o, Mapping) for o in objects):
            self.parts = [((), tuple(objects))]
        else:
            self.parts = [((i,), o) for i, o in enumerate(objects)]
        self.flat: dict[Path, tp.Any] = {}
        for prefix, obj in self.parts:
            for path, leaf in _flat(obj, only):
                self.flat[(*prefix, *path)] = leaf

    def root_name(self) -> str:
        return "target" if len(self.objects) == 1 else "targets"

    def write(self, values: dict[Path, tp.Any]) -> None:
        for prefix, obj in self.parts:
            n = len(prefix)
            mine = {p[n:]: v for p, v in values.items() if p[:n] == prefix}
            if isinstance(obj, Mapping):
                for path, value in mine.items():
                    _set_in_mapping(obj, path, value)
            else:
                nnx_graph.update(obj, nnx_graph.from_flat_state(list(mine.items())))


def _flat(obj: tp.Any, only: Filter) -> list[tuple[Path, tp.Any]]:
    if isinstance(obj, Mapping):
        state = nnx_graph.filter_state(obj, only)
    elif isinstance(obj, (nnx_graph.Pytree, nnx_graph.List, nnx_graph.Dict, tuple, list)):
        state = nnx_graph.state(obj, only)
    else:
        raise TypeError(
            f"Expected a Module, an Optimizer (any graph node) or a State, found "
            f"{type(obj).__name__}. Fix: pass the objects themselves, e.g. "
            "save_checkpoint(path, model, optimizer)."
        )
    return list(state.flat_state())


def _set_in_mapping(mapping: tp.Any, path: Path, value: tp.Any) -> None:
    node = mapping
    for key in path[:-1]:
        node = node[key]
    leaf = node[path[-1]]
    if isinstance(leaf, nnx_graph.Variable):
        leaf.raw_value = value
    else:
        node[path[-1]] = value


def raw(leaf: tp.Any) -> tp.Any:
    return leaf.raw_value if isinstance(leaf, nnx_graph.Variable) else leaf


def is_key(value: tp.Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def stored_form(value: tp.Any, where: str) -> tp.Any:
    """The array written to disk for one leaf (typed PRNG keys as their key data)."""
    if isinstance(value, jax.ShapeDtypeStruct):
        raise ValueError(
            f"{where} is abstract (a ShapeDtypeStruct), there is nothing to save.\n"
            "Fix: save the concrete objects; abstract ones (nnx.eval_shape) are "
            "restore targets."
        )
    if is_key(value):
        return jax.random.key_data(value)
    if isinstance(value, (jax.Array, np.ndarray)):
        return value
    if isinstance(value, (bool, int, float, complex, np.generic)):
        return np.asarray(value)
    raise TypeError(
        f"{where} holds a {type(value).__name__}, which a checkpoint cannot store.\n"
        "Fix: keep only arrays in Variables, or exclude this one."
    )


def expected_form(value: tp.Any) -> tuple[tuple[int, ...], np.dtype[tp.Any]]:
    """Shape and dtype a leaf has on disk."""
    if is_key(value):
        data = jax.eval_shape(jax.random.key_data, value)
        return tuple(data.shape), np.dtype(data.dtype)
    if isinstance(value, (bool, int, float, complex)):
        value = np.asarray(value)
    return tuple(np.shape(value)), np.dtype(value.dtype)


# jax's constructors are not annotated; typed handles for mypy --strict
_partition_spec = tp.cast(tp.Callable[..., jax.sharding.PartitionSpec], jax.sharding.PartitionSpec)
shape_dtype_struct = tp.cast(tp.Callable[..., jax.ShapeDtypeStruct], jax.ShapeDtypeStruct)


def target_sharding(value: tp.Any) -> jax.sharding.Sharding:
    """Where a restored leaf should live: the target's sharding when it has one."""
    sharding = getattr(value, "sharding", None)
    if is_key(value):
        if isinstance(value, jax.Array):
            return jax.random.key_data(value).sharding
        if isinstance(sharding, jax.sharding.NamedSharding):
            extra = len(expected_form(value)[0]) - len(value.shape)
            spec = (*sharding.spec, *[None] * (len(value.shape) - len(sharding.spec)))
            return jax.sharding.NamedSharding(
                sharding.mesh, _partition_spec(*spec, *[None] * extra)
            )
        sharding = None
    if isinstance(sharding, jax.sharding.Sharding):
        return sharding
    return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def loaded_form(target: tp.Any, stored: tp.Any) -> tp.Any:
    """Turn an array read from disk into the kind of value the target leaf holds."""
    if is_key(target):
        impl = (
            jax.random.key_impl(target)
            if isinstance(target, jax.Array)
            else target.dtype._impl  # the PRNG implementation of an abstract key
        )
        return jax.random.wrap_key_data(stored, impl=impl)
    if isinstance(target, np.ndarray):
        return np.asarray(stored)
    if isinstance(target, (bool, int, float, complex)):
        return type(target)(np.asarray(stored).item())
    return stored


# ----------------------------------------------------------------------------- messages
def format_path(path: Path, root: str) -> str:
    """``(1, 'opt_state', 0, 'mu')`` -> ``targets[1].opt_state[0].mu``."""
    return _format_path(path, root, digits=True)


def describe(shape: tp.Sequence[int], dtype: tp.Any) -> str:
    return f"shape {tuple(shape)} {np.dtype(dtype).name}"


def compare(
    expected: dict[Path, tuple[tuple[int, ...], np.dtype[tp.Any]]],
    found: dict[Path, tuple[tuple[int, ...], np.dtype[tp.Any]]],
    render: tp.Callable[[Path], str],
    source: str,
) -> list[str]:
    """One line per offending path: missing, unexpected, wrong shape or dtype."""
    problems = []
    for path, (shape, dtype) in expected.items():
        if path not in found:
            problems.append(
                f"{render(path)}: missing from the {source}; expected "
                f"{describe(shape, dtype)} (the target has it, the saved objects did not)"
            )
            continue
        found_shape, found_dtype = found[path]
        if tuple(found_shape) != tuple(shape) or np.dtype(found_dtype) != np.dtype(dtype):
            problems.append(
                f"{render(path)}: expected {describe(shape, dtype)} (from the target), "
                f"found {describe(found_shape, found_dtype)} in the {source}"
            )
    for path, (shape, dtype) in found.items():
        if path not in expected:
            problems.append(
                f"{render(path)}: found in the {source} ({describe(shape, dtype)}) but "
                "not in the target"
            )
    return problems


def bullet_list(problems: list[str], most: int = 50) -> str:
    """``problems`` as indented ``-`` bullets, one a line: the first ``most`` and a
    count of the rest."""
    more = f"\n  ... and {len(problems) - most} more" if len(problems) > most else ""
    return "\n  - " + "\n  - ".join(problems[:most]) + more


def raise_mismatch(what: str, problems: list[str], fix: str) -> tp.NoReturn:
    raise CheckpointMismatchError(
        f"{what} does not match the target ({len(problems)} problem"
        f"{'s' if len(problems) != 1 else ''}):" + bullet_list(problems) + f"\nFix: {fix}"
    )


# ----------------------------------------------------------------------------- collisions
def render_key_path(path: Path, root: str) -> str:
    """Like :func:`format_path`, but a string key that looks like a number keeps its
    quotes (``['0']``), so that ``[0]`` and ``['0']`` can be told apart."""
    out = root
    for part in path:
        if isinstance(part, str) and part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


def check_collisions(
    paths: tp.Iterable[Path], name: tp.Callable[[Path], str], root: str, where: str, fix: str
) -> None:
    """Refuse paths that would be stored under the same name (``0`` and ``"0"``,
    or ``{"a.b": x}`` and ``{"a": {"b": y}}``): one would silently overwrite the
    other on disk."""
    seen: dict[str, Path] = {}
    clashes: list[str] = []
    for path in paths:
        stored = name(path)
        if stored in seen:
            clashes.append(
                f"{render_key_path(seen[stored], root)} and {render_key_path(path, root)} "
                f"would both be stored as {stored!r}"
            )
        else:
            seen[stored] = path
    if clashes:
        raise CheckpointError(
            f"{where}: {len(clashes)} key collision{'s' if len(clashes) != 1 else ''} "
            "(one entry would silently replace the other on disk):\n  - "
            + "\n  - ".join(clashes)
            + f"\nFix: {fix}",
            paths=[c.split(" and ")[0] for c in clashes],
        )
