"""Version of nnx-optim; the single source of truth read by hatch."""

__version__ = "0.1.0"
