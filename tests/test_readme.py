"""Every Python code block in the README and the docs site runs as written, as a script of its own
(no ``__main__`` guard), prints nothing it should not and leaves nothing behind."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import segments, without_tracker_noise

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    block
    for page in PAGES
    for block in re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)
]


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_a_readme_block_runs_as_a_script(i: int, tmp_path: Path) -> None:
    code = BLOCKS[i]
    if "dask" in code and importlib.util.find_spec("distributed") is None:
        pytest.skip("needs numpool[dask]")
    script = tmp_path / f"readme_{i}.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "NUMPOOL_DASK_ADDRESS"}
    p = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    # no leaked semaphores, no cluster's INFO lines at exit, no warnings
    assert without_tracker_noise(err) == "", err
    left = segments(owner=p.pid)
    assert not left, f"left in /dev/shm: {left}"
