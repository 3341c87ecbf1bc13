"""What the docs build adds to mkdocstrings: Sphinx roles as links, grouped parameters.

numpool's docstrings are numpydoc, read by griffe (mkdocstrings' loader), and two
numpydoc habits come out wrong there:

* Sphinx roles (``:class:`~numpool.Plan```, ``:func:`apply```) are not Markdown:
  they reach the page as literal text. :class:`SphinxRoles` (a griffe extension,
  named in ``mkdocs.yml`` under the python handler's ``extensions``) rewrites each
  role, before the docstring is parsed, into an autorefs cross-reference
  (``<autoref identifier=... optional>``): a link where the target is on the
  site, plain code where it is not (a private helper, a built-in).
* A grouped line without a type (``backend, workers, blas_threads, retries``)
  makes griffe give every name the first one's annotation and default, so
  ``workers`` showed as ``BackendName = 'auto'``. The same extension gives each
  name of such a line its own annotation and default from the signature.

:func:`on_post_page` (a mkdocs hook, ``hooks:`` in ``mkdocs.yml``) is the guard:
a raw role left in a rendered page (outside code blocks) stops
``mkdocs build --strict`` (and is a warning without ``--strict``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from griffe import (
    Docstring,
    DocstringSectionParameters,
    Extension,
    NameResolutionError,
    Object,
)
from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.plugins.numpool_docs")

#: ``:role:`target``` (and ``:py:role:``), the roles Python docstrings use
ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|data|attr|mod|exc|obj|const|type):`(?P<target>[^`]+)`"
)
#: the same role as it appears in rendered HTML (the backticks became <code>)
RENDERED_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|data|attr|mod|exc|obj|const|type):(?:`|<code)"
)
#: a numpydoc parameter line naming several parameters and no type
GROUPED = re.compile(r"^\s*(?P<names>\*{0,2}\w+(?:,\s*\*{0,2}\w+)+)\s*$")
PRE = re.compile(r"<pre\b.*?</pre>", re.DOTALL)


def _target(obj: Object, target: str) -> str | None:
    """The full path ``target`` names from ``obj``'s docstring, or None (a built-in)."""
    head, _, rest = target.partition(".")
    if head == "numpool":
        return target
    try:
        path = obj.resolve(head)
    except NameResolutionError:
        return None
    return f"{path}.{rest}" if rest else path


def _crossref(obj: Object, match: re.Match[str]) -> str:
    """One role rewritten as an optional autorefs cross-reference (code if unresolved)."""
    target = match["target"].strip()
    short = target.startswith("~")
    target = target.lstrip("~.!")
    title = target.rsplit(".", 1)[-1] if short else target
    if match["role"] in ("func", "meth"):
        title += "()"
    path = _target(obj, target)
    if path is None:
        return f"`{title}`"
    return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'


def _grouped_names(text: str) -> set[str]:
    """The names on untyped grouped lines of the Parameters sections of ``text``."""
    names: set[str] = set()
    in_params = False
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if nxt and set(nxt) == {"-"}:  # a section header
            in_params = stripped in ("Parameters", "Other Parameters")
            continue
        if in_params and (m := GROUPED.match(line)):
            names.update(n.strip().lstrip("*") for n in m["names"].split(","))
    return names


class _GroupedDocstring(Docstring):
    """A docstring whose grouped untyped parameters take their own signature types."""

    grouped: set[str]

    def parse(self, parser: Any = None, **options: Any) -> list[Any]:
        """Parse, then give each grouped name its own annotation and default."""
        sections = super().parse(parser, **options)
        try:
            signature = self.parent.parameters  # type: ignore[union-attr]
        except AttributeError:
            return sections
        for section in sections:
            if not isinstance(section, DocstringSectionParameters):
                continue
            for param in section.value:
                name = param.name.lstrip("*")
                if name in self.grouped and name in signature:
                    param.annotation = signature[name].annotation
                    param.value = signature[name].default
        return sections


class SphinxRoles(Extension):
    """Griffe extension: roles become cross-references; grouped parameters get types."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring before anything parses it."""
        doc = obj.docstring
        if doc is None:
            return
        grouped = _grouped_names(doc.value)
        doc.value = ROLE.sub(lambda m: _crossref(obj, m), doc.value)
        if grouped:
            doc.__class__ = _GroupedDocstring
            doc.grouped = grouped  # type: ignore[attr-defined]


def raw_roles(html: str) -> list[str]:
    """The raw Sphinx roles in rendered ``html``, outside <pre> blocks."""
    text = PRE.sub("", html)
    return [text[max(0, m.start() - 30) : m.end() + 40] for m in RENDERED_ROLE.finditer(text)]


def on_post_page(output: str, page: Any, config: Any) -> str:
    """Stop a strict build at a raw role left in a page (else warn about each)."""
    found = [
        f"{page.file.src_uri}: raw Sphinx role rendered as text: ...{snippet}..."
        for snippet in raw_roles(output)
    ]
    # An error, not only a warning: ``mkdocs build --strict -q`` counts no warnings.
    if found and config["strict"]:
        raise PluginError("\n".join(found) + "\nwrite Markdown cross-references instead")
    for message in found:
        log.warning(message)
    return output
