"""The docs site: the API page renders types, defaults and links; raw roles fail the build."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import hooks  # noqa: E402  (docs/hooks.py: not a package module)


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``config`` into ``site``."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"]
    return subprocess.run(
        [*command, "-f", str(config), "-d", str(site)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def api_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The text of the built API reference page (the real mkdocs.yml, strict)."""
    site = tmp_path_factory.mktemp("site")
    done = _build(ROOT / "mkdocs.yml", site)
    assert done.returncode == 0, done.stderr
    return (site / "api" / "index.html").read_text()


def _params(page: str, anchor: str) -> str:
    """The plain text of the Parameters table of the object with ``anchor``."""
    start = page.index(f'id="{anchor}"')
    start = page.index("Parameters", start)
    end = page.index("</table>", start)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page[start:end])))


def _row(table: str, name: str) -> str:
    """The row of parameter ``name`` in a Parameters table's text (name, type, ...)."""
    match = re.search(rf" {re.escape(name)} (.*?)(?= As for| Default|$)", table)
    assert match, f"{name} not in {table[:300]}"
    return match.group(1)


def test_grouped_parameters_get_their_own_types(api_page: str) -> None:
    """`backend, workers, blas_threads, retries` lines: each name its own type and default."""
    table = _params(api_page, "numpool.apply")
    assert re.search(r" backend BackendName .*? 'auto' workers int \| None ", table)
    assert re.search(r" blas_threads int \| None .*? None retries int .*? 0 progress", table)
    assert " workers BackendName" not in table and " retries BackendName" not in table


def test_api_page_has_no_raw_roles_and_links_them(api_page: str) -> None:
    """Docstring roles (:class:, :func:) render as links to the objects, not as text."""
    assert hooks.raw_roles(api_page) == []
    assert 'href="#numpool.WorkerCrashedError"' in api_page
    assert 'href="#numpool.Pool.map_arrays"' in api_page


def test_raw_roles_are_found_outside_code_blocks() -> None:
    """The guard sees a rendered role, and not one shown inside a code block."""
    assert hooks.raw_roles("<p>see :class:<code>~numpool.Plan</code></p>")
    assert hooks.raw_roles("<p>see :py:func:`apply`</p>")
    assert not hooks.raw_roles("<pre><code>:class:`Plan`</code></pre>")
    assert not hooks.raw_roles("<p>ratio 1:2, :memo: </p>")


def test_strict_build_fails_on_a_raw_role(tmp_path: Path) -> None:
    """A page with a Sphinx role left in it fails ``mkdocs build --strict``."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Page\n\nSee :class:`numpool.Pool`.\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(f"site_name: t\nhooks:\n  - {ROOT / 'docs' / 'hooks.py'}\n")
    done = _build(config, tmp_path / "site")
    assert done.returncode != 0
    assert "raw Sphinx role" in done.stderr
    (tmp_path / "docs" / "index.md").write_text("# Page\n\nSee `numpool.Pool`.\n")
    assert _build(config, tmp_path / "site").returncode == 0
