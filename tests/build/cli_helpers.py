"""Running the real `wikihow-tiir` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


def command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m wikihow_tiir.cli``."""
    script = Path(sys.executable).parent / "wikihow-tiir"
    if script.is_file():
        return [str(script)]
    found = shutil.which("wikihow-tiir")
    return [found] if found else [sys.executable, "-m", "wikihow_tiir.cli"]


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "COLUMNS": "200", "NO_COLOR": "1"}


def run(*args: str, timeout: float = 600, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([*command(), *args], cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def assert_one_error_line(proc: subprocess.CompletedProcess, *expected: str, code: int = 2) -> str:
    """Exit status ``code``, no traceback, exactly one ``error:`` line holding every ``expected`` text."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out
    assert out.count("Traceback") == 0 and "╭─" not in out, out  # neither plain nor rich tracebacks
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, out
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def default_sigint() -> None:
    """preexec_fn: the child starts with Python's usual SIGINT, however pytest was launched."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ignored_sigint() -> None:
    """preexec_fn: the child starts with SIGINT ignored, as a shell starts a background job."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def bomb_yaml(levels: int = 9, fan_out: int = 9) -> str:
    """"Billion laughs": ``fan_out ** levels`` strings (387 million) from a few hundred bytes, in a
    setting that accepts anything (a backend's ``extra``), so only the expansion bound stops it."""
    lines = ["generate:", "  caption:", "    extra:", f'      l0: &l0 [{", ".join(["lol"] * fan_out)}]']
    for n in range(1, levels):
        lines.append(f"      l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * fan_out)}]")
    return "\n".join(lines) + "\n"



def kill_tree(pid: int) -> None:
    """Kill a process and everything it started (also what left its session, like an API server)."""
    try:
        proc = psutil.Process(pid)
        family = [*proc.children(recursive=True), proc]
    except psutil.NoSuchProcess:
        return
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)
