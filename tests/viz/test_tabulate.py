"""tabulate/summary: call order, shapes, sizes, totals, and no side effects."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
import nnx_viz


def _rows(table: str) -> list[list[str]]:
    """The table's text rows as lists of stripped cells (borders dropped)."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in table.splitlines()
        if line.startswith("│")
    ]


def test_mlp_table_in_call_order(mlp) -> None:
    rows = _rows(nnx_viz.tabulate(mlp, jnp.ones((3, 2))))
    assert rows[0] == ["path", "type", "inputs", "outputs", "Param", "BatchStat", "RngState"]
    assert rows[1:] == [
        ["(root)", "MLP", "float32[3,2]", "float32[3,5]", "325 (1.3 KB)", "64 (256 B)", "2 (12 B)"],
        ["linear1", "Linear", "float32[3,2]", "float32[3,32]", "96 (384 B)", "", ""],
        ["bn", "BatchNorm", "float32[3,32]", "float32[3,32]", "64 (256 B)", "64 (256 B)", ""],
        ["dropout", "Dropout", "float32[3,32]", "float32[3,32]", "", "", "2 (12 B)"],
        ["linear2", "Linear", "float32[3,32]", "float32[3,5]", "165 (660 B)", "", ""],
        ["Total", "", "", "", "325 (1.3 KB)", "64 (256 B)", "2 (12 B)"],
    ]


def _numpy(leaf: jax.Array) -> np.ndarray:
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def test_tabulate_leaves_the_model_unchanged(mlp) -> None:
    before = jax.tree.map(_numpy, nnx.state(mlp).to_pure_dict())
    graphdef_before = nnx.graphdef(mlp)
    nnx_viz.tabulate(mlp, jnp.ones((3, 2)))
    after = jax.tree.map(_numpy, nnx.state(mlp).to_pure_dict())
    # BatchNorm statistics (updated in training mode) and the dropout RNG count.
    np.testing.assert_array_equal(after["bn"]["mean"], before["bn"]["mean"])
    np.testing.assert_array_equal(after["bn"]["var"], before["bn"]["var"])
    assert int(after["dropout"]["rngs"]["count"]) == int(before["dropout"]["rngs"]["count"]) == 0
    jax.tree.map(np.testing.assert_array_equal, after, before)
    assert nnx.graphdef(mlp) == graphdef_before
    # A real call does change them, so the check above is meaningful.
    mlp(jnp.ones((3, 2)) * 3)
    assert int(mlp.dropout.rngs.count.value) == 1
    assert not np.array_equal(np.asarray(mlp.bn.mean.value), before["bn"]["mean"])


def test_attributes_set_during_the_call_stay_on_the_copy() -> None:
    class Sower(nnx.Module):
        def __call__(self, x: jax.Array) -> jax.Array:
            self.sow(nnx.Intermediate, "seen", x)
            return x * 2

    model = Sower()
    table = nnx_viz.tabulate(model, jnp.ones(4))
    assert "float32[4]" in table
    assert not hasattr(model, "seen")


def test_call_methods_are_restored_after_success_and_error(mlp, layers) -> None:
    originals = {cls: cls.__dict__.get("__call__") for cls in (layers.MLP, layers.Linear)}
    nnx_viz.tabulate(mlp, jnp.ones((3, 2)))
    with pytest.raises(TypeError) as error:
        nnx_viz.tabulate(mlp, jnp.ones((3, 7)))
    for cls, original in originals.items():
        assert cls.__dict__.get("__call__") is original
    notes = "\n".join(getattr(error.value, "__notes__", []))
    assert "nnx_viz.tabulate: raised in model.linear1 (Linear)" in notes
    assert "jax.eval_shape" in notes


def test_inherited_call_is_recorded_once_and_restored(layers) -> None:
    class Base(nnx.Module):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.ones(3))

        def __call__(self, x: jax.Array) -> jax.Array:
            return x * self.w

    class Child(Base):  # no __call__ of its own
        pass

    class Wrapper(Base):
        def __call__(self, x: jax.Array) -> jax.Array:
            return super().__call__(x) + 1  # the super() call is not a second row

    class Model(nnx.Module):
        def __init__(self) -> None:
            self.child, self.wrapper = Child(), Wrapper()

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.wrapper(self.child(x))

    rows = _rows(nnx_viz.tabulate(Model(), jnp.ones(3)))
    assert [row[:2] for row in rows[1:-1]] == [
        ["(root)", "Model"],
        ["child", "Child"],
        ["wrapper", "Wrapper"],
    ]
    assert "__call__" not in Child.__dict__
    assert Wrapper.__dict__["__call__"].__qualname__.endswith("Wrapper.__call__")


def test_shared_module_called_twice_has_two_rows_and_is_counted_once(layers) -> None:
    class Tied(nnx.Module):
        def __init__(self) -> None:
            self.first = layers.Linear(4, 4, rngs=nnx.Rngs(0))
            self.second = self.first

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.second(self.first(x))

    rows = _rows(nnx_viz.tabulate(Tied(), jnp.ones((2, 4))))
    assert [row[0] for row in rows[1:]] == ["(root)", "first", "first", "Total"]
    assert rows[-1][4] == "20 (80 B)"


def test_lists_kwargs_static_inputs_and_structured_outputs(layers) -> None:
    class Stack(nnx.Module):
        def __init__(self) -> None:
            self.blocks = [layers.Linear(3, 3, rngs=nnx.Rngs(i)) for i in range(2)]

        def __call__(self, x: jax.Array, *, scale: float = 1.0, mode: str = "a") -> tuple:
            for block in self.blocks:
                x = block(x) * scale
            return x, {"sum": x.sum()}

    rows = _rows(
        nnx_viz.tabulate(Stack(), jax.ShapeDtypeStruct((5, 3), jnp.float32), scale=0.5, mode="b")
    )
    assert rows[1][:4] == [
        "(root)",
        "Stack",
        "float32[5,3], scale=0.5, mode='b'",
        "(float32[5,3], {'sum': float32[]})",
    ]
    assert [row[0] for row in rows[2:-1]] == ["blocks[0]", "blocks[1]"]


def test_depth_limits_the_rows(mlp) -> None:
    rows = _rows(nnx_viz.tabulate(mlp, jnp.ones((3, 2)), depth=0))
    assert [row[0] for row in rows] == ["path", "(root)", "Total"]
    with pytest.raises(ValueError, match="depth=-1 must be None or >= 0"):
        nnx_viz.tabulate(mlp, jnp.ones((3, 2)), depth=-1)


def test_not_a_module_is_a_clear_error() -> None:
    with pytest.raises(
        TypeError,
        match=r"expected an nnx Module as its first argument, found "
        r"ArrayImpl\. Fix: pass the model first",
    ):
        nnx_viz.tabulate(jnp.ones(3), jnp.ones(3))  # type: ignore[arg-type]


def test_summary_prints_the_table(mlp, capsys: pytest.CaptureFixture[str]) -> None:
    nnx_viz.summary(mlp, jnp.ones((3, 2)))
    assert capsys.readouterr().out == nnx_viz.tabulate(mlp, jnp.ones((3, 2))) + "\n"
