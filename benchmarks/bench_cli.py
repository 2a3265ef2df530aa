"""Start-up cost of the command: ``wikihow-tiir --help`` against ``python -c pass``, in the same run.

Figures: wall seconds of each (median and minimum over interleaved runs, so load on the machine hits
both alike), the difference (target: under 0.5 s), the CPU seconds of each (user + system: what a
busy machine stretches into the wall times), and which heavy libraries ``--help`` imported (none of
torch, openai, prefect may be).
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.5
HEAVY = ("torch", "openai", "prefect", "transformers", "sentence_transformers", "datasets", "dask", "PIL",
         "matplotlib", "numpy", "pyarrow", "pydantic")
# the console script's own code: import the app and run it
HELP = "import sys; sys.argv = ['wikihow-tiir', '--help']; from wikihow_tiir.cli import app; app()"
PROBE = ("import sys; sys.argv = ['wikihow-tiir', '--help']\n"
         "from wikihow_tiir.cli import app\n"
         "try:\n    app()\nexcept SystemExit:\n    pass\n"
         f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n")


def _command() -> list[str]:
    script = Path(sys.executable).with_name("wikihow-tiir")
    return [str(script), "--help"] if script.exists() else [sys.executable, "-c", HELP]


def _timed(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3)}


def run(quick: bool = False) -> dict:
    rounds = 3 if quick else 15
    help_cmd, bare = _command(), [sys.executable, "-c", "pass"]
    _timed(help_cmd)  # warm the page cache and the .pyc files
    helps, bares = [], []
    for _ in range(rounds):
        helps.append(_timed(help_cmd))
        bares.append(_timed(bare))
    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    imported = probe.stderr.split()
    help_wall, bare_wall = [w for w, _ in helps], [w for w, _ in bares]
    above = statistics.median(help_wall) - statistics.median(bare_wall)
    return {
        "command": " ".join([Path(help_cmd[0]).name, *help_cmd[1:]]),
        "rounds": rounds,
        "help_s": _summary(help_wall),
        "python_pass_s": _summary(bare_wall),
        "help_above_python_s": round(above, 3),
        "help_above_python_min_s": round(min(help_wall) - min(bare_wall), 3),
        "help_cpu_s": _summary([c for _, c in helps]),
        "python_pass_cpu_s": _summary([c for _, c in bares]),
        "target_above_python_s": TARGET_S,
        "meets_target": above < TARGET_S,
        "heavy_modules_imported": imported,
        "no_torch_openai_prefect": not {"torch", "openai", "prefect"} & set(imported),
    }
