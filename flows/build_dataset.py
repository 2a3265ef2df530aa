"""The build as a Prefect flow: one task per shard, the stages themselves live in `wikihow_tiir`.

Runs offline and isolated: the environment defaults below are set before Prefect is imported
(no telemetry, a private PREFECT_HOME, a generous ephemeral-server start-up timeout).
The task runner is a thread pool by default or Dask (`runner.kind = "dask"`): a local cluster of
`runner.workers` processes, or an existing scheduler at `runner.dask_address`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def _writable_prefect_home() -> str:
    """Prefect's state folder: the user's cache folder, or a private temp folder where that one
    cannot be created (read-only home directories in containers and CI)."""
    import tempfile

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for cand in (cache / "wikihow-tiir" / "prefect",
                 Path(tempfile.gettempdir()) / f"wikihow-tiir-prefect-{os.getuid() if hasattr(os, 'getuid') else 0}"):
        try:
            cand.mkdir(parents=True, exist_ok=True)
            probe = cand / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
            return str(cand)
        except OSError:
            continue
    raise RuntimeError("no writable folder for Prefect's state: set PREFECT_HOME")


if "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = _writable_prefect_home()
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # no per-worker INFO chatter in the build output

from prefect import flow, task  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402

from wikihow_tiir import build  # noqa: E402
from wikihow_tiir.config import BuildConfig  # noqa: E402


@task(name="corpus-shard", retries=1, retry_delay_seconds=2)
def corpus_shard(cfg_json: dict[str, Any], output: str, spec: build.ShardSpec) -> dict[str, Any]:
    return build.run_corpus_shard(BuildConfig.model_validate(cfg_json), Path(output), spec)


@task(name="query-shard", retries=1, retry_delay_seconds=2)
def query_shard(cfg_json: dict[str, Any], output: str, spec: build.ShardSpec) -> dict[str, Any]:
    return build.run_query_shard(BuildConfig.model_validate(cfg_json), Path(output), spec)


@task(name="scorer", retries=0)  # a killed training resumes from its own checkpoint when the build re-runs
def scorer(cfg_json: dict[str, Any], output: str, spec: build.ShardSpec) -> dict[str, Any]:
    return build.run_scorer_shard(BuildConfig.model_validate(cfg_json), Path(output), spec)


_TASKS = {"corpus": corpus_shard, "queries": query_shard, "scorer": scorer}


def _prefect_map(cfg: BuildConfig, output: Path, show_progress: bool):
    # workers (on other machines too) get absolute paths: a relative one would resolve against each
    # worker's own working directory; outputs never record these paths
    cfg_json = cfg.model_dump(mode="json")
    src = cfg_json["source"]
    if src.get("archive"):
        src["archive"] = str(Path(src["archive"]).resolve())
    for key in ("text_file", "images"):
        if (src.get("vgsi") or {}).get(key):
            src["vgsi"][key] = str(Path(src["vgsi"][key]).resolve())
    output = Path(output).resolve()

    def map_shards(fn, specs: list[build.ShardSpec]) -> list[dict[str, Any]]:
        if not specs:
            return []
        the_task = _TASKS[specs[0].stage]
        futures = [the_task.submit(cfg_json, str(output), s) for s in specs]
        results: list[dict[str, Any] | None] = [None] * len(futures)
        with Progress(TextColumn(f"[bold]{specs[0].stage}[/]"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), disable=not show_progress, transient=False) as bar:
            tid = bar.add_task(specs[0].stage, total=len(futures))
            pending = dict(enumerate(futures))
            while pending:
                for i, fut in list(pending.items()):
                    if fut.state.is_final():
                        results[i] = fut.result()  # raises the shard's error, with its traceback
                        del pending[i]
                        bar.advance(tid)
                if pending:
                    time.sleep(0.05)
        return results  # type: ignore[return-value]

    return map_shards


def _task_runner(cfg: BuildConfig):
    if cfg.runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.runner.dask_address:
            return DaskTaskRunner(address=cfg.runner.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.runner.workers, "threads_per_worker": 1,
                                              "processes": True, "host": "127.0.0.1",
                                              "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=cfg.runner.workers)


def build_dataset(cfg: BuildConfig, output: str | Path, show_progress: bool = True) -> dict[str, Any]:
    """Run the build flow with the configured task runner; returns the build summary."""
    output = Path(output)
    started = time.perf_counter()

    @flow(name="build-dataset", task_runner=_task_runner(cfg), log_prints=False, validate_parameters=False)
    def build_dataset_flow(cfg_json: dict[str, Any], output_dir: str) -> dict[str, Any]:
        config = BuildConfig.model_validate(cfg_json)
        return build.run_build(config, Path(output_dir), _prefect_map(config, Path(output_dir), show_progress),
                               log=print if show_progress else (lambda m: None))

    result = build_dataset_flow(cfg.model_dump(mode="json"), str(output))
    result["wall_time_s"] = round(time.perf_counter() - started, 2)
    return result
