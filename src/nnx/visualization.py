"""``nnx.visualization``: Flax's ``flax.nnx.visualization`` path (``display``),
backed by :mod:`nnx_viz`.

Example::

    >>> import nnx
    >>> from nnx.visualization import display
    >>> display is nnx.display
    True
"""

from nnx_viz import display as display

__all__ = ["display"]
