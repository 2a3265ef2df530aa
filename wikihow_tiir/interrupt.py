"""Ctrl-C and SIGTERM for a long command: stop within seconds and say, in one line, how to go on.

:func:`install` (called by the CLI, never by library code) makes SIGINT and SIGTERM raise
``KeyboardInterrupt`` in the main thread, whatever the command inherited (a shell starts background
jobs with SIGINT ignored; Python then keeps it ignored). The main thread unwinds and the command
prints its message. Worker threads cannot be interrupted, though, and a build waits for the shards
in flight: if the process is still alive :data:`GRACE_S` seconds after the signal, or at a second
signal, it prints the message, runs the registered clean-ups and exits at once. That is safe for a
build: every shard is written atomically with its ``.done`` marker last, so a re-run redoes exactly
the shards that were not finished.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

GRACE_S = 10.0

_lock = threading.Lock()
_state: dict = {"installed": False, "signum": None, "count": 0, "message": "", "reported": False}
_cleanups: list[Callable[[], None]] = []


def install(message: str) -> None:
    """SIGINT/SIGTERM stop the command; ``message`` is the line printed (``error: ...``) when they do."""
    _state.update(installed=True, message=message)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


def reinstall() -> None:
    """Put the handlers back where a library replaced them (Prefect swaps in its own SIGTERM handler for a
    flow run, which would bypass the grace period); a no-op outside the main thread or before install."""
    if not _state["installed"] or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


def add_cleanup(fn: Callable[[], None]) -> None:
    """Run ``fn`` before a forced exit (e.g. stop a server process started in its own session)."""
    _cleanups.append(fn)


def cleanups() -> list[Callable[[], None]]:
    return list(_cleanups)


def requested() -> bool:
    return _state["signum"] is not None


def exit_code() -> int:
    """What shells report for a command ended by this signal: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(_state["signum"] or signal.SIGINT)


def report() -> None:
    """Print the message once (the graceful path and a forced exit may both get here)."""
    with _lock:
        if _state["reported"]:
            return
        _state["reported"] = True
    try:
        sys.stderr.write(f"error: {_state['message'] or 'interrupted'}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: nothing more to say
        pass


def _on_signal(signum: int, frame) -> None:
    with _lock:
        _state["count"] += 1
        first = _state["count"] == 1
        if first:
            _state["signum"] = signum
    if not first:
        _force_exit()
    timer = threading.Timer(GRACE_S, _force_exit)
    timer.daemon = True  # never keeps a finished process alive
    timer.start()
    raise KeyboardInterrupt


def _force_exit() -> None:
    report()
    for fn in _cleanups:
        try:
            fn()
        except Exception:  # noqa: BLE001 - best effort: we are leaving anyway
            pass
    os._exit(exit_code())


def dask_setup(worker) -> None:
    """Dask preload hook of the build's local cluster (``preload=["wikihow_tiir.interrupt"]``): its
    worker processes share our process group, so a Ctrl-C in the terminal reaches them too. They
    ignore it: we stop, and closing the cluster (or our exit) stops them."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    import logging

    # the shards the cluster is closed under after Ctrl-C are cancelled: that is the stop, not a problem
    logging.getLogger("distributed.worker.state_machine").addFilter(
        lambda record: not record.getMessage().endswith("ended with CancelledError"))
