"""Text rendering: names, types, size comments, shared references, summaries."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import nnx_graph as nnx
import nnx_viz


class Sized(nnx.Module):
    def __init__(self) -> None:
        self.weights = nnx.Param(jnp.zeros((2, 617)))  # 1,234 float32 = 4,936 B
        self.stats = nnx.BatchStat(jnp.zeros(64))  # 64 float32 = 256 B


def test_size_comment_has_the_exact_format() -> None:
    first_line = nnx_viz.render_text(Sized()).splitlines()[0]
    assert first_line == "Sized(  # Param: 1,234 (4.9 KB), BatchStat: 64 (256 B)"


def test_mlp_shows_attribute_names_types_and_per_module_sizes(mlp) -> None:
    text = nnx_viz.render_text(mlp)
    lines = text.splitlines()
    assert lines[0] == "MLP(  # Param: 325 (1.3 KB), BatchStat: 64 (256 B), RngState: 2 (12 B)"
    assert "  bn=BatchNorm(  # Param: 64 (256 B), BatchStat: 64 (256 B)" in lines
    assert "  linear1=Linear(  # Param: 96 (384 B)" in lines
    assert "  linear2=Linear(  # Param: 165 (660 B)" in lines
    assert "  dropout=Dropout(  # RngState: 2 (12 B)" in lines
    assert "    rngs=RngStream(  # RngState: 2 (12 B)" in lines
    # Variable type, shape and dtype; static attributes with their values.
    assert "    w=Param(value=<jax.Array float32(2, 32) " in text
    assert "    mean=BatchStat(value=<jax.Array float32(32,) " in text
    assert "    din=2," in lines and "    rate=0.1," in lines
    assert text.endswith("\n)")


def test_shared_variable_points_at_its_first_path(mlp) -> None:
    mlp.tied = mlp.linear1.w
    lines = nnx_viz.render_text(mlp).splitlines()
    assert "  tied=Param(...),  # shared: same object as .linear1.w" in lines
    # Counted once: the Param total is unchanged.
    assert lines[0].startswith("MLP(  # Param: 325 (1.3 KB),")


def test_shared_module_is_drawn_once(layers) -> None:
    class Model(nnx.Module):
        def __init__(self) -> None:
            self.encoder = layers.Linear(2, 3, rngs=nnx.Rngs(0))
            self.head = nnx.List([self.encoder])

    text = nnx_viz.render_text(Model())
    assert text.count("Linear(") == 2  # the drawing and the reference
    assert "    Linear(...),  # shared: same object as .encoder" in text.splitlines()
    assert text.splitlines()[0] == "Model(  # Param: 9 (36 B)"


def test_cycle_points_at_the_root() -> None:
    class Node(nnx.Module):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.ones(2))

    root = Node()
    root.child = Node()
    root.child.parent = root
    lines = nnx_viz.render_text(root).splitlines()
    assert "    parent=Node(...),  # shared: same object as the root" in lines
    assert lines[0] == "Node(  # Param: 4 (16 B)"


def test_shared_reference_inside_a_short_container_still_shows_its_comment(mlp) -> None:
    text = nnx_viz.render_text([mlp.linear1, {"a": mlp.linear1.w}])
    assert "# shared: same object as [0].w" in text


def test_arrays_are_summarised_never_printed_in_full() -> None:
    class Big(nnx.Module):
        def __init__(self) -> None:
            self.kernel = nnx.Param(jnp.arange(10_000.0).reshape(100, 100))

    text = nnx_viz.render_text(Big())
    assert "float32(100, 100)" in text
    assert "Array([[" not in text and "9999." not in text
    assert len(text.splitlines()) == 3


def test_variable_metadata_is_shown() -> None:
    param = nnx.Param(jnp.zeros((2, 3)), sharding_names=("in", "out"))
    text = nnx_viz.render_text(param)
    assert text.startswith("Param(")
    assert "out_sharding=('in', 'out')" in text  # stored under Flax 0.12's key
    assert "hijax" not in text and "eager_sharding" not in text  # defaults hidden
    assert "float32(2, 3)" in text


def test_state_rendering(mlp) -> None:
    text = nnx_viz.render_text(nnx.state(mlp))
    lines = text.splitlines()
    assert lines[0] == "State({  # Param: 325 (1.3 KB), BatchStat: 64 (256 B), RngState: 2 (12 B)"
    assert "  'linear1': State({  # Param: 96 (384 B)" in lines
    assert "    'w': Param(value=<jax.Array float32(2, 32) " in text


def test_graphdef_rendering_shows_structure_without_values(mlp) -> None:
    mlp.tied = mlp.linear1.w
    text = nnx_viz.render_text(nnx.graphdef(mlp))
    assert text.startswith("GraphDef(\n  MLP(")
    assert "linear1=Linear(b=Param(), din=2, dout=32, w=Param())" in text
    assert "count=RngCount(tag='default')" in text
    assert "tied=Param(...),  # shared: same object as .linear1.w" in text
    assert "jax.Array" not in text and "#  Param" not in text


def test_rngs_rendering() -> None:
    lines = nnx_viz.render_text(nnx.Rngs(0, dropout=1)).splitlines()
    assert lines[0] == "Rngs(  # RngState: 4 (24 B)"
    assert "  default=RngStream(  # RngState: 2 (12 B)" in lines
    assert "  dropout=RngStream(  # RngState: 2 (12 B)" in lines
    assert "    key=RngKey(value=<jax.Array key<fry>()>, tag='dropout')," in lines


def test_plain_pytrees_holding_nnx_objects(mlp) -> None:
    text = nnx_viz.render_text({"model": mlp, "step": 3, "extra": (nnx.Param(jnp.ones(1)),)})
    assert "'model': MLP(  # Param: 325 (1.3 KB), BatchStat: 64 (256 B), RngState: 2 (12 B)" in text
    assert "'step': 3" in text
    assert "Param(value=<jax.Array([1.], dtype=float32)>)" in text


def test_display_prints_text_in_a_terminal(mlp, capsys: pytest.CaptureFixture[str]) -> None:
    nnx_viz.display(mlp, nnx.Rngs(1))
    out = capsys.readouterr().out
    assert out == nnx_viz.render_text(mlp) + "\n" + nnx_viz.render_text(nnx.Rngs(1)) + "\n"
    assert "IPython" not in out and "object at 0x" not in out


def test_visualize_falls_back_to_summaries_in_text(mlp) -> None:
    assert nnx_viz.render_text(mlp, arrays="visualize") == nnx_viz.render_text(mlp)


def test_unknown_array_mode_is_a_clear_error(mlp) -> None:
    with pytest.raises(ValueError, match=r"arrays='full' is not a known array mode.*'summary'"):
        nnx_viz.display(mlp, arrays="full")  # type: ignore[arg-type]


def test_display_leaves_the_object_unchanged(mlp) -> None:
    before = nnx_viz.render_text(mlp)
    assert nnx_viz.render_text(mlp) == before
    assert type(mlp.bn.mean) is nnx.BatchStat


def test_private_bookkeeping_attributes_are_hidden_unless_they_hold_state() -> None:
    class Cached(nnx.Module):
        def __init__(self) -> None:
            self._layout = frozenset({(0, 1)})  # bookkeeping: hidden
            self._buffer = nnx.Param(jnp.ones(2))  # state: shown and counted
            self.w = nnx.Param(jnp.ones(3))

    text = nnx_viz.render_text(Cached())
    assert "_layout" not in text
    assert "  _buffer=Param(value=" in text
    assert text.startswith("Cached(  # Param: 5 (20 B)")
