"""numpool's exceptions.

Every exception numpool raises on its own account derives from
:class:`NumpoolError`, and also from the built-in a user would catch for the
same situation, so ``except RuntimeError`` keeps working::

    Exception
     └── NumpoolError
          ├── WorkerCrashedError      (+ RuntimeError)  a worker process died
          ├── SharedMemoryError       (+ MemoryError)   /dev/shm cannot hold the data
          ├── BackendUnavailableError (+ ImportError)   a backend cannot run here
          └── RemoteError                               func raised, in a worker process,
                                                        an exception whose class the caller
                                                        cannot import

Errors raised by the user's own function are *not* wrapped: they reach the
caller with their own type, with the block or task index added to the
message (see :func:`annotate`), and with the worker's traceback chained as
``__cause__`` when they come from another process. That holds for exceptions
that pickle cannot rebuild too (an ``__init__`` that takes other arguments
than ``args``, an attribute such as a lock): they are rebuilt as their own
class, without calling ``__init__`` (an attribute that cannot travel stays
behind, named in a note). Only an exception whose *class* the caller cannot
have (a module only the worker can import) arrives as a :class:`RemoteError`:
a look-alike class of the same name, subclassing both RemoteError and the
original's nearest built-in base (``except ValueError`` still catches it),
whose message says that it is one and why, with the worker's traceback
(rebuilt by ``numpool.backends._ship``).

Bad arguments raise plain :class:`TypeError` / :class:`ValueError` naming the
argument, what was expected and what was given.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "NumpoolError",
    "RemoteError",
    "SharedMemoryError",
    "SharedMemoryWarning",
    "WorkerCrashedError",
    "annotate",
]


class NumpoolError(Exception):
    """Base class of every exception numpool raises on its own account."""


class WorkerCrashedError(NumpoolError, RuntimeError):
    """A worker process died (killed, out of memory, crashed) while running work."""


class SharedMemoryError(NumpoolError, MemoryError):
    """Shared memory could not be allocated (for example, /dev/shm is too small)."""


class SharedMemoryWarning(UserWarning):
    """Shared memory is too small: numpool uses file-backed memory maps instead."""


class BackendUnavailableError(NumpoolError, ImportError):
    """A backend cannot run here: an optional dependency is not installed, or its
    workers cannot start (a daemonic process, the per-user process limit reached).
    The message says which, and what to do."""


class RemoteError(NumpoolError):
    """An exception raised in a worker process whose class the caller cannot import.

    Its class is a look-alike with the original's name that subclasses the
    original's nearest built-in base too; ``original`` is the original class's
    dotted name, the message says why the original could not be rebuilt, and
    ``__cause__`` is the worker's traceback.
    """

    original: str = ""


def annotate(exc: BaseException, where: str) -> BaseException:
    """Add ``where`` (e.g. "block 3 of 8, rows 30:40") to ``exc``'s message, in place.

    The exception keeps its type. When its first argument is a message string,
    the location is appended to it so that ``str(exc)`` shows it; otherwise
    it becomes the sole argument when there was none, and a note
    (``__notes__``) when the arguments are not a message (``KeyError(3)``).
    """
    suffix = f"[numpool: raised by func on {where}]"
    args = exc.args
    if args and isinstance(args[0], str) and not isinstance(exc, KeyError):
        exc.args = (f"{args[0]} {suffix}", *args[1:])
    elif not args:
        exc.args = (suffix,)
    elif hasattr(exc, "add_note"):
        exc.add_note(suffix)
    else:  # Python 3.10: what add_note does (not shown in 3.10 tracebacks, but kept)
        exc.__notes__ = [*getattr(exc, "__notes__", []), suffix]  # type: ignore[attr-defined]
    return exc
