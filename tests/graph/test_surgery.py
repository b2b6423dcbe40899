"""Model surgery: replacing sub-Modules by wrappers holding the old ones (LoRA style),
sharing Variables between Modules, appending layers; all of it survives
split/merge/clone/update."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nnx_graph as nnx


def uniform(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Random init seeded from ``key`` without compiling a JAX sampler per shape
    (eager jax.random calls compile once per shape; this keeps the suite fast)."""
    seed = int(jax.random.key_data(key)[-1])
    return jnp.asarray(np.random.default_rng(seed).random(shape, np.float32))


class Linear(nnx.Module):
    def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs):
        self.din, self.dout = din, dout
        self.w = nnx.Param(uniform(rngs.params(), (din, dout)))
        self.b = nnx.Param(jnp.zeros((dout,)))

    def __call__(self, x):
        return jnp.dot(x, self.w) + self.b


class LoraParam(nnx.Param):
    pass


class LoraLinear(nnx.Module):
    def __init__(self, linear: Linear, rank: int, rngs: nnx.Rngs):
        self.linear = linear
        self.A = LoraParam(uniform(rngs(), (linear.din, rank)) - 0.5)
        self.B = LoraParam(jnp.zeros((rank, linear.dout)))

    def __call__(self, x):
        return self.linear(x) + x @ self.A @ self.B


class MLP(nnx.Module):
    def __init__(self, din: int, hidden: int, dout: int, rngs: nnx.Rngs):
        self.linear1 = Linear(din, hidden, rngs=rngs)
        self.linear2 = Linear(hidden, dout, rngs=rngs)

    def __call__(self, x):
        return self.linear2(jax.nn.relu(self.linear1(x)))


def test_lora_wrapper_surgery():
    rngs = nnx.Rngs(0)
    model = MLP(2, 8, 5, rngs=rngs)
    x = jnp.ones((3, 2))
    y_before = model(x)
    old1 = model.linear1
    model.linear1 = LoraLinear(model.linear1, 4, rngs=rngs)
    model.linear2 = LoraLinear(model.linear2, 4, rngs=rngs)
    assert model.linear1.linear is old1
    assert jnp.allclose(model(x), y_before)  # B = 0: same function

    gdef, lora, rest = nnx.split(model, LoraParam, ...)
    assert list(lora.flat_state().paths) == [
        ("linear1", "A"),
        ("linear1", "B"),
        ("linear2", "A"),
        ("linear2", "B"),
    ]
    assert ("linear1", "linear", "w") in rest.flat_state().paths
    back = nnx.merge(gdef, lora, rest)
    assert type(back.linear1) is LoraLinear and type(back.linear1.linear) is Linear
    assert jnp.allclose(back(x), y_before)
    assert nnx.graphdef(nnx.clone(model)) == gdef

    # train only the LoRA params: update with new values flows into the model
    new_lora = jax.tree.map(lambda v: v + 0.1, lora)
    nnx.update(model, new_lora)
    assert not jnp.allclose(model(x), y_before)
    assert model.linear1.linear is old1  # the wrapped Module is untouched


def test_sharing_a_variable_between_two_modules():
    rngs = nnx.Rngs(0)
    model = MLP(4, 4, 4, rngs=rngs)
    model.linear2.w = model.linear1.w  # weight tying
    gdef, state = nnx.split(model)
    assert ("linear2", "w") not in state.flat_state().paths
    back = nnx.merge(gdef, state)
    assert back.linear2.w is back.linear1.w
    cloned = nnx.clone(model)
    assert cloned.linear2.w is cloned.linear1.w and cloned.linear1.w is not model.linear1.w
    # an update through either path reaches both
    nnx.update(model, {"linear1": {"w": jnp.zeros((4, 4))}})
    assert float(model.linear2.w.value.sum()) == 0.0


def test_sharing_a_module_between_two_parents():
    rngs = nnx.Rngs(0)
    encoder = Linear(2, 2, rngs=rngs)

    class TwoHeads(nnx.Module):
        def __init__(self):
            self.a = encoder
            self.b = [encoder, Linear(2, 2, rngs=rngs)]

    model = TwoHeads()
    back = nnx.merge(*nnx.split(model))
    assert back.a is back.b[0] and back.b[1] is not back.a


def test_surgery_replacing_a_variable_and_changing_types():
    model = MLP(2, 3, 2, rngs=nnx.Rngs(0))
    g1 = nnx.graphdef(model)
    model.linear1.b = nnx.BatchStat(model.linear1.b.value)  # replace a Variable
    g2 = nnx.graphdef(model)
    assert g1 != g2
    params = nnx.state(model, nnx.Param)
    assert ("linear1", "b") not in params.flat_state().paths
    model.linear2 = nnx.List([model.linear2])  # a Module replaced by a container
    back = nnx.merge(*nnx.split(model))
    assert type(back.linear2) is nnx.List and type(back.linear2[0]) is Linear


def test_surgery_then_old_state_does_not_fit():
    model = MLP(2, 3, 2, rngs=nnx.Rngs(0))
    gdef, state = nnx.split(model)
    model.linear1 = LoraLinear(model.linear1, 2, rngs=nnx.Rngs(1))
    new_gdef, _new_state = nnx.split(model)
    assert new_gdef != gdef
    try:
        nnx.merge(new_gdef, state)
    except nnx.GraphStructureError as error:
        message = str(error)
        assert "missing: state.linear1.A" in message
        assert "extra:   state.linear1.w" in message
    else:  # pragma: no cover
        raise AssertionError("merge with a stale State must fail")
