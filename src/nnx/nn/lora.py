"""``nnx.nn.lora``: Flax's ``flax.nnx.nn.lora`` path; the names of :mod:`nnx_nn.lora`.

Example::

    >>> import nnx
    >>> from nnx.nn.lora import LoRA
    >>> LoRA is nnx.LoRA
    True
"""

from nnx_nn.lora import *  # noqa: F403
from nnx_nn.lora import __all__ as __all__
