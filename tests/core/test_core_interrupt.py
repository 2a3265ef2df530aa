"""wikihow_tiir.interrupt: a stop signal ends the command in bounded time even when a worker thread
does not stop (a shard in a long call), and a second signal ends it at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

# a command whose main thread handles the interrupt but whose worker thread never finishes
SCRIPT = """
import sys, threading, time
from wikihow_tiir import interrupt
interrupt.GRACE_S = float(sys.argv[1])
interrupt.install("interrupted: run it again")
threading.Thread(target=time.sleep, args=(600,)).start()  # not a daemon: exit waits for it
try:
    print("ready", flush=True)
    time.sleep(600)
except KeyboardInterrupt:
    interrupt.report()
    sys.exit(interrupt.exit_code())
"""


def _start(grace: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(grace)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stuck_worker_thread_does_not_keep_the_command_alive(sig, code):
    proc = _start(grace=1.0)
    try:
        t0 = time.monotonic()
        proc.send_signal(sig)  # SIGINT arrives although the process was started ignoring it
        _, err = proc.communicate(timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == code
    assert elapsed < 30  # the 1 s grace period, not the thread's 600 s
    assert err.splitlines() == ["error: interrupted: run it again"]  # once, though both paths report


def test_a_second_signal_exits_at_once():
    proc = _start(grace=600.0)
    try:
        proc.send_signal(signal.SIGINT)
        first = proc.stderr.readline()  # the main thread has handled the first signal and is waiting
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
    assert first == "error: interrupted: run it again\n" and rest == ""
    assert proc.returncode == 130 and elapsed < 30  # not the 600 s grace period
