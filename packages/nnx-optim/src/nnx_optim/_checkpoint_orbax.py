"""The orbax side of :func:`nnx_optim.save_checkpoint` /
:func:`nnx_optim.restore_checkpoint`: the nested tree orbax stores, and reading
damaged folders back with errors that name what is wrong."""

from __future__ import annotations

import importlib
import os
import typing as tp
from collections.abc import Mapping

import numpy as np

from nnx_optim import _checkpoint_atomic as atomic
from nnx_optim import _checkpoint_integrity as integrity
from nnx_optim._checkpoint_tree import CheckpointError, Path, shape_dtype_struct


def str_path(path: Path) -> tuple[str, ...]:
    return tuple(str(k) for k in path)


def orbax_name(path: Path) -> str:
    """The name orbax stores a leaf under (its keys joined by '.')."""
    return ".".join(str_path(path))


def nest(flat: Mapping[tuple[str, ...], tp.Any]) -> dict[str, tp.Any]:
    root: dict[str, tp.Any] = {}
    for path, value in flat.items():
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return root


def flatten_nested(tree: tp.Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], tp.Any]:
    if isinstance(tree, Mapping):
        out: dict[tuple[str, ...], tp.Any] = {}
        for key, value in tree.items():
            out.update(flatten_nested(value, (*prefix, str(key))))
        return out
    return {prefix: tree}


def restore_item(
    target: tp.Any,
    shape: tuple[int, ...],
    dtype: np.dtype[tp.Any],
    sharding: tp.Callable[[tp.Any], tp.Any],
) -> tp.Any:
    """What orbax restores a leaf as: a numpy array for numpy and Python-scalar
    targets (so float64 stays float64 without jax's x64 mode), else a jax.Array
    with the target's sharding."""
    if isinstance(target, (np.ndarray, np.generic, bool, int, float, complex)):
        return np.zeros(shape, dtype)
    return shape_dtype_struct(shape, dtype, sharding=sharding(target))


def optional_import(module: str, needed_by: str, distribution: str) -> tp.Any:
    """``module`` imported, or an ImportError naming what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{needed_by} need {distribution}. Fix: "
            f'pip install "nnx-optim[checkpoint]" (or pip install {distribution}).'
        ) from error


def orbax() -> tp.Any:
    return optional_import(
        "orbax.checkpoint", "save_checkpoint/restore_checkpoint", "orbax-checkpoint"
    )


def source_for_restore(directory: str) -> str:
    """The folder to read for ``directory``, after looking for the traces of an
    interrupted save; explains (warning or error) what it found."""
    name = os.path.basename(directory)
    if atomic.ORBAX_TMP in name or atomic.TRASH in name:
        raise CheckpointError(
            f"{directory} is a half-written temporary folder left by an interrupted save, "
            "not a checkpoint (orbax renames it to its final name only once complete).\n"
            "Fix: restore the checkpoint it was meant to become or replace (the same name "
            "without this suffix), or an earlier one; then delete this folder.",
            directory=directory,
        )
    recovery = atomic.recover(directory, repair=False)
    if recovery.source is None:
        if recovery.incomplete:
            listed = ", ".join(item.describe() for item in recovery.incomplete)
            raise CheckpointError(
                f"There is no checkpoint at {directory}: only what an interrupted first "
                f"save left beside it, which cannot be restored: {listed}.\nFix: restore an "
                "earlier checkpoint, or save again (save_checkpoint removes these).",
                directory=directory,
            )
        raise FileNotFoundError(
            f"restore_checkpoint: no checkpoint directory at {directory}. Fix: pass the "
            "directory given to save_checkpoint."
        )
    atomic.warn(recovery.notes, stacklevel=4)
    if not os.path.isdir(recovery.source):
        raise CheckpointError(
            f"{recovery.source} is a file, not a checkpoint folder. Fix: pass the "
            "directory given to save_checkpoint (load_safetensors reads files).",
            directory=recovery.source,
        )
    return recovery.source


def unreadable(
    ocp: tp.Any, source: str, abstract: dict[tuple[str, ...], tp.Any]
) -> list[tuple[tuple[str, ...], str]]:
    """The arrays that cannot be read, restoring them one by one (only after the
    whole restore failed, to name each damaged path)."""
    checkpointer = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
    bad = []
    try:
        for path, struct in abstract.items():
            item = nest({path: struct})
            if isinstance(struct, np.ndarray):
                arg = ocp.RestoreArgs(restore_type=np.ndarray, dtype=struct.dtype)
            else:
                arg = ocp.ArrayRestoreArgs(
                    sharding=struct.sharding, global_shape=struct.shape, dtype=struct.dtype
                )
            args = nest({path: arg})
            try:
                checkpointer.restore(
                    source,
                    args=ocp.args.PyTreeRestore(item=item, restore_args=args, partial_restore=True),
                )
            except Exception as error:  # any failure means unreadable
                bad.append((path, integrity.first_line(error)))
    finally:
        checkpointer.close()
    return bad


def orbax_tree(ocp: tp.Any, source: str) -> Mapping[str, tp.Any]:
    """The saved arrays' metadata (shape, dtype), or a CheckpointError saying why
    it cannot be read."""
    epath: tp.Any = importlib.import_module("etils.epath")
    try:
        metadata = ocp.StandardCheckpointHandler().metadata(epath.Path(source))
    except Exception as error:
        reason = integrity.explain_read_failure(source, error) or (
            f"orbax could not read the metadata of the arrays of the checkpoint at {source}: "
            + integrity.first_line(error)
        )
        raise CheckpointError(
            f"{reason}\nFix: restore an earlier checkpoint; this one cannot be read.",
            directory=source,
        ) from error
    tree = getattr(metadata, "tree", metadata)
    if not isinstance(tree, Mapping):
        raise CheckpointError(
            f"orbax found no list of arrays in the checkpoint at {source} (found "
            f"{type(tree).__name__}); it is damaged.\nFix: restore an earlier checkpoint.",
            directory=source,
        )
    return tree
