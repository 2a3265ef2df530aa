"""Ctrl-C during `wikihow-tiir build`: it stops within seconds with one line saying how to resume, and
the re-run ends with the same bytes as an uninterrupted build.

The build runs as a real subprocess in its own session (its own process group, like a command in a
terminal), started with a known SIGINT disposition whatever the launcher of pytest did."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from cli_helpers import REPO, command, default_sigint, env, error_lines, ignored_sigint, kill_tree, run

from wikihow_tiir.io import sha256_file

RESUME = "run the same command again to resume"


def _args(out: Path, sample_archive: Path, *extra: str) -> list[str]:
    # 20 one-page shards: the build is still in its corpus stage when the first shard is done
    return ["build", "--output", str(out), "--archive", str(sample_archive), "--pages-per-shard", "1",
            "--no-queries", *extra]


def _dataset_bytes(root: Path) -> dict[str, str]:
    out = {name: sha256_file(root / name) for name in ("README.md", "manifest.json")}
    for sub in ("corpus", "queries", "qrels", "rejects"):
        for f in sorted((root / sub).glob("*")):
            out[f"{sub}/{f.name}"] = sha256_file(f)
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, sample_archive):
    out = tmp_path_factory.mktemp("reference") / "build"
    proc = run(*_args(out, sample_archive), timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return _dataset_bytes(out)


def _interrupt(out: Path, args: list[str], how: str, sig: int, preexec) -> tuple[subprocess.CompletedProcess, float]:
    """Start the build, wait for its first finished shard, signal it; returns the result and the seconds
    from the signal to the exit. Every process it started is gone afterwards."""
    proc = subprocess.Popen([*command(), *args], cwd=REPO, env=env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=preexec)
    try:
        deadline = time.monotonic() + 600
        while not any((out / "work" / "corpus").glob("shard-*.done")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no shard finished in 10 minutes"
            time.sleep(0.05)
        started = psutil.Process(proc.pid).children(recursive=True)  # the Prefect API server, Dask workers
        t0 = time.monotonic()
        if how == "group":  # Ctrl-C in a terminal: the whole foreground process group
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=300)
        elapsed = time.monotonic() - t0
        _, alive = psutil.wait_procs(started, timeout=60)
        assert not alive, f"left running: {alive}"
    finally:
        kill_tree(proc.pid)
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), elapsed


@pytest.mark.parametrize("how, sig, preexec, code", [
    pytest.param("group", signal.SIGINT, default_sigint, 130, id="ctrl-c-to-the-process-group"),
    # a shell starts background jobs with SIGINT ignored; the old build then ran to its end
    pytest.param("main", signal.SIGINT, ignored_sigint, 130, id="sigint-to-the-main-process-started-ignoring-it"),
    pytest.param("main", signal.SIGTERM, default_sigint, 143, id="sigterm-to-the-main-process"),
])
def test_interrupted_build_stops_promptly_and_resumes_to_the_same_bytes(tmp_path, sample_archive, uninterrupted,
                                                                         how, sig, preexec, code):
    out = tmp_path / "build"
    result, elapsed = _interrupt(out, _args(out, sample_archive), how, sig, preexec)
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert elapsed < 60, output  # about 3-5 s; the old build took 74 s and more, or never stopped
    assert "Traceback" not in output and "╭─" not in output, output
    assert error_lines(result.stderr) == [f"error: interrupted: finished shards are kept in {out}/work; {RESUME} "
                                          "(it redoes only the unfinished shards)"], output
    assert not (out / "manifest.json").exists()  # it really was stopped mid-build

    again = run(*_args(out, sample_archive), timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _dataset_bytes(out) == uninterrupted


@pytest.mark.slow
def test_ctrl_c_on_the_dask_runner_stops_its_workers_quietly(tmp_path, sample_archive):
    out = tmp_path / "build"
    result, elapsed = _interrupt(out, _args(out, sample_archive, "--runner", "dask", "--workers", "2"), "group",
                                 signal.SIGINT, default_sigint)
    output = result.stdout + result.stderr
    assert result.returncode == 130 and elapsed < 60, output
    assert "Traceback" not in output and len(error_lines(result.stderr)) == 1, output
