"""numpool's version: the one place it is written (pyproject.toml reads it from here).

A module of its own, importing nothing, so that what needs the version (the
machine profile's cache key, ``numpool doctor``) does not import the package.
"""

__version__ = "0.1.0"
