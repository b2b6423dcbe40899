"""Version of nnx-viz; the single source of truth read by hatch."""

__version__ = "0.1.0"
