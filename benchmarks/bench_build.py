"""Build wall times: inline vs Prefect thread pool vs a 2-worker Dask LocalCluster, and the
scheduling overhead per shard measured on a synthetic shard-heavy flow (many cheap shards)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from flows.build_dataset import use_offline_defaults
from wikihow_tiir import build
from wikihow_tiir.config import load_config

use_offline_defaults()  # before this benchmark's own flows import Prefect

ARCHIVE = Path(__file__).resolve().parent.parent / "data" / "sample" / "archive"


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return round(time.perf_counter() - t, 2)


def _shard_overhead(n_shards: int, runner: str) -> dict:
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def cheap(i: int) -> int:
        return sum(range(1000)) + i

    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        tr = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True,
                                            "host": "127.0.0.1", "dashboard_address": None})
    else:
        tr = ThreadPoolTaskRunner(max_workers=2)

    @flow(task_runner=tr)
    def many() -> int:
        return sum(f.result() for f in cheap.map(range(n_shards)))

    @flow
    def empty() -> int:
        return 0

    base = _timed(empty)
    wall = _timed(many)
    return {"shards": n_shards, "wall_s": wall, "empty_flow_s": base,
            "overhead_per_shard_ms": round((wall - base) / n_shards * 1000, 2)}


def run(quick: bool = False) -> dict:
    from flows.build_dataset import build_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        out: dict = {}
        cfg = load_config(overrides=[f'source.archive="{ARCHIVE}"'])
        out["inline_s"] = _timed(lambda: build.run_build(cfg, tmp / "inline"))
        out["prefect_threads_2_s"] = _timed(lambda: build_dataset(
            load_config(overrides=[f'source.archive="{ARCHIVE}"', "runner.workers=2"]), tmp / "threads",
            show_progress=False))
        out["prefect_threads_2_resume_s"] = _timed(lambda: build_dataset(
            load_config(overrides=[f'source.archive="{ARCHIVE}"', "runner.workers=2"]), tmp / "threads",
            show_progress=False))
        if not quick:
            out["prefect_dask_2_workers_s"] = _timed(lambda: build_dataset(
                load_config(overrides=[f'source.archive="{ARCHIVE}"', "runner.kind=dask", "runner.workers=2"]),
                tmp / "dask", show_progress=False))
        n = 50 if quick else 300
        out["synthetic_threads"] = _shard_overhead(n, "thread")
        if not quick:
            out["synthetic_dask"] = _shard_overhead(n, "dask")
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
