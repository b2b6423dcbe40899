"""grad, value_and_grad, vjp, jvp, custom_vjp and remat over Modules: which state is
differentiated, the shape of the result, Variable updates reaching the caller, and
errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx


class Linear(nnx.Module):
    def __init__(self, din: int, dout: int, *, seed: int = 0) -> None:
        # host-side init: no XLA compilation per shape, which keeps the suite fast
        w = np.random.default_rng(seed).normal(size=(din, dout)) * 0.5
        self.w = nnx.Param(jnp.asarray(w, jnp.float32))
        self.b = nnx.Param(jnp.asarray(np.zeros(dout, np.float32)))
        self.calls = nnx.BatchStat(jnp.asarray(0.0, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        self.calls.value = self.calls.value + 1
        return x @ self.w + self.b


X = jnp.arange(6.0).reshape(2, 3) / 6


def loss(m: Linear, x: jax.Array) -> jax.Array:
    return jnp.sum(jnp.tanh(m(x)) ** 2)


def reference_grads(m: Linear, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    def pure(w: jax.Array, b: jax.Array, x: jax.Array) -> jax.Array:
        return jnp.sum(jnp.tanh(x @ w + b) ** 2)

    return jax.grad(pure, argnums=(0, 1, 2))(m.w.value, m.b.value, x)


# ----------------------------------------------------------------- grad
def test_grad_defaults_to_params_and_returns_a_state():
    model = Linear(3, 2, seed=0)
    gw, gb, _ = reference_grads(model, X)
    grads = nnx.grad(loss)(model, X)
    assert isinstance(grads, nnx.State)
    assert sorted(grads) == ["b", "w"]  # BatchStat calls is not differentiated
    assert isinstance(grads["w"], nnx.Param)
    np.testing.assert_allclose(grads["w"].value, gw, rtol=1e-5)
    np.testing.assert_allclose(grads["b"].value, gb, rtol=1e-5)
    assert float(model.calls.value) == 1.0  # the update inside reached the model


def test_grad_decorator_forms_and_graph_keywords():
    model = Linear(3, 2, seed=0)

    @nnx.grad
    def g1(m, x):
        return loss(m, x)

    @nnx.grad(argnums=0, graph=True, graph_updates=True)
    def g2(m, x):
        return loss(m, x)

    a, b = g1(model, X), g2(model, X)
    np.testing.assert_allclose(a["w"].value, b["w"].value)
    assert float(model.calls.value) == 2.0


def test_grad_argnums_tuple_and_array_argument():
    model = Linear(3, 2, seed=0)
    gw, _, gx = reference_grads(model, X)
    g_model, g_x = nnx.grad(loss, argnums=(0, 1))(model, X)
    np.testing.assert_allclose(g_model["w"].value, gw, rtol=1e-5)
    np.testing.assert_allclose(g_x, gx, rtol=1e-5)
    only_x = nnx.grad(loss, argnums=1)(model, X)
    np.testing.assert_allclose(only_x, gx, rtol=1e-5)


def test_grad_of_pytree_argument():
    def f(params, scale):
        return jnp.sum(params["a"] * scale) + jnp.sum(params["b"] ** 2)

    grads = nnx.grad(f)({"a": jnp.ones(2), "b": jnp.arange(2.0)}, 3.0)
    assert grads["a"].tolist() == [3.0, 3.0] and grads["b"].tolist() == [0.0, 2.0]


def test_diffstate_chooses_the_state():
    model = Linear(3, 2, seed=0)
    grads = nnx.grad(
        lambda m: jnp.sum(m.calls.value * m.b.value + m.calls.value**2),
        argnums=nnx.DiffState(0, nnx.BatchStat),
    )(model)
    assert list(grads) == ["calls"] and isinstance(grads["calls"], nnx.BatchStat)
    grads = nnx.grad(lambda m: jnp.sum(m.w.value), argnums=nnx.DiffState(0, (nnx.Param, "x")))(
        model
    )
    assert sorted(grads) == ["b", "w"]
    grads = nnx.grad(
        lambda m: jnp.sum(m.w.value) + jnp.sum(m.b.value),
        argnums=nnx.DiffState(0, nnx.PathContains("b")),
    )(model)
    assert list(grads) == ["b"] and grads["b"].value.tolist() == [1.0, 1.0]


def test_value_and_grad_with_aux():
    model = Linear(3, 2, seed=0)

    def f(m, x):
        y = m(x)
        return jnp.sum(y**2), {"out": y}

    (value, aux), grads = nnx.value_and_grad(f, has_aux=True)(model, X)
    np.testing.assert_allclose(value, jnp.sum(aux["out"] ** 2), rtol=1e-6)
    assert aux["out"].shape == (2, 2) and sorted(grads) == ["b", "w"]
    grads, aux = nnx.grad(f, has_aux=True)(model, X)
    assert aux["out"].shape == (2, 2)
    assert float(model.calls.value) == 2.0


def test_grad_of_two_modules_sharing_a_variable():
    a, b = Linear(2, 2, seed=0), Linear(2, 2, seed=1)
    b.w = a.w

    def f(pair):
        first, second = pair
        return jnp.sum(first.w.value) + jnp.sum(second.w.value)

    ga, gb = nnx.grad(f)((a, b))
    # the shared Variable appears once (at its first path) and gets both uses
    assert ga["w"].value.tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert "w" not in gb


def test_grad_inside_jit_and_update_params():
    model = Linear(3, 2, seed=0)
    reference = nnx.clone(model)

    @nnx.jit
    def train_step(m, x):
        grads = nnx.grad(loss)(m, x)
        m.w.value = m.w.value - 0.1 * grads["w"].value
        m.b.value = m.b.value - 0.1 * grads["b"].value
        return grads

    grads = train_step(model, X)
    gw, _, _ = reference_grads(reference, X)
    np.testing.assert_allclose(grads["w"].value, gw, rtol=1e-5)
    np.testing.assert_allclose(model.w.value, reference.w.value - 0.1 * gw, rtol=1e-5)
    assert float(model.calls.value) == 1.0


def test_updates_to_differentiated_params_inside_are_kept():
    model = Linear(3, 2, seed=0)

    def f(m):
        m.b.value = m.b.value + 1  # e.g. a normalisation writing a Param
        return jnp.sum(m.b.value**2)

    grads = nnx.grad(f)(model)
    assert grads["b"].value.tolist() == [2.0, 2.0]
    assert model.b.value.tolist() == [1.0, 1.0]


def test_structural_change_inside_grad_propagates():
    model = Linear(3, 2, seed=0)

    def f(m):
        m.cache = nnx.Cache(jnp.ones(2))
        return jnp.sum(m.w.value)

    nnx.grad(f)(model)
    assert model.cache.value.tolist() == [1.0, 1.0]


def test_grad_exception_leaves_the_model_unchanged():
    model = Linear(3, 2, seed=0)

    def f(m):
        m.b.value = m.b.value + 1
        m.extra = nnx.Param(jnp.ones(1))
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        nnx.grad(f)(model)
    assert model.b.value.tolist() == [0.0, 0.0] and not hasattr(model, "extra")


def test_grad_errors():
    model = Linear(3, 2, seed=0)
    with pytest.raises(
        TypeError,
        match=r"nnx\.grad: the differentiated function must return a "
        r"scalar; found an array of shape \(2, 2\)",
    ):
        nnx.grad(lambda m: m(X))(model)
    with pytest.raises(TypeError, match=r"nnx\.value_and_grad: .* shape \(3, 2\)"):
        nnx.value_and_grad(lambda m: m.w.value)(model)
    with pytest.raises(TypeError, match=r"has_aux=True\): the function must return \(value, aux\)"):
        nnx.grad(lambda m: jnp.sum(m.w.value), has_aux=True)(model)
    with pytest.raises(TypeError, match="argnums refers to argument 1"):
        nnx.grad(lambda m: jnp.sum(m.w.value), argnums=1)(model)
    with pytest.raises(TypeError, match=r"argnums entries must be ints or nnx\.DiffState"):
        nnx.grad(lambda m: 0.0, argnums="w")


# ----------------------------------------------------------------- vjp / jvp
def test_vjp_matches_jax_and_propagates_updates():
    model = Linear(3, 2, seed=0)
    out, vjp_fn = nnx.vjp(lambda m, x: m(x), model, X)
    g_model, g_x = vjp_fn(jnp.ones((2, 2)))
    _, ref_vjp = jax.vjp(lambda w, b, x: x @ w + b, model.w.value, model.b.value, X)
    gw, gb, gx = ref_vjp(jnp.ones((2, 2)))
    np.testing.assert_allclose(g_model["w"].value, gw, rtol=1e-6)
    np.testing.assert_allclose(g_model["b"].value, gb, rtol=1e-6)
    np.testing.assert_allclose(g_x, gx, rtol=1e-6)
    assert out.shape == (2, 2) and float(model.calls.value) == 1.0


def test_vjp_has_aux_and_decorator_forms():
    model = Linear(3, 2, seed=0)
    out, vjp_fn, aux = nnx.vjp(lambda m: (m.w.value.sum(), "aux"), model, has_aux=True)
    assert aux == "aux" and float(out) == float(model.w.value.sum())
    assert vjp_fn(1.0)[0]["w"].value.shape == (3, 2)
    f = nnx.vjp(lambda m: m.w.value.sum(), graph=False)
    _, vjp_fn = f(model)
    assert vjp_fn(1.0)[0].w.value.tolist() == [[1.0, 1.0]] * 3  # tree mode: a Linear
    g = nnx.vjp(has_aux=False)(lambda m: m.b.value.sum())
    assert g(model)[1](1.0)[0]["b"].value.tolist() == [1.0, 1.0]


def test_jvp_with_state_and_module_tangents():
    model = Linear(3, 2, seed=0)
    tangent = nnx.State({"w": jnp.ones((3, 2))})  # b missing: zero tangent
    _, t_out = nnx.jvp(lambda m, x: m(x), (model, X), (tangent, jnp.zeros_like(X)))
    np.testing.assert_allclose(t_out, X @ jnp.ones((3, 2)), rtol=1e-6)
    assert float(model.calls.value) == 1.0
    module_tangent = nnx.clone(model)
    module_tangent.w.value = jnp.ones((3, 2))
    module_tangent.b.value = jnp.ones(2)
    _, t_out = nnx.jvp(lambda m: m.w.value.sum() + m.b.value.sum(), (model,), (module_tangent,))
    assert float(t_out) == 8.0


def test_jvp_has_aux_and_errors():
    model = Linear(3, 2, seed=0)
    _, t, aux = nnx.jvp(
        lambda m: (m.b.value.sum(), 3), (model,), (nnx.State({"b": jnp.ones(2)}),), has_aux=True
    )
    assert float(t) == 2.0 and aux == 3
    with pytest.raises(ValueError, match="got 1 primals but 2 tangents"):
        nnx.jvp(lambda m: 0.0, (model,), (None, None))
    decorated = nnx.jvp(lambda m: m.b.value.sum())
    assert float(decorated((model,), (nnx.State({"b": jnp.ones(2)}),))[1]) == 2.0


def test_vjp_rejects_structural_changes():
    model = Linear(3, 2, seed=0)

    def f(m):
        m.extra = nnx.Param(jnp.ones(1))
        return m.w.value.sum()

    with pytest.raises(
        nnx.GraphStructureError,
        match=r"nnx\.vjp: the function changed the "
        r"structure",
    ):
        nnx.vjp(f, model)
    assert not hasattr(model, "extra")


# ----------------------------------------------------------------- custom_vjp
class Foo(nnx.Module):
    def __init__(self) -> None:
        self.x = nnx.Param(jnp.array(1.0))
        self.y = nnx.Param(jnp.array(2.0))
        self.n = nnx.BatchStat(jnp.array(0, dtype=jnp.int32))


def test_custom_vjp_flax_graph_protocol():
    @nnx.custom_vjp
    def f(m):
        return jnp.sin(m.x.value) * m.y.value

    def f_fwd(m):
        return f(m), (jnp.cos(m.x.value), jnp.sin(m.x.value), m)

    def f_bwd(res, g):
        input_updates_g, out_g = g
        cos_x, sin_x, m = res
        (m_g,) = input_updates_g
        m_g = jax.tree.map(lambda v: v, m_g)
        m_g["x"].value = cos_x * out_g * m.y.value * 10  # custom: 10x the true gradient
        m_g["y"].value = sin_x * out_g
        return (m_g,)

    f.defvjp(f_fwd, f_bwd)
    model = Foo()
    grads = nnx.grad(f)(model)
    np.testing.assert_allclose(grads["x"].value, 10 * np.cos(1.0) * 2.0, rtol=1e-6)
    np.testing.assert_allclose(grads["y"].value, np.sin(1.0), rtol=1e-6)
    grads = nnx.jit(nnx.grad(f))(model)
    np.testing.assert_allclose(grads["y"].value, np.sin(1.0), rtol=1e-6)


def test_custom_vjp_graph_updates_false_and_nondiff_argnums():
    @nnx.custom_vjp(nondiff_argnums=(0,), graph_updates=False)
    def f(scale, m, x):
        return scale * m.x.value * x

    def f_fwd(scale, m, x):
        return f(scale, m, x), (m.x.value, x)

    def f_bwd(scale, res, g):
        mx, x = res
        m_g = nnx.clone(Foo())  # an object holding the gradient is accepted
        m_g.x.value = scale * g * x
        return m_g, scale * g * mx

    f.defvjp(f_fwd, f_bwd)
    g_model, g_x = nnx.grad(lambda m, x: f(3.0, m, x), argnums=(0, 1))(Foo(), jnp.array(2.0))
    assert float(g_model["x"].value) == 6.0 and float(g_x) == 3.0


def test_custom_vjp_diffstate_selects_differentiable_state():
    @nnx.custom_vjp(nondiff_argnums=(nnx.DiffState(0, nnx.PathContains("x")),))
    def f(m):
        return m.x.value * m.y.value

    def f_fwd(m):
        return f(m), m.y.value

    def f_bwd(y, g):
        (template,), out_g = g
        assert list(template) == ["x"]
        return (nnx.State({"x": out_g * y}),)

    f.defvjp(f_fwd, f_bwd)
    grads = nnx.grad(f, argnums=nnx.DiffState(0, nnx.PathContains("x")))(Foo())
    assert float(grads["x"].value) == 2.0


def test_custom_vjp_errors():
    @nnx.custom_vjp
    def f(m):
        return m.x.value

    with pytest.raises(ValueError, match=r"defvjp\(fwd, bwd\) was not called"):
        f(Foo())
    g = nnx.custom_vjp(lambda m: m.x.value, nondiff_argnums=(0,))
    g.defvjp(lambda m: (m.x.value, None), lambda m, res, ct: ())
    with pytest.raises(
        TypeError, match=r"Passing integers to nondiff_argnums for graph nodes(.|\n)*DiffState"
    ):
        g(Foo())
    with pytest.raises(ValueError, match=r"argnum 0 is repeated in nondiff_argnums"):
        nnx.custom_vjp(lambda m: m, nondiff_argnums=(0, nnx.DiffState(0, ...)))
    with pytest.raises(ValueError, match=r"cannot contain `DiffState`.*graph_updates=False"):
        nnx.custom_vjp(lambda m: m, nondiff_argnums=(nnx.DiffState(0, ...),), graph_updates=False)

    class WithMethod(Foo):
        def f(self) -> jax.Array:
            return self.x.value

    with pytest.raises(ValueError, match=r"does not support bound methods: WithMethod\.f"):
        nnx.custom_vjp(WithMethod().f)


def test_custom_vjp_module_in_int_nondiff_argnums_reaches_bwd():
    # graph_updates=False: an int in nondiff_argnums may name a Module; fwd and bwd
    # receive it first, it gets no cotangent
    seen = []

    @nnx.custom_vjp(nondiff_argnums=(0,), graph_updates=False)
    def f(m, x):
        return m.y.value * x

    def f_fwd(m, x):
        return f(m, x), x

    def f_bwd(m, x, g):
        seen.append(m)
        return (g * m.y.value * 10,)  # custom: 10x the true gradient

    f.defvjp(f_fwd, f_bwd)
    model = Foo()
    assert float(f(model, jnp.array(3.0))) == 6.0
    assert float(jax.grad(lambda x: f(model, x))(jnp.array(3.0))) == 20.0
    assert float(nnx.grad(lambda x: f(model, x))(jnp.array(3.0))) == 20.0
    assert isinstance(seen[0], Foo) and float(seen[0].y.value) == 2.0
    # keyword arguments bind by name, as for the plain function
    assert float(jax.grad(lambda x: f(m=model, x=x))(jnp.array(1.0))) == 20.0
    # inside nnx.jit the Module's Variables are tracers: JAX cannot take them as
    # non-differentiable arguments
    with pytest.raises(TypeError, match=r"argument 0 .*Tracers cannot be passed as non-diff"):
        nnx.jit(lambda m, x: jax.grad(lambda x: f(m, x))(x))(model, jnp.array(1.0))


def test_custom_vjp_symbolic_zeros():
    perturbed = []

    @nnx.custom_vjp
    def f(m, x, y):
        return m.x.value * x * y

    def f_fwd(m, x, y):
        # every array, also inside Variables, arrives as a CustomVJPPrimal
        perturbed.append((m.x.value.perturbed, x.perturbed, y.perturbed))
        mx, xv, yv = m.x.value.value, x.value, y.value
        return mx * xv * yv, (mx, xv, yv)

    def f_bwd(res, g):
        (m_zeros, x_zeros, y_zeros), out_g = g
        assert x_zeros is None and y_zeros is None and sorted(m_zeros) == ["n", "x", "y"]
        mx, xv, yv = res
        return nnx.State({"x": out_g * xv * yv}), out_g * mx * yv, None  # None: zero

    f.defvjp(f_fwd, f_bwd, symbolic_zeros=True)
    model = Foo()
    g_m, g_x = nnx.grad(f, argnums=(0, 1))(model, jnp.array(3.0), jnp.array(5.0))
    assert perturbed[-1] == (True, True, False)
    assert float(g_m["x"].value) == 15.0 and float(g_m["y"].value) == 0.0
    assert float(g_x) == 5.0
    g_y = jax.grad(lambda y: f(model, jnp.array(3.0), y))(jnp.array(5.0))
    assert float(g_y) == 0.0  # bwd said None
    assert perturbed[-1] == (False, False, True)


# ----------------------------------------------------------------- remat
def test_remat_gradients_and_updates():
    model = Linear(3, 2, seed=0)
    remat_loss = nnx.remat(loss)
    grads = nnx.grad(remat_loss)(model, X)
    gw, _, _ = reference_grads(model, X)
    np.testing.assert_allclose(grads["w"].value, gw, rtol=1e-5)
    assert float(model.calls.value) == 1.0
    jitted = nnx.jit(lambda m, x: nnx.grad(nnx.remat(loss, policy=None, graph=True))(m, x))
    np.testing.assert_allclose(jitted(model, X)["w"].value, gw, rtol=1e-5)
    assert float(model.calls.value) == 2.0


def test_remat_static_argnums_and_decorator():
    model = Linear(3, 2, seed=0)

    @nnx.remat(static_argnums=(1,))
    def f(m, mode, x):
        assert isinstance(mode, str)
        return jnp.sum(m(x)) if mode == "sum" else jnp.mean(m(x))

    total = nnx.grad(lambda m: f(m, "sum", X))(model)
    mean = nnx.grad(lambda m: f(m, "mean", X))(model)
    np.testing.assert_allclose(total["b"].value, 4 * mean["b"].value, rtol=1e-6)


def test_remat_carries_structural_changes_and_returned_modules():
    def add_and_drop(m, x):
        m.extra = nnx.BatchStat(x * 2)
        del m.n
        return m.x.value * x

    model = Foo()
    assert float(nnx.remat(add_and_drop)(model, jnp.array(3.0))) == 3.0
    assert float(model.extra.value) == 6.0 and not hasattr(model, "n")

    # the same under grad: the new Variable holds a concrete value afterwards
    model = Foo()
    grads = nnx.grad(lambda m, x: nnx.remat(add_and_drop)(m, x))(model, jnp.array(3.0))
    assert float(grads["x"].value) == 3.0
    assert isinstance(model.extra, nnx.BatchStat) and float(model.extra.value) == 6.0

    made = nnx.remat(lambda x: Linear(3, 2, seed=1))(jnp.array(0.0))
    assert isinstance(made, Linear) and made.w.value.shape == (3, 2)


class Counted(nnx.Module):
    def __init__(self) -> None:
        self.x = nnx.Param(jnp.array(1.0))
        self.z = nnx.BatchStat(jnp.array(1.0))


@pytest.mark.parametrize("graph_updates", [True, False])
def test_custom_vjp_variable_updates_reach_the_caller(graph_updates):
    seen = []

    @nnx.custom_vjp(graph_updates=graph_updates)
    def f(m):
        m.z.value = m.z.value * 2.0
        return jnp.sin(m.x.value) * m.z.value

    def f_fwd(m):
        m.z.value = m.z.value * 2.0
        return jnp.sin(m.x.value) * m.z.value, (jnp.cos(m.x.value), m.z.value)

    if graph_updates:

        def f_bwd(res, g):
            (m_g,), out_g = g
            seen.append(sorted(m_g))
            cos_x, z = res
            return (nnx.State({"x": cos_x * z * out_g}),)
    else:

        def f_bwd(res, out_g, *, updates_g):
            seen.append([n for n in ("x", "z") if getattr(updates_g[0], n) is not None])
            cos_x, z = res
            return (nnx.State({"x": cos_x * z * out_g}),)

    f.defvjp(f_fwd, f_bwd)
    m = Counted()
    np.testing.assert_allclose(f(m), np.sin(1.0) * 2.0, rtol=1e-6)
    assert float(m.z.value) == 2.0
    grads = nnx.grad(f)(m)
    np.testing.assert_allclose(grads["x"].value, np.cos(1.0) * 4.0, rtol=1e-6)
    assert float(m.z.value) == 4.0
    grads = nnx.jit(nnx.grad(f))(m)
    np.testing.assert_allclose(grads["x"].value, np.cos(1.0) * 8.0, rtol=1e-6)
    assert float(m.z.value) == 8.0
    # the template covers the whole differentiated state; updates_g the changed Variables
    assert seen == ([["x", "z"]] * 2 if graph_updates else [["z"]] * 2)


def test_custom_vjp_cotangent_of_an_updated_variable_reaches_bwd():
    @nnx.custom_vjp
    def scale(m, x):
        m.z.value = x * 3.0  # the new state depends on x
        return x

    def scale_fwd(m, x):
        return scale(m, x), None

    def scale_bwd(res, g):
        (m_g, _), out_g = g
        return m_g, out_g + 3.0 * m_g["z"].value

    scale.defvjp(scale_fwd, scale_bwd)

    def loss(x):
        m = Counted()
        y = scale(m, x)
        return y + m.z.value  # 4x: 1 from the output, 3 through the updated z

    assert float(jax.grad(loss)(jnp.array(2.0))) == pytest.approx(4.0)
