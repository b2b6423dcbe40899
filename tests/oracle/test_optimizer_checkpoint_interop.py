"""Oracle: optimizer checkpoints move between flax.nnx 0.12 and nnx, both ways.

A Flax user saves ``nnx.state(model)`` and ``nnx.state(optimizer)`` with plain orbax
(``StandardCheckpointer`` on the States, or ``PyTreeCheckpointer`` on their pure
dicts) and restores into an abstract target. Here one library trains a few steps
and saves; the other restores into fresh objects and keeps training; it must then
produce the same losses, parameters and optimizer state as the first library
continuing on its own.
"""

from __future__ import annotations

import pathlib
import typing as tp

import numpy as np
import pytest

flax = pytest.importorskip("flax")
ocp = pytest.importorskip("orbax.checkpoint")

import jax  # noqa: E402
import optax  # noqa: E402
from flax import nnx as fnnx  # noqa: E402
from test_optimizer_oracle import data, make_model, train_step  # noqa: E402

import nnx  # noqa: E402

pytestmark = pytest.mark.oracle

LIBS = {"flax": fnnx, "nnx": nnx}


def make_tx() -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=1e-2))


def build(lib: tp.Any) -> tuple[tp.Any, tp.Any]:
    model = make_model(lib)
    return model, lib.Optimizer(model, make_tx(), wrt=lib.Param)


def flat(lib: tp.Any, node: tp.Any) -> dict[tuple[tp.Any, ...], np.ndarray]:
    return {p: np.asarray(v.get_value()) for p, v in lib.to_flat_state(lib.state(node))}


def save(kind: str, lib: tp.Any, directory: pathlib.Path, model: tp.Any, optimizer: tp.Any) -> None:
    """What a user of ``lib`` writes to checkpoint model and optimizer."""
    for name, node in (("model", model), ("optimizer", optimizer)):
        if kind == "standard":
            checkpointer = ocp.StandardCheckpointer()
            checkpointer.save(directory / name, lib.state(node))
            checkpointer.wait_until_finished()
        else:
            ocp.PyTreeCheckpointer().save(directory / name, lib.state(node).to_pure_dict())


def restore(kind: str, lib: tp.Any, directory: pathlib.Path) -> tuple[tp.Any, tp.Any]:
    """What a user of ``lib`` writes to restore into fresh objects."""
    model, optimizer = build(lib)
    for name, node in (("model", model), ("optimizer", optimizer)):
        if kind == "standard":
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, lib.state(node))
            restored = ocp.StandardCheckpointer().restore(directory / name, abstract)
        else:
            restored = lib.state(node)
            pure = ocp.PyTreeCheckpointer().restore(directory / name)
            lib.replace_by_pure_dict(restored, pure)
        lib.update(node, restored)
    return model, optimizer


@pytest.mark.parametrize("kind", ["standard", "pure_dict"])
@pytest.mark.parametrize(("writer", "reader"), [("flax", "nnx"), ("nnx", "flax")])
def test_checkpoint_restores_across_libraries_and_training_continues(
    tmp_path: pathlib.Path, kind: str, writer: str, reader: str
) -> None:
    write_lib, read_lib = LIBS[writer], LIBS[reader]
    model, optimizer = build(write_lib)
    write_step = train_step(write_lib)
    for step in range(3):
        write_step(model, optimizer, *data(step))
    save(kind, write_lib, tmp_path, model, optimizer)

    restored_model, restored_optimizer = restore(kind, read_lib, tmp_path)
    assert int(restored_optimizer.step.value) == 3
    for node, restored in ((model, restored_model), (optimizer, restored_optimizer)):
        expected = flat(write_lib, node)
        got = flat(read_lib, restored)
        assert got.keys() == expected.keys()
        for path, value in expected.items():
            np.testing.assert_array_equal(got[path], value, err_msg=str(path))

    # both continue training on the same data
    read_step = train_step(read_lib)
    for step in range(3, 6):
        expected_loss = write_step(model, optimizer, *data(step))
        loss = read_step(restored_model, restored_optimizer, *data(step))
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5, atol=1e-7)
    assert int(restored_optimizer.step.value) == int(optimizer.step.value) == 6
    for node, restored in ((model, restored_model), (optimizer, restored_optimizer)):
        expected = flat(write_lib, node)
        got = flat(read_lib, restored)
        for path, value in expected.items():
            np.testing.assert_allclose(got[path], value, rtol=1e-5, atol=1e-6, err_msg=str(path))
