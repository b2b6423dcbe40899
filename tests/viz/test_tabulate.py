"""tabulate/summary: call order, shapes, sizes, totals, and no side effects."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
import nnx_viz


def _rows(table: str) -> list[list[str]]:
    """The table's rows as lists of cells (borders dropped): a cell spanning several
    text lines has them joined with newlines, each stripped."""
    rows: list[list[str]] = []
    lines: list[list[str]] = []
    for line in [*table.splitlines(), "└"]:
        if line.startswith(("│", "┃")):
            lines.append([cell.strip() for cell in line[1:-1].replace("┃", "│").split("│")])
        elif lines:
            rows.append(["\n".join(parts).strip("\n") for parts in zip(*lines)])
            lines = []
    return rows


def _total(cell: str) -> str:
    """The subtree total of a Variable column's cell (its last line)."""
    return cell.split("\n")[-1]


def test_mlp_table_in_call_order(mlp) -> None:
    rows = _rows(nnx_viz.tabulate(mlp, jnp.ones((3, 2))))
    # Variable columns by type name, as Flax orders them
    assert rows[0] == ["path", "type", "inputs", "outputs", "BatchStat", "Param", "RngState"]
    assert [row[:4] + [_total(c) for c in row[4:]] for row in rows[1:]] == [
        ["", "MLP", "float32[3,2]", "float32[3,5]", "64 (256 B)", "325 (1.3 KB)", "2 (12 B)"],
        ["linear1", "Linear", "float32[3,2]", "float32[3,32]", "", "96 (384 B)", ""],
        ["bn", "BatchNorm", "float32[3,32]", "float32[3,32]", "64 (256 B)", "64 (256 B)", ""],
        ["dropout", "Dropout", "float32[3,32]", "float32[3,32]", "", "", "2 (12 B)"],
        ["linear2", "Linear", "float32[3,32]", "float32[3,5]", "", "165 (660 B)", ""],
        ["", "", "", "Total", "64 (256 B)", "325 (1.3 KB)", "2 (12 B)"],
    ]
    # a module's own Variables are listed above its subtree total
    assert rows[2][5] == "b: float32[32]\nw: float32[2,32]\n\n96 (384 B)"
    assert rows[3][4] == "mean: float32[32]\nvar: float32[32]\n\n64 (256 B)"
    assert rows[1][5] == "325 (1.3 KB)"  # the root holds no Variable itself


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
        ["", "Model"],
        ["child", "Child"],
        ["wrapper", "Wrapper"],
    ]
    assert "__call__" not in Child.__dict__
    assert Wrapper.__dict__["__call__"].__qualname__.endswith("Wrapper.__call__")


def test_shared_module_called_twice_alike_has_one_row_and_is_counted_once(layers) -> None:
    class Tied(nnx.Module):
        def __init__(self) -> None:
            self.first = layers.Linear(4, 4, rngs=nnx.Rngs(0))
            self.second = self.first

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.second(self.first(x))

    rows = _rows(nnx_viz.tabulate(Tied(), jnp.ones((2, 4))))
    # the second call has the same input shapes: it is not listed again
    assert [row[0] for row in rows[1:]] == ["", "first", ""]
    assert rows[-1][3] == "Total"
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
    # one line an entry, as Flax writes them: the arguments, then the keywords
    assert rows[1][:4] == [
        "",
        "Stack",
        "- float32[5,3]\nmode: b\nscale: 0.5",
        "- float32[5,3]\n- sum: float32[]",
    ]
    assert [row[0] for row in rows[2:-1]] == ["blocks/0", "blocks/1"]


def test_depth_limits_the_rows(mlp) -> None:
    rows = _rows(nnx_viz.tabulate(mlp, jnp.ones((3, 2)), depth=0))
    assert [row[0] for row in rows] == ["path", "", ""]
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


def test_flops_columns_come_from_xla_cost_analysis(layers) -> None:
    class Two(nnx.Module):
        def __init__(self) -> None:
            self.up = layers.Linear(2, 8, rngs=nnx.Rngs(0))
            self.down = layers.Linear(8, 3, rngs=nnx.Rngs(1))

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.down(jax.nn.relu(self.up(x)))

    rows = _rows(nnx_viz.tabulate(Two(), jnp.ones((4, 2)), compute_flops=True))
    assert rows[0][:5] == ["path", "type", "inputs", "outputs", "flops"]
    flops = {row[0]: int(row[4].replace(",", "")) for row in rows[1:-1]}
    # A (m, k) @ (k, n) product costs 2*m*k*n; the bias add m*n more.
    assert flops["up"] >= 2 * 4 * 2 * 8
    assert flops["down"] >= 2 * 4 * 8 * 3
    assert flops["up"] <= 2 * 4 * 2 * 8 + 4 * 8 and flops["down"] <= 2 * 4 * 8 * 3 + 4 * 3
    assert flops[""] >= flops["up"] + flops["down"]

    rows = _rows(
        nnx_viz.tabulate(Two(), jnp.ones((4, 2)), compute_flops=True, compute_vjp_flops=True)
    )
    assert rows[0][4:6] == ["flops", "vjp_flops"]
    vjp = {row[0]: int(row[5].replace(",", "")) for row in rows[1:-1]}
    # The backward pass of a matmul needs at least one more product of the same size.
    assert vjp["up"] >= 2 * 4 * 2 * 8 and vjp["down"] > 0
    assert rows[-1][5] == "Total"


def test_method_row_filter_and_rich_keywords(layers) -> None:
    class Encoder(nnx.Module):
        def __init__(self) -> None:
            self.proj = layers.Linear(3, 2, rngs=nnx.Rngs(0))
            self.head = layers.Linear(2, 1, rngs=nnx.Rngs(1))

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.head(self.encode(x))

        def encode(self, x: jax.Array) -> jax.Array:
            return self.proj(x)

    model = Encoder()
    rows = _rows(nnx_viz.tabulate(model, jnp.ones((5, 3)), method="encode"))
    # a row of another method than __call__ ends with the method's name
    assert [row[:4] for row in rows[1:-1]] == [
        ["encode", "Encoder", "float32[5,3]", "float32[5,2]"],
        ["proj", "Linear", "float32[5,3]", "float32[5,2]"],
    ]
    assert "__call__" not in model.__dict__ and "encode" not in model.__dict__

    seen: list[nnx_viz.CallInfo] = []

    def only_root(row: nnx_viz.CallInfo) -> bool:
        seen.append(row)
        return row.path == ()

    rows = _rows(nnx_viz.tabulate(model, jnp.ones((5, 3)), row_filter=only_root))
    assert [row[0] for row in rows[1:-1]] == [""]
    assert [(r.call_order, r.path, r.type.__name__) for r in seen] == [
        (0, (), "Encoder"),
        (1, ("encode",), "Encoder"),  # methods called inside get rows too
        (2, ("proj",), "Linear"),
        (3, ("head",), "Linear"),
    ]
    assert seen[1].method == "encode" and seen[2].outputs.shape == (5, 2)

    table = nnx_viz.tabulate(
        model,
        jnp.ones((5, 3)),
        table_kwargs={"title": "Encoder layers"},
        column_kwargs={"justify": "center"},
        console_kwargs={"force_terminal": True, "width": 200},
    )
    assert table.splitlines()[0].strip().startswith(("Encoder layers", "\x1b"))
    assert "Encoder layers" in table and "\x1b[" in table  # colours when forced
    plain = nnx_viz.tabulate(model, jnp.ones((5, 3)))
    assert "\x1b[" not in plain and "Encoder Summary" in plain
    assert "Total Parameters: 11 (44 B)" in plain

    with pytest.raises(AttributeError, match="Encoder has no method 'decode'"):
        nnx_viz.tabulate(model, jnp.ones((5, 3)), method="decode")


def test_default_row_filter_hides_rng_streams() -> None:
    row = nnx_viz.CallInfo(0, 0, nnx.RngStream, ("rngs", "default"), "")
    assert nnx_viz.filter_rng_streams(row) is False
    row = nnx_viz.CallInfo(0, 0, nnx.Module, (), "")
    assert nnx_viz.filter_rng_streams(row) is True


def test_submodules_called_through_transforms_are_listed(layers) -> None:
    class Block(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.linear = layers.Linear(3, 3, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            return jax.nn.relu(self.linear(x))

    class Stack(nnx.Module):
        def __init__(self) -> None:
            @nnx.vmap(in_axes=0)
            def make(key: jax.Array) -> Block:
                return Block(nnx.Rngs(key))

            self.blocks = make(jax.random.split(jax.random.key(0), 4))
            self.head = layers.Linear(3, 1, rngs=nnx.Rngs(1))

        def __call__(self, x: jax.Array) -> jax.Array:
            @nnx.scan(in_axes=(0, nnx.Carry), out_axes=nnx.Carry)
            def body(block: Block, x: jax.Array) -> jax.Array:
                return block(x)

            return self.head(body(self.blocks, x))

    table = nnx_viz.tabulate(Stack(), jnp.ones((2, 3)), compute_flops=True)
    rows = _rows(table)
    assert [row[:4] for row in rows[1:-1]] == [
        ["", "Stack", "float32[2,3]", "float32[2,1]"],
        # one scan step: per-step shapes, the stacked Variables' sizes, no FLOPs
        ["blocks", "Block", "float32[2,3]", "float32[2,3]"],
        ["blocks/linear", "Linear", "float32[2,3]", "float32[2,3]"],
        ["head", "Linear", "float32[2,3]", "float32[2,1]"],
    ]
    assert [row[4] for row in rows[2:4]] == ["", ""]
    assert _total(rows[2][5]) == _total(rows[3][5]) == "48 (192 B)"  # 4 stacked (3x3 + 3)
    assert int(rows[4][4]) > 0


def test_remat_copies_are_listed_with_their_flops(layers) -> None:
    class Two(nnx.Module):
        def __init__(self) -> None:
            self.a = layers.Linear(3, 4, rngs=nnx.Rngs(0))
            self.b = layers.Linear(4, 2, rngs=nnx.Rngs(1))

        def __call__(self, x: jax.Array) -> jax.Array:
            run = nnx.remat(lambda module, x: module(x))
            return run(self.b, run(self.a, x))

    rows = _rows(nnx_viz.tabulate(Two(), jnp.ones((5, 3)), compute_flops=True))
    # Two Linear copies: each is placed by its Variable shapes.
    assert [row[:4] for row in rows[2:-1]] == [
        ["a", "Linear", "float32[5,3]", "float32[5,4]"],
        ["b", "Linear", "float32[5,4]", "float32[5,2]"],
    ]
    assert int(rows[2][4]) >= 2 * 5 * 3 * 4 and int(rows[3][4]) >= 2 * 5 * 4 * 2


def test_rows_for_called_methods_show_their_arguments(layers) -> None:
    class Block(nnx.Module):
        def __init__(self) -> None:
            self.linear = layers.Linear(4, 4, rngs=nnx.Rngs(0))

        def forward(self, x: jax.Array, extra: object) -> jax.Array:
            return self.linear(x)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.forward(x, {}) + self.forward(x, None)

        @staticmethod
        def helper(x: jax.Array) -> jax.Array:  # static: called plainly, never a row
            return x

    class Model(nnx.Module):
        def __init__(self) -> None:
            self.block1 = Block()

        def __call__(self, x: jax.Array) -> jax.Array:
            return Block.helper(self.block1(x))

    table = nnx_viz.tabulate(Model(), jnp.ones((1, 4)))
    rows = _rows(table)
    paths = [row[0] for row in rows[1:-1]]
    assert paths == [
        "",
        "block1",
        "block1/forward",
        "block1/linear",
        "block1/forward",  # other arguments: a row; its linear call repeats one listed
    ]
    forward_inputs = [row[2] for row in rows[1:-1] if row[0] == "block1/forward"]
    assert "{}" in forward_inputs[0] and "None" in forward_inputs[1]
    # the methods are restored afterwards
    assert "forward" not in vars(Model()) and Block.forward.__name__ == "forward"
    assert isinstance(vars(Block)["helper"], staticmethod)


def test_repeated_call_with_other_shapes_gets_its_own_row(layers) -> None:
    class Twice(nnx.Module):
        def __init__(self) -> None:
            self.linear = layers.Linear(4, 4, rngs=nnx.Rngs(0))

        def __call__(self, x: jax.Array) -> jax.Array:
            a = self.linear(x)
            b = self.linear(x)  # same shapes: no new row
            return self.linear(jnp.concatenate([a, b]))  # other shapes: a row

    rows = _rows(nnx_viz.tabulate(Twice(), jnp.ones((2, 4))))
    assert [row[:3] for row in rows[1:-1]] == [
        ["", "Twice", "float32[2,4]"],
        ["linear", "Linear", "float32[2,4]"],
        ["linear", "Linear", "float32[4,4]"],
    ]


def test_cells_list_inputs_outputs_and_own_variables_one_per_line() -> None:
    class Tag:
        def __repr__(self) -> str:
            return "<tag>"

    class Counted(nnx.Variable):
        pass

    class Model(nnx.Module):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.ones((4, 8)))
            self.w.set_metadata("owner", Tag())
            self.steps = Counted(jnp.zeros((), jnp.int32), note="per call")

        def __call__(self, x: jax.Array, extra: dict, *, flag: bool = False) -> tuple:
            return x @ self.w, {"first": x[0]}, None

    table = nnx_viz.tabulate(Model(), jnp.ones((2, 4)), {"k": jnp.ones(3)}, flag=True)
    rows = _rows(table)
    assert rows[0] == ["path", "type", "inputs", "outputs", "Counted", "Param"]
    root = rows[1]
    assert root[2] == "- float32[2,4]\n- k: float32[3]\nflag: True"
    assert root[3] == "- float32[2,8]\n- first: float32[4]\n- None"
    # Variables with metadata beyond hijax/ref/eager_sharding show it, sorted
    # (cells are stripped line by line here; the table indents the entries)
    assert root[4] == "steps:\nnote: per call\nvalue: int32[]\n\n1 (4 B)"
    assert root[5] == "w:\nowner: <tag>\nvalue: float32[4,8]\n\n32 (128 B)"
    assert "│   note: per call " in table and "│   owner: <tag> " in table
    lines = table.splitlines()
    assert lines[-2] == "" and lines[-1].strip() == "Total Parameters: 33 (132 B)"


def test_flops_are_counted_in_the_one_traced_run(layers) -> None:
    runs: list[str] = []

    class Block(nnx.Module):
        def __init__(self, seed: int) -> None:
            self.linear = layers.Linear(2, 2, rngs=nnx.Rngs(seed))

        def __call__(self, x: jax.Array) -> jax.Array:
            runs.append("block")
            return self.linear(x)

    class Model(nnx.Module):
        def __init__(self) -> None:
            self.blocks = [Block(i) for i in range(4)]

        def __call__(self, x: jax.Array) -> jax.Array:
            runs.append("model")
            for block in self.blocks:
                x = block(x)
            return x

    rows = _rows(nnx_viz.tabulate(Model(), jnp.ones((3, 2)), compute_flops=True))
    # each body ran once although every row has its own FLOP count
    assert runs == ["model"] + ["block"] * 4
    flops = {row[0]: int(row[4].replace(",", "")) for row in rows[1:-1]}
    assert [p for p in flops] == [
        "",
        "blocks/0",
        "blocks/0/linear",
        "blocks/1",
        "blocks/1/linear",
        "blocks/2",
        "blocks/2/linear",
        "blocks/3",
        "blocks/3/linear",
    ]
    assert flops["blocks/0"] == flops["blocks/0/linear"] >= 2 * 3 * 2 * 2
    assert flops[""] >= 4 * flops["blocks/0"]


def test_a_call_that_cannot_be_jitted_is_listed_without_flops() -> None:
    class Named(nnx.Module):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.ones(2))

        def __call__(self, x: jax.Array) -> tuple:
            return x * self.w, "label"  # a string output: not a jit output

    rows = _rows(nnx_viz.tabulate(Named(), jnp.ones(2), compute_flops=True))
    assert rows[1][:5] == ["", "Named", "float32[2]", "- float32[2]\n- label", ""]
