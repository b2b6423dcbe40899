"""Flax 0.12's object model rules for Pytree/Module attributes (data vs static), the
trace-level rule (TraceContextError) and the Pytree-related signatures."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle

import jax
import jax.numpy as jnp
import pytest

import nnx


class Box(nnx.Module):
    def __init__(self):
        self.size = 3  # static
        self.w = nnx.Param(jnp.ones(2))  # data


# ------------------------------------------------------------ static -> data
@pytest.mark.parametrize(
    "value",
    [jnp.ones(1), nnx.Param(jnp.ones(1)), Box()],
    ids=["array", "Variable", "Module"],
)
def test_data_assigned_to_existing_static_attribute_raises(value):
    b = Box()
    with pytest.raises(ValueError) as info:
        b.size = value
    message = str(info.value)
    assert f"Cannot assign data value of type '{type(value).__name__}'" in message
    assert "to static attribute 'size' of Pytree type 'Box'" in message
    assert "Box.size" in message and "Expected a static value" in message
    assert "Fix:" in message and "nnx.data(...)" in message
    assert b.size == 3  # unchanged


def test_none_then_data_raises_but_nnx_data_or_del_allows_it():
    class Lazy(nnx.Module):
        def __init__(self):
            self.cache = None
            self.slot = nnx.data(None)

    m = Lazy()
    with pytest.raises(ValueError, match="to static attribute 'cache'"):
        m.cache = nnx.Cache(jnp.zeros(2))
    m.slot = nnx.Cache(jnp.zeros(2))  # declared data up front
    m.cache = nnx.data(nnx.Cache(jnp.zeros(2)))  # or declared on assignment
    assert set(nnx.state(m)) == {"cache", "slot"}
    del m.cache
    m.cache = jnp.ones(1)  # a deleted attribute's kind is decided afresh
    assert "cache" in nnx.state(m)


def test_static_to_static_and_data_to_data_reassignment_is_fine():
    b = Box()
    b.size = 4
    b.w = nnx.Param(jnp.zeros(2))
    assert b.size == 4 and b.w[...].tolist() == [0.0, 0.0]


def test_data_attribute_stays_data_when_given_a_static_value():
    b = Box()
    b.w = 3
    assert nnx.state(b).to_pure_dict() == {"w": 3}  # a leaf, as in Flax
    assert jax.tree.leaves(b) == [3]
    b.w = jnp.ones(3)  # still data: assigning an array again is allowed
    assert nnx.state(b)["w"].shape == (3,)


# ------------------------------------------------------------ declared static
def test_nnx_static_wrapping_data_raises():
    class M(nnx.Module):
        def __init__(self, value):
            self.table = nnx.static(value)

    assert M((1, 2)).table == (1, 2)
    with pytest.raises(ValueError) as info:
        M([jnp.ones(1), nnx.Param(jnp.ones(1))])
    message = str(info.value)
    assert "Found data in value of type 'list' annotated with nnx.static(...)" in message
    assert "when setting attribute 'table' of Pytree type 'M'" in message
    assert "ArrayImpl, Param" in message and "Expected" in message and "Fix:" in message


def test_static_annotation_holding_data_raises():
    class M(nnx.Module):
        table: nnx.Static[tuple]

        def __init__(self, value):
            self.table = value

    assert M((1, 2)).table == (1, 2)
    with pytest.raises(ValueError) as info:
        M((jnp.ones(1),))
    message = str(info.value)
    assert "Found data on value of type 'tuple' assigned to static attribute 'table'" in message
    assert "of Pytree type 'M'" in message and "M.table is declared static" in message
    assert "nnx.data(...)" in message and "pytree=False" in message


def test_static_field_of_nnx_dataclass_holding_data_raises():
    @nnx.dataclass(eq=False)
    class P(nnx.Pytree):
        a: jax.Array
        label: object = nnx.static(default="x")

    assert P(jnp.ones(1)).label == "x"
    with pytest.raises(ValueError, match="Found unexpected data on value of type Array") as info:
        P(jnp.ones(1), jnp.ones(1))
    assert "static attribute 'label' of Pytree type 'P'" in str(info.value)


def test_container_with_data_for_a_static_attribute_uses_the_found_data_wording():
    class P(nnx.Pytree):
        def __init__(self):
            self.tag = nnx.static("x")

    p = P()
    with pytest.raises(ValueError, match="Found data on value of type 'list'") as info:
        p.tag = ["text", jnp.ones(1)]
    assert "static attribute 'tag'" in str(info.value) and "Fix:" in str(info.value)
    with pytest.raises(ValueError, match="Cannot assign data value of type 'ArrayImpl'"):
        p.tag = jnp.ones(1)


def test_markers_inside_containers_raise():
    m = Box()
    with pytest.raises(ValueError) as info:
        m.items = nnx.data([nnx.static(1)])
    message = str(info.value)
    assert "Found unexpected tags on attribute 'Box.items'" in message
    assert "Fix:" in message


def test_pytree_false_skips_the_checks():
    class Loose(nnx.Module, pytree=False):
        def __init__(self):
            self.x = None

    m = Loose()
    m.x = jnp.ones(1)  # Flax: no checks without pytree
    m.t = nnx.static(jnp.ones(1))
    assert "x" in nnx.state(m)


def test_plain_lists_of_modules_and_arrays_stay_nnx_behaviour():
    # deliberate difference: Flax raises here, nnx stores an nnx.List / nnx.Dict
    m = Box()
    m.layers = [Box(), Box()]
    m.table = {"a": jnp.ones(1)}
    assert isinstance(m.layers, nnx.List) and isinstance(m.table, nnx.Dict)
    assert set(nnx.state(m)) == {"layers", "table", "w"}


def test_check_pytree_is_per_object_and_typed():
    class M(nnx.Module):
        cfg: nnx.Static[dict]

        def __init__(self):
            self.cfg = {"k": 1}
            self.child = Box()

    m = M()
    nnx.check_pytree(m)
    vars(m)["cfg"] = {"k": jnp.ones(1)}  # behind __setattr__'s back
    with pytest.raises(ValueError) as info:
        nnx.check_pytree(m)
    assert "Found unexpected data on value of type dict in static attribute 'cfg'" in str(
        info.value
    )
    with pytest.raises(TypeError, match="Expected a Pytree, got list"):
        nnx.check_pytree([m])


# ------------------------------------------------------------ trace level
class Counter(nnx.Module):
    def __init__(self):
        self.n = 0
        self.w = nnx.Param(jnp.zeros(1))


def test_setting_attribute_inside_plain_jax_jit_raises_trace_context_error():
    c = Counter()

    @jax.jit
    def f(x):
        c.n = 1
        return x

    with pytest.raises(nnx.TraceContextError) as info:
        f(1)
    message = str(info.value)
    assert "Cannot mutate 'Counter' from different trace level" in message
    assert "setting attribute 'n'" in message and "Expected" in message
    assert "Fix:" in message and "nnx.jit" in message
    assert c.n == 0
    assert issubclass(nnx.TraceContextError, nnx.TraceLeakError)


def test_deleting_attribute_inside_jax_grad_raises():
    c = Counter()

    def loss(x):
        del c.n
        return x

    with pytest.raises(nnx.TraceContextError, match="deleting attribute 'n'"):
        jax.grad(loss)(1.0)
    assert c.n == 0


def test_mutation_inside_nnx_transforms_and_same_trace_is_allowed():
    c = Counter()

    @nnx.jit
    def step(m):
        m.n = m.n + 1  # static change: a new structure, written back
        m.extra = nnx.Param(jnp.ones(1))
        return m.w[...]

    step(c)
    assert c.n == 1 and "extra" in nnx.state(c)

    @jax.jit
    def inside(x):
        m = Counter()  # created in this trace: free to change
        m.n = 2
        m.w = nnx.Param(x)
        return m.w[...]

    assert inside(jnp.ones(1)).tolist() == [1.0]
    graphdef, state = nnx.split(c)

    @jax.jit
    def merged(state):
        m = nnx.merge(graphdef, state)  # rebuilt inside the trace
        m.n = 5
        return m.n

    assert int(merged(state)) == 5


def test_top_level_mutation_from_another_thread_and_after_copy_or_pickle():
    import threading

    c = Counter()
    errors = []

    def worker():
        try:
            c.n = 7
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert not errors and c.n == 7
    for other in (copy.deepcopy(c), copy.copy(c), pickle.loads(pickle.dumps(c))):
        other.n = 8
        assert other.n == 8


# ------------------------------------------------------------ signatures
def test_pytree_signatures_match_flax_names():
    assert list(inspect.signature(nnx.check_pytree).parameters) == ["pytree"]
    params = inspect.signature(nnx.register_data_type).parameters
    assert list(params) == ["type_"] and params["type_"].kind is inspect.Parameter.POSITIONAL_ONLY
    assert list(inspect.signature(nnx.iter_modules).parameters) == ["module", "graph"]
    assert list(inspect.signature(nnx.iter_children).parameters) == ["node", "graph"]
    dc = inspect.signature(nnx.dataclass).parameters
    assert list(dc) == [
        "cls",
        "init",
        "eq",
        "order",
        "unsafe_hash",
        "match_args",
        "kw_only",
        "slots",
        "weakref_slot",
    ]
    assert dc["eq"].default is True and dc["kw_only"].default is False


def test_register_data_type_works_as_decorator():
    @nnx.register_data_type
    class Token:
        pass

    class M(nnx.Module):
        def __init__(self):
            self.t = Token()

    assert isinstance(Token(), Token) and nnx.is_data(Token())
    assert list(nnx.state(M())) == ["t"]


def test_dataclass_defaults_to_field_equality_like_flax():
    @nnx.dataclass
    class P(nnx.Pytree):
        a: int = nnx.data(default=1)
        b: str = nnx.static(default="x")

    assert P() == P() and P(2) != P()
    assert P.__hash__ is None  # eq=True without unsafe_hash, as dataclasses do
    assert "a=" in repr(P())  # the Pytree repr is kept (repr=False)


def test_jax_only_pytree_of_arrays_is_refused_instead_of_hidden_as_static():
    # A pytree registered with JAX only is opaque to the graph walker: stored as a
    # static attribute its Params would silently be missing from nnx.state.
    @jax.tree_util.register_dataclass
    @dataclasses.dataclass
    class Pair:
        w: nnx.Param
        b: jax.Array

    class Holder(nnx.Module):
        def __init__(self):
            self.config = None  # JAX pytree node without arrays: still static
            self.pair = Pair(nnx.Param(jnp.ones(2)), jnp.zeros(1))

    with pytest.raises(ValueError) as info:
        Holder()
    message = str(info.value)
    assert "Cannot store the JAX pytree of type 'Pair' holding ArrayImpl, Param" in message
    assert "Holder.pair would keep its arrays out of nnx.state" in message
    assert "register_pytree_node_type(Pair, flatten, unflatten)" in message
    assert "`self.pair = nnx.data(value)`" in message

    @dataclasses.dataclass
    class Box:
        w: nnx.Param

    nnx.graphlib.register_pytree_node_type(
        Box, flatten=lambda b: ((("w", b.w),), None), unflatten=lambda items, _: Box(items[0][1])
    )

    class Holder2(nnx.Module):
        def __init__(self):
            self.box = nnx.data(Box(nnx.Param(jnp.ones(2))))

    state = nnx.state(Holder2())
    assert state["box"]["w"].value.tolist() == [1.0, 1.0]
