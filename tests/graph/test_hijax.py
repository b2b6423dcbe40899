"""hijax Variables: ``Variable(x, hijax=True)`` holds its value in a JAX hi-type box
that plain JAX transforms thread and update in place."""

from __future__ import annotations

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nnx
from nnx.variablelib import HijaxVariable
from nnx_graph._hijax import hijax_supported

pytestmark = pytest.mark.skipif(
    not hijax_supported(),
    reason=f"jax {jax.__version__} has no jax._src.hijax.Box (hijax Variables need it)",
)


def test_construct_read_write_and_metadata() -> None:
    v = nnx.Param(jnp.array([1.0, 2.0]), tag="w", hijax=True)
    assert type(v) is nnx.Param and v.hijax is True and v.ref is False
    assert isinstance(v, HijaxVariable) and not isinstance(nnx.Param(1.0), HijaxVariable)
    assert v.tag == "w" and v.get_metadata("hijax") is True
    np.testing.assert_allclose(v[...], [1.0, 2.0])
    np.testing.assert_allclose(v.value, [1.0, 2.0])
    v[...] = jnp.array([3.0, 4.0])
    np.testing.assert_allclose(v.get_value(), [3.0, 4.0])
    v.value = jnp.array([5.0, 6.0])
    v.set_value(v[...] + 1)
    v[0] = 0.0
    np.testing.assert_allclose(v[...], [0.0, 7.0])
    v += 1  # in-place operator of the seed-era API
    np.testing.assert_allclose(v[...], [1.0, 8.0])
    assert v.shape == (2,) and v.dtype == jnp.float32 and v.ndim == 1
    assert "hijax=True" in repr(v) and "tag='w'" in repr(v)
    np.testing.assert_allclose(v.get_raw_value(), [1.0, 8.0])  # the box's content


def test_plain_jax_jit_updates_are_seen_outside() -> None:
    v = nnx.Param(jnp.array(1.0), tag="t", hijax=True)

    @jax.jit
    def step(v: nnx.Param, a: jax.Array) -> jax.Array:
        assert isinstance(v, nnx.Param) and v.tag == "t" and v.hijax
        v[...] = a
        v[...] += 5.0
        return v + 2.0

    out = step(v, jnp.array(10.0))
    assert float(v[...]) == 15.0 and float(out) == 17.0
    step(v, jnp.array(1.0))
    assert float(v[...]) == 6.0


def test_container_values_and_changing_structure_under_jit() -> None:
    v = nnx.Variable({"a": jnp.array(0), "b": jnp.array(2)}, hijax=True)
    metrics = nnx.Variable({}, hijax=True)

    @jax.jit
    def f(v: nnx.Variable, metrics: nnx.Variable) -> None:
        v["a"] += 1
        v["b"] *= 2
        metrics["total"] = v["a"] + v["b"]

    f(v, metrics)
    assert int(v["a"]) == 1 and int(v["b"]) == 4
    assert "total" in metrics and int(metrics["total"]) == 5


def test_split_state_merge_share_the_box() -> None:
    v = nnx.Param(jnp.array(1.0), hijax=True)
    d = nnx.Dict(p=v)
    graphdef, state = nnx.split(d)
    assert state["p"].hijax
    state["p"][...] = 4.0  # the state's Variable writes into the same box
    assert float(v[...]) == 4.0
    merged = nnx.merge(graphdef, state)
    assert merged.p.hijax and float(merged.p[...]) == 4.0
    assert float(nnx.state(d)["p"][...]) == 4.0


def test_nnx_jit_updates_and_returns_hijax_variables() -> None:
    with nnx.var_defaults(hijax=True):
        model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    assert model.kernel.hijax and model.bias.hijax

    @nnx.jit
    def bump(m: nnx.Linear) -> jax.Array:
        m.bias[...] += 1.0
        return m.bias[...].sum()

    assert float(bump(model)) == 3.0 and float(bump(model)) == 6.0
    np.testing.assert_allclose(model.bias[...], [2.0, 2.0, 2.0])
    assert nnx.jit(lambda m: m)(model) is model  # an input returned: the same object
    with nnx.var_defaults(hijax=True):
        made = nnx.jit(lambda: nnx.Linear(2, 3, rngs=nnx.Rngs(0)))()  # made inside
    assert made.kernel.hijax and made.kernel.shape == (2, 3)
    made.bias[...] = jnp.ones(3)
    np.testing.assert_allclose(made.bias[...], np.ones(3))


def test_var_defaults_and_explicit_flag() -> None:
    with nnx.var_defaults(hijax=True):
        assert nnx.Variable(1).hijax is True
        assert nnx.Variable(1, hijax=False).hijax is False
        rngs = nnx.Rngs(0)
        assert rngs.default.key.hijax and rngs.default.count.hijax
    assert nnx.Variable(1).hijax is False

    @jax.jit
    def draw(rngs: nnx.Rngs) -> jax.Array:
        return rngs()

    k1, k2 = draw(rngs), draw(rngs)  # the stream's count advances through the box
    assert not bool(jnp.all(jax.random.key_data(k1) == jax.random.key_data(k2)))
    assert int(rngs.default.count[...]) == 2


def test_vars_as_to_and_from_hijax() -> None:
    class Foo(nnx.Pytree):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.ones((2, 3)))
            self.count = nnx.Variable(jnp.array(0))

    foo = Foo()
    hi = nnx.vars_as(foo, hijax=True)
    assert hi.w.hijax and hi.count.hijax and not foo.w.hijax

    @jax.jit
    def forward(foo: Foo, x: jax.Array) -> jax.Array:
        foo.count[...] += 1
        return x @ foo.w

    assert forward(hi, jnp.ones((1, 2))).shape == (1, 3)
    assert int(hi.count[...]) == 1 and int(foo.count[...]) == 0  # a converted copy
    lo = nnx.with_vars(hi, hijax=False)
    assert not lo.count.hijax and int(lo.count[...]) == 1
    # a Variable on its own, and a nested State
    single = nnx.vars_as(nnx.Param(jnp.array(2.0)), hijax=True)
    assert isinstance(single, nnx.Param) and single.hijax and float(single[...]) == 2.0
    state = nnx.State({"a": {"b": nnx.Param(jnp.ones(2), hijax=True)}})
    plain = nnx.vars_as(state, hijax=False)
    assert not plain["a"]["b"].hijax
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(plain))


@pytest.mark.parametrize("hijax", [True, False])
@pytest.mark.parametrize("ref", [True, False])
def test_flag_combinations(hijax: bool, ref: bool) -> None:
    made = nnx.Variable(jnp.array(1), hijax=hijax, ref=ref)
    copied = nnx.Variable(jnp.array(1)).copy(hijax=hijax, ref=ref)
    converted = nnx.vars_as(nnx.Variable(jnp.array(1)), hijax=hijax, ref=ref)
    for v in (made, copied, converted):
        assert (v.hijax, v.ref) == (hijax, ref)
        assert isinstance(v, HijaxVariable) is hijax
        assert isinstance(v.get_raw_value(), jax.Ref) is ref
        v[...] = 7
        assert int(v[...]) == 7


def test_from_metadata_and_copies_are_independent() -> None:
    v = nnx.Param.from_metadata(jnp.array(1.0), {"a": "hi", "hijax": True, "ref": False})
    assert isinstance(v, nnx.Param) and v.hijax and v.a == "hi"
    for other in (v.copy(), copy.deepcopy(v), pickle.loads(pickle.dumps(v))):
        assert other.hijax and float(other[...]) == 1.0
        other[...] = 9.0
    assert float(v[...]) == 1.0  # no copy shares the box


def test_grad_with_mutable_non_differentiated_and_captured_variables() -> None:
    v = nnx.Variable(jnp.array(2.0), hijax=True)

    def loss(x: jax.Array, v: nnx.Variable) -> jax.Array:
        v[...] = jax.lax.stop_gradient(x * 2)
        return x**2 + v[...]

    assert float(jax.grad(loss)(jnp.array(3.0), v)) == 6.0
    assert float(v[...]) == 6.0
    captured = nnx.Variable(jnp.array(2.0), hijax=True)

    def loss_captured(x: jax.Array) -> jax.Array:
        captured[...] = jax.lax.stop_gradient(x * 3)
        return x**2 + captured[...]

    assert float(jax.grad(loss_captured)(jnp.array(4.0))) == 8.0
    assert float(captured[...]) == 12.0


def test_scan_body_updates_a_captured_variable() -> None:
    v = nnx.Variable(jnp.array(3.0), hijax=True)

    def body(carry: None, _: None) -> tuple[None, None]:
        v[...] = v[...] + 1.0
        return carry, None

    jax.lax.scan(body, None, None, length=5)
    assert float(v[...]) == 8.0


def test_eval_shape_plain_and_nnx() -> None:
    v = nnx.Param(jnp.array(0), hijax=True)

    def f(v: nnx.Param) -> jax.Array:
        v[...] += 1
        return v[...]

    assert jax.eval_shape(f, v).shape == ()
    assert int(v[...]) == 0  # nothing ran
    with nnx.var_defaults(hijax=True):
        abstract = nnx.eval_shape(lambda: nnx.Linear(1, 2, rngs=nnx.Rngs(0)))
    assert isinstance(abstract.kernel.get_value(), jax.ShapeDtypeStruct)
    assert abstract.kernel.hijax and abstract.kernel.shape == (1, 2)


def test_optimizer_over_hijax_parameters_inside_plain_jit() -> None:
    with nnx.var_defaults(hijax=True):
        model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    x = jnp.ones((4, 2))

    @jax.jit
    def step(model: nnx.Linear, optimizer: nnx.Optimizer) -> jax.Array:
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss_fn(params: nnx.State) -> jax.Array:
            return jnp.mean(nnx.merge(graphdef, params, rest)(x) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(nnx.vars_as(params, hijax=False))
        optimizer.update(params, grads)
        return loss

    first = float(step(model, optimizer))
    second = float(step(model, optimizer))
    assert second < first
    assert int(optimizer.step[...]) == 2


def test_immutable_mode_still_refused_with_a_fix() -> None:
    with pytest.raises(ValueError) as info:
        nnx.vars_as(nnx.Dict(w=nnx.Param(jnp.ones(2))), hijax=True, mutable=False)
    msg = str(info.value)
    assert "model.w (Param) cannot be converted" in msg and "mutable=False" in msg
    assert "Fix:" in msg


def test_nnx_grad_over_hijax_parameters_explains_the_fix() -> None:
    with nnx.var_defaults(hijax=True):
        model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))

    def loss(m: nnx.Linear) -> jax.Array:
        return jnp.mean(m(jnp.ones((3, 2))) ** 2)

    with pytest.raises(ValueError) as info:
        nnx.grad(loss)(model)
    msg = str(info.value)
    assert "nnx.grad: arg0." in msg and "is a hijax Variable" in msg
    assert "Expected: differentiated Variables with hijax=False" in msg
    assert "nnx.vars_as(params, hijax=False)" in msg
    # the suggested plain view works and leaves the hijax model as it was
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    grads = jax.grad(lambda p: loss(nnx.merge(graphdef, p, rest)))(nnx.vars_as(params, hijax=False))
    assert grads["kernel"].shape == (2, 1) and model.kernel.hijax


def test_nnx_update_writes_into_the_box() -> None:
    with nnx.var_defaults(hijax=True):
        model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    plain = nnx.vars_as(nnx.state(model), hijax=False)
    nnx.update(model, {"bias": jnp.ones(3), "kernel": jnp.ones((2, 3))})
    assert model.bias.hijax and isinstance(model.bias, HijaxVariable)
    np.testing.assert_allclose(model.bias[...], np.ones(3))
    nnx.update(model, plain)  # a hijax=False State: values only, the flag stays
    assert model.bias.hijax
    np.testing.assert_allclose(model.bias[...], np.zeros(3))

    @jax.jit
    def bump(m: nnx.Linear) -> None:
        m.bias[...] += 2.0

    bump(model)  # still threaded by plain jax.jit after the updates
    np.testing.assert_allclose(model.bias[...], np.full(3, 2.0))
