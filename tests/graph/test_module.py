"""Pytree/Module: data vs static classification, pytree registration, Module methods
(sow, perturb, iter_*, set_attributes, train/eval), view/capture, repr."""

from __future__ import annotations

import dataclasses
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
        self.b = nnx.Param(jnp.zeros(dout))

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.dot(x, self.w) + self.b


class Dropoutish(nnx.Module):
    def __init__(self):
        self.deterministic = False


class Normish(nnx.Module):
    def __init__(self):
        self.use_running_average = False
        self.mean = nnx.BatchStat(jnp.zeros(2))


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.l1 = Linear(2, 3, rngs=rngs)
        self.drop = Dropoutish()
        self.norm = Normish()
        self.blocks = [Linear(3, 3, rngs=rngs), Dropoutish()]

    def __call__(self, x):
        return self.blocks[0](self.l1(x))


# ----------------------------------------------------------------- classification
def test_data_and_static_by_value():
    class M(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.ones(1))  # Variable: data
            self.arr = jnp.ones(2)  # array: data
            self.np_arr = np.ones(3)  # numpy array: data
            self.size = 3  # static
            self.name = "m"  # static
            self.fn = jnp.tanh  # static
            self.pair = (1, 2)  # static

    m = M()
    assert set(nnx.state(m)) == {"w", "arr", "np_arr"}
    gdef = nnx.graphdef(m)
    assert "size=3" in repr(gdef) and "name='m'" in repr(gdef)


def test_data_and_static_markers_on_assignment():
    class M(nnx.Module):
        def __init__(self):
            self.count = nnx.data(0)
            self.table = nnx.static((0, 1, 2))

    m = M()
    assert nnx.state(m).to_pure_dict() == {"count": 0}
    assert jax.tree.leaves(m) == [0]
    assert m.table == (0, 1, 2)


def test_data_and_static_annotations():
    class M(nnx.Module):
        count: nnx.Data[int]
        table: nnx.Static[tuple[int, ...]]

        def __init__(self):
            self.count = 3
            self.table = (2, 2)

    m = M()
    assert nnx.state(m).to_pure_dict() == {"count": 3}
    assert jax.tree.leaves(m) == [3]
    m2 = nnx.merge(*nnx.split(m))
    assert m2.count == 3 and m2.table == (2, 2)


def test_runtime_annotation_objects():
    # without `from __future__ import annotations` the annotations are objects
    annotations = {"count": nnx.Data[int], "table": nnx.Static[jax.Array]}
    M = type("M", (nnx.Module,), {"__annotations__": annotations})
    m = M()
    m.count = 3
    m.table = (2, 2)
    assert nnx.state(m).to_pure_dict() == {"count": 3}
    with pytest.raises(ValueError, match="to static attribute 'table'"):
        m.table = jnp.ones(2)


def test_annotation_names_are_matched_as_words():
    class MyData:  # a user type whose name ends with "Data"
        def __class_getitem__(cls, item):
            return cls

    class M(nnx.Module):
        x: MyData[int]  # type: ignore[type-arg]

        def __init__(self):
            self.x = 5

    assert len(nnx.state(M())) == 0


def test_class_body_data_marker():
    class M(nnx.Module):
        layers: list[tp.Any] = nnx.data()

        def __init__(self):
            self.layers = [1, 2]

    m = M()
    assert list(nnx.state(m)) == ["layers"]
    assert jax.tree.leaves(m) == [1, 2]
    assert nnx.merge(*nnx.split(m)).layers == [1, 2]


def test_subclass_annotation_overrides_base():
    class Base(nnx.Module):
        x: nnx.Data[int]

    class Child(Base):
        x: int

        def __init__(self):
            self.x = 1

    assert len(nnx.state(Child())) == 0


def test_is_data_and_has_data():
    assert nnx.is_data(jnp.ones(1)) and nnx.is_data(np.ones(1))
    assert nnx.is_data(nnx.Param(1)) and nnx.is_data(nnx.List()) and nnx.is_data(nnx.Dict())
    assert nnx.is_data(Dropoutish())
    assert not nnx.is_data(1) and not nnx.is_data("a") and not nnx.is_data([jnp.ones(1)])
    assert nnx.has_data([1, {"a": jnp.ones(1)}])
    assert nnx.has_data((nnx.Param(1),))
    assert not nnx.has_data((1, "a", [2.0], {"k": None}))


def test_register_data_type():
    class Box:
        pass

    assert not nnx.is_data(Box())
    nnx.register_data_type(Box)
    assert nnx.is_data(Box())

    class M(nnx.Module):
        def __init__(self):
            self.box = Box()

    m = M()
    assert list(nnx.state(m)) == ["box"]
    assert nnx.merge(*nnx.split(m)).box is m.box


def test_dataclass_pytree():
    @nnx.dataclass
    class Pair(nnx.Pytree):
        a: jax.Array
        label: str = nnx.static(default="x")
        extra: int = nnx.data(default=2)

    p = Pair(jnp.ones(1))
    assert p.label == "x"
    assert nnx.state(p).to_pure_dict() == {"a": jnp.ones(1), "extra": 2}
    q = jax.tree.map(lambda v: v + 1, p)
    assert type(q) is Pair and q.extra == 3 and q.label == "x"
    assert dataclasses.is_dataclass(Pair)


def test_dataclass_with_arguments():
    @nnx.dataclass(eq=False, kw_only=True)
    class P(nnx.Pytree):
        w: nnx.Param[jax.Array]

    p = P(w=nnx.Param(jnp.ones(2)))
    assert list(nnx.state(p)) == ["w"]
    assert P.__eq__ is object.__eq__ and {p: 1}[p] == 1  # eq=False: hashable by identity
    with pytest.raises(TypeError):
        P(nnx.Param(jnp.ones(2)))  # kw_only


def test_check_pytree_reports_data_in_static_attribute():
    class Holder(nnx.Module):
        def __init__(self):
            self.cfg = nnx.static({"k": 1})

    nnx.check_pytree(Dropoutish())  # no error
    h = Holder()
    nnx.check_pytree(h)
    h.cfg["k"] = nnx.Param(jnp.ones(1))  # data smuggled into a static container
    with pytest.raises(ValueError) as info:
        nnx.check_pytree(h)
    message = str(info.value)
    assert "Found unexpected data on value of type dict in static attribute 'cfg'" in message
    assert "Holder.cfg" in message and "Expected" in message and "Fix:" in message
    with pytest.raises(TypeError, match="Expected a Pytree, got int"):
        nnx.check_pytree(3)


def test_object_alias():
    assert nnx.Object is nnx.Pytree


def test_pytree_false_is_not_a_jax_pytree_but_is_a_graph_node():
    class Opaque(nnx.Pytree, pytree=False):
        def __init__(self):
            self.w = nnx.Param(jnp.ones(1))

    o = Opaque()
    assert jax.tree.leaves(o) == [o]
    assert list(nnx.state(o)) == ["w"]
    assert nnx.merge(*nnx.split(o)).w is o.w


def test_reassigning_same_variable_is_a_noop():
    class M(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.ones(1))

    m = M()
    w = m.w
    m.w = w
    assert m.w is w


def test_delattr_removes_state():
    class M(nnx.Module):
        def __init__(self):
            self.a = nnx.Param(jnp.ones(1))
            self.b = nnx.Param(jnp.ones(1))

    m = M()
    del m.a
    assert list(nnx.state(m)) == ["b"]


# ----------------------------------------------------------------- jax pytree
def test_module_is_a_jax_pytree():
    net = Net(nnx.Rngs(0))
    leaves = jax.tree.leaves(net)
    # l1.w, l1.b, norm.mean, blocks[0].w, blocks[0].b
    assert len(leaves) == 5
    assert all(isinstance(x, jax.Array) for x in leaves)
    paths = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(net)}
    assert ".l1.w.value" in paths and ".blocks[0].b.value" in paths


def test_tree_map_over_module_builds_new_module():
    net = Net(nnx.Rngs(0))
    zero = jax.tree.map(jnp.zeros_like, net)
    assert type(zero) is Net and zero is not net
    assert type(zero.blocks) is nnx.List and type(zero.l1.w) is nnx.Param
    assert float(zero.l1.w.value.sum()) == 0.0
    assert float(net.l1.w.value.sum()) != 0.0
    assert zero.l1.din == 2 and zero.drop.deterministic is False
    assert nnx.graphdef(zero) == nnx.graphdef(net)


def test_jax_jit_of_a_module():
    net = Net(nnx.Rngs(0))
    x = jnp.ones((4, 2))
    assert jnp.allclose(jax.jit(net)(x), net(x))
    assert jnp.allclose(jax.jit(lambda m, x: m(x))(net, x), net(x))


def test_jax_grad_over_module_pytree():
    lin = Linear(2, 1, rngs=nnx.Rngs(0))
    grads = jax.grad(lambda m: m(jnp.ones((1, 2))).sum())(lin)
    assert type(grads) is Linear
    assert grads.w.value.tolist() == [[1.0], [1.0]]
    assert grads.b.value.tolist() == [1.0]


def test_pytree_treedef_depends_on_static_attributes():
    a = jax.tree.structure(Linear(2, 3, rngs=nnx.Rngs(0)))
    b = jax.tree.structure(Linear(2, 3, rngs=nnx.Rngs(1)))
    c = jax.tree.structure(Linear(3, 2, rngs=nnx.Rngs(0)))
    assert a == b and a != c


# ----------------------------------------------------------------- methods
def test_sow_appends_to_a_tuple_and_custom_reduce():
    class M(nnx.Module):
        def __call__(self, x):
            self.sow(nnx.Intermediate, "h", x)
            self.sow("intermediates", "total", x, reduce_fn=lambda a, b: a + b, init_fn=lambda: 0)
            return x

    m = M()
    m(jnp.ones(2))
    m(jnp.ones(2))
    assert type(m.h) is nnx.Intermediate and len(m.h.value) == 2
    assert type(m.total) is nnx.Intermediate
    assert m.total.value.tolist() == [2.0, 2.0]


def test_sow_into_wrong_type_errors():
    class M(nnx.Module):
        def __init__(self):
            self.h = nnx.Param(jnp.ones(1))

    with pytest.raises(ValueError, match=r"attribute 'h' of M holds a Param.*Fix"):
        M().sow(nnx.Intermediate, "h", 1)


def test_perturb_adds_zero_variable():
    class M(nnx.Module):
        def __call__(self, x):
            return self.perturb("h", x) * 3

    m = M()
    assert m(jnp.ones(2)).tolist() == [3.0, 3.0]
    assert type(m.h) is nnx.Perturbation and m.h.value.tolist() == [0.0, 0.0]
    m.h.value = jnp.ones(2)
    assert m(jnp.ones(2)).tolist() == [6.0, 6.0]


def test_iter_modules_and_children():
    net = Net(nnx.Rngs(0))
    shared = net.drop
    net.again = shared  # a shared Module is listed once
    paths = [p for p, _ in net.iter_modules()]
    # blocks is a plain list (converted to an nnx.List on assignment): like Flax's
    # plain list it is not listed itself, only the Modules it holds
    assert paths == [("again",), ("blocks", 0), ("blocks", 1), ("l1",), ("norm",), ()]
    assert [p for p, _ in nnx.iter_modules(net)] == paths
    # the method: Modules held directly by attributes (a shared one under each name)
    children = [name for name, _ in net.iter_children()]
    assert children == ["again", "drop", "l1", "norm"]
    # the function: every immediate graph-node or Variable child, containers included
    direct = dict(nnx.iter_children(net))
    assert list(direct) == ["again", "drop", "l1", "norm"]
    assert direct["l1"] is net.l1
    net.explicit = nnx.List([Dropoutish()])  # an explicit nnx.List is a Module child
    assert [k for k, _ in net.iter_children()] == ["again", "drop", "explicit", "l1", "norm"]
    assert ("explicit",) in [p for p, _ in net.iter_modules()]
    del net.explicit
    assert [k for k, _ in nnx.iter_children(net.blocks)] == [0, 1]
    assert [k for k, _ in nnx.iter_children(net.l1)] == ["b", "w"]
    assert [k for k, _ in nnx.iter_children(nnx.Dict(b=Dropoutish(), a=1))] == ["b"]
    with pytest.raises(TypeError, match=r"expected a graph node.*found int"):
        list(nnx.iter_children(3))


def test_set_attributes_train_eval():
    net = Net(nnx.Rngs(0))
    net.eval()
    assert net.drop.deterministic is True and net.blocks[1].deterministic is True
    assert net.norm.use_running_average is True
    net.train()
    assert net.drop.deterministic is False and net.norm.use_running_average is False
    net.set_attributes(Normish, use_running_average=True)
    assert net.norm.use_running_average is True and net.drop.deterministic is False
    net.eval(deterministic=False)
    assert net.drop.deterministic is False


def test_set_attributes_unknown_name():
    net = Net(nnx.Rngs(0))
    with pytest.raises(AttributeError) as info:
        net.set_attributes(dropout_rate=0.5)
    assert "['dropout_rate']" in str(info.value) and "Fix:" in str(info.value)
    net.set_attributes(dropout_rate=0.5, raise_if_not_found=False)


def test_view_and_with_attributes_leave_original_alone():
    net = Net(nnx.Rngs(0))
    v = nnx.view(net, deterministic=True)
    assert v is not net
    assert v.drop.deterministic is True and net.drop.deterministic is False
    assert v.l1.w is net.l1.w  # shares Variables
    w = nnx.with_attributes(net, only=Normish, use_running_average=True)
    assert w.norm.use_running_average is True and net.norm.use_running_average is False
    assert w.l1.w is net.l1.w


def test_unknown_attribute_names_raise_value_error_naming_them():
    net = Net(nnx.Rngs(0))
    for call in (
        lambda **kw: net.set_attributes(**kw),
        lambda **kw: nnx.with_attributes(net, **kw),
    ):
        with pytest.raises(ValueError, match=r"Could not find at least one instance") as info:
            call(deterministic=True, no_such_flag=1)
        assert "['no_such_flag']" in str(info.value)
        assert isinstance(info.value, AttributeError)  # older nnx code caught this
    out = nnx.with_attributes(net, deterministic=True, no_such_flag=1, raise_if_not_found=False)
    assert out.drop.deterministic is True and not hasattr(out, "no_such_flag")


def test_view_calls_set_view_and_reports_unused_keys():
    calls = []

    class Switch(nnx.Module):
        def __init__(self):
            self.mode = "a"

        def set_view(self, mode: str | None = None) -> None:
            calls.append(mode)
            if mode is not None:
                self.mode = mode

    class Greedy(nnx.Module):
        def set_view(self, **kwargs: object) -> None:
            calls.append(sorted(kwargs))

    class Holder(nnx.Module):
        def __init__(self):
            self.s = Switch()

    h = Holder()
    v = nnx.view(h, mode="b")
    assert v.s.mode == "b" and h.s.mode == "a" and calls == ["b"]
    with pytest.raises(ValueError, match=r"Unused keys found in nnx.view: \['other'\]"):
        nnx.view(h, mode="c", other=1)
    nnx.view(h, other=1, raise_if_not_found=False)
    calls.clear()
    nnx.view(Greedy(), anything=1, more=2)  # a **kwargs set_view consumes every key
    assert calls == [["anything", "more"]]


def test_view_info_describes_set_view_parameters():
    class Switchable(nnx.Module):
        def __init__(self):
            self.fast = False

        def set_view(self, fast: bool | None = None, *, level: int = 2, **kwargs):
            """Switch modes.

            Args:
                fast: take the quick path,
                    skipping checks.
                level: how much to log.

            Example::

                >>> pass
            """
            return kwargs

    class Holder(nnx.Module):
        def __init__(self):
            self.s = Switchable()
            self.plain = Dropoutish()  # no set_view: not listed

    text = nnx.view_info(Holder())
    assert text.splitlines() == [
        f"{Switchable.__qualname__}:",
        "  fast: bool | None = None",
        "    take the quick path,",
        "    skipping checks.",
        "  level: int = 2",
        "    how much to log.",
    ]
    assert nnx.view_info(Holder(), only=Dropoutish) == ""


def test_capture_with_module_bound_method_and_function():
    class M(nnx.Module):
        def __call__(self, x):
            self.sow(nnx.Intermediate, "h", x + 1)
            return x * 2

        def half(self, x):
            self.sow(nnx.Intermediate, "h", x)
            return x / 2

    m = M()
    y, inter = nnx.capture(m, nnx.Intermediate)(jnp.ones(2))
    assert y.tolist() == [2.0, 2.0]
    assert inter["h"].value[0].tolist() == [2.0, 2.0]
    assert not hasattr(m, "h")  # popped

    y, inter = nnx.capture(m.half, nnx.Intermediate)(jnp.ones(2))
    assert y.tolist() == [0.5, 0.5] and list(inter) == ["h"]

    y, inter = nnx.capture(lambda mod, x: mod(x), nnx.Intermediate)(m, jnp.ones(2))
    assert list(inter) == ["h"]

    decorated = nnx.capture(nnx.Intermediate)(lambda mod, x: mod(x))
    assert list(decorated(m, jnp.ones(2))[1]) == ["h"]

    assert nnx.capture(m)(jnp.ones(2)).tolist() == [2.0, 2.0]  # nothing captured


def test_capture_several_types_and_gradients_through_perturbations():
    class M(nnx.Module):
        def __call__(self, x):
            self.sow(nnx.Intermediate, "feat", x)
            return 3 * self.perturb("g", x)

    m = M()
    _, perts, inters = nnx.capture(m, nnx.Perturbation, nnx.Intermediate)(jnp.ones(2))
    assert list(perts) == ["g"] and list(inters) == ["feat"]

    graphdef, state = nnx.split(m)

    def loss(p, x):
        mod = nnx.merge(graphdef, state)  # built inside the trace: free to mutate
        y, _ = nnx.capture(lambda mod, x: mod(x), nnx.Perturbation, init=p)(mod, x)
        return (y**2).sum()

    grads = jax.grad(loss)(perts, jnp.ones(2))
    # d/dg sum((3 (x + g))^2) = 18 (x + g) = 18 at g = 0
    assert grads["g"].value.tolist() == [18.0, 18.0]


def test_capture_needs_a_module():
    with pytest.raises(TypeError, match="expected a Module among the arguments"):
        nnx.capture(lambda x: x, nnx.Intermediate)(1)
    with pytest.raises(TypeError, match="expected a Module among the arguments"):
        nnx.capture(lambda x: x, method_outputs=nnx.Intermediate)(1)


def test_m_typevar():
    assert isinstance(nnx.M, tp.TypeVar)
    assert nnx.M.__bound__ is not None


# ----------------------------------------------------------------- repr
def test_module_repr_is_nested_and_shows_shapes():
    net = Net(nnx.Rngs(0))
    net.pair = (Dropoutish(), 3)
    net.tied = net.l1.w
    text = repr(net)
    lines = text.splitlines()
    # Flax's layout: per-type sizes on each object, Variables as their own block,
    # arrays summarised, commas only between entries
    assert lines[0] == "Net( # Param: 21 (84 B), BatchStat: 2 (8 B), Total: 23 (92 B)"
    expected_lines = [
        "  blocks=List([",
        "    Linear( # Param: 12 (48 B)",
        "      b=Param( # 3 (12 B)",
        "        value=Array(shape=(3,), dtype=dtype('float32'))",
        "      ),",
        "      din=3,",
        "  drop=Dropoutish(",
        "    deterministic=False",
        "  l1=Linear( # Param: 9 (36 B)",
        "    w=Param( # 6 (24 B)",
        "        value=Array(shape=(2, 3), dtype=dtype('float32'))"[2:],
        "  pair=(",
        "    3",
        "  tied=<shared: self.l1.w>",
    ]
    for line in expected_lines:
        assert line in lines, (line, text)
    assert lines[-1] == ")" and not any(line.endswith(",)") for line in lines)


def test_repr_scalars_whole_and_dtypes_by_name():
    class M(nnx.Module):
        def __init__(self):
            self.s = nnx.data(jnp.float32(2.0))
            self.dt = jnp.float32
            self.big = nnx.Param(jnp.zeros((200, 300)))

    # Flax's layout, attributes in assignment order
    assert repr(M()) == (
        "M( # Param: 60,000 (240.0 KB)\n"
        "  s=Array(2., dtype=float32),\n"
        "  dt=float32,\n"
        "  big=Param( # 60,000 (240.0 KB)\n"
        "    value=Array(shape=(200, 300), dtype=dtype('float32'))\n"
        "  )\n"
        ")"
    )


def test_empty_module_repr():
    class Empty(nnx.Module):
        pass

    assert repr(Empty()) == "Empty()"


def test_capture_takes_exact_types_and_leaves_the_module_clean():
    class Probe(nnx.Module):
        def __call__(self, x):
            x = self.perturb("dx", x)
            self.sow(nnx.Intermediate, "h", 2 * x)
            return 2 * x

    probe = Probe()
    _, perturbations = nnx.capture(probe, nnx.Perturbation)(jnp.ones(2))
    assert list(perturbations) == ["dx"]
    assert not hasattr(probe, "h") and not hasattr(probe, "dx")  # nothing left behind
    init = nnx.State({"dx": nnx.Perturbation(jnp.full(2, 0.5))})
    out, sown = nnx.capture(probe, nnx.Intermediate, init=init)(jnp.ones(2))
    assert list(sown) == ["h"]  # the Perturbation subclass is not an Intermediate here
    assert out.tolist() == [3.0, 3.0] and len(sown["h"].value) == 1
    assert not hasattr(probe, "dx") and not hasattr(probe, "h")
