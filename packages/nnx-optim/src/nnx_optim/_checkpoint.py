"""Checkpoints: model and optimizer state to disk and back, bit for bit.

Two formats:

* :func:`save_checkpoint` / :func:`restore_checkpoint` store the State of any
  objects (a model, an optimizer, metrics, ...) with orbax-checkpoint, as the pure
  nested dict ``nnx.to_pure_dict`` gives.  Restoring fills the Variables of a
  *target*: existing objects, or an abstract model from ``nnx.eval_shape`` whose
  Variables hold ``jax.ShapeDtypeStruct``\\ s.  Arrays are restored with the
  target's shardings, so a checkpoint written on one device restores sharded.
* :func:`save_safetensors` / :func:`load_safetensors` store model weights in one
  safetensors file with flat names (``"blocks.0.linear.kernel"``), the format
  weight hubs use.

Both check the checkpoint against the target before touching it and name every
missing, unexpected or mis-shaped entry.  orbax and safetensors are optional
dependencies (``pip install "nnx-optim[checkpoint]"``) imported on first use.
"""

from __future__ import annotations

import os
import typing as tp
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

import nnx_graph

__all__ = [
    "CheckpointMismatchError",
    "load_safetensors",
    "restore_checkpoint",
    "save_checkpoint",
    "save_safetensors",
]

Path = tuple[tp.Any, ...]
PathLike = tp.Union[str, "os.PathLike[str]"]
Filter = tp.Any
A = tp.TypeVar("A")


class CheckpointMismatchError(nnx_graph.GraphStructureError):
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
class _Targets:
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


def _raw(leaf: tp.Any) -> tp.Any:
    return leaf.raw_value if isinstance(leaf, nnx_graph.Variable) else leaf


def _is_key(value: tp.Any) -> bool:
    dtype = getattr(value, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _stored_form(value: tp.Any, where: str) -> tp.Any:
    """The array written to disk for one leaf (typed PRNG keys as their key data)."""
    if isinstance(value, jax.ShapeDtypeStruct):
        raise ValueError(
            f"{where} is abstract (a ShapeDtypeStruct), there is nothing to save.\n"
            "Fix: save the concrete objects; abstract ones (nnx.eval_shape) are "
            "restore targets."
        )
    if _is_key(value):
        return jax.random.key_data(value)
    if isinstance(value, (jax.Array, np.ndarray)):
        return value
    if isinstance(value, (bool, int, float, complex, np.generic)):
        return np.asarray(value)
    raise TypeError(
        f"{where} holds a {type(value).__name__}, which a checkpoint cannot store.\n"
        "Fix: keep only arrays in Variables, or exclude this one."
    )


def _expected(value: tp.Any) -> tuple[tuple[int, ...], np.dtype[tp.Any]]:
    """Shape and dtype a leaf has on disk."""
    if _is_key(value):
        data = jax.eval_shape(jax.random.key_data, value)
        return tuple(data.shape), np.dtype(data.dtype)
    if isinstance(value, (bool, int, float, complex)):
        value = np.asarray(value)
    return tuple(np.shape(value)), np.dtype(value.dtype)


# jax's constructors are not annotated; typed handles for mypy --strict
_partition_spec = tp.cast(tp.Callable[..., jax.sharding.PartitionSpec], jax.sharding.PartitionSpec)
_shape_dtype_struct = tp.cast(tp.Callable[..., jax.ShapeDtypeStruct], jax.ShapeDtypeStruct)


def _sharding(value: tp.Any) -> jax.sharding.Sharding:
    """Where a restored leaf should live: the target's sharding when it has one."""
    sharding = getattr(value, "sharding", None)
    if _is_key(value):
        if isinstance(value, jax.Array):
            return jax.random.key_data(value).sharding
        if isinstance(sharding, jax.sharding.NamedSharding):
            extra = len(_expected(value)[0]) - len(value.shape)
            spec = (*sharding.spec, *[None] * (len(value.shape) - len(sharding.spec)))
            return jax.sharding.NamedSharding(
                sharding.mesh, _partition_spec(*spec, *[None] * extra)
            )
        sharding = None
    if isinstance(sharding, jax.sharding.Sharding):
        return sharding
    return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def _loaded_form(target: tp.Any, stored: tp.Any) -> tp.Any:
    """Turn an array read from disk into the kind of value the target leaf holds."""
    if _is_key(target):
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
    out = root
    for part in path:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


def _describe(shape: tp.Sequence[int], dtype: tp.Any) -> str:
    return f"shape {tuple(shape)} {np.dtype(dtype).name}"


def _compare(
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
                f"{_describe(shape, dtype)} (the target has it, the saved objects did not)"
            )
            continue
        found_shape, found_dtype = found[path]
        if tuple(found_shape) != tuple(shape) or np.dtype(found_dtype) != np.dtype(dtype):
            problems.append(
                f"{render(path)}: expected {_describe(shape, dtype)} (from the target), "
                f"found {_describe(found_shape, found_dtype)} in the {source}"
            )
    for path, (shape, dtype) in found.items():
        if path not in expected:
            problems.append(
                f"{render(path)}: found in the {source} ({_describe(shape, dtype)}) but "
                "not in the target"
            )
    return problems


def _raise_mismatch(what: str, problems: list[str], fix: str) -> tp.NoReturn:
    shown = problems[:50]
    more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
    raise CheckpointMismatchError(
        f"{what} does not match the target ({len(problems)} problem"
        f"{'s' if len(problems) != 1 else ''}):\n  - "
        + "\n  - ".join(shown)
        + more
        + f"\nFix: {fix}"
    )


_ORBAX_FIX = (
    "restore into objects built exactly like the saved ones (same classes, constructor "
    "arguments, model surgery, optimizer and wrt, passed in the same order), e.g. "
    "`abstract = nnx.eval_shape(lambda: make_model_and_optimizer())`."
)


# ----------------------------------------------------------------------------- orbax
def _str_path(path: Path) -> tuple[str, ...]:
    return tuple(str(k) for k in path)


def _nest(flat: Mapping[tuple[str, ...], tp.Any]) -> dict[str, tp.Any]:
    root: dict[str, tp.Any] = {}
    for path, value in flat.items():
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return root


def _flatten_nested(tree: tp.Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], tp.Any]:
    if isinstance(tree, Mapping):
        out: dict[tuple[str, ...], tp.Any] = {}
        for key, value in tree.items():
            out.update(_flatten_nested(value, (*prefix, str(key))))
        return out
    return {prefix: tree}


def _orbax() -> tp.Any:
    try:
        import orbax.checkpoint as ocp
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "save_checkpoint/restore_checkpoint need orbax-checkpoint. Fix: "
            'pip install "nnx-optim[checkpoint]" (or pip install orbax-checkpoint).'
        ) from error
    return ocp


def save_checkpoint(path: PathLike, *objects: tp.Any, overwrite: bool = False) -> None:
    """Save the State of ``objects`` (Modules, Optimizers, metrics, States) to the
    directory ``path`` with orbax-checkpoint.

    Pass everything that must be restored together in one call: objects passed
    together are traversed together, so a model that the optimizer references is
    stored once and stays shared after :func:`restore_checkpoint`.

    Arguments:
        path: a directory that does not exist yet (or ``overwrite=True``).
        *objects: graph nodes and/or States.
        overwrite: replace an existing checkpoint.

    Example::

        >>> import tempfile, jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self, value):
        ...         self.w = nnx.Param(jnp.full(2, value))
        >>> model = Model(1.0)
        >>> optimizer = nnx_optim.Optimizer(model, optax.adam(1e-3))
        >>> directory = tempfile.mkdtemp() + "/ckpt"
        >>> nnx_optim.save_checkpoint(directory, model, optimizer)
        >>> new_model = Model(0.0)
        >>> new_optimizer = nnx_optim.Optimizer(new_model, optax.adam(1e-3))
        >>> _ = nnx_optim.restore_checkpoint(directory, new_model, new_optimizer)
        >>> new_model.w.value.tolist(), new_optimizer.model is new_model
        ([1.0, 1.0], True)
    """
    directory = os.path.abspath(os.fspath(path))
    if os.path.exists(directory) and not overwrite:
        raise FileExistsError(
            f"save_checkpoint: {directory} already exists. Fix: choose a new directory "
            "(e.g. one per step) or pass overwrite=True."
        )
    targets = _Targets(objects)
    root = targets.root_name()
    flat = {
        _str_path(p): _stored_form(_raw(leaf), format_path(p, root))
        for p, leaf in targets.flat.items()
    }
    ocp = _orbax()
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(directory, _nest(flat), force=overwrite)
        checkpointer.wait_until_finished()
    finally:
        checkpointer.close()


def restore_checkpoint(path: PathLike, *targets: tp.Any) -> tp.Any:
    """Load a checkpoint written by :func:`save_checkpoint` into ``targets``.

    The targets must have the saved structure: the same objects, in the same
    order. Their Variables may hold arrays (overwritten) or ``ShapeDtypeStruct``
    (from ``nnx.eval_shape``; filled in). Each array is placed with the target's
    sharding (a ``jax.Array``'s or a ``ShapeDtypeStruct``'s), else on the first
    device. Values, dtypes and the optimizer step come back bit for bit.

    Arguments:
        path: the checkpoint directory.
        *targets: the objects to fill, as passed to :func:`save_checkpoint`.

    Returns:
        The target (or a tuple of the targets), now holding the saved values.

    Raises:
        CheckpointMismatchError: listing every path that is missing from the
            checkpoint, only in the checkpoint, or of another shape or dtype;
            nothing is modified then.

    Example::

        >>> import tempfile, jax.numpy as jnp, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self, n):
        ...         self.w = nnx.Param(jnp.ones(n))
        >>> directory = tempfile.mkdtemp() + "/ckpt"
        >>> nnx_optim.save_checkpoint(directory, Model(2))
        >>> try:
        ...     nnx_optim.restore_checkpoint(directory, Model(3))
        ... except nnx_optim.CheckpointMismatchError as error:
        ...     print(str(error).splitlines()[1])
          - target.w: expected shape (3,) float32 (from the target), found shape (2,) ...
    """
    directory = os.path.abspath(os.fspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"restore_checkpoint: no checkpoint directory at {directory}. Fix: pass the "
            "directory given to save_checkpoint."
        )
    collected = _Targets(targets)
    root = collected.root_name()
    ocp = _orbax()
    checkpointer = ocp.StandardCheckpointer()
    try:
        metadata = checkpointer.metadata(directory).item_metadata
        tree = getattr(metadata, "tree", metadata)
        found = {p: (tuple(m.shape), np.dtype(m.dtype)) for p, m in _flatten_nested(tree).items()}
        by_str = {_str_path(p): p for p in collected.flat}
        expected = {_str_path(p): _expected(_raw(leaf)) for p, leaf in collected.flat.items()}
        problems = _compare(
            expected, found, lambda p: format_path(by_str.get(p, p), root), "checkpoint"
        )
        if problems:
            _raise_mismatch(f"The checkpoint at {directory}", problems, _ORBAX_FIX)
        abstract = {
            _str_path(p): _shape_dtype_struct(
                expected[_str_path(p)][0],
                expected[_str_path(p)][1],
                sharding=_sharding(_raw(leaf)),
            )
            for p, leaf in collected.flat.items()
        }
        restored = _flatten_nested(checkpointer.restore(directory, _nest(abstract)))
    finally:
        checkpointer.close()
    collected.write(
        {p: _loaded_form(_raw(leaf), restored[_str_path(p)]) for p, leaf in collected.flat.items()}
    )
    return targets[0] if len(targets) == 1 else targets


# ----------------------------------------------------------------------------- safetensors
def _tensor_name(path: Path) -> str:
    parts = [str(k) for k in path]
    bad = [k for k in parts if "." in k]
    if bad:
        raise ValueError(
            f"Cannot name {format_path(path, 'model')} in a safetensors file: the key "
            f"{bad[0]!r} contains '.', the separator. Fix: rename the attribute or key."
        )
    return ".".join(parts)


def _safetensors() -> tp.Any:
    try:
        import safetensors.numpy as st
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "save_safetensors/load_safetensors need safetensors. Fix: "
            'pip install "nnx-optim[checkpoint]" (or pip install safetensors).'
        ) from error
    return st


def save_safetensors(path: PathLike, model: tp.Any, *, only: Filter = ...) -> None:
    """Write the Variables of ``model`` matching ``only`` to one safetensors file,
    named by their dotted paths (``"layers.0.kernel"``).

    Arguments:
        path: the file to write.
        model: a Module (or any graph node, or a State).
        only: filter of the Variables to store (default: all state; use
            ``nnx.Param`` for weights only).

    Example::

        >>> import tempfile, jax.numpy as jnp, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self, value):
        ...         self.layers = [nnx.Param(jnp.full(2, value))]
        >>> file = tempfile.mkdtemp() + "/model.safetensors"
        >>> nnx_optim.save_safetensors(file, Model(3.0))
        >>> nnx_optim.load_safetensors(file, Model(0.0)).layers[0].value.tolist()
        [3.0, 3.0]
    """
    targets = _Targets((model,), only)
    tensors = {
        _tensor_name(p): np.asarray(_stored_form(_raw(leaf), format_path(p, "model")))
        for p, leaf in targets.flat.items()
    }
    _safetensors().save_file(tensors, os.fspath(path))


def load_safetensors(path: PathLike, model: A, *, only: Filter = ...) -> A:
    """Read a safetensors file (from :func:`save_safetensors`, or any file with the
    same dotted names) into the Variables of ``model`` matching ``only``.

    ``model`` may be abstract (``nnx.eval_shape``): arrays are placed with each
    Variable's sharding when it has one.

    Returns:
        ``model``, now holding the loaded values.

    Raises:
        CheckpointMismatchError: listing every missing, unexpected or mis-shaped
            tensor; nothing is modified then.

    Example::

        >>> import tempfile, jax.numpy as jnp, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self, value):
        ...         self.kernel = nnx.Param(jnp.full((2, 2), value))
        ...         self.count = nnx.Variable(jnp.array(0))
        >>> file = tempfile.mkdtemp() + "/weights.safetensors"
        >>> nnx_optim.save_safetensors(file, Model(1.0), only=nnx.Param)
        >>> model = nnx_optim.load_safetensors(file, Model(0.0), only=nnx.Param)
        >>> float(model.kernel.value.sum())
        4.0
    """
    tensors = _safetensors().load_file(os.fspath(path))
    targets = _Targets((model,), only)
    names = {_tensor_name(p): p for p in targets.flat}
    expected = {(n,): _expected(_raw(targets.flat[p])) for n, p in names.items()}
    found = {(n,): (tuple(t.shape), np.dtype(t.dtype)) for n, t in tensors.items()}
    problems = _compare(expected, found, lambda p: repr(p[0]), f"file {os.fspath(path)}")
    if problems:
        _raise_mismatch(
            f"The safetensors file {os.fspath(path)}",
            problems,
            "load into a model built like the saved one (same classes, constructor "
            "arguments and surgery), and pass the same `only=` filter used to save.",
        )
    values = {}
    for name, p in names.items():
        target = _raw(targets.flat[p])
        array = tensors[name]
        if not isinstance(target, np.ndarray):
            array = jax.device_put(array, _sharding(target))
        values[p] = _loaded_form(target, array)
    targets.write(values)
    return model
