"""Variables: value access, arithmetic, in-place updates, metadata, copies, pytree
registration, collection names."""

from __future__ import annotations

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
from nnx_graph._hijax import hijax_supported


class Count(nnx.Variable):
    pass


class LoraParam(nnx.Param):
    pass


# ----------------------------------------------------------------- value access
def test_value_property_get_and_set():
    v = nnx.Param(jnp.zeros(3))
    assert v.value.shape == (3,)
    v.value = jnp.ones(3)
    assert v.value.tolist() == [1.0, 1.0, 1.0]


def test_ellipsis_indexing_reads_and_writes_whole_value():
    v = nnx.Param(jnp.zeros(2))
    assert v[...] is v.value
    v[...] = jnp.full(2, 7.0)
    assert v.value.tolist() == [7.0, 7.0]


def test_integer_and_slice_indexing():
    v = nnx.Param(jnp.arange(4.0))
    assert float(v[1]) == 1.0
    assert v[1:3].tolist() == [1.0, 2.0]
    v[2] = 10.0
    assert v.value.tolist() == [0.0, 1.0, 10.0, 3.0]


def test_get_value_and_set_value():
    v = nnx.BatchStat(jnp.zeros(2))
    assert v.get_value() is v.value
    assert float(v.get_value(index=0)) == 0.0
    v.set_value(jnp.ones(2))
    assert v.get_value().tolist() == [1.0, 1.0]
    v.set_value(5.0, index=1)
    assert v.get_value().tolist() == [1.0, 5.0]


def test_set_value_with_a_variable_takes_its_value():
    v = nnx.Param(jnp.zeros(1))
    v.set_value(nnx.Param(jnp.ones(1)))
    assert isinstance(v.raw_value, jax.Array)
    assert v.value.tolist() == [1.0]


def test_raw_value_roundtrip():
    v = nnx.Variable(jnp.zeros(1))
    v.raw_value = jnp.ones(1)
    assert v.raw_value.tolist() == [1.0]


def test_array_properties():
    v = nnx.Param(jnp.zeros((2, 3), jnp.float16))
    assert v.shape == (2, 3)
    assert v.dtype == jnp.float16
    assert v.ndim == 2
    assert v.size == 6
    assert len(v) == 2
    assert [r.shape for r in v] == [(3,), (3,)]


def test_python_scalar_values():
    v = nnx.Variable(3)
    assert v.shape == ()
    assert int(v) == 3 and float(v) == 3.0
    assert [10, 20, 30, 40][nnx.Variable(2)] == 30  # __index__
    assert bool(nnx.Variable(jnp.array(True)))


def test_attributes_of_the_value_are_forwarded():
    v = nnx.Param(jnp.ones((2, 3)))
    assert v.T.shape == (3, 2)
    assert v.astype(jnp.int32).dtype == jnp.int32
    assert float(v.sum()) == 6.0


def test_unknown_attribute_error_names_variable_and_value():
    v = nnx.Param(jnp.ones(2))
    with pytest.raises(AttributeError, match="Param has no attribute or metadata 'nope'"):
        v.nope


# ----------------------------------------------------------------- arithmetic
def test_binary_operators_use_the_value():
    v = nnx.Param(jnp.array([1.0, 2.0]))
    w = nnx.Param(jnp.array([3.0, 4.0]))
    assert (v + 1).tolist() == [2.0, 3.0]
    assert (1 + v).tolist() == [2.0, 3.0]
    assert (v - w).tolist() == [-2.0, -2.0]
    assert (2 * v).tolist() == [2.0, 4.0]
    assert (v / 2).tolist() == [0.5, 1.0]
    assert (v**2).tolist() == [1.0, 4.0]
    assert (v // 2).tolist() == [0.0, 1.0]
    assert (v % 2).tolist() == [1.0, 0.0]
    assert float(v @ w) == 11.0
    assert (-v).tolist() == [-1.0, -2.0]
    assert (+v).tolist() == [1.0, 2.0]
    assert abs(nnx.Param(jnp.array(-3.0))) == 3.0
    assert not isinstance(v + 1, nnx.Variable)


def test_bitwise_operators():
    v = nnx.Variable(jnp.array(6))
    assert int(v & 3) == 2
    assert int(v | 1) == 7
    assert int(v ^ 2) == 4
    assert int(v << 1) == 12
    assert int(v >> 1) == 3
    assert int(~v) == -7


def test_comparisons_compare_values():
    v = nnx.Param(jnp.array(1))
    assert bool(v < 2) and bool(v <= 1) and bool(v > 0) and bool(v >= 1)
    assert bool(v == 1)  # as in Flax: a value comparison, not identity
    assert bool(v != 2)
    assert bool(v == nnx.Param(jnp.array(1)))


def test_variables_stay_hashable_by_identity():
    a, b = nnx.Param(jnp.ones(2)), nnx.Param(jnp.ones(2))
    table = {a: "a", b: "b"}
    assert table[a] == "a" and table[b] == "b"
    assert len({a, b, a}) == 2


def test_inplace_operator_updates_the_same_variable():
    c = Count(jnp.array(0))
    alias = c
    c += 1
    assert c is alias
    assert int(c.value) == 1
    c *= 5
    c -= 1
    assert c is alias and int(c.value) == 4


def test_inplace_on_module_attribute_keeps_the_variable():
    class Counter(nnx.Module):
        def __init__(self):
            self.count = Count(jnp.array(0))

        def __call__(self):
            self.count += 1

    counter = Counter()
    var = counter.count
    counter()
    counter()
    assert counter.count is var
    assert int(counter.count.value) == 2


def test_indexed_inplace_update():
    v = nnx.Param(jnp.zeros(3))
    v[...] += 2
    v[1] += 1
    assert v.value.tolist() == [2.0, 3.0, 2.0]


def test_jnp_functions_accept_variables():
    x = jnp.ones((3, 2))
    w = nnx.Param(jnp.ones((2, 4)))
    assert jnp.dot(x, w).shape == (3, 4)
    assert (x @ w).shape == (3, 4)
    assert float(jnp.sum(w)) == 8.0
    assert np.asarray(w).shape == (2, 4)
    assert np.asarray(w, dtype=np.float64).dtype == np.float64


def test_variable_inside_jax_jit_as_argument():
    w = nnx.Param(jnp.ones(2))
    out = jax.jit(lambda v: v * 2)(w)
    assert out.tolist() == [2.0, 2.0]


# ----------------------------------------------------------------- metadata
def test_metadata_from_kwargs_readable_as_attributes():
    v = nnx.Param(jnp.zeros(1), sharding_names=("x",), tag="t")
    assert v.sharding_names == ("x",)
    assert v.tag == "t"
    # sharding_names= is stored under Flax 0.12's key, out_sharding
    assert v.get_metadata(exclude_required=True) == {"out_sharding": ("x",), "tag": "t"}
    assert v.get_metadata() == {
        "out_sharding": ("x",),
        "tag": "t",
        "hijax": False,
        "ref": False,
        "eager_sharding": True,
    }
    assert v.get_metadata("tag") == "t"
    assert v.get_metadata("missing", None) is None
    assert v.metadata == v.get_metadata()


def test_missing_metadata_error():
    # Flax raises KeyError; nnx's error is also an AttributeError (older nnx)
    with pytest.raises(KeyError, match="no metadata 'foo'"):
        nnx.Param(jnp.zeros(1)).get_metadata("foo")
    with pytest.raises(AttributeError, match="no metadata 'foo'"):
        nnx.Param(jnp.zeros(1)).get_metadata("foo")


def test_set_metadata_forms():
    v = nnx.Param(jnp.zeros(1))
    v.set_metadata(a=1)
    v.set_metadata("b", 2)
    assert v.get_metadata(exclude_required=True) == {"a": 1, "b": 2}
    v.set_metadata({"c": 3})  # replaces all metadata but the required entries
    assert v.get_metadata() == {"c": 3, "hijax": False, "ref": False, "eager_sharding": True}
    v.d = 4  # attribute assignment sets metadata
    assert v.get_metadata("d") == 4
    del v.d
    assert "d" not in v.get_metadata()
    with pytest.raises(TypeError, match=r"set_metadata takes a mapping, \(name, value\)"):
        v.set_metadata(1, 2, 3)
    with pytest.raises(TypeError, match="cannot mix positional and keyword"):
        v.set_metadata("a", 1, b=2)


def test_metadata_copy_is_independent():
    v = nnx.Param(jnp.zeros(1), tag="a")
    md = v.metadata
    md["tag"] = "changed"
    assert v.tag == "a"


def test_variable_metadata_and_with_metadata():
    init = nnx.with_metadata(jax.nn.initializers.ones, sharding_names=("a", "b"))
    boxed = init(jax.random.key(0), (2, 3))
    assert isinstance(boxed, nnx.VariableMetadata)
    assert boxed.metadata == {"sharding_names": ("a", "b")}
    p = nnx.Param(boxed, extra=1, eager_sharding=False)
    assert p.shape == (2, 3)
    assert p.sharding_names == ("a", "b") and p.extra == 1
    assert p.get_metadata("out_sharding") == ("a", "b")
    assert init.__name__ == "ones"


def test_variable_from_variable_merges_metadata():
    a = nnx.Param(jnp.ones(1), tag="a")
    b = nnx.BatchStat(a, other=2)
    assert type(b) is nnx.BatchStat
    assert b.get_metadata(exclude_required=True) == {"tag": "a", "other": 2}
    assert b.raw_value is a.raw_value


def test_older_flag_spellings_map_to_the_flags():
    v = nnx.Param(jnp.ones(1), is_hijax=False, has_ref=True, is_mutable=True)
    assert v.get_metadata(exclude_required=True) == {}
    assert v.ref is True and v.hijax is False
    if hijax_supported():
        assert nnx.Param(jnp.ones(1), is_hijax=True).hijax is True


# ----------------------------------------------------------------- copies
def test_replace_keeps_type_and_metadata():
    p = LoraParam(jnp.zeros(2), tag="a")
    q = p.replace(jnp.ones(3), note=1)
    assert type(q) is LoraParam
    assert q.shape == (3,)
    assert q.get_metadata(exclude_required=True) == {"tag": "a", "note": 1}
    assert p.shape == (2,) and "note" not in p.get_metadata()
    assert p.replace().raw_value is p.raw_value


def test_copy_is_a_new_variable():
    p = nnx.Param(jnp.zeros(2), tag="a")
    for q in (p.copy(), copy.copy(p), p.to_state(), p.to_variable()):
        assert q is not p and type(q) is nnx.Param
        assert q.raw_value is p.raw_value
        q.tag = "b"
        assert p.tag == "a"


def test_deepcopy_and_pickle():
    p = nnx.Param(jnp.arange(3.0), tag="a")
    for q in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert type(q) is nnx.Param and q is not p
        assert q.value.tolist() == [0.0, 1.0, 2.0]
        assert q.tag == "a"


def test_state_classmethod_and_type_property():
    p = nnx.Param.state(jnp.ones(1), tag="x")
    assert type(p) is nnx.Param and p.tag == "x"
    assert p.type is nnx.Param
    assert nnx.VariableState is nnx.Variable


def test_repr_shows_type_shape_and_metadata():
    text = repr(nnx.Param(jnp.zeros((2, 3)), tag="t"))
    assert text == "Param(value=Array(shape=(2, 3), dtype=float32), tag='t')"
    assert repr(Count(jnp.array(5))) == "Count(value=Array(5, dtype=int32))"


# ----------------------------------------------------------------- subclasses
def test_user_subclasses():
    c = Count(jnp.array(0))
    lp = LoraParam(jnp.ones(2))
    assert isinstance(c, nnx.Variable) and not isinstance(c, nnx.Param)
    assert isinstance(lp, nnx.Param)
    assert issubclass(nnx.Perturbation, nnx.Intermediate)
    for typ in (nnx.Param, nnx.BatchStat, nnx.Cache, nnx.Intermediate, nnx.Perturbation):
        assert issubclass(typ, nnx.Variable)


# ----------------------------------------------------------------- pytree
def test_variable_is_a_pytree_node():
    p = LoraParam(jnp.ones(2), tag="t")
    leaves, _treedef = jax.tree.flatten(p)
    assert len(leaves) == 1 and leaves[0] is p.raw_value
    q = jax.tree.map(lambda x: x * 3, p)
    assert type(q) is LoraParam and q is not p
    assert q.value.tolist() == [3.0, 3.0] and q.tag == "t"
    assert p.value.tolist() == [1.0, 1.0]
    ((path, _),) = jax.tree_util.tree_leaves_with_path(p)
    assert jax.tree_util.keystr(path) == ".value"


def test_pytree_treedefs_compare_metadata():
    a = jax.tree.structure(nnx.Param(jnp.ones(1), tag="a"))
    b = jax.tree.structure(nnx.Param(jnp.zeros(1), tag="a"))
    c = jax.tree.structure(nnx.Param(jnp.zeros(1), tag="c"))
    d = jax.tree.structure(nnx.BatchStat(jnp.zeros(1), tag="a"))
    assert a == b
    assert a != c and a != d


def test_unhashable_metadata_still_flattens():
    p = nnx.Param(jnp.ones(1), axes=["a", "b"], info={"k": [1]})
    assert jax.tree.structure(p) == jax.tree.structure(p.replace(jnp.zeros(1)))


# ----------------------------------------------------------------- names
def test_builtin_collection_names():
    assert nnx.variable_name_from_type(nnx.Param) == "params"
    assert nnx.variable_name_from_type(nnx.BatchStat) == "batch_stats"
    assert nnx.variable_name_from_type(nnx.Cache) == "cache"
    assert nnx.variable_name_from_type(nnx.Intermediate) == "intermediates"
    assert nnx.variable_name_from_type(nnx.Perturbation) == "perturbations"
    assert nnx.variable_type_from_name("params") is nnx.Param
    assert nnx.variable_type_from_name("batch_stats") is nnx.BatchStat


def test_unregistered_subclass_has_no_name_unless_registered():
    with pytest.raises(ValueError, match=r"(?s)Type LoraParam is not registered.*allow_register"):
        nnx.variable_name_from_type(LoraParam)


def test_register_variable_name():
    class Stat(nnx.Variable):
        pass

    nnx.register_variable_name("test_stats_xyz", Stat)
    assert nnx.variable_type_from_name("test_stats_xyz") is Stat
    assert nnx.variable_name_from_type(Stat) == "test_stats_xyz"

    class Other(nnx.Variable):
        pass

    with pytest.raises(ValueError, match=r"(?s)already mapped to type Stat.*Fix"):
        nnx.register_variable_name("test_stats_xyz", Other)
    nnx.register_variable_name("test_stats_xyz", Other, overwrite=True)
    assert nnx.variable_type_from_name("test_stats_xyz") is Other


def test_variable_type_from_name_unknown_and_allow_register():
    with pytest.raises(ValueError, match="is not registered in the registry"):
        nnx.variable_type_from_name("definitely_unknown_abc")
    typ = nnx.variable_type_from_name("made_up_collection_abc", allow_register=True)
    assert issubclass(typ, nnx.Variable) and typ.__name__ == "made_up_collection_abc"
    assert nnx.variable_type_from_name("made_up_collection_abc") is typ


def test_variable_name_from_type_allow_register():
    class Fresh(nnx.Param):
        pass

    assert nnx.variable_name_from_type(Fresh, allow_register=True) == "Fresh"
    assert nnx.variable_type_from_name("Fresh") is Fresh


def test_var_defaults():
    d = nnx.var_defaults()
    assert d.hijax is False and d.has_ref is False
    nnx.var_defaults(hijax=True)
    try:
        assert nnx.var_defaults().hijax is True
    finally:
        nnx.var_defaults(hijax=False)
    with pytest.raises(TypeError, match="unknown setting 'nope'"):
        nnx.var_defaults(nope=True)
