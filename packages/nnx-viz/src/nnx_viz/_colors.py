"""Stable colours: each Module or Variable type gets the same colour in every
rendering, derived from a hash of its type name (never from ``hash()``, which
changes between processes)."""

from __future__ import annotations

import hashlib

__all__ = ["type_color"]

# Lightness and chroma in the OKLCH colour space that stay in gamut for every hue
# and keep black text readable.
_LIGHTNESS = 0.86
_CHROMA = 0.08


def type_color(type_name: str) -> str:
    """A CSS ``oklch(...)`` background colour for a type name.

    Example::

        >>> type_color("Linear") == type_color("Linear") != type_color("BatchNorm")
        True
        >>> type_color("Param")
        'oklch(0.86 0.08 310.2)'
    """
    digest = hashlib.sha256(type_name.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:4], "little") % 3600 / 10
    return f"oklch({_LIGHTNESS} {_CHROMA} {hue})"
