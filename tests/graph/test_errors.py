"""Bad input: every error names the object path, what was expected, what was found,
and the fix; nothing the user had is modified when one is raised."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
from nnx_graph._errors import format_path


class Block(nnx.Module):
    def __init__(self):
        self.kernel = nnx.Param(jnp.ones((2, 2)))
        self.count = nnx.BatchStat(jnp.array(0))

    def __call__(self, x):
        self.count += 1
        return x @ self.kernel


class Model(nnx.Module):
    def __init__(self):
        self.blocks = [Block(), Block(), Block()]
        self.head = Block()


def snapshot(model) -> list:
    """Identity of every Variable and value: detects any modification."""
    return [
        (path, v, v.raw_value) for path, v in nnx.iter_graph(model) if isinstance(v, nnx.Variable)
    ]


def test_error_types():
    assert issubclass(nnx.GraphStructureError, ValueError)
    assert issubclass(nnx.FilterError, TypeError)
    assert issubclass(nnx.RngStreamError, AttributeError)
    assert issubclass(nnx.RngStreamError, KeyError)
    assert issubclass(nnx.TraceLeakError, RuntimeError)
    assert str(nnx.RngStreamError("plain message")) == "plain message"


def test_format_path():
    assert format_path(("blocks", 2, "linear", "kernel")) == "model.blocks[2].linear.kernel"
    assert format_path(("a b", "0"), "state") == "state['a b']['0']"
    assert format_path(()) == "model"


# ----------------------------------------------------------------- merge / update
def test_merge_names_every_missing_and_extra_path():
    model = Model()
    gdef, state = nnx.split(model)
    flat = dict(state.flat_state())
    del flat[("blocks", 2, "kernel")]
    del flat[("head", "count")]
    flat[("blocks", 5, "kernel")] = nnx.Param(jnp.ones(1))
    flat[("extra",)] = jnp.ones(1)
    bad = nnx.State.from_flat_path(flat)
    with pytest.raises(nnx.GraphStructureError) as info:
        nnx.merge(gdef, bad)
    message = str(info.value)
    assert message.startswith("nnx.merge: the State's paths do not match the object structure")
    assert "expected the 8 leaf path(s) of the GraphDef; found 2 missing, 2 extra" in message
    assert "missing: state.blocks[2].kernel" in message
    assert "missing: state.head.count" in message
    assert "extra:   state.blocks[5].kernel" in message
    assert "extra:   state.extra" in message
    assert "Fix: pass the States produced by nnx.split" in message


def test_merge_with_only_part_of_the_states():
    gdef, params, _rest = nnx.split(Model(), nnx.Param, ...)
    with pytest.raises(nnx.GraphStructureError) as info:
        nnx.merge(gdef, params)
    message = str(info.value)
    for i in range(3):
        assert f"missing: state.blocks[{i}].count" in message
    assert "nnx.merge(graphdef, params, rest)" in message


def test_merge_with_many_mismatches_is_summarised():
    class Wide(nnx.Module):
        def __init__(self, n):
            self.items = [nnx.Param(jnp.ones(1)) for _ in range(n)]

    gdef = nnx.graphdef(Wide(30))
    with pytest.raises(nnx.GraphStructureError, match=r"\.\.\. and 10 more"):
        nnx.merge(gdef, nnx.State({}))


def test_update_names_extra_paths_and_changes_nothing():
    model = Model()
    before = snapshot(model)
    bad = {
        # head.extra does not exist (nothing to add bias to); blocks has 3 entries, so
        # index 9 cannot be appended: neither path can be placed
        "head": {"kernel": jnp.zeros((2, 2)), "extra": {"bias": jnp.zeros(2)}},
        "blocks": {0: {"count": jnp.array(5)}, 9: {"kernel": jnp.zeros((2, 2))}},
    }
    with pytest.raises(nnx.GraphStructureError) as info:
        nnx.update(model, bad)
    message = str(info.value)
    assert message.startswith("nnx.update: the State's paths do not match")
    assert "extra:   state.head.extra.bias" in message
    assert "extra:   state.blocks[9].kernel" in message
    assert "head.kernel" not in message
    assert "Fix: pass a State taken from this object" in message
    assert "Nothing was updated" in message
    after = snapshot(model)
    assert [(p, v) for p, v, _ in before] == [(p, v) for p, v, _ in after]
    assert all(a is b for (_, _, a), (_, _, b) in zip(before, after))


def test_update_with_a_subtree_where_a_leaf_is_expected():
    model = Model()
    with pytest.raises(nnx.GraphStructureError, match=r"extra:   state\.head\.kernel\.inner"):
        nnx.update(model, {"head": {"kernel": {"inner": jnp.ones(1)}}})


def test_merge_and_update_reject_non_states():
    gdef = nnx.graphdef(Model())
    with pytest.raises(TypeError, match=r"Expected a State.*found tuple.*Fix"):
        nnx.merge(gdef, (1, 2))
    # a list is a list of leaves (as Flax): the count must match
    with pytest.raises(ValueError, match=r"expected 8 leaves for this GraphDef, found 2"):
        nnx.merge(gdef, [1, 2])
    with pytest.raises(TypeError, match=r"Expected a State.*found int.*Fix"):
        nnx.update(Model(), 3)


# ----------------------------------------------------------------- rngs
def test_unknown_rng_stream_names_stream_available_and_fix():
    class Dropout(nnx.Module):
        def __init__(self, rngs):
            self.rngs = rngs

        def __call__(self):
            return self.rngs.dropout()

    layer = Dropout(nnx.Rngs(params=0))
    before = snapshot(layer)
    with pytest.raises(nnx.RngStreamError) as info:
        layer()
    message = str(info.value)
    assert "No RngStream named 'dropout' found in Rngs" in message  # what was asked for
    assert "no 'default' stream to fall back on" in message  # what was expected
    assert "Available streams: ['params']" in message  # what was found
    assert "Fix: create it, e.g. nnx.Rngs(dropout=0), or give a default seed" in message
    assert all(a[2] is b[2] for a, b in zip(before, snapshot(layer)))


# ----------------------------------------------------------------- filters
def test_invalid_filter_names_what_was_found_and_fix():
    model = Model()
    before = snapshot(model)
    for call in (
        lambda: nnx.state(model, 3),
        lambda: nnx.split(model, nnx.Param, 3.0, ...),
        lambda: nnx.pop(model, 3),
        lambda: model.set_attributes(3, deterministic=True, raise_if_not_found=False),
    ):
        with pytest.raises(nnx.FilterError) as info:
            call()
        message = str(info.value)
        assert "Expected a filter (a Variable type such as nnx.Param" in message
        assert "found 3" in message and "Fix: pass e.g. nnx.Param" in message
    assert [(p, v) for p, v, _ in before] == [(p, v) for p, v, _ in snapshot(model)]


# ----------------------------------------------------------------- tracer leaks
def test_mutating_a_captured_variable_inside_jax_jit_raises_and_changes_nothing():
    model = Model()
    with pytest.raises(nnx.TraceContextError) as info:
        jax.jit(lambda x: model.head(x))(jnp.ones((1, 2)))
    message = str(info.value)
    assert "Cannot mutate BatchStat from a different trace level" in message  # Flax's phrase
    assert "Found: a Variable the function closes over" in message
    assert "Fix: pass the Module or Variable as an argument" in message
    assert int(model.head.count.value) == 0  # the write never happened


def leak(model: Model) -> None:
    """Force a tracer onto the model past the trace check (what the check prevents;
    the read-side guard below still catches it)."""

    def f(x):
        model.head.count.set_raw_value(x, _unsafe_bypass_check=True)
        return x

    jax.jit(f)(jnp.array(1))


def test_leaked_tracer_caught_on_value_access():
    model = Model()
    leak(model)
    for access in (
        lambda: model.head.count.value,
        lambda: model.head.count[...],
        lambda: model.head.count + 1,
        lambda: jnp.asarray(model.head.count),
        lambda: int(model.head.count),
    ):
        with pytest.raises(nnx.TraceLeakError) as info:
            access()
        message = str(info.value)
        assert "BatchStat(shape=(), dtype=int32)" in message  # names the Variable
        assert "holds a JAX tracer from a trace that has finished" in message
        assert "Expected: a concrete array outside of transforms" in message
        assert "Fix: pass the object into the transform as an argument" in message
        assert "nnx.state(model)" in message
    # Variables that were not touched are fine
    assert model.head.kernel.value.shape == (2, 2)


@pytest.mark.parametrize("api", [nnx.split, nnx.state, nnx.graphdef, nnx.clone])
def test_leaked_tracer_caught_on_split_with_its_path(api):
    model = Model()
    leak(model)
    with pytest.raises(nnx.TraceLeakError) as info:
        api(model)
    message = str(info.value)
    assert "model.head.count (BatchStat)" in message
    assert "holds a JAX tracer from a trace that has finished" in message
    assert "Expected: a concrete array" in message and "Fix:" in message


def test_writes_from_grad_vmap_and_nested_jit_are_refused():
    model = Model()

    def store(x):
        model.head.kernel.value = x
        return x.sum()

    with pytest.raises(nnx.TraceContextError, match="Cannot mutate Param"):
        jax.grad(store)(jnp.ones((2, 2)))
    with pytest.raises(nnx.TraceContextError, match="Cannot mutate Param"):
        jax.vmap(lambda x: model.blocks[0].kernel.set_value(x))(jnp.ones((3, 2, 2)))

    def outer(x):
        jax.jit(lambda y: model.blocks[1].count.set_value(y))(x)
        return x

    with pytest.raises(nnx.TraceContextError, match="Cannot mutate BatchStat"):
        jax.jit(outer)(jnp.array(1))
    # nothing was written: every Variable still holds a concrete array
    leaves = jax.tree.leaves(nnx.state(model))
    assert leaves and all(
        isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer) for leaf in leaves
    )


def test_variables_made_inside_a_trace_may_change_there():
    def f(x):
        model = Model()  # created in this trace: its Variables may change here
        model.head.count.value = x
        out = model.head.count.value + 1
        model.head.count.value = np.zeros((), np.int32)
        return out

    assert int(jax.jit(f)(jnp.array(1))) == 2


def test_merge_error_leaves_inputs_untouched():
    model = Model()
    gdef, state = nnx.split(model)
    before = snapshot(model)
    broken = nnx.State.from_flat_path(list(state.flat_state())[1:])
    with pytest.raises(nnx.GraphStructureError):
        nnx.merge(gdef, broken)
    assert len(state.flat_state()) == 8
    assert all(a[2] is b[2] for a, b in zip(before, snapshot(model)))
