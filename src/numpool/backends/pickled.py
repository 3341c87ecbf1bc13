"""backend="pickle": the naive multiprocessing path, kept as the baseline.

Worker processes like ``processes``, but every array argument and result
is pickled, written to a pipe and unpickled, exactly what
``multiprocessing.Pool.starmap`` does in the experiments numpool grew out
of. It exists so that ``numpool bench`` and users can see what shared
memory saves; it is never the right choice for large arrays.
"""

from __future__ import annotations

from ._transport import Pickled
from .processes import ProcessesBackend

__all__ = ["PickleBackend"]


class PickleBackend(ProcessesBackend):
    name = "pickle"
    transport = Pickled()
    auto = False  # a baseline to see what pickling costs, never a choice
    #: every block is pickled whole, in the parent and in the worker
    max_block_bytes = 32 << 20
