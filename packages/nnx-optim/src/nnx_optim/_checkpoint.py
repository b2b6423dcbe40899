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
missing, unexpected or mis-shaped entry.  Saves are atomic (a crash leaves the old
or the new checkpoint, never none; see ``_checkpoint_atomic``), every array's
CRC-32 is recorded and checked on restore, and damaged folders or files raise
:class:`CheckpointError` saying what is wrong.  orbax and safetensors are optional
dependencies (``pip install "nnx-optim[checkpoint]"``) imported on first use.
"""

from __future__ import annotations

import json
import os
import typing as tp

import jax
import numpy as np

from nnx_optim import _checkpoint_atomic as atomic
from nnx_optim import _checkpoint_integrity as integrity
from nnx_optim import _checkpoint_orbax as orbax_io
from nnx_optim._checkpoint_tree import (
    CheckpointError,
    CheckpointMismatchError,
    Path,
    PathLike,
    Targets,
    check_collisions,
    compare,
    expected_form,
    format_path,
    loaded_form,
    raise_mismatch,
    raw,
    stored_form,
    target_sharding,
)

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "load_safetensors",
    "restore_checkpoint",
    "save_checkpoint",
    "save_safetensors",
]

Filter = tp.Any
A = tp.TypeVar("A")

_ORBAX_FIX = (
    "restore into objects built exactly like the saved ones (same classes, constructor "
    "arguments, model surgery, optimizer and wrt, passed in the same order), e.g. "
    "`abstract = nnx.eval_shape(lambda: make_model_and_optimizer())`."
)
_KEY_FIX = (
    "give the entries distinct names (a container must not hold both 0 and '0', and a "
    "key with a '.' must not spell the path of another entry)."
)


# ----------------------------------------------------------------------------- orbax
def save_checkpoint(path: PathLike, *objects: tp.Any, overwrite: bool = False) -> None:
    """Save the State of ``objects`` (Modules, Optimizers, metrics, States) to the
    directory ``path`` with orbax-checkpoint.

    Pass everything that must be restored together in one call: objects passed
    together are traversed together, so a model that the optimizer references is
    stored once and stays shared after :func:`restore_checkpoint`.

    The save is atomic: the checkpoint is written beside ``path``
    (``path.nnx-tmp-...``) and swapped in when complete, so a crash at any moment
    leaves the previous checkpoint or the new one, never none. Leftovers of an
    interrupted save are finished or removed by the next save to ``path``. The
    CRC-32 of every array is recorded in the checkpoint's metadata and checked by
    :func:`restore_checkpoint`.

    Arguments:
        path: a directory that does not exist yet (or ``overwrite=True``).
        *objects: graph nodes and/or States.
        overwrite: replace an existing checkpoint (atomically).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        CheckpointError: two entries would be stored under the same name (say the
            keys ``0`` and ``"0"`` of one ``nnx.Dict``); nothing is written then.

    Example::

        >>> import tempfile, jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self, value):
        ...         self.w = nnx.Param(jnp.full(2, value))
        >>> model = Model(1.0)
        >>> optimizer = nnx_optim.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
        >>> directory = tempfile.mkdtemp() + "/ckpt"
        >>> nnx_optim.save_checkpoint(directory, model, optimizer)
        >>> new_model = Model(0.0)
        >>> new_optimizer = nnx_optim.Optimizer(new_model, optax.adam(1e-3), wrt=nnx.Param)
        >>> _ = nnx_optim.restore_checkpoint(directory, new_model, new_optimizer)
        >>> new_model.w.value.tolist()
        [1.0, 1.0]
    """
    directory, targets, root = _collect(path, objects, "save_checkpoint: cannot save to {dir}")
    flat = {
        orbax_io.str_path(p): stored_form(raw(leaf), format_path(p, root))
        for p, leaf in targets.flat.items()
    }
    ocp = orbax_io.orbax()
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    several_processes = jax.process_count() > 1
    if not several_processes:
        atomic.warn(atomic.recover(directory, repair=True).notes)
    if os.path.exists(directory) and not overwrite:
        raise FileExistsError(
            f"save_checkpoint: {directory} already exists. Fix: choose a new directory "
            "(e.g. one per step) or pass overwrite=True."
        )
    record = integrity.checksum_record(
        integrity.checksums({".".join(k): v for k, v in flat.items()})
    )
    if several_processes:
        # every process writes its shards into one folder, which orbax coordinates;
        # the swap below is per-process, so multi-host saves keep orbax's behaviour
        checkpointer = ocp.Checkpointer(ocp.StandardCheckpointHandler())
        try:
            checkpointer.save(
                directory,
                args=ocp.args.StandardSave(orbax_io.nest(flat)),
                force=overwrite,
                custom_metadata={integrity.METADATA_KEY: record},
            )
        finally:
            checkpointer.close()
        return
    staging = atomic.staging_path(directory)
    try:
        checkpointer = ocp.Checkpointer(ocp.StandardCheckpointHandler())
        try:
            checkpointer.save(
                staging,
                args=ocp.args.StandardSave(orbax_io.nest(flat)),
                custom_metadata={integrity.METADATA_KEY: record},
            )
        finally:
            checkpointer.close()
        atomic.phase("staged")
        atomic.swap_in(staging, directory)
    except BaseException:
        prefix = os.path.basename(staging)
        for entry in os.listdir(parent):
            if entry.startswith(prefix):
                atomic.trash(os.path.join(parent, entry))
        raise
    finally:
        atomic.done_staging(staging)


def restore_checkpoint(path: PathLike, *targets: tp.Any, verify: bool = True) -> tp.Any:
    """Load a checkpoint written by :func:`save_checkpoint` into ``targets``.

    The targets must have the saved structure: the same objects, in the same
    order. Their Variables may hold arrays (overwritten) or ``ShapeDtypeStruct``
    (from ``nnx.eval_shape``; filled in). Each array is placed with the target's
    sharding (a ``jax.Array``'s or a ``ShapeDtypeStruct``'s), else on the first
    device. Values, dtypes and the optimizer step come back bit for bit.

    Every array is checked against the CRC-32 recorded when it was saved
    (checkpoints without checksums, from plain orbax or older nnx, load
    unchecked). If an interrupted save left no checkpoint at ``path`` but a
    complete one beside it, that one is restored, with a warning saying so.

    Arguments:
        path: the checkpoint directory.
        *targets: the objects to fill, as passed to :func:`save_checkpoint`.
        verify: check the checksums (costs one CRC-32 pass over the restored bytes;
            see the nnx-optim README for numbers). ``False`` skips it.

    Returns:
        The target (or a tuple of the targets), now holding the saved values.

    Raises:
        CheckpointMismatchError: listing every path that is missing from the
            checkpoint, only in the checkpoint, or of another shape or dtype.
        CheckpointError: the folder is empty, half-written or damaged (missing or
            truncated ``_METADATA`` or manifest, unreadable array data, or arrays
            whose checksum differs), naming what and where.
        FileNotFoundError: there is no checkpoint at or beside ``path``.

        Nothing is modified when an error is raised.

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
    directory, collected, root = _collect(path, targets, "restore_checkpoint: cannot fill {root}")
    source = orbax_io.source_for_restore(directory)
    recorded, notes = integrity.diagnose_orbax(source, verify)
    atomic.warn(notes)
    ocp = orbax_io.orbax()
    checkpointer = ocp.Checkpointer(ocp.StandardCheckpointHandler())
    try:
        tree = orbax_io.orbax_tree(ocp, source)
        found = {
            p: (tuple(m.shape), np.dtype(m.dtype)) for p, m in orbax_io.flatten_nested(tree).items()
        }
        by_str = {orbax_io.str_path(p): p for p in collected.flat}
        expected = {
            orbax_io.str_path(p): expected_form(raw(leaf)) for p, leaf in collected.flat.items()
        }
        problems = compare(
            expected, found, lambda p: format_path(by_str.get(p, p), root), "checkpoint"
        )
        if problems:
            raise_mismatch(f"The checkpoint at {source}", problems, _ORBAX_FIX)
        abstract = {
            orbax_io.str_path(p): orbax_io.restore_item(
                raw(leaf), *expected[orbax_io.str_path(p)], target_sharding
            )
            for p, leaf in collected.flat.items()
        }
        try:
            restored = orbax_io.flatten_nested(
                checkpointer.restore(source, args=ocp.args.StandardRestore(orbax_io.nest(abstract)))
            )
        except Exception as error:
            manifest = integrity.explain_read_failure(source, error)
            if manifest is not None:
                raise CheckpointError(
                    f"{manifest}\nFix: restore an earlier checkpoint; this one cannot be read.",
                    directory=source,
                ) from error
            bad = [
                f"{format_path(by_str[p], root)} (stored as {'.'.join(p)!r}): {reason}"
                for p, reason in orbax_io.unreadable(ocp, source, abstract)
            ]
            detail = "\n  - ".join(bad) if bad else integrity.first_line(error)
            raise CheckpointError(
                f"Could not read {len(bad) or 'some'} of the {len(abstract)} arrays of the "
                f"checkpoint at {source}:\n  - {detail}\nTheir data files (under "
                "ocdbt.process_*/d/) are missing, truncated or damaged, unless the reason "
                "above says otherwise. Fix: restore an earlier checkpoint.",
                directory=source,
                paths=[b.split(" (stored as")[0] for b in bad],
            ) from error
    finally:
        checkpointer.close()
    if recorded:
        by_name = {orbax_io.orbax_name(p): p for p in collected.flat}
        damaged = integrity.damaged(
            {".".join(k): v for k, v in restored.items()},
            recorded,
            lambda name: (
                f"{format_path(by_name[name], root)} (stored as {name!r})"
                if name in by_name
                else repr(name)
            ),
        )
        if damaged:
            integrity.raise_damaged(f"The checkpoint at {source}", damaged, "array data")
    collected.write(
        {
            p: loaded_form(raw(leaf), restored[orbax_io.str_path(p)])
            for p, leaf in collected.flat.items()
        }
    )
    return targets[0] if len(targets) == 1 else targets


# ----------------------------------------------------------------------------- safetensors
def _tensor_name(path: Path) -> str:
    parts = [str(k) for k in path]
    bad = [k for k in parts if "." in k]
    if bad:
        raise CheckpointError(
            f"Cannot name {format_path(path, 'model')} in a safetensors file: the key "
            f"{bad[0]!r} contains '.', the separator. Fix: rename the attribute or key."
        )
    return ".".join(parts)


def _collect(path: PathLike, objects: tuple[tp.Any, ...], context: str) -> tuple[str, Targets, str]:
    """The checkpoint's absolute directory, the objects' leaves and their root name,
    after checking that no two leaves share a checkpoint key. ``context`` (with
    ``{dir}`` and ``{root}`` filled in) begins the collision error."""
    directory = os.path.abspath(os.fspath(path))
    targets = Targets(objects)
    root = targets.root_name()
    where = context.format(dir=directory, root=root)
    check_collisions(targets.flat, orbax_io.orbax_name, root, where, _KEY_FIX)
    return directory, targets, root


def _safetensors() -> tp.Any:
    return orbax_io.optional_import(
        "safetensors.numpy", "save_safetensors/load_safetensors", "safetensors"
    )


def _file_leftovers(file: str, *, remove: bool) -> list[str]:
    """Temporary files of interrupted :func:`save_safetensors` calls beside ``file``
    (all incomplete: the file itself is only ever replaced whole)."""
    leftovers = atomic.find_leftovers(file)
    if not leftovers:
        return []
    names = ", ".join(os.path.basename(item.path) for item in leftovers)
    if remove:
        for item in leftovers:
            atomic.trash(item.path)
        return [f"removed leftovers of an interrupted save_safetensors beside {file}: {names}"]
    return [
        f"ignored leftovers of an interrupted save_safetensors beside {file}: {names} (the "
        "next save_safetensors to this file deletes them; or delete them yourself)"
    ]


def save_safetensors(path: PathLike, model: tp.Any, *, only: Filter = ...) -> None:
    """Write the Variables of ``model`` matching ``only`` to one safetensors file,
    named by their dotted paths (``"layers.0.kernel"``).

    The file is written beside ``path`` and renamed onto it when complete, so a
    crash leaves the old file or the new one. The CRC-32 of every tensor goes in
    the header's ``__metadata__`` (key ``"nnx_checksums"``), checked by
    :func:`load_safetensors`; other readers ignore it.

    Arguments:
        path: the file to write.
        model: a Module (or any graph node, or a State).
        only: filter of the Variables to store (default: all state; use
            ``nnx.Param`` for weights only).

    Raises:
        CheckpointError: a key contains ``'.'``, or two entries would get the same
            name (the keys ``0`` and ``"0"`` of one ``nnx.Dict``).

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
    targets = Targets((model,), only)
    check_collisions(
        targets.flat, _tensor_name, "model", f"save_safetensors: cannot save to {path}", _KEY_FIX
    )
    tensors = {
        _tensor_name(p): np.asarray(stored_form(raw(leaf), format_path(p, "model")))
        for p, leaf in targets.flat.items()
    }
    record = integrity.checksum_record(integrity.checksums(tensors))
    metadata = {integrity.METADATA_KEY: json.dumps(record, separators=(",", ":"))}
    st = _safetensors()
    file = os.path.abspath(os.fspath(path))
    atomic.warn(_file_leftovers(file, remove=True))
    staging = atomic.staging_path(file)
    try:
        st.save_file(tensors, staging, metadata=metadata)
        with open(staging, "rb+") as handle:
            os.fsync(handle.fileno())
        atomic.phase("staged")
        os.replace(staging, file)
        atomic.fsync_directory(os.path.dirname(file))
    except BaseException:
        if os.path.lexists(staging):
            os.remove(staging)
        raise
    finally:
        atomic.done_staging(staging)


def load_safetensors(path: PathLike, model: A, *, only: Filter = ..., verify: bool = True) -> A:
    """Read a safetensors file (from :func:`save_safetensors`, or any file with the
    same dotted names) into the Variables of ``model`` matching ``only``.

    ``model`` may be abstract (``nnx.eval_shape``): arrays are placed with each
    Variable's sharding when it has one. Tensors are checked against the CRC-32
    recorded by :func:`save_safetensors` (files from other tools load unchecked).

    Arguments:
        path: the file to read.
        model: the Module (or graph node, or State) to fill.
        only: filter of the Variables to fill (as given to ``save_safetensors``).
        verify: check the checksums; ``False`` skips it.

    Returns:
        ``model``, now holding the loaded values.

    Raises:
        CheckpointMismatchError: listing every missing, unexpected or mis-shaped
            tensor.
        CheckpointError: the file is truncated or damaged (header, sizes, or a
            tensor whose checksum differs), naming each damaged tensor.

        Nothing is modified when an error is raised.

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
    file = os.path.abspath(os.fspath(path))
    targets = Targets((model,), only)
    check_collisions(
        targets.flat, _tensor_name, "model", f"load_safetensors: cannot fill {file}", _KEY_FIX
    )
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"load_safetensors: no file at {file}. Fix: pass the file given to save_safetensors."
        )
    atomic.warn(_file_leftovers(file, remove=False))
    header_metadata = integrity.check_safetensors_file(file)
    try:
        tensors = _safetensors().load_file(file)
    except Exception as error:
        raise CheckpointError(
            f"The safetensors file {file} is damaged: {error}.\nFix: load an earlier copy "
            "of the file (or save it again).",
            directory=file,
        ) from error
    names = {_tensor_name(p): p for p in targets.flat}
    expected = {(n,): expected_form(raw(targets.flat[p])) for n, p in names.items()}
    found = {(n,): (tuple(t.shape), np.dtype(t.dtype)) for n, t in tensors.items()}
    problems = compare(expected, found, lambda p: repr(p[0]), f"file {file}")
    if problems:
        raise_mismatch(
            f"The safetensors file {file}",
            problems,
            "load into a model built like the saved one (same classes, constructor "
            "arguments and surgery), and pass the same `only=` filter used to save.",
        )
    if verify and integrity.METADATA_KEY in header_metadata:
        recorded = integrity.parse_record(header_metadata[integrity.METADATA_KEY], file)
        damaged = integrity.damaged(
            tensors,
            recorded,
            lambda n: f"{n!r} ({format_path(names[n], 'model')})" if n in names else repr(n),
        )
        if damaged:
            integrity.raise_damaged(f"The safetensors file {file}", damaged, "file")
    values = {}
    for name, p in names.items():
        target = raw(targets.flat[p])
        array = tensors[name]
        if not isinstance(target, np.ndarray):
            array = jax.device_put(array, target_sharding(target))
        values[p] = loaded_form(target, array)
    targets.write(values)
    return model
