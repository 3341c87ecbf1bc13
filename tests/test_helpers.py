"""The suite's own filter of CPython's resource_tracker noise (helpers.py): it drops
only the tracker's warnings about multiprocessing's semaphores, never anything else."""

from __future__ import annotations

from helpers import without_tracker_noise

#: the tracker's warning under ``-W error``, as a CI run printed it (Python 3.11)
TRACKER = """Traceback (most recent call last):
  File "/usr/lib/python3.11/multiprocessing/resource_tracker.py", line 265, in main
    _CLEANUP_FUNCS[rtype](name)
FileNotFoundError: [Errno 2] No such file or directory

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "<string>", line 1, in <module>
  File "/usr/lib/python3.11/multiprocessing/resource_tracker.py", line 267, in main
    warnings.warn('resource_tracker: %r: %s' % (name, e))
UserWarning: resource_tracker: '/mp-1620yg3b': [Errno 2] No such file or directory
"""
#: the same warning without ``-W error``
WARNED = (
    "/usr/lib/python3.11/multiprocessing/resource_tracker.py:254: UserWarning: "
    "resource_tracker: There appear to be 1 leaked semaphore objects to clean up at shutdown\n"
    "  warnings.warn('resource_tracker: There appear to be %d '\n"
)
OTHER = """Traceback (most recent call last):
  File "script.py", line 3, in <module>
ValueError: boom
"""


def test_the_trackers_semaphore_noise_goes_and_nothing_else() -> None:
    assert without_tracker_noise(TRACKER) == ""
    assert without_tracker_noise(WARNED) == ""
    assert without_tracker_noise(OTHER + TRACKER + WARNED) == OTHER
    assert without_tracker_noise(TRACKER + OTHER) == OTHER
    numpools = TRACKER.replace("'/mp-1620yg3b'", "'/numpool-4242-0'")
    assert without_tracker_noise(numpools) == numpools  # (numpool's own: never hidden)
    assert without_tracker_noise("numpool: a warning\n") == "numpool: a warning\n"
