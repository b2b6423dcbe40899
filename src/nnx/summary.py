"""``nnx.summary``: Flax's ``flax.nnx.summary`` path (``tabulate``), backed by
:mod:`nnx_viz`.

Example::

    >>> import nnx
    >>> from nnx.summary import tabulate
    >>> tabulate is nnx.tabulate
    True
"""

from nnx_viz import CallInfo as CallInfo
from nnx_viz import filter_rng_streams as filter_rng_streams
from nnx_viz import tabulate as tabulate

__all__ = ["CallInfo", "filter_rng_streams", "tabulate"]
