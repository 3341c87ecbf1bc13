"""Functions and exception classes for tests/test_errors_round3.py (importable by the
worker processes, as tests/funcs.py is; kept apart from that shared module)."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np


class NeedsTwoArgs(Exception):
    """Its pickle cannot call ``__init__`` again: two required arguments, one kept."""

    def __init__(self, a: str, b: int) -> None:
        super().__init__(a)
        self.b = b


class NeedsTwoArgsValue(ValueError):
    """As NeedsTwoArgs, under a built-in base, with a keyword-only argument too."""

    def __init__(self, code: int, *, where: str) -> None:
        super().__init__(f"code {code} at {where}")
        self.code = code
        self.where = where


class HoldsALock(Exception):
    """One attribute (a lock) cannot travel between processes; the others can."""

    def __init__(self, a: str, b: int) -> None:
        super().__init__(a)
        self.b = b
        self.lock = threading.Lock()


def raise_needs_two(b: np.ndarray) -> np.ndarray:
    raise NeedsTwoArgs("two were needed", 7)


def raise_needs_two_value(b: np.ndarray) -> np.ndarray:
    raise NeedsTwoArgsValue(3, where="the worker")


def raise_holds_a_lock(b: np.ndarray) -> np.ndarray:
    raise HoldsALock("a lock stays behind", 5)


def die_once_in_a_worker(b: np.ndarray, marker: str, caller: int) -> np.ndarray:
    """SIGKILLs the worker process it first runs in (never the caller ``caller``, and
    whatever the block's size: the first block too); ``marker`` says it happened."""
    if os.getpid() != caller and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    return b * 2


def raise_from(b: np.ndarray, folder: str, module: str, name: str) -> np.ndarray:
    """Raises ``module.name()`` from a module only this worker process can import (it
    lives in ``folder``, which the caller never puts on its path)."""
    import importlib
    import sys

    if folder not in sys.path:
        sys.path.insert(0, folder)
    raise getattr(importlib.import_module(module), name)("raised where only a worker sees it")
