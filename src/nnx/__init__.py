"""nnx: neural networks for JAX with the Flax NNX programming model.

``import nnx`` gives the flat namespace re-exported from the four packages:
``nnx_graph`` (Variables, Modules, Rngs, graph API, transforms, sharding),
``nnx_nn`` (layers), ``nnx_optim`` (Optimizer, metrics) and ``nnx_viz`` (display).
Flax's module paths exist too (``nnx.graphlib``, ``nnx.nn.attention``,
``nnx.training.metrics``, ``nnx.compat``, ...), each a real module.

Example::

    >>> import jax.numpy as jnp, nnx
    >>> class Counter(nnx.Module):
    ...     def __init__(self):
    ...         self.count = nnx.Variable(jnp.array(0))
    ...     def __call__(self):
    ...         self.count += 1
    >>> c = Counter(); c(); int(c.count.value)
    1
    >>> from nnx.nn.attention import combine_masks
"""

from nnx.__about__ import __version__  # isort: skip
import importlib as _importlib
import typing as _tp

from nnx_graph import *  # noqa: F403
from nnx_graph import __all__ as _graph_all
from nnx_nn import *  # noqa: F403
from nnx_nn import __all__ as _nn_all
from nnx_optim import __all__ as _optim_all
from nnx_optim import metrics as metrics  # Flax's nnx.metrics: an attribute, not a path
from nnx_optim.metrics import Metric as Metric
from nnx_optim.metrics import MultiMetric as MultiMetric

if _tp.TYPE_CHECKING:
    from nnx_optim import *  # noqa: F403
else:  # nnx_optim's names but its checkpoint functions (loaded lazily, below)
    import nnx_optim as _optim

    globals().update(
        {n: getattr(_optim, n) for n in _optim_all if n not in _optim._CHECKPOINT_NAMES}
    )

if _tp.TYPE_CHECKING:
    # What the lazy loading below provides, for type checkers and IDEs.
    import nnx.compat as compat  # noqa: F401
    import nnx.filterlib as filterlib  # noqa: F401
    import nnx.graph as graph  # noqa: F401
    import nnx.graphlib as graphlib  # noqa: F401
    import nnx.helpers as helpers  # noqa: F401
    import nnx.module as module  # noqa: F401
    import nnx.nn as nn  # noqa: F401
    import nnx.nn.initializers as initializers  # type: ignore[no-redef]  # noqa: F401
    import nnx.object as object  # noqa: F401
    import nnx.optimizer as optimizer  # noqa: F401
    import nnx.pytreelib as pytreelib  # noqa: F401
    import nnx.rnglib as rnglib  # noqa: F401
    import nnx.spmd as spmd  # noqa: F401
    import nnx.statelib as statelib  # noqa: F401
    import nnx.summary as summary  # noqa: F401
    import nnx.training as training  # noqa: F401
    import nnx.transforms as transforms  # noqa: F401
    import nnx.traversals as traversals  # noqa: F401
    import nnx.variablelib as variablelib  # noqa: F401
    import nnx.visualization as visualization  # noqa: F401
    from nnx_graph.graphlib import iter_module_children as iter_module_children
    from nnx_graph.variablelib import A as A
    from nnx_viz import display as display
    from nnx_viz import register_treescope_handlers as register_treescope_handlers
    from nnx_viz import render_html as render_html
    from nnx_viz import render_text as render_text
    from nnx_viz import save_html as save_html
    from nnx_viz import tabulate as tabulate

# Loaded on first access, so `import nnx` does not pay for them: Flax's module paths
# (real modules: `import nnx.graphlib`, `from nnx.nn.attention import X` and
# `nnx.graphlib.X` all work) and the display/table functions of nnx_viz.
_LAZY_MODULES = {
    "compat": "nnx.compat",
    "filterlib": "nnx.filterlib",
    "graph": "nnx.graph",
    "graphlib": "nnx.graphlib",
    "helpers": "nnx.helpers",
    "initializers": "nnx.nn.initializers",
    "module": "nnx.module",
    "nn": "nnx.nn",
    "object": "nnx.object",
    "optimizer": "nnx.optimizer",
    "pytreelib": "nnx.pytreelib",
    "rnglib": "nnx.rnglib",
    "spmd": "nnx.spmd",
    "statelib": "nnx.statelib",
    "summary": "nnx.summary",
    "training": "nnx.training",
    "transforms": "nnx.transforms",
    "traversals": "nnx.traversals",
    "variablelib": "nnx.variablelib",
    "visualization": "nnx.visualization",
}
_LAZY_NAMES = {
    "A": "nnx_graph.variablelib",
    "iter_module_children": "nnx_graph.graphlib",
    "display": "nnx_viz",
    "register_treescope_handlers": "nnx_viz",
    "render_html": "nnx_viz",
    "render_text": "nnx_viz",
    "save_html": "nnx_viz",
    "tabulate": "nnx_viz",
    "CheckpointError": "nnx_optim",
    "CheckpointMismatchError": "nnx_optim",
    "load_safetensors": "nnx_optim",
    "restore_checkpoint": "nnx_optim",
    "save_checkpoint": "nnx_optim",
    "save_safetensors": "nnx_optim",
}
for _name in (*_LAZY_MODULES, *_LAZY_NAMES):  # a star import may have bound the name
    globals().pop(_name, None)


def __getattr__(name: str) -> _tp.Any:
    path = _LAZY_MODULES.get(name)
    if path is not None:
        value = _importlib.import_module(path)
    elif name in _LAZY_NAMES:
        value = getattr(_importlib.import_module(_LAZY_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'nnx' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_MODULES, *_LAZY_NAMES})


_MODULES = [
    "compat",
    "filterlib",
    "graph",
    "graphlib",
    "helpers",
    "initializers",
    "metrics",
    "module",
    "nn",
    "object",
    "optimizer",
    "pytreelib",
    "rnglib",
    "spmd",
    "statelib",
    "summary",
    "training",
    "transforms",
    "traversals",
    "variablelib",
    "visualization",
]
_VIZ = ["display", "register_treescope_handlers", "render_html", "render_text", "save_html"]
_EXTRA = ["A", "Metric", "MultiMetric", "iter_module_children", "tabulate"]

__all__ = [
    *sorted({*_graph_all, *_nn_all, *_optim_all, *_VIZ, *_EXTRA, *_MODULES} - {"__version__"}),
    "__version__",
]
