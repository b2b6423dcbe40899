"""nnx.jit: call forms and arguments, state propagation, structural changes, shared
references, exceptions, the per-root traversal cache (never stale), threads, and
errors that name the offending argument or Variable."""

from __future__ import annotations

import gc
import threading
import typing as tp
import warnings
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec, SingleDeviceSharding

import nnx_graph as nnx
from nnx_graph.transforms import _bridge


def init(seed: int, *shape: int) -> jax.Array:
    """Host-side random init: no XLA compilation per shape, which keeps the suite fast."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * 0.5, jnp.float32)


class Linear(nnx.Module):
    def __init__(self, din: int, dout: int, *, seed: int = 0) -> None:
        self.w = nnx.Param(init(seed, din, dout))
        self.b = nnx.Param(jnp.asarray(np.zeros(dout, np.float32)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.w + self.b


class BatchNorm(nnx.Module):
    def __init__(self, n: int) -> None:
        self.scale = nnx.Param(jnp.asarray(np.ones(n, np.float32)))
        self.mean = nnx.BatchStat(jnp.asarray(np.zeros(n, np.float32)))
        self.use_running_average = False

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_running_average:
            mean = self.mean.value
        else:
            mean = x.mean(0)
            self.mean.value = 0.9 * self.mean.value + 0.1 * mean
        return (x - mean) * self.scale


class Model(nnx.Module):
    def __init__(self, seed: int = 0) -> None:
        self.lin = Linear(3, 3, seed=seed)
        self.layers = nnx.List([Linear(3, 3, seed=seed + 100)])
        self.extras = nnx.Dict(a=Linear(3, 3, seed=seed + 200))
        self.scale = jnp.array(2.0)
        self.bn = BatchNorm(3)
        self.config = {"shift": 0.0}  # static (no arrays), mutable in place
        self.offsets = [0.0]

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.lin(x) * self.scale + self.config["shift"] + sum(self.offsets)
        for layer in self.layers:
            x = layer(x)
        extras = getattr(self, "extras", {})
        for key in sorted(extras):
            x = extras[key](x)
        return self.bn(x)


class Optimizer(nnx.Pytree):
    """An optimizer-like object holding the model it updates."""

    def __init__(self, model: nnx.Module) -> None:
        self.model = model
        self.step = nnx.Variable(jnp.array(0))


X = jnp.arange(6.0).reshape(2, 3) / 6


def values_of(node: tp.Any) -> list[np.ndarray]:
    return [np.asarray(v) for v in jax.tree.leaves(nnx.state(node))]


def assert_same_state(a: tp.Any, b: tp.Any) -> None:
    assert nnx.graphdef(a) == nnx.graphdef(b)
    for x, y in zip(values_of(a), values_of(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- call forms
def test_bare_decorator_updates_state_and_returns_output():
    model = Model(0)
    reference = nnx.clone(model)

    @nnx.jit
    def forward(m, x):
        return m(x)

    y = forward(model, X)
    np.testing.assert_allclose(y, reference(X), rtol=1e-5)
    assert_same_state(model, reference)  # the BatchStat update came out


def test_decorator_with_arguments_and_graph_keywords():
    @nnx.jit(static_argnums=1, graph=True, graph_updates=True)
    def f(m, n):
        m.b.value = m.b.value + n
        return n

    model = Linear(2, 2, seed=0)
    assert f(model, 3) == 3
    np.testing.assert_allclose(model.b.value, [3.0, 3.0])


def test_method_decorated_with_jit():
    class Counter(nnx.Module):
        def __init__(self) -> None:
            self.n = nnx.Variable(jnp.array(0))

        @nnx.jit
        def add(self, k):
            self.n.value = self.n.value + k
            return self.n.value

        @nnx.jit(static_argnames="times")
        def repeat(self, times):
            for _ in range(times):
                self.n.value = self.n.value + 1

    c = Counter()
    assert int(c.add(2)) == 2
    assert int(c.add(3)) == 5
    c.repeat(times=4)
    assert int(c.n.value) == 9
    assert isinstance(Counter.add, nnx.JitWrapped)


def test_jit_partial_and_cached_partial():
    model = Linear(2, 2, seed=0)

    def bump(m, k):
        m.b.value = m.b.value + k

    nnx.jit_partial(bump, model, graph=True)(1.0)
    nnx.cached_partial(nnx.jit(bump), model, graph=True, graph_updates=True)(2.0)
    np.testing.assert_allclose(model.b.value, [3.0, 3.0])


def test_static_argnums_argnames_and_retrace_per_value():
    traces = []

    @nnx.jit(static_argnums=(1,), static_argnames=("mode",))
    def f(m, k, mode="add"):
        traces.append((k, mode))
        return m.b.value + k if mode == "add" else m.b.value * k

    model = Linear(2, 2, seed=0)
    model.b.value = jnp.ones(2)
    assert f(model, 2).tolist() == [3.0, 3.0]
    assert f(model, 2).tolist() == [3.0, 3.0]
    assert f(model, 3, mode="mul").tolist() == [3.0, 3.0]
    assert f(model, 3, "mul").tolist() == [3.0, 3.0]  # a static argname given positionally
    assert len(traces) == 3


def test_negative_static_argnums():
    @nnx.jit(static_argnums=-1)
    def f(x, n):
        return x * n

    assert f(jnp.ones(2), 3).tolist() == [3.0, 3.0]


def test_arguments_in_containers_and_keywords():
    a, b = Linear(2, 2, seed=0), Linear(2, 2, seed=1)

    @nnx.jit
    def f(pair, *, scale):
        pair[0].b.value = pair[0].b.value + scale
        pair[1].b.value = pair[1].b.value - scale
        return pair[0].b.value.sum()

    assert float(f((a, b), scale=1.0)) == 2.0
    assert float(f([a, b], scale=jnp.array(1.0))) == 4.0
    np.testing.assert_allclose(b.b.value, [-2.0, -2.0])


def test_state_and_other_pytrees_holding_variables():
    model = Linear(2, 2, seed=0)
    state = nnx.state(model)  # holds the model's own Variables

    @nnx.jit
    def bump(s):
        s["b"].value = s["b"].value + 1

    bump(state)
    bump(s=state)
    assert model.b.value.tolist() == [2.0, 2.0]

    class Batch(tp.NamedTuple):
        model: Linear
        x: jax.Array

    @nnx.jit
    def step(batch):
        batch.model.b.value = batch.model.b.value + batch.x

    step(Batch(model, jnp.ones(2)))
    assert model.b.value.tolist() == [3.0, 3.0]


def test_variable_passed_directly():
    v = nnx.BatchStat(jnp.zeros(2))

    @nnx.jit
    def inc(var):
        var.value = var.value + 1

    inc(v)
    inc(v)
    assert v.value.tolist() == [2.0, 2.0]


# ----------------------------------------------------------------- donation
def test_donate_argnums_donates_every_buffer_of_the_node_without_warnings():
    model = Linear(2, 2, seed=0)
    expected_w = model.w.value * 2

    @nnx.jit(donate_argnums=0)
    def step(m):
        m.w.value = m.w.value * 2  # b is not changed, but donated too

    old_w, old_b = model.w.value, model.b.value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step(model)
        step(model)
    assert old_w.is_deleted() and old_b.is_deleted()
    assert not model.w.value.is_deleted() and not model.b.value.is_deleted()
    np.testing.assert_allclose(model.w.value, expected_w * 2)
    assert model.b.value.tolist() == [0.0, 0.0]


def test_donate_only_the_named_argument():
    model, other = Linear(2, 2, seed=0), Linear(2, 2, seed=1)

    @nnx.jit(donate_argnames="m")
    def step(m, o, x):
        m.w.value = m.w.value + o.w.value
        return x + 1

    old_model_w, old_other_w = model.w.value, other.w.value
    x = jnp.ones(2)
    step(model, other, x)
    assert old_model_w.is_deleted()
    assert not old_other_w.is_deleted() and not x.is_deleted()
    old_model_w = model.w.value
    step(m=model, o=other, x=x)  # keyword form
    assert old_model_w.is_deleted()


def test_donate_array_argument():
    model = Linear(2, 2, seed=0)

    @nnx.jit(donate_argnums=(1,))
    def step(m, x):
        return x + m.b.value

    x = jnp.ones(2)
    y = step(model, x)
    assert x.is_deleted() and y.tolist() == [1.0, 1.0]


def test_donating_a_buffer_held_by_two_variables_names_both():
    model = Linear(2, 2, seed=0)
    model.b2 = nnx.Param(model.b.value)  # same jax.Array, not a shared Variable

    @nnx.jit(donate_argnums=0)
    def step(m):
        m.b.value = m.b.value + 1

    with pytest.raises(ValueError, match=r"m\.b and m\.b2 hold the same jax\.Array"):
        step(model)
    assert not model.b.value.is_deleted()


def test_donating_a_buffer_also_passed_as_another_argument():
    model = Linear(2, 2, seed=0)

    @nnx.jit(donate_argnums=0)
    def step(m, x):
        m.w.value = m.w.value + x

    w = model.w.value
    step(model, jnp.ones((2, 2)))  # fine: a different buffer
    w = model.w.value
    with pytest.raises(ValueError, match=r"m\.w and array argument leaf 0"):
        step(model, w)
    np.testing.assert_allclose(model.w.value, w)


def test_shared_variable_is_donated_once():
    a, b = Linear(2, 2, seed=0), Linear(2, 2, seed=1)
    b.w = a.w

    @nnx.jit(donate_argnums=(0, 1))
    def step(x, y):
        x.w.value = x.w.value + 1

    expected = np.asarray(a.w.value) + 1
    step(a, b)
    assert b.w is a.w
    np.testing.assert_allclose(a.w.value, expected)


# ----------------------------------------------------------------- shardings
def test_in_and_out_shardings_on_one_device():
    mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated = NamedSharding(mesh, PartitionSpec())
    model = Linear(2, 2, seed=0)
    state_shardings = jax.tree.map(lambda _: replicated, nnx.state(model))

    @nnx.jit(
        in_shardings=(state_shardings, NamedSharding(mesh, PartitionSpec("x"))),
        out_shardings=NamedSharding(mesh, PartitionSpec("x")),
    )
    def f(m, x):
        m.b.value = m.b.value + 1
        return m(x)

    y = f(model, jnp.ones((4, 2)))
    assert isinstance(y.sharding, NamedSharding) and y.sharding.mesh.shape == mesh.shape
    assert model.b.value.tolist() == [1.0, 1.0]

    device = SingleDeviceSharding(jax.devices()[0])

    @nnx.jit(in_shardings=device, out_shardings=(device, state_shardings))
    def g(m):
        return m.b.value, m

    out, same = g(model)
    assert same is model and out.tolist() == [1.0, 1.0]


def test_in_shardings_with_static_arguments_exclude_them():
    device = SingleDeviceSharding(jax.devices()[0])

    @nnx.jit(static_argnums=1, in_shardings=(device, device))
    def f(m, k, x):
        return m.b.value + x * k

    model = Linear(2, 2, seed=0)
    assert f(model, 2, jnp.ones(2)).tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="in_shardings has 3 entries"):
        nnx.jit(f.fun, static_argnums=1, in_shardings=(device,) * 3)(model, 2, jnp.ones(2))


def test_state_sharding_in_and_out_shardings_with_static_arguments():
    mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated = NamedSharding(mesh, PartitionSpec())
    along_x = NamedSharding(mesh, PartitionSpec("x"))
    by_kind = nnx.StateSharding({nnx.Param: along_x, ...: replicated})
    assert by_kind.filters == (nnx.Param, ...)
    assert by_kind.shardings == (along_x, replicated)

    class Stats(nnx.Module):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.ones(2))
            self.n = nnx.BatchStat(jnp.zeros(()))

    def step(m, k, x):
        m.w.value = m.w.value * k
        m.n.value = m.n.value + 1
        return x * k, m

    f = nnx.jit(step, static_argnums=1, in_shardings=(by_kind, replicated))
    g = nnx.jit(step, static_argnames="k", in_shardings=(by_kind, replicated),
                out_shardings=(replicated, by_kind))  # fmt: skip
    m = Stats()
    out, same = f(m, 3, jnp.ones(2))
    assert same is m and out.tolist() == [3.0, 3.0]
    out, _ = g(m, 2, jnp.ones(2))
    assert m.w.value.tolist() == [6.0, 6.0] and float(m.n.value) == 2.0
    assert m.w.value.sharding.is_equivalent_to(along_x, 1)
    # a filter matching no Variable is named in the error
    partial_spec = nnx.StateSharding({nnx.Param: along_x})
    with pytest.raises(ValueError, match=r"state\.n"):
        nnx.jit(step, static_argnums=1, in_shardings=(partial_spec, None))(Stats(), 1, jnp.ones(2))


# ----------------------------------------------------------------- propagation
def test_only_changed_variables_are_written_back():
    model = Linear(2, 2, seed=0)
    b = model.b.value

    @nnx.jit
    def f(m):
        m.w.value = m.w.value + 1

    f(model)
    assert model.b.value is b


def test_structural_changes_inside_propagate():
    model = Linear(2, 2, seed=0)

    @nnx.jit
    def grow(m):
        m.extra = nnx.BatchStat(jnp.ones(3))
        m.sub = Linear(2, 1, seed=5)
        m.w = nnx.Param(jnp.zeros((2, 2)))  # replaced Variable
        del m.b
        m.sow(nnx.Intermediate, "hidden", m.w.value.sum())

    grow(model)
    assert model.extra.value.tolist() == [1.0, 1.0, 1.0]
    assert isinstance(model.sub, Linear) and model.sub.w.shape == (2, 1)
    assert model.w.value.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert not hasattr(model, "b")
    assert float(model.hidden.value[0]) == 0.0


def test_sow_accumulates_across_calls():
    class Probe(nnx.Module):
        def __call__(self, x):
            self.sow(nnx.Intermediate, "seen", x * 2)
            return x

    probe = Probe()
    run = nnx.jit(lambda p, x: p(x))
    run(probe, jnp.ones(2))
    run(probe, jnp.ones(2))
    assert len(probe.seen.value) == 2


def test_list_append_and_new_module_output():
    model = Model(0)

    @nnx.jit
    def f(m):
        m.layers.append(Linear(3, 3, seed=3))
        return Linear(3, 1, seed=4), m

    created, same = f(model)
    assert same is model and len(model.layers) == 2
    assert isinstance(created, Linear) and created.w.shape == (3, 1)
    eager = Linear(3, 1, seed=4)
    np.testing.assert_allclose(created.w.value, eager.w.value, rtol=1e-6)


def test_output_sharing_an_input_variable_is_that_variable():
    model = Linear(2, 2, seed=0)

    @nnx.jit
    def f(m):
        holder = nnx.Dict(w=m.w)
        return holder

    out = f(model)
    assert out["w"] is model.w


def test_model_and_optimizer_holding_it_update_as_one():
    model = Model(0)
    opt = Optimizer(model)

    @nnx.jit
    def step(m, o):
        assert o.model is m and o.model.lin.w is m.lin.w
        m.lin.w.value = m.lin.w.value + 1
        o.step.value = o.step.value + 1
        o.model.lin.b.value = o.model.lin.b.value - 1

    w = model.lin.w.value
    step(model, opt)
    step(model, opt)
    assert opt.model is model and int(opt.step.value) == 2
    np.testing.assert_allclose(model.lin.w.value, w + 2, rtol=1e-6)
    assert model.lin.b.value.tolist() == [-2.0] * 3


def test_variable_shared_by_two_modules_stays_shared():
    a, b = Linear(2, 2, seed=0), Linear(2, 2, seed=1)
    b.w = a.w

    @nnx.jit
    def f(x, y):
        assert x.w is y.w
        y.w.value = y.w.value * 0

    f(a, b)
    assert b.w is a.w and float(jnp.abs(a.w.value).sum()) == 0.0


def test_new_sharing_created_inside_reaches_the_caller():
    a, b = Linear(2, 2, seed=0), Linear(2, 2, seed=1)

    @nnx.jit
    def tie(x, y):
        y.w = x.w

    tie(a, b)
    assert b.w is a.w


def test_exception_leaves_values_and_structure_unchanged():
    model = Model(0)
    opt = Optimizer(model)
    graphdef, state = nnx.graphdef((model, opt)), values_of((model, opt))
    w, layers = model.lin.w, model.layers

    @nnx.jit
    def broken(m, o):
        m.lin.w.value = m.lin.w.value + 1
        o.step.value = o.step.value + 1
        m.layers.append(Linear(3, 3, seed=1))
        m.new = nnx.Param(jnp.ones(1))
        del m.extras
        m.lin = Linear(3, 3, seed=2)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        broken(model, opt)
    assert nnx.graphdef((model, opt)) == graphdef
    for x, y in zip(values_of((model, opt)), state, strict=True):
        np.testing.assert_array_equal(x, y)
    assert model.lin.w is w and model.layers is layers and len(layers) == 1

    # the cache is not corrupted: the same function works afterwards
    ok = nnx.jit(lambda m: m(X))
    np.testing.assert_allclose(ok(model), nnx.clone(model)(X), rtol=1e-5)


# ----------------------------------------------------------------- the cache
def _forward(m, x):
    return m(x)


MUTATIONS: dict[str, tp.Callable[[Model], None]] = {
    "surgery": lambda m: setattr(m, "lin", Linear(3, 3, seed=7)),
    "eval": lambda m: m.eval(),
    "eval_then_train": lambda m: (m.eval(), m.train()),
    "set_attributes": lambda m: m.set_attributes(use_running_average=True),
    "list_append": lambda m: m.layers.append(Linear(3, 3, seed=8)),
    "list_pop": lambda m: m.layers.pop(),
    "list_setitem": lambda m: m.layers.__setitem__(0, Linear(3, 3, seed=9)),
    "dict_set": lambda m: m.extras.__setitem__("b", Linear(3, 3, seed=10)),
    "dict_del": lambda m: m.extras.__delitem__("a"),
    "replace_variable": lambda m: setattr(m.lin, "w", nnx.Param(jnp.eye(3))),
    "new_sharing": lambda m: setattr(m.layers[0], "w", m.lin.w),
    "variable_metadata": lambda m: m.lin.w.set_metadata(tag="frozen"),
    "variable_attribute_metadata": lambda m: setattr(m.lin.b, "sharding_names", ("x",)),
    "delete_attribute": lambda m: delattr(m, "extras"),
    "replace_raw_array": lambda m: setattr(m, "scale", jnp.array(-1.0)),
    "raw_array_to_python_float": lambda m: setattr(m, "scale", 0.5),
    "replace_submodule_variable_type": lambda m: setattr(m.bn, "mean", nnx.Param(jnp.ones(3))),
    # in-place mutation of static values: no epoch bump, caught by the snapshot check
    "static_dict_in_place": lambda m: m.config.__setitem__("shift", 3.0),
    "static_list_in_place": lambda m: m.offsets.append(1.0),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_cache_is_never_stale(mutation):
    model = Model(0)
    forward = nnx.jit(_forward)
    forward(model, X)
    forward(model, X)  # the cache is warm
    MUTATIONS[mutation](model)
    reference = nnx.clone(model)
    y = forward(model, X)
    np.testing.assert_allclose(y, _forward(reference, X), rtol=1e-5, atol=1e-6)
    assert_same_state(model, reference)


def test_variable_metadata_mutated_in_place_is_seen():
    model = Model(0)
    model.lin.w.set_metadata(axes=["a"])
    f = nnx.jit(lambda m: jnp.ones(()) * len(m.lin.w.get_metadata("axes")))
    assert float(f(model)) == 1.0
    assert float(f(model)) == 1.0
    model.lin.w.get_metadata("axes").append("b")  # no structural mutation seen by the epoch
    assert float(f(model)) == 2.0


def test_train_eval_flag_used_in_function_is_respected():
    model = Model(0)
    forward = nnx.jit(_forward)
    forward(model, X)
    mean = model.bn.mean.value
    model.eval()
    forward(model, X)
    assert model.bn.mean.value is mean  # running average: no update
    model.train()
    forward(model, X)
    assert model.bn.mean.value is not mean


def test_structural_change_inside_then_outside():
    model = Linear(2, 2, seed=0)

    @nnx.jit
    def f(m):
        if not hasattr(m, "calls"):
            m.calls = nnx.Variable(jnp.array(0))
        m.calls.value = m.calls.value + 1

    for _ in range(3):
        f(model)
    del model.calls
    f(model)
    assert int(model.calls.value) == 1


def test_cache_hit_does_not_traverse(monkeypatch):
    model = Model(0)
    forward = nnx.jit(_forward)
    forward(model, X)
    calls = []
    original = _bridge.flatten_graph

    def counting(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_bridge, "flatten_graph", counting)
    forward(model, X)
    forward(model, X)
    assert calls == []
    model.eval()
    forward(model, X)
    assert calls  # the structural change invalidated the entry


def test_other_objects_and_new_objects_get_their_own_entries():
    forward = nnx.jit(_forward)
    models = [Model(i) for i in range(3)]
    for m in models:
        reference = nnx.clone(m)
        np.testing.assert_allclose(forward(m, X), _forward(reference, X), rtol=1e-5)
    del models[0]  # a dead model's id may be reused: the weak reference catches that
    fresh = Model(5)
    reference = nnx.clone(fresh)
    np.testing.assert_allclose(forward(fresh, X), _forward(reference, X), rtol=1e-5)


def test_the_cache_does_not_keep_objects_alive():
    forward = nnx.jit(_forward)
    update = nnx.jit(lambda m: setattr(m, "extra", nnx.Variable(jnp.ones(1))))
    model = Model(0)
    forward(model, X)
    update(model)  # a structural change goes through the compiled function too
    model_ref, variable_ref = weakref.ref(model), weakref.ref(model.lin.w)
    del model
    gc.collect()
    assert model_ref() is None and variable_ref() is None
    other = Model(1)  # the same structure reuses the compiled function
    reference = nnx.clone(other)
    np.testing.assert_allclose(forward(other, X), _forward(reference, X), rtol=1e-5)


# ----------------------------------------------------------------- threads
def test_threads_with_separate_models_share_one_jitted_function():
    @nnx.jit
    def step(m, x):
        y = m(x)
        m.lin.w.value = m.lin.w.value - 0.01 * y.sum()
        return y

    models = [Model(i) for i in range(4)]
    references = [nnx.clone(m) for m in models]
    for r in references:
        for _ in range(10):
            y = r(X)
            r.lin.w.value = r.lin.w.value - 0.01 * y.sum()
    errors: list[BaseException] = []

    def work(m: Model) -> None:
        try:
            for _ in range(10):
                step(m, X)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for m, r in zip(models, references, strict=True):
        assert_same_state(m, r)


def test_threads_reading_one_model():
    model = Model(0)
    model.eval()
    forward = nnx.jit(_forward)
    expected = np.asarray(_forward(nnx.clone(model), X))
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(10):
            results.append(np.asarray(forward(model, X)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40
    for r in results:
        np.testing.assert_allclose(r, expected, rtol=1e-5)


# ----------------------------------------------------------------- errors
def test_unhashable_static_argument():
    f = nnx.jit(lambda m, cfg: m.b.value, static_argnums=1)
    with pytest.raises(
        TypeError, match=r"static argument 1 \('cfg'\) must be hashable; found list"
    ):
        f(Linear(2, 2, seed=0), [1, 2])


def test_module_passed_as_static_argument():
    def fn(m, other):
        return m.b.value

    model = Linear(2, 2, seed=0)
    with pytest.raises(
        TypeError,
        match=r"argument 1 \('other'\) is declared static but received "
        r"a Linear \(a graph node",
    ):
        nnx.jit(fn, static_argnums=1)(model, model)
    with pytest.raises(TypeError, match=r"argument 'other' is declared static"):
        nnx.jit(fn, static_argnames="other")(model, other=model)
    with pytest.raises(TypeError, match=r"static but received a tuple holding a Linear"):
        nnx.jit(fn, static_argnums=1)(model, (1, model))


def test_tracer_leaked_into_a_closed_over_module_raises_at_the_call():
    model = Linear(2, 2, seed=0)
    before = model.b.value

    @nnx.jit
    def leak(x):
        model.b.value = x  # model is not an argument: the tracer would escape
        return x

    with pytest.raises(nnx.TraceContextError) as info:
        leak(jnp.ones(2))
    # raised by the Variable at the assignment (Flax's trace-level check) or by
    # nnx.jit's closure guard: either way it says what to do
    message = str(info.value)
    assert "Param" in message and "as an argument" in message
    assert model.b.value is before  # left exactly as it was
    use = nnx.jit(lambda m: m.b.raw_value + 1)
    np.testing.assert_allclose(use(model), before + 1)


def test_tracer_leaked_by_plain_jax_jit_is_named_by_the_next_nnx_jit_call():
    model = Linear(2, 2, seed=0)

    @jax.jit
    def leak(x):
        # a write behind the Variable's back (its own setters refuse a foreign trace)
        object.__setattr__(model.b, "_raw_value", x)
        return x

    leak(jnp.ones(2))
    with pytest.raises(nnx.TraceLeakError, match=r"Param\(shape=\(2,\)"):
        _ = model.b.value
    use = nnx.jit(lambda m: m.b.raw_value + 1)
    with pytest.raises(
        nnx.TraceLeakError,
        match=r"nnx\.jit\(.*<lambda>\): m\.b \(Param\) holds "
        r"a JAX tracer",
    ):
        use(model)


def test_tracer_leak_detected_when_the_cache_is_warm():
    model = Linear(2, 2, seed=0)
    other = Linear(2, 2, seed=1)

    @nnx.jit
    def use(x, m):
        return m.w.value @ x

    use(jnp.ones(2), model)  # cached; setting a value does not invalidate it

    @jax.jit
    def leak(x):
        object.__setattr__(model.w, "_raw_value", x)  # behind the Variable's back
        return x

    leak(jnp.ones((2, 2)))
    with pytest.raises(nnx.TraceLeakError, match=r"m\.w \(Param\)"):
        use(jnp.ones(2), model)
    assert use(jnp.ones(2), other).shape == (2,)


def test_graph_node_arguments_are_named_in_containers():
    model = Linear(2, 2, seed=0)

    @jax.jit
    def leak(x):
        object.__setattr__(model.w, "_raw_value", x)  # behind the Variable's back
        return x

    leak(jnp.ones((2, 2)))
    f = nnx.jit(lambda batch, scale: batch["m"].w.value * scale, static_argnums=1)
    with pytest.raises(nnx.TraceLeakError, match=r"batch\['m'\]\.w \(Param\)"):
        f({"m": model}, 2)


# ----------------------------------------------------------------- Flax's signatures
def test_jit_fun_by_keyword_and_jitwrapped_positional_parameters():
    f = nnx.jit(fun=lambda x: x + 1)
    assert f(jnp.zeros(2)).tolist() == [1.0, 1.0]
    device = SingleDeviceSharding(jax.devices()[0])
    # JitWrapped(fun, in_shardings, out_shardings, static_argnums, ...) positionally
    w = nnx.JitWrapped(lambda x, k: x * k, (device,), None, 1)
    assert w(jnp.ones(2), 3).tolist() == [3.0, 3.0]
    assert w.static_argnums == (1,)


def test_jit_partial_keywords_and_bound_in_shardings():
    device = SingleDeviceSharding(jax.devices()[0])
    model = Linear(2, 2, seed=0)

    def scale(m, k, x):
        m.b.value = m.b.value + k
        return x * k

    # in_shardings and static_argnums count the bound argument, as in Flax
    f = nnx.jit_partial(scale, model, in_shardings=(device, device), static_argnums=1)
    assert f(2, jnp.ones(2)).tolist() == [2.0, 2.0]
    assert model.b.value.tolist() == [2.0, 2.0]
    assert f.partial_args == (model,)


def test_cached_partial_and_checkify_and_make_jaxpr_signatures():
    import inspect

    from jax.experimental import checkify as ck

    assert list(inspect.signature(nnx.cached_partial).parameters)[:2] == ["f", "cached_args"]
    assert inspect.signature(nnx.checkify).parameters["errors"].default == ck.user_checks
    params = inspect.signature(nnx.make_jaxpr).parameters
    assert params["f"].default is None and params["static_argnums"].default == ()
    assert params["graph"].kind is inspect.Parameter.KEYWORD_ONLY
    sharding_params = inspect.signature(nnx.StateSharding).parameters
    assert list(sharding_params) == ["filter_sharding"]


@pytest.mark.parametrize("static", [{"static_argnums": 2}, {"static_argnames": "flag"}])
def test_updated_state_goes_back_out_with_its_in_shardings(static):
    # the function re-shards w (even by replacing the Variable): the update is put
    # back on the placement in_shardings gave the argument
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("a", "b"))
    given = NamedSharding(mesh, PartitionSpec("a", "b"))
    per_variable = nnx.StateSharding(
        {nnx.PathContains("w"): given, nnx.PathContains("b"): NamedSharding(mesh, PartitionSpec())}
    )

    @nnx.jit(in_shardings=(per_variable, None), **static)
    def reshard(m, scale, flag):
        moved = NamedSharding(mesh, PartitionSpec("b", "a"))
        if flag:
            m.w = nnx.Param(jax.lax.with_sharding_constraint(m.w.value * scale, moved))
        else:
            m.w.value = jax.lax.with_sharding_constraint(m.w.value * scale, moved)

    for flag in (True, False):
        model = Linear(2, 2, seed=0)
        w_before = np.asarray(model.w.value)
        text = reshard.lower(Linear(2, 2, seed=0), 2.0, flag).as_text()
        constraints = [line for line in text.splitlines() if "sharding_constraint" in line]
        # the function's constraint, then ours putting w back on ('a', 'b')
        assert len(constraints) == 2, text
        assert '[{"b"}, {"a"}]' in constraints[0] and '[{"a"}, {"b"}]' in constraints[1]
        reshard(model, 2.0, flag)
        np.testing.assert_allclose(model.w.value, 2 * w_before)
        assert model.w.value.sharding.is_equivalent_to(given, 2)
