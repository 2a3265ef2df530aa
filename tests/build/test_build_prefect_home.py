"""`wikihow-tiir build` outside make: Prefect's state folder is created (Prefect itself does not
create missing parents), or a temp folder is used where the home directory is read-only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import os, flows.build_dataset as f; f.use_offline_defaults(); print(os.environ['PREFECT_HOME'])"


def _prefect_home(env: dict[str, str]) -> Path:
    env = {k: v for k, v in env.items() if k not in ("PREFECT_HOME", "XDG_CACHE_HOME")}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    return Path(out.stdout.strip().splitlines()[-1])


def test_missing_cache_folders_are_created(tmp_path):
    home = _prefect_home({**os.environ, "HOME": str(tmp_path)})
    assert home == tmp_path / ".cache" / "wikihow-tiir" / "prefect" and home.is_dir()


def test_a_read_only_home_falls_back_to_a_temp_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (tmp_path / "tmp").mkdir()
    (ro / ".cache").write_text("a file where the cache folder should be")  # mkdir fails even as root
    home = _prefect_home({**os.environ, "HOME": str(ro), "TMPDIR": str(tmp_path / "tmp")})
    assert home.parent == tmp_path / "tmp" and home.name.startswith("wikihow-tiir-prefect-") and home.is_dir()
