"""nnx-viz on the real layers (nnx_nn) and Optimizer (nnx_optim): the seed's MLP.

Skipped while those packages do not provide the pieces yet."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
import nnx_viz


def _require(module_name: str, *names: str) -> types.ModuleType:
    module = pytest.importorskip(module_name)
    missing = [name for name in names if not hasattr(module, name)]
    if missing:
        pytest.skip(f"{module_name} does not provide {', '.join(missing)} yet")
    return module


@pytest.fixture
def seed_mlp() -> nnx.Module:
    nn = _require("nnx_nn", "Linear", "Dropout", "BatchNorm", "gelu")

    class MLP(nnx.Module):
        def __init__(self, din: int, hidden: int, dout: int, *, rngs: nnx.Rngs) -> None:
            self.linear1 = nn.Linear(din, hidden, rngs=rngs)
            self.dropout = nn.Dropout(rate=0.1, rngs=rngs)
            self.bn = nn.BatchNorm(hidden, rngs=rngs)
            self.linear2 = nn.Linear(hidden, dout, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            x = nn.gelu(self.dropout(self.bn(self.linear1(x))))
            return self.linear2(x)

    return MLP(2, 32, 5, rngs=nnx.Rngs(0))


def test_display_of_the_seed_mlp(seed_mlp: nnx.Module) -> None:
    text = nnx_viz.render_text(seed_mlp)
    assert text.startswith("MLP(  # Param: 325 (1.3 KB), BatchStat: 64 (256 B)")
    for expected in (
        "  linear1=Linear(  # Param: 96 (384 B)",
        "  bn=BatchNorm(  # Param: 64 (256 B), BatchStat: 64 (256 B)",
        "  dropout=Dropout(",
        "kernel=Param(value=<jax.Array float32(2, 32) ",
        "mean=BatchStat(value=<jax.Array float32(32,) ",
    ):
        assert expected in text


def test_tabulate_of_the_seed_mlp_changes_nothing(seed_mlp: nnx.Module) -> None:
    seed_mlp.train()  # BatchNorm updates its statistics, Dropout draws keys
    before = jax.tree.map(np.asarray, nnx.state(seed_mlp, nnx.BatchStat).to_pure_dict())
    counts = [int(v.value) for _, v in nnx.iter_graph(seed_mlp) if isinstance(v, nnx.RngCount)]
    table = nnx_viz.tabulate(seed_mlp, jnp.ones((3, 2)))
    rows = [line.split("│")[1:3] for line in table.splitlines() if line.startswith("│")]
    # (a row's continuation lines, listing each module's own Variables, are blank here)
    rows = [row for row in rows if any(c.strip() for c in row)] + [["", ""]]
    assert [[c.strip() for c in row] for row in rows] == [
        ["", "MLP"],
        ["linear1", "Linear"],
        ["bn", "BatchNorm"],
        ["dropout", "Dropout"],
        ["linear2", "Linear"],
        ["", ""],  # the total row: "Total" stands next to the size columns
    ]
    assert "float32[3,32]" in table and "325 (1.3 KB)" in table
    after = jax.tree.map(np.asarray, nnx.state(seed_mlp, nnx.BatchStat).to_pure_dict())
    jax.tree.map(np.testing.assert_array_equal, after, before)
    assert [
        int(v.value) for _, v in nnx.iter_graph(seed_mlp) if isinstance(v, nnx.RngCount)
    ] == counts


def test_display_of_model_and_optimizer_marks_the_shared_model(seed_mlp: nnx.Module) -> None:
    optim = _require("nnx_optim", "Optimizer")
    optax = pytest.importorskip("optax")
    # the seed-era form (no wrt) holds the model; with wrt= it would not (Flax 0.12)
    optimizer = optim.Optimizer(seed_mlp, optax.adam(1e-3))
    text = nnx_viz.render_text((seed_mlp, optimizer))
    assert "Optimizer(" in text
    assert "model=MLP(...),  # shared: same object as [0]" in text
    alone = nnx_viz.render_text(optimizer)
    assert alone.startswith("Optimizer(  # Param: 325 (1.3 KB)")
    assert "  model=MLP(  # Param: 325 (1.3 KB)" in alone
