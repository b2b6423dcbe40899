"""graph=False (tree mode) and graph_updates=False across the transforms: Flax's
aliasing checks, with updates still carried back, and the global defaults set by
nnx.set_graph_mode / nnx.set_graph_updates."""

from __future__ import annotations

import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx

TREE = {"graph": False}
NO_UPDATES = {"graph": True, "graph_updates": False}
MODES = [pytest.param(TREE, id="graph=False"), pytest.param(NO_UPDATES, id="graph_updates=False")]


class M(nnx.Module):
    def __init__(self) -> None:
        self.a = nnx.Param(jnp.ones(2))


def shared() -> M:
    m = M()
    m.b = m.a
    return m


def bump(m: M) -> None:
    m.a.value = m.a.value + 1


# ----------------------------------------------------------------- jit
@pytest.mark.parametrize("mode", MODES)
def test_jit_updates_still_propagate(mode: dict[str, tp.Any]) -> None:
    m = M()
    f = nnx.jit(bump, **mode)
    f(m)
    f(m)
    np.testing.assert_allclose(m.a.value, [3.0, 3.0])


def test_jit_tree_mode_rejects_a_variable_shared_by_two_attributes() -> None:
    m = shared()
    with pytest.raises(ValueError) as info:
        nnx.jit(bump, graph=False)(m)
    message = str(info.value)
    assert "Duplicate Param" in message and "does not support Variable aliasing" in message
    assert "m.a" in message and "m.b" in message and "graph=False" in message
    np.testing.assert_allclose(m.a.value, [1.0, 1.0])  # nothing ran


def test_jit_tree_mode_rejects_the_same_module_passed_twice() -> None:
    m = M()
    with pytest.raises(ValueError, match="does not support Variable aliasing") as info:
        nnx.jit(lambda x, y: None, graph=False)(m, m)
    assert "x.a" in str(info.value) and "y.a" in str(info.value)


def test_jit_tree_mode_rejects_a_cycle_with_a_clear_error() -> None:
    m = M()
    m.me = m
    with pytest.raises(ValueError, match="reference cycle") as info:
        nnx.jit(bump, graph=False)(m)
    assert "m.me" in str(info.value)


def test_jit_graph_mode_without_updates_keeps_shared_references() -> None:
    m = shared()
    nnx.jit(bump, **NO_UPDATES)(m)
    assert m.a is m.b
    np.testing.assert_allclose(m.b.value, [2.0, 2.0])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("returned", ["module", "variable"])
def test_jit_returning_an_input_variable_raises(mode: dict[str, tp.Any], returned: str) -> None:
    m = M()
    f = nnx.jit((lambda m: m) if returned == "module" else (lambda m: m.a), **mode)
    with pytest.raises(ValueError) as info:
        f(m)
    message = str(info.value)
    assert "Duplicate Param" in message and "input Variable" in message
    assert "output[0]" in message


@pytest.mark.parametrize("mode", MODES)
def test_jit_returning_a_new_module_works(mode: dict[str, tp.Any]) -> None:
    out = nnx.jit(lambda: M(), **mode)()
    assert isinstance(out, M)
    np.testing.assert_allclose(out.a.value, [1.0, 1.0])


def test_jit_tree_mode_rejects_a_variable_shared_in_the_output() -> None:
    with pytest.raises(ValueError, match="reached twice in the outputs"):
        nnx.jit(shared, graph=False)()
    out = nnx.jit(shared, **NO_UPDATES)()
    assert out.a is out.b


@pytest.mark.parametrize("mode", MODES)
def test_jit_structural_changes_are_carried_back(mode: dict[str, tp.Any]) -> None:
    # Flax drops these silently in both modes; nnx carries them out as in the
    # default mode (tests/oracle/deliberate_differences.py)
    m = M()

    def grow(m: M) -> None:
        m.c = nnx.Param(jnp.zeros(1))
        m.a.value = m.a.value * 5

    nnx.jit(grow, **mode)(m)
    assert isinstance(m.c, nnx.Param)
    np.testing.assert_allclose(m.a.value, [5.0, 5.0])


def test_jit_rngs_advance_in_tree_mode() -> None:
    rngs = nnx.Rngs(0)
    f = nnx.jit(lambda r: r.params(), graph=False)
    k1, k2 = f(rngs), f(rngs)
    assert not np.array_equal(jax.random.key_data(k1), jax.random.key_data(k2))


def test_jit_default_mode_comes_from_set_graph_mode_when_applied() -> None:
    m = shared()
    with nnx.set_graph_mode(False):
        f_tree = nnx.jit(bump)
    f_graph = nnx.jit(bump)
    with pytest.raises(ValueError, match="aliasing"):
        f_tree(m)
    f_graph(m)  # graph mode: shared references are fine
    np.testing.assert_allclose(m.b.value, [2.0, 2.0])
    with nnx.set_graph_updates(False):
        f_no_updates = nnx.jit(lambda m: m)
    with pytest.raises(ValueError, match="graph_updates=False"):
        f_no_updates(M())


def test_jit_partial_takes_the_mode() -> None:
    m = shared()
    with pytest.raises(ValueError, match="aliasing"):
        nnx.jit_partial(bump, m, graph=False)()
    f = nnx.jit_partial(bump, m, graph=True, graph_updates=False)
    f()
    np.testing.assert_allclose(m.a.value, [2.0, 2.0])


# ----------------------------------------------------------------- eval_shape
def test_eval_shape_default_mode_allows_aliasing() -> None:
    assert nnx.eval_shape(lambda m: m.a.value.sum(), shared()).shape == ()
    out = nnx.eval_shape(lambda: shared())
    assert out.a is out.b
    abstract = nnx.eval_shape(lambda m: m, M())
    assert isinstance(abstract.a.value, jax.ShapeDtypeStruct)


@pytest.mark.parametrize("mode", MODES)
def test_eval_shape_rejects_shared_inputs_and_returned_inputs(mode: dict[str, tp.Any]) -> None:
    with pytest.raises(ValueError, match="does not support Variable aliasing"):
        nnx.eval_shape(lambda m: m.a.value.sum(), shared(), **mode)
    m = M()
    with pytest.raises(ValueError, match="does not support Variable aliasing"):
        nnx.eval_shape(lambda x, y: x.a.value, m, m, **mode)
    with pytest.raises(ValueError, match="input Variable"):
        nnx.eval_shape(lambda m: m, M(), **mode)
    with pytest.raises(ValueError, match="input Variable"):
        nnx.eval_shape(lambda m: m.a, M(), **mode)


def test_eval_shape_output_aliasing_only_rejected_in_tree_mode() -> None:
    with pytest.raises(ValueError, match="reached twice in the outputs"):
        nnx.eval_shape(lambda: shared(), graph=False)
    with pytest.raises(ValueError, match="reached twice in the outputs"):
        nnx.eval_shape(lambda: (lambda m: (m, m))(M()), graph=False)
    out = nnx.eval_shape(lambda: shared(), **NO_UPDATES)
    assert out.a is out.b


# ----------------------------------------------------------------- checkify / make_jaxpr
def test_checkify_modes() -> None:
    m = M()

    def f(m: M) -> jax.Array:
        m.a.value = m.a.value + 1
        return m.a.value

    nnx.checkify(f, graph=False)(m)
    np.testing.assert_allclose(m.a.value, [2.0, 2.0])
    with pytest.raises(ValueError, match="aliasing"):
        nnx.checkify(f, graph=False)(shared())
    err, _ = nnx.checkify(f, **NO_UPDATES)(shared())
    assert err.get() is None


def test_make_jaxpr_modes_and_static_argnums() -> None:
    with pytest.raises(ValueError, match="aliasing"):
        nnx.make_jaxpr(lambda m: m.a.value, **NO_UPDATES)(shared())
    with pytest.raises(ValueError, match="input Variable"):
        nnx.make_jaxpr(lambda m: m, graph=False)(M())
    scaled = nnx.make_jaxpr(lambda m, k: m.a.value * k, static_argnums=1)
    jaxpr = scaled(M(), 3)
    assert "mul" in str(jaxpr) and "3" in str(jaxpr)

    @nnx.make_jaxpr(static_argnums=(0,))
    def power(n: int, x: jax.Array) -> jax.Array:
        return x**n

    assert "integer_pow" in str(power(2, jnp.ones(2))) or "mul" in str(power(2, jnp.ones(2)))


# ----------------------------------------------------------------- the other transforms
def _loss(m: M) -> jax.Array:
    return (m.a.value**2).sum()


TREE_MODE_SHARED_REJECTED: list[tuple[str, tp.Callable[..., tp.Any]]] = [
    ("grad", lambda m, **kw: nnx.grad(_loss, **kw)(m)),
    ("value_and_grad", lambda m, **kw: nnx.value_and_grad(_loss, **kw)(m)),
    ("vjp", lambda m, **kw: nnx.vjp(_loss, m, **kw)),
    ("jvp", lambda m, **kw: nnx.jvp(_loss, (m,), (nnx.state(m),), **kw)),
    ("remat", lambda m, **kw: nnx.remat(_loss, **kw)(m)),
    ("vmap", lambda m, **kw: nnx.vmap(lambda m, x: m.a.value * x, in_axes=(None, 0), **kw)(
        m, jnp.ones(3)
    )),
    ("cond", lambda m, **kw: nnx.cond(True, _loss, _loss, m, **kw)),
    ("switch", lambda m, **kw: nnx.switch(1, [_loss, _loss], m, **kw)),
    ("fori_loop", lambda m, **kw: nnx.fori_loop(0, 2, lambda i, m: m, m, **kw)),
    ("while_loop", lambda m, **kw: nnx.while_loop(lambda m: False, lambda m: m, m, **kw)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "call"), TREE_MODE_SHARED_REJECTED, ids=lambda x: x)
def test_tree_mode_rejects_shared_variables_in_every_transform(
    name: str, call: tp.Callable[..., tp.Any]
) -> None:
    with pytest.raises(ValueError, match="does not support Variable aliasing") as info:
        call(shared(), graph=False)
    assert f"nnx.{name}" in str(info.value)
    call(shared(), graph=True, graph_updates=False)  # graph mode: sharing is fine
    call(shared())


@pytest.mark.parametrize("mode", MODES)
def test_grad_updates_propagate_and_returned_inputs_raise(mode: dict[str, tp.Any]) -> None:
    m = M()
    m.n = nnx.BatchStat(jnp.zeros(()))

    def f(m: M) -> jax.Array:
        m.n.value = m.n.value + 1
        return _loss(m)

    grads = nnx.grad(f, **mode)(m)
    # as in Flax, the gradient comes as a copy of the Module (zeros for the
    # Variables not differentiated) rather than a State
    assert isinstance(grads, M) and grads is not m and grads.a is not m.a
    np.testing.assert_allclose(grads.a.value, [2.0, 2.0])
    assert float(grads.n.value) == 0.0
    assert float(m.n.value) == 1.0
    with pytest.raises(ValueError, match="input Variable"):
        nnx.value_and_grad(lambda m: (_loss(m), m), has_aux=True, **mode)(M())


def test_decorator_forms_keep_the_mode() -> None:
    @nnx.grad(graph=False)
    def g(m: M) -> jax.Array:
        return _loss(m)

    with pytest.raises(ValueError, match="aliasing"):
        g(shared())

    @nnx.vmap(in_axes=(None, 0), graph=False)
    def v(m: M, x: jax.Array) -> jax.Array:
        return m.a.value * x

    with pytest.raises(ValueError, match="aliasing"):
        v(shared(), jnp.ones(2))


def test_nested_transforms_take_their_own_mode() -> None:
    # the outer transform is in tree mode; the inner one (default mode) may share
    m = M()

    def outer(m: M) -> jax.Array:
        inner = shared()
        return nnx.grad(_loss)(inner)["a"].value.sum() + _loss(m)

    out = nnx.jit(outer, graph=False)(m)
    assert float(out) == pytest.approx(6.0)
    grads = nnx.grad(lambda m: nnx.cond(True, _loss, _loss, shared()) + _loss(m), graph=False)(m)
    np.testing.assert_allclose(grads.a.value, [2.0, 2.0])


def test_set_graph_mode_default_reaches_the_other_transforms() -> None:
    with nnx.set_graph_mode(False):
        with pytest.raises(ValueError, match="aliasing"):
            nnx.cond(True, _loss, _loss, shared())
        with pytest.raises(ValueError, match="aliasing"):
            nnx.grad(_loss)(shared())
    np.testing.assert_allclose(nnx.grad(_loss)(shared())["a"].value, [2.0, 2.0])


@pytest.mark.parametrize("mode", [*MODES, pytest.param({}, id="default")])
def test_scan_carry_updates_and_tree_mode_sharing(mode: dict[str, tp.Any]) -> None:
    def f(m: M, x: jax.Array) -> tuple[M, jax.Array]:
        m.a.value = m.a.value + x
        return m, x * 2

    scan = nnx.scan(f, in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0), **mode)
    m = M()
    out, ys = scan(m, jnp.arange(3.0))
    assert out is m  # the carry comes back as the caller's object in every mode
    np.testing.assert_allclose(m.a.value, [4.0, 4.0])
    np.testing.assert_allclose(ys, [0.0, 2.0, 4.0])
    if mode.get("graph") is False:
        with pytest.raises(ValueError, match=r"nnx\.scan with graph=False"):
            scan(shared(), jnp.arange(3.0))
    else:
        scan(shared(), jnp.arange(3.0))


def test_tree_mode_value_and_grad_forms_return_module_gradients() -> None:
    model = M()
    (loss, aux), grads = nnx.value_and_grad(
        lambda m, x: (_loss(m) * x, "aux"), argnums=(0, 1), has_aux=True, graph=False
    )(model, jnp.array(2.0))
    assert float(loss) == 4.0 and aux == "aux"
    assert isinstance(grads[0], M) and float(grads[1]) == 2.0
    np.testing.assert_allclose(grads[0].a.value, [4.0, 4.0])
    # the gradient Module applies like a State of gradients
    nnx.update(model, jax.tree.map(lambda p, g: p - 0.5 * g, nnx.state(model), nnx.state(grads[0])))
    np.testing.assert_allclose(model.a.value, [-1.0, -1.0])


def test_shard_map_and_pmap_take_the_mode() -> None:
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))

    def body(m: M) -> jax.Array:
        return m.a.value * 2

    for kw in ({"graph": False}, NO_UPDATES):
        f = nnx.shard_map(body, mesh=mesh, in_specs=(P(),), out_specs=P(), **kw)
        np.testing.assert_allclose(f(M()), [2.0, 2.0])
    with pytest.raises(ValueError, match=r"nnx\.shard_map with graph=False"):
        nnx.shard_map(body, mesh=mesh, in_specs=(P(),), out_specs=P(), graph=False)(shared())
    pmapped = nnx.pmap(lambda m, x: m.a.value * x, in_axes=(None, 0), graph=False)
    with pytest.raises(ValueError, match=r"nnx\.pmap with graph=False"):
        pmapped(shared(), jnp.ones((jax.local_device_count(), 2)))
    out = nnx.pmap(lambda m, x: m.a.value * x, in_axes=(None, 0), **NO_UPDATES)(
        shared(), jnp.ones((jax.local_device_count(), 2))
    )
    assert out.shape == (jax.local_device_count(), 2)
