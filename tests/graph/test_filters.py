"""Filters: types, strings, callables, tuples, ..., combinators; invalid filters."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import nnx_graph as nnx
from nnx_graph._filters import to_predicate


class LoraParam(nnx.Param):
    pass


class Block(nnx.Module):
    def __init__(self):
        self.kernel = nnx.Param(jnp.ones(2))
        self.lora = LoraParam(jnp.ones(2))
        self.mean = nnx.BatchStat(jnp.zeros(2), tag="stats")
        self.cache = nnx.Cache(jnp.zeros(1))


class Net(nnx.Module):
    def __init__(self):
        self.encoder = Block()
        self.decoder = Block()


def paths(state: nnx.State) -> list[str]:
    return ["/".join(map(str, p)) for p in state.flat_state().paths]


def test_type_filter_matches_subclasses():
    net = Net()
    assert paths(nnx.state(net, nnx.Param)) == [
        "decoder/kernel",
        "decoder/lora",
        "encoder/kernel",
        "encoder/lora",
    ]
    assert paths(nnx.state(net, LoraParam)) == ["decoder/lora", "encoder/lora"]
    assert nnx.OfType(nnx.Param)((), LoraParam(1))
    assert not nnx.OfType(LoraParam)((), nnx.Param(1))


def test_string_filter_is_tag_or_collection_name():
    net = Net()
    assert paths(nnx.state(net, "stats")) == ["decoder/mean", "encoder/mean"]
    assert paths(nnx.state(net, "cache")) == ["decoder/cache", "encoder/cache"]
    assert paths(nnx.state(net, "params")) == ["decoder/kernel", "encoder/kernel"]
    assert nnx.WithTag("stats")((), nnx.BatchStat(1, tag="stats"))
    assert not nnx.WithTag("stats")((), nnx.BatchStat(1))


def test_callable_filter_gets_path_and_value():
    seen = []

    def pred(path, value):
        seen.append(path)
        return path[0] == "encoder" and isinstance(value, nnx.Cache)

    assert paths(nnx.state(Net(), pred)) == ["encoder/cache"]
    assert ("decoder", "kernel") in seen


def test_tuple_and_list_filters_are_any():
    net = Net()
    expected = ["decoder/cache", "decoder/mean", "encoder/cache", "encoder/mean"]
    assert paths(nnx.state(net, (nnx.BatchStat, nnx.Cache))) == expected
    assert paths(nnx.state(net, [nnx.BatchStat, nnx.Cache])) == expected
    assert paths(nnx.state(net, nnx.Any(nnx.BatchStat, nnx.Cache))) == expected


def test_everything_and_nothing():
    net = Net()
    assert len(nnx.state(net, ...).flat_state()) == 8
    assert len(nnx.state(net, True).flat_state()) == 8
    assert len(nnx.state(net, nnx.Everything()).flat_state()) == 8
    assert len(nnx.state(net, None)) == 0
    assert len(nnx.state(net, False)) == 0
    assert len(nnx.state(net, nnx.Nothing())) == 0


def test_path_contains():
    net = Net()
    assert paths(nnx.state(net, nnx.PathContains("encoder"))) == [
        "encoder/cache",
        "encoder/kernel",
        "encoder/lora",
        "encoder/mean",
    ]
    assert len(nnx.state(net, nnx.PathContains("enc"))) == 0
    assert paths(nnx.state(net, nnx.PathContains("ker", exact=False))) == [
        "decoder/kernel",
        "encoder/kernel",
    ]
    assert nnx.PathContains(0)(("layers", 0, "w"), None)


def test_all_and_not():
    net = Net()
    f = nnx.All(nnx.Param, nnx.PathContains("decoder"), nnx.Not(LoraParam))
    assert paths(nnx.state(net, f)) == ["decoder/kernel"]
    assert paths(nnx.state(net, nnx.Not(nnx.Param))) == [
        "decoder/cache",
        "decoder/mean",
        "encoder/cache",
        "encoder/mean",
    ]


def test_combinators_equality_hash_and_repr():
    assert nnx.Any(nnx.Param, nnx.BatchStat) == nnx.Any(nnx.Param, nnx.BatchStat)
    assert hash(nnx.All(nnx.Param)) == hash(nnx.All(nnx.Param))
    assert nnx.Not(nnx.Param) == nnx.Not(nnx.Param)
    assert nnx.Everything() == nnx.Everything() and nnx.Nothing() == nnx.Nothing()
    assert hash(nnx.Everything()) == hash(nnx.Everything())
    assert nnx.Not(nnx.Param) != nnx.Not(nnx.BatchStat)
    assert "Any(" in repr(nnx.Any(nnx.Param)) and "Not(" in repr(nnx.Not(nnx.Param))
    assert repr(nnx.Everything()) == "Everything()" and repr(nnx.Nothing()) == "Nothing()"
    assert nnx.WithTag("a") == nnx.WithTag("a") and nnx.OfType(int) == nnx.OfType(int)


def test_split_first_match_wins_and_needs_exhaustive_filters():
    net = Net()
    _, lora, params, rest = nnx.split(net, LoraParam, nnx.Param, ...)
    assert paths(lora) == ["decoder/lora", "encoder/lora"]
    assert paths(params) == ["decoder/kernel", "encoder/kernel"]
    assert paths(rest) == ["decoder/cache", "decoder/mean", "encoder/cache", "encoder/mean"]
    with pytest.raises(nnx.GraphStructureError) as info:
        nnx.split(net, nnx.Param)
    message = str(info.value)
    assert "no filter matched state.decoder.cache" in message
    assert "Fix: add `...` as the last filter" in message


def test_ellipsis_must_be_last():
    with pytest.raises(nnx.FilterError, match=r"may only be the last filter.*position 0"):
        nnx.split(Net(), ..., nnx.Param)


@pytest.mark.parametrize("bad", [42, 3.5, object(), b"params", 1, 0])
def test_invalid_filter_message(bad):
    with pytest.raises(nnx.FilterError) as info:
        nnx.state(Net(), bad)
    message = str(info.value)
    assert "Expected a filter" in message
    assert f"found {bad!r} of type {type(bad).__name__}" in message
    assert "Fix: pass e.g. nnx.Param" in message
    assert isinstance(info.value, TypeError)


def test_true_and_one_are_not_confused():
    # True == 1 and hash(True) == hash(1); only True is a filter
    assert to_predicate(True)((), None) is True
    with pytest.raises(nnx.FilterError):
        to_predicate(1)
    assert to_predicate(False)((), None) is False
    with pytest.raises(nnx.FilterError):
        to_predicate(0)


def test_invalid_filter_inside_combinator_and_tuple():
    with pytest.raises(nnx.FilterError, match="found 7 of type int"):
        nnx.Any(nnx.Param, 7)
    with pytest.raises(nnx.FilterError, match="found 7 of type int"):
        nnx.state(Net(), (nnx.Param, 7))
