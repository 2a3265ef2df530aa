"""`wikihow-tiir` under bad input: one `error:` line and exit 2, before any work; tracebacks for bugs only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from cli_helpers import REPO, assert_one_error_line, bomb_yaml, command, env, run


@pytest.mark.parametrize("args, expected", [
    (["--workers", "0"], ["runner.workers", "greater than or equal to 1"]),
    (["--rows-per-file", "0"], ["output.rows_per_file", "greater than or equal to 1"]),
    (["--pages-per-shard", "0"], ["source.pages_per_shard"]),
    (["--set", "segment.min_images=5", "--set", "segment.max_images=3"],
     ["segment: min_images (5) is above max_images (3)"]),
    (["--set", "generate.min_query_images=6"], ["generate: min_query_images (6) is above max_query_images (4)"]),
    (["--set", "generate.write.kind=openai"], ["generate.write: the openai backend needs base_url and model"]),
    (["--set", "filter.min_query_images=6"], ["filter: min_query_images (6) is above max_query_images (4)"]),
    (["--set", "segmnt.min_images=2"], ["segmnt: Extra inputs are not permitted"]),
    (["--set", "no-equals-sign"], ["is not of the form key.path=value"]),
    (["--profile", "nope"], ["unknown profile 'nope'"]),
])
def test_bad_settings_are_one_line_before_any_work(tmp_path, args, expected):
    out = tmp_path / "build"
    proc = run("build", "--output", str(out), *args, timeout=300)
    assert_one_error_line(proc, *expected)
    assert not out.exists()  # refused before the build started


@pytest.mark.parametrize("text, expected", [
    ("segment:\n  min_images: [1, 2\n", "not valid YAML: while parsing a flow sequence"),
    ("output:\n  rows_per_file: 0\n", "output.rows_per_file: Input should be greater than or equal to 1"),
    ("[1, 2]\n", "the configuration must be a mapping"),
])
def test_config_file_problems_are_one_line(tmp_path, text, expected):
    cfg = tmp_path / "build.yaml"
    cfg.write_text(text)
    proc = run("build", "--output", str(tmp_path / "build"), "--config", str(cfg), timeout=300)
    assert_one_error_line(proc, expected)
    assert not (tmp_path / "build").exists()


# runs argv[2:] under a 4 GB address-space cap (a regression fails there instead of exhausting the machine),
# writes its peak resident memory (KiB) to argv[1] and exits with its status
_CAPPED_LAUNCHER = """
import os, resource, subprocess, sys
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
child = subprocess.Popen(sys.argv[2:], preexec_fn=cap)
_, status, usage = os.wait4(child.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_an_alias_bomb_config_fails_cleanly_in_bounded_time_and_memory(tmp_path):
    """The bomb expands to 387 million strings. The child runs under a 4 GB address-space cap (so a
    regression fails here instead of exhausting the machine) and its peak resident memory is measured."""
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(bomb_yaml())

    peak = tmp_path / "peak-kib"
    started = time.monotonic()
    # through a small launcher: a child forked straight from this (large) pytest process starts with the
    # parent's pages in its peak resident memory, so the figure would depend on which tests ran before
    proc = subprocess.Popen([sys.executable, "-c", _CAPPED_LAUNCHER, str(peak), *command(), "build", "--output",
                             str(tmp_path / "build"), "--config", str(cfg)],
                            cwd=REPO, env=env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    watchdog = threading.Timer(300, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    try:
        output, _ = proc.communicate()
    finally:
        watchdog.cancel()
    elapsed = time.monotonic() - started
    assert_one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, "", output),
                          "bomb.yaml: more than 100,000 values once its YAML aliases are expanded")
    assert elapsed < 120  # it takes about a second; the old loader never finished
    assert int(peak.read_text()) < 1024 * 1024  # KiB: 1 GiB, a few times what the command needs to start


def test_debug_shows_the_traceback_of_an_expected_failure(tmp_path):
    proc = run("--debug", "build", "--output", str(tmp_path / "b"), "--workers", "0", timeout=300)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


def test_a_missing_archive_is_one_line(tmp_path):
    empty = tmp_path / "no-archive-here"
    empty.mkdir()
    proc = run("build", "--output", str(tmp_path / "b"), "--archive", str(empty), "--no-queries", timeout=600)
    assert_one_error_line(proc, f"{empty} is not an archive (no index.jsonl)")


@pytest.mark.parametrize("make, expected", [
    (lambda d: None, "has no corpus/*.parquet: is it a built dataset folder"),
    (lambda d: (d / "corpus").mkdir() or (d / "corpus" / "x.parquet").write_text("not parquet"),
     "corpus/x.parquet is not a Parquet file of a wikihow-tiir dataset"),
])
def test_stats_on_a_folder_that_is_not_a_dataset_is_one_line(tmp_path, make, expected):
    folder = tmp_path / "notes"
    folder.mkdir()
    make(folder)
    assert_one_error_line(run("stats", str(folder), timeout=300), expected)


def test_stats_reads_a_parquet_file_of_another_table_as_not_a_dataset(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "d" / "corpus").mkdir(parents=True)
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "d" / "corpus" / "corpus-00000-of-00001.parquet")
    assert_one_error_line(run("stats", str(tmp_path / "d"), timeout=300), "has no column 'texts'")
    assert os.listdir(tmp_path / "d" / "corpus") == ["corpus-00000-of-00001.parquet"]
