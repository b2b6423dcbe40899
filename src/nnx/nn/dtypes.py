"""``nnx.nn.dtypes``: Flax's ``flax.nnx.nn.dtypes`` path; the names of :mod:`nnx_nn.dtypes`.

Example::

    >>> import nnx
    >>> from nnx.nn.dtypes import promote_dtype
    >>> promote_dtype is nnx.nn.promote_dtype
    True
"""

from nnx_nn.dtypes import *  # noqa: F403
from nnx_nn.dtypes import __all__ as __all__
