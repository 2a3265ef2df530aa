"""`make bench`: run every benchmarks/bench_*.py and write its figures to benchmarks/results/<area>.json.

Figures, not pass/fail: each module's `run(quick=False)` returns a JSON-serialisable dict; ratios
are computed against a baseline measured in the same process. `python -m benchmarks.run parse images`
runs only the named areas; `--quick` runs the smoke versions and writes them to benchmarks/results/quick/
(never over the full figures).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    wanted = [a for a in argv if not a.startswith("-")]
    areas = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    if wanted:
        unknown = sorted(set(wanted) - set(areas))
        if unknown:
            print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(areas)}", file=sys.stderr)
            return 2
        areas = [a for a in areas if a in wanted]
    results = RESULTS / "quick" if quick else RESULTS
    results.mkdir(parents=True, exist_ok=True)
    failed = 0
    for area in areas:
        print(f"== {area}", flush=True)
        started = time.perf_counter()
        try:
            figures = importlib.import_module(f"benchmarks.bench_{area}").run(quick=quick)
        except Exception:
            traceback.print_exc()
            failed += 1
            continue
        out = {"area": area, "quick": quick, "wall_s": round(time.perf_counter() - started, 2),
               "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "figures": figures}
        (results / f"{area}.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
        print(json.dumps(figures, indent=2, sort_keys=True), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
