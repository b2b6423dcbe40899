"""nnx-optim (content arrives in a later change)."""

from nnx_optim.__about__ import __version__

__all__ = ["__version__"]
