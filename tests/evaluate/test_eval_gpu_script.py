"""``scripts/eval_gpu_check.py`` runs end to end (on CPU here, ``--allow-cpu``; a GPU runs it for real)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_gpu_check_script_dry_run(repo_root):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(repo_root / "scripts" / "eval_gpu_check.py"), "--allow-cpu"],
                          capture_output=True, text=True, timeout=900, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["failed"] == [] and set(report["families"]) == {"gme", "e5v", "clip", "jina-clip", "st"}
    assert report["families"]["gme"]["checks"]["screenshot:matches_cpu"] is True
