"""The wheel carries what a non-editable install needs at run time: the versioned prompt templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_every_prompt_template_byte_identical(tmp_path):
    # build from a copy of the sources: setuptools writes build/ and *.egg-info beside the pyproject,
    # and those must never appear in (or be committed from) the checkout
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "data", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
        "tests", "benchmarks"))
    before = sorted(p.name for p in ROOT.iterdir())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheel"), str(src)], check=True, capture_output=True, timeout=300)
    assert sorted(p.name for p in ROOT.iterdir()) == before  # nothing written into the checkout
    (wheel,) = (tmp_path / "wheel").glob("wikihow_tiir-*.whl")
    prefix = ".data/data/share/wikihow-tiir/prompts/"
    with zipfile.ZipFile(wheel) as z:
        shipped = {n.split(prefix, 1)[1]: z.read(n) for n in z.namelist() if prefix in n}
        assert any(n.startswith("flows/") for n in z.namelist())  # the Prefect flow too
    repo = {p.name: p.read_bytes() for p in (ROOT / "prompts").glob("*.yaml")}
    assert repo and shipped == repo
