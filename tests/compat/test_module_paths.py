"""Flax NNX's module paths exist in nnx as real modules and expose Flax's names there.

User code written as ``from flax.nnx.<path> import <name>`` (or ``nnx.<path>.<name>``)
must work with ``nnx`` in place of ``flax.nnx``. These are our own expectations of
the paths (no flax needed); tests/oracle/test_api_surface.py compares with Flax.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import nnx

# path -> names user code imports from it (each must be the object nnx exports).
PATHS: dict[str, list[str]] = {
    "graph": ["split", "merge", "state", "update", "graphdef", "GraphDef", "iter_graph"],
    "graphlib": ["split", "merge", "pop", "clone", "call", "UpdateContext", "unflatten"],
    "variablelib": ["Variable", "Param", "BatchStat", "Cache", "VariableMetadata", "A"],
    "rnglib": ["Rngs", "RngStream", "RngKey", "RngCount", "split_rngs", "fork_rngs"],
    "statelib": ["State", "FlatState", "to_flat_state", "from_flat_state", "split_state"],
    "filterlib": ["All", "Any", "Not", "OfType", "PathContains", "WithTag", "Everything"],
    "traversals": ["flatten_mapping", "unflatten_mapping", "flatten_to_sequence"],
    "pytreelib": ["Pytree", "Object", "data", "static", "register_data_type", "dataclass"],
    "object": ["Pytree", "Object", "data", "static", "check_pytree"],
    "module": ["Module", "iter_modules", "view", "view_info", "capture"],
    "helpers": ["Dict", "List", "Sequential", "TrainState"],
    "spmd": ["with_partitioning", "get_partition_spec", "get_named_sharding"],
    "compat": ["jit", "grad", "vmap", "scan", "split", "state", "split_rngs"],
    "summary": ["tabulate"],
    "visualization": ["display"],
    "training": ["ema", "metrics", "optimizer"],
    "training.metrics": ["Metric", "Average", "Accuracy", "MultiMetric", "Welford"],
    "training.optimizer": ["Optimizer", "ModelAndOptimizer", "OptState", "OptArray"],
    "training.ema": ["EMA"],
    "optimizer": ["Optimizer", "ModelAndOptimizer", "OptState"],
    "transforms": ["autodiff", "compilation", "general", "iteration", "transforms"],
    "transforms.autodiff": ["grad", "value_and_grad", "custom_vjp", "remat", "DiffState"],
    "transforms.compilation": ["jit", "jit_partial", "JitWrapped", "shard_map"],
    "transforms.general": ["split_inputs", "merge_inputs"],
    "transforms.iteration": ["vmap", "pmap", "scan", "StateAxes", "Carry", "fori_loop"],
    "transforms.transforms": ["cond", "switch", "eval_shape", "checkify"],
    "nn": [
        "activations",
        "attention",
        "dtypes",
        "initializers",
        "linear",
        "lora",
        "normalization",
        "recurrent",
        "stochastic",
    ],
    "nn.activations": ["relu", "gelu", "softmax", "PReLU", "tanh", "sigmoid"],
    "nn.attention": [
        "MultiHeadAttention",
        "combine_masks",
        "make_causal_mask",
        "make_attention_mask",
        "dot_product_attention",
    ],
    "nn.dtypes": ["promote_dtype", "canonicalize_dtype"],
    "nn.initializers": ["lecun_normal", "zeros_init", "ones_init", "variance_scaling"],
    "nn.linear": ["Linear", "LinearGeneral", "Einsum", "Conv", "ConvTranspose", "Embed"],
    "nn.lora": ["LoRA", "LoRALinear", "LoRAParam"],
    "nn.normalization": ["BatchNorm", "LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm"],
    "nn.recurrent": ["LSTMCell", "GRUCell", "SimpleCell", "RNN", "Bidirectional"],
    "nn.stochastic": ["Dropout"],
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_path_is_a_real_module_with_flax_names(path: str) -> None:
    module = importlib.import_module(f"nnx.{path}")
    assert isinstance(module, types.ModuleType)
    assert module.__name__ == f"nnx.{path}"
    # The attribute path reaches the same module as the import.
    obj: object = nnx
    for part in path.split("."):
        obj = getattr(obj, part)
    assert obj is module
    missing = [name for name in PATHS[path] if not hasattr(module, name)]
    assert missing == [], f"nnx.{path} lacks {missing}"
    for name in module.__all__:
        assert hasattr(module, name), f"nnx.{path}.__all__ names {name!r}, which is absent"


@pytest.mark.parametrize("path", sorted(PATHS))
def test_names_are_the_same_objects_as_at_the_top_level(path: str) -> None:
    module = importlib.import_module(f"nnx.{path}")
    for name in PATHS[path]:
        value = getattr(module, name)
        top = getattr(nnx, name, None)
        if top is None or path == "compat" or isinstance(value, types.ModuleType):
            continue
        assert value is top, f"nnx.{path}.{name} is not nnx.{name}"


def test_from_imports_as_user_code_writes_them() -> None:
    from nnx.graphlib import split
    from nnx.nn.attention import combine_masks, make_causal_mask
    from nnx.nn.initializers import lecun_normal
    from nnx.training.metrics import MultiMetric
    from nnx.transforms.iteration import StateAxes

    assert split is nnx.split
    assert combine_masks is nnx.combine_masks and make_causal_mask is nnx.make_causal_mask
    assert lecun_normal is nnx.initializers.lecun_normal
    assert MultiMetric is nnx.MultiMetric
    assert StateAxes is nnx.StateAxes


def test_metrics_attribute_is_the_optim_module() -> None:
    # As in Flax, `nnx.metrics` is an attribute (the metrics module), not an import path.
    import nnx_optim

    assert nnx.metrics is nnx_optim.metrics
    for name in ("Metric", "Average", "Accuracy", "MultiMetric", "Welford"):
        assert getattr(nnx.metrics, name) is getattr(nnx.training.metrics, name)


def test_flax_aliases_point_at_one_module() -> None:
    assert nnx.initializers is nnx.nn.initializers
    assert nnx.graph.split is nnx.graphlib.split
    assert nnx.object.Pytree is nnx.pytreelib.Pytree
    assert nnx.optimizer.Optimizer is nnx.training.optimizer.Optimizer
    assert nnx.metrics.Average is nnx.training.metrics.Average
    assert nnx.summary.tabulate is nnx.tabulate


def test_layers_stay_reachable_the_nnx_ways() -> None:
    from nnx import Linear

    assert nnx.nn.Linear is Linear is nnx.nn.linear.Linear


def test_package_alias_modules_live_with_their_code() -> None:
    # The meta-package maps nnx.X onto the package that owns the code.
    import nnx_graph.graphlib
    import nnx_graph.transforms.iteration
    import nnx_nn.attention
    import nnx_optim.optimizer

    assert nnx.graphlib.split is nnx_graph.graphlib.split
    assert nnx.transforms.iteration.vmap is nnx_graph.transforms.iteration.vmap
    assert nnx.nn.attention.combine_masks is nnx_nn.attention.combine_masks
    assert nnx.optimizer.Optimizer is nnx_optim.optimizer.Optimizer


def test_graph_alias_modules_do_not_import_sibling_packages() -> None:
    # Layering: nnx_graph (and its Flax-path modules) never pull in nnx_nn/optim/viz.
    code = (
        "import sys\n"
        "import nnx_graph.graphlib, nnx_graph.compat, nnx_graph.module, nnx_graph.spmd\n"
        "import nnx_graph.filterlib, nnx_graph.traversals, nnx_graph.variablelib\n"
        "import nnx_graph.transforms.iteration, nnx_graph.transforms.general\n"
        "bad = [m for m in ('nnx_nn', 'nnx_optim', 'nnx_viz', 'nnx') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_alias_modules_pick_up_names_the_core_adds_later() -> None:
    # graphlib/rnglib/variablelib/compat re-export Flax names (split_context,
    # backup_keys, ...) as soon as nnx_graph has them, without another edit.
    code = (
        "import nnx_graph\n"
        "marker = lambda *a, **k: 'ok'\n"
        "nnx_graph.split_context = marker\n"
        "nnx_graph.backup_keys = marker\n"
        "import nnx_graph.graphlib as g, nnx_graph.rnglib as r, nnx_graph.compat as c\n"
        "assert g.split_context is marker and 'split_context' in g.__all__\n"
        "assert 'backup_keys' in r.__all__  # defined by the core's Rngs module itself\n"
        "assert c.backup_keys.func is marker and c.backup_keys.keywords == {'graph': True}\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
