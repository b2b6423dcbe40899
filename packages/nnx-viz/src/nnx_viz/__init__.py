"""nnx-viz (content arrives in a later change)."""

from nnx_viz.__about__ import __version__

__all__ = ["__version__"]
