"""The build as a Prefect flow: one task per shard, the stages themselves live in `wikihow_tiir`.

Runs offline and isolated: :func:`build_dataset` first sets environment defaults (no telemetry, a
private PREFECT_HOME, a generous ephemeral-server start-up timeout; see :func:`use_offline_defaults`),
then imports Prefect, which reads them once. Importing this module changes nothing and loads no
Prefect: the CLI imports it only to run a build.
The task runner is a thread pool by default or Dask (`runner.kind = "dask"`): a local cluster of
`runner.workers` processes, or an existing scheduler at `runner.dask_address`.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from wikihow_tiir import build, interrupt, remote
from wikihow_tiir.config import BuildConfig
from wikihow_tiir.errors import expected_error_message

# set where unset, before Prefect, Dask or the Hugging Face libraries first load (they read them then)
OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "DASK_LOGGING__DISTRIBUTED": "warning",  # no per-worker INFO chatter in the build output
}


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


def use_offline_defaults() -> None:
    """Set :data:`OFFLINE_DEFAULTS` and PREFECT_HOME where the environment does not (idempotent).

    Called by :func:`build_dataset` before it imports Prefect; a caller that imports Prefect itself
    earlier calls it first (the benchmarks do)."""
    if "PREFECT_HOME" not in os.environ:
        os.environ["PREFECT_HOME"] = _writable_prefect_home()
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _corpus_shard(cfg_json: dict[str, Any], output: str, spec: build.ShardSpec) -> dict[str, Any]:
    return build.run_shard("corpus", BuildConfig.model_validate(cfg_json), output, spec)


def _query_shard(cfg_json: dict[str, Any], output: str, spec: build.ShardSpec) -> dict[str, Any]:
    return build.run_shard("queries", BuildConfig.model_validate(cfg_json), output, spec)


def _scorer(cfg_json: dict[str, Any], output: str, spec: build.ShardSpec) -> dict[str, Any]:
    return build.run_scorer_shard(BuildConfig.model_validate(cfg_json), Path(output), spec)


@functools.cache
def _tasks() -> dict[str, Any]:
    """The Prefect tasks, made on first use (Prefect loads only when a build runs). A shard is written
    atomically with its marker last, so a retry is safe; each task run is named after its shard."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return {"corpus": task(name="corpus-shard", task_run_name="corpus-{spec.name}", retries=1,
                           retry_delay_seconds=2, cache_policy=NO_CACHE)(_corpus_shard),
            "queries": task(name="query-shard", task_run_name="queries-{spec.name}", retries=1,
                            retry_delay_seconds=2, cache_policy=NO_CACHE)(_query_shard),
            # no retry: a killed training resumes from its own checkpoint when the build re-runs
            "scorer": task(name="scorer", task_run_name="scorer", retries=0, cache_policy=NO_CACHE)(_scorer)}


def _prefect_step(name: str, fn):
    """One stage between the shards as a Prefect task run named after it (in the flow's process). No
    retries: the stages are deterministic, a failure would fail again."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name=name, task_run_name=name, cache_policy=NO_CACHE, persist_result=False)(fn)()


def _absolute(value: str) -> str:
    return value if remote.is_remote(value) else str(Path(value).resolve())


def _prefect_map(cfg: BuildConfig, output: str | Path, show_progress: bool):
    # workers (on other machines too) get absolute paths: a relative one would resolve against each
    # worker's own working directory; outputs never record these paths. URLs are passed as they are.
    cfg_json = cfg.model_dump(mode="json")
    src = cfg_json["source"]
    if src.get("archive"):
        src["archive"] = _absolute(src["archive"])
    for key in ("text_file", "images"):
        if (src.get("vgsi") or {}).get(key):
            src["vgsi"][key] = str(Path(src["vgsi"][key]).resolve())
    if (cfg_json["runner"] or {}).get("staging"):
        cfg_json["runner"]["staging"] = str(Path(cfg_json["runner"]["staging"]).resolve())
    output = _absolute(str(output))

    def map_shards(fn, specs: list[build.ShardSpec]) -> list[dict[str, Any]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if not specs:
            return []
        the_task = _tasks()[specs[0].stage]
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


def _task_runner(cfg: BuildConfig, api_url: str | None = None):
    from prefect.task_runners import ThreadPoolTaskRunner

    if cfg.runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.runner.dask_address:
            return DaskTaskRunner(address=cfg.runner.dask_address)
        # The local cluster's workers use our API server (without PREFECT_API_URL each started an ephemeral
        # server of its own, in our process group); the preload makes them ignore SIGINT (a Ctrl-C in the
        # terminal reaches our whole process group, and each worker printed a KeyboardInterrupt traceback).
        return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.runner.workers, "threads_per_worker": 1,
                                              "processes": True, "host": "127.0.0.1",
                                              "dashboard_address": None, "preload": ["wikihow_tiir.interrupt"],
                                              "env": {"PREFECT_API_URL": api_url} if api_url else {}})
    return ThreadPoolTaskRunner(max_workers=cfg.runner.workers)


def _start_api_server() -> str | None:
    """Start Prefect's ephemeral API server (when no PREFECT_API_URL is set) in a session of its own.

    Prefect would start it on first use in our process group, where a Ctrl-C in the terminal reaches it
    too: it died first, and every later state and event write of the flow failed (minutes of retries and
    hundreds of lines of tracebacks). In its own session only we stop it: at exit (Prefect registers
    that), or before a forced exit after Ctrl-C. The instance is registered as Prefect's default one,
    as Prefect's own test harness does, so every client of this process uses it.
    """
    from prefect.server.api import server as prefect_server
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None

    class OwnSessionServer(prefect_server.SubprocessASGIServer):
        def _run_uvicorn_command(self):
            real = prefect_server.subprocess
            # its output goes to a log file: when it is stopped at our exit it may log a cancelled database
            # task, which is no business of the build's output
            home = Path(os.environ["PREFECT_HOME"])
            home.mkdir(parents=True, exist_ok=True)
            log = open(home / "ephemeral-server.log", "ab")  # noqa: SIM115
            prefect_server.subprocess = _OwnSessionSubprocess(log)  # only for this one Popen call
            try:
                return super()._run_uvicorn_command()
            finally:
                prefect_server.subprocess = real
                log.close()  # the server has its own copy of the descriptor

    server = OwnSessionServer()  # the existing default instance if this process already has one
    server.start()
    if _stop_api_server not in interrupt.cleanups():
        interrupt.add_cleanup(_stop_api_server)
    return server.api_url


def _stop_api_server() -> None:
    """Kill the ephemeral server at a forced exit (no time for Prefect's 5 s graceful stop)."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer._instances.get(None)
    if server is not None and server.server_process is not None:
        server.server_process.kill()


class _OwnSessionSubprocess:
    """The ``subprocess`` module as Prefect's server launcher sees it: Popen in a new session, its output
    appended to ``log``."""

    def __init__(self, log):
        self.Popen = functools.partial(subprocess.Popen, start_new_session=True, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT)


class _QuietExpectedErrors(logging.Filter):
    """Prefect logs every exception of a flow or task run with its traceback; an expected failure (bad
    input, see wikihow_tiir.errors) is printed by the CLI as one line instead, and a stop by Ctrl-C
    with the line saying how to resume."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, KeyboardInterrupt) or (exc is not None and expected_error_message(exc) is not None):
            return False
        if interrupt.requested() and record.levelno >= logging.WARNING:
            return False  # "Crash detected! Execution was aborted by an interrupt signal." and the like
        return True


_QUIET = _QuietExpectedErrors()


def _quiet_expected_errors() -> None:
    # on the loggers that log run errors and on the handlers everything else reaches (Prefect's console,
    # distributed's stream handler)
    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect.engine", "prefect", "distributed", ""):
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if _QUIET not in target.filters:
                target.addFilter(_QUIET)


def build_dataset(cfg: BuildConfig, output: str | Path, show_progress: bool = True,
                  force: bool = False, previous: str | None = None) -> dict[str, Any]:
    """Run the build flow with the configured task runner; returns the build summary. ``force``: build in
    a non-empty folder that is not a build of ours (see ``wikihow_tiir.build_folder``). ``output`` may be
    an fsspec URL; ``previous`` names the previous version (``wikihow_tiir.changelog``).

    Inside another flow (the release flow) this runs as its subflow."""
    output = remote.location(output)
    started = time.perf_counter()
    # before Prefect starts: a refused folder costs nothing
    if remote.is_remote(output):
        from wikihow_tiir.build_folder import check_remote_output

        check_remote_output(str(output), force)
    else:
        build.check_output_folder(output, force)
    use_offline_defaults()
    from prefect import flow

    api_url = _start_api_server()
    runner = _task_runner(cfg, api_url)
    _quiet_expected_errors()

    @flow(name="build-dataset", flow_run_name="build-{output_dir}", task_runner=runner, log_prints=False,
          validate_parameters=False)
    def build_dataset_flow(cfg_json: dict[str, Any], output_dir: str) -> dict[str, Any]:
        interrupt.reinstall()  # Prefect swapped in its own SIGTERM handler for the run
        config = BuildConfig.model_validate(cfg_json)
        result = build.run_build(config, output_dir, _prefect_map(config, output_dir, show_progress),
                                 log=print if show_progress else (lambda m: None), force=force,
                                 step=_prefect_step, previous=previous)
        publish_artifacts(result)
        return result

    result = build_dataset_flow(cfg.model_dump(mode="json"), remote.describe(output))
    result["wall_time_s"] = round(time.perf_counter() - started, 2)
    return result


def publish_artifacts(result: dict[str, Any]) -> None:
    """What a maintainer reads in the Prefect UI, from the build's manifest: the statistics table, the
    rejects by stage and reason, the difficulty table (when measured), the changes since the previous
    version (when named) and a link to the report."""
    import json

    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from wikihow_tiir import layout

    local = Path(result.get("local_copy") or result["output"])
    manifest = json.loads(layout.manifest_path(local).read_text(encoding="utf-8"))
    stats = manifest.get("statistics") or {}
    rows = [{"split": name, **row} for name, row in [("corpus", stats.get("corpus")),
                                                     *sorted((stats.get("queries") or {}).items())] if row]
    columns = ("split", "examples", "avg_images", "min_images", "max_images", "avg_text_tokens")
    create_table_artifact(key="statistics", table=[{c: r.get(c) for c in columns} for r in rows],
                          description="The paper's statistics table for this build")
    rejects = [{"stage": stage, "reason": reason, "count": n}
               for stage, reasons in sorted((manifest.get("rejects") or {}).items())
               for reason, n in sorted(reasons.items())]
    create_table_artifact(key="rejects", table=rejects or [{"stage": "-", "reason": "none", "count": 0}],
                          description="What each stage dropped, by reason (rejects/<stage>.jsonl)")
    from wikihow_tiir.difficulty import difficulty_table

    difficulty = difficulty_table(manifest.get("difficulty") or {})
    if difficulty:
        create_markdown_artifact(key="difficulty", markdown="\n".join(["# How hard is it", "", *difficulty]),
                                 description="Text-only and text+prompt retrieval on the splits")
    from wikihow_tiir.changelog import card_section

    changes = card_section(manifest)
    if changes:
        create_markdown_artifact(key="changes", markdown="\n".join(changes), description="Changes since the "
                                 "previous version")
    report = layout.report_index(local)
    link = (f"{result['output'].rstrip('/')}/{layout.REPORT}/{report.name}" if result.get("local_copy")
            else report.resolve().as_uri())
    create_link_artifact(key="report", link=link, link_text="build report",
                         description=f"The build report of {result['output']}")
