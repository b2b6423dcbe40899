"""nnx-nn (content arrives in a later change)."""

from nnx_nn.__about__ import __version__

__all__ = ["__version__"]
