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


def test_string_filter_matches_the_tag_only():
    net = Net()
    assert paths(nnx.state(net, "stats")) == ["decoder/mean", "encoder/mean"]
    # a collection name is not a tag: nothing here is tagged "cache" or "params"
    assert paths(nnx.state(net, "cache")) == []
    assert paths(nnx.state(net, "params")) == []
    assert nnx.WithTag("stats")((), nnx.BatchStat(1, tag="stats"))
    assert not nnx.WithTag("stats")((), nnx.BatchStat(1))
    assert to_predicate("stats") == nnx.WithTag("stats")


def test_string_filter_on_rng_streams_selects_the_stream_not_the_params():
    class Model(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.ones(2))
            self.tagged = nnx.Param(jnp.zeros(1), tag="params")
            self.rngs = nnx.Rngs(params=0, dropout=1)

    model = Model()
    # "params" is the tag of the params RNG stream's key/count (and of a Param
    # created with tag="params"); the untagged Param is not selected
    assert paths(nnx.state(model, "params")) == ["rngs/params/count", "rngs/params/key", "tagged"]
    assert paths(nnx.state(model, "dropout")) == ["rngs/dropout/count", "rngs/dropout/key"]
    assert paths(nnx.state(model, nnx.Param)) == ["tagged", "w"]


def test_path_contains_inexact_compares_as_strings():
    assert nnx.PathContains(1, exact=False)(("layers", 10), None)
    assert not nnx.PathContains(1)(("layers", 10), None)
    assert nnx.PathContains("enc", exact=False)(("encoder", 0), None)
    assert not nnx.PathContains("dec", exact=False)(("encoder", 0), None)


def test_of_type_is_isinstance():
    class HasTypeAttribute:
        type = nnx.Param

    assert not nnx.OfType(nnx.Param)((), HasTypeAttribute())
    assert nnx.OfType(nnx.Param)((), nnx.Param(1))


def test_filter_reprs():
    assert repr(nnx.WithTag("a")) == "WithTag('a')"
    assert repr(nnx.PathContains("a")) == "PathContains('a', exact=True)"
    assert repr(nnx.OfType(int)) == "OfType(<class 'int'>)"


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
    assert "Non-exhaustive filters, got a non-empty remainder" in message
    assert "matched state.decoder.cache" in message
    assert "Fix: add `...` as the last filter" in message
    assert isinstance(info.value, ValueError)


def test_ellipsis_must_be_last():
    with pytest.raises(
        nnx.FilterError, match=r"can only be used as the last filters.*index 0"
    ) as info:
        nnx.split(Net(), ..., nnx.Param)
    assert isinstance(info.value, ValueError)  # as in Flax
    assert "Fix: move `...` to the end" in str(info.value)


def test_trailing_ellipses_are_allowed():
    _, everything, empty, also_empty = nnx.split(Net(), ..., True, ...)
    assert len(paths(everything)) == 8
    assert paths(empty) == [] and paths(also_empty) == []


@pytest.mark.parametrize("bad", [42, 3.5, object(), b"params", 1, 0])
def test_invalid_filter_message(bad):
    with pytest.raises(nnx.FilterError) as info:
        nnx.state(Net(), bad)
    message = str(info.value)
    assert "Invalid collection filter" in message and "Expected a filter" in message
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
