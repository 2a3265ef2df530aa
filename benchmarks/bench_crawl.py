"""Crawler throughput against the loopback mirror with the rate limit switched off.

Figures: pages fetched+archived per second (pages only), images fetched+archived per second (a
full crawl: pages, parsing, step images with aliases), and the per-request cost of the polite
client (allowlist, address check, robots, rate-limit bookkeeping, size-capped streaming) against a
bare ``requests.get`` loop and a bare keep-alive ``Session.get`` loop on the same server, same run.

The mirror runs in a child process: in-process, every request would wait for the server thread to
hand the GIL back, and the figures would measure Python's thread switching, not the client.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.servers.wikihow_mirror import WikihowMirror
from wikihow_tiir.config import CrawlConfig
from wikihow_tiir.sources.http import PoliteClient
from wikihow_tiir.sources.live import crawl


def _serve(conn, stop) -> None:
    with WikihowMirror() as mirror:
        com = sorted(p for p in mirror.pages if mirror.original_url[p].startswith(mirror.public))
        conn.send((mirror.origin, mirror.origin_map(), com))
        stop.wait()


class _RemoteMirror:
    public = "https://www.wikihow.com"

    def __init__(self, origin: str, origin_map: dict[str, str], com_paths: list[str]):
        self.origin, self._map, self.com_paths = origin, origin_map, com_paths

    def origin_map(self) -> dict[str, str]:
        return dict(self._map)

    def url(self, path: str) -> str:
        return self.public + path


@contextmanager
def _mirror_process():
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(child, stop), daemon=True)
    proc.start()
    try:
        yield _RemoteMirror(*parent.recv())
    finally:
        stop.set()
        proc.join(10)


def _cfg(mirror: _RemoteMirror, **kw) -> CrawlConfig:
    return CrawlConfig(contact="bench@example.org", origin_map=mirror.origin_map(), allow_private_addresses=True,
                       requests_per_second=0.0, max_articles=None, **kw)


def _loop(fn, n: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) per call."""
    t, c = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n, (time.process_time() - c) / n


def run(quick: bool = False) -> dict:
    n_pages = 40 if quick else 300
    n_requests = 100 if quick else 600
    out: dict = {"rate_limit": "off",
                 "server": "loopback ThreadingHTTPServer in a child process (tests/servers/wikihow_mirror.py)"}
    with _mirror_process() as mirror, tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        com = mirror.com_paths
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(mirror.url(f"/copy/{i}{com[i % len(com)]}") + "\n" for i in range(n_pages)))
        s = crawl(_cfg(mirror, discovery="urls", url_file=urls, fetch_images=False), tmp_path / "pages")
        out["pages"] = {"count": s["pages"]["done"], "seconds": s["duration_s"],
                        "per_s": round(s["pages"]["done"] / s["duration_s"], 1),
                        "mb_per_s": round(s["bytes"] / s["duration_s"] / 1e6, 1)}

        s = crawl(_cfg(mirror), tmp_path / "full")  # sitemap discovery, 11 pages, every step image
        out["full_crawl"] = {"pages": s["pages"]["done"], "images": s["images"]["fetched"],
                             "aliases": s["images"]["aliases"], "seconds": s["duration_s"],
                             "images_per_s": round(s["images"]["fetched"] / s["duration_s"], 1),
                             "requests_per_s": round(s["http"]["requests"] / s["duration_s"], 1)}

        image_path = "/images/thumb/0/0f/Grill-Zucchini-Step-1-Version-2.jpg/v4-460px-Grill-Zucchini-Step-1-Version-2.jpg"
        direct = mirror.origin + image_path
        client = PoliteClient(_cfg(mirror, max_concurrency=1))
        client.fetch(mirror.url(image_path), image=True)  # warm: robots.txt, DNS cache, connection
        session = requests.Session()
        session.get(direct, timeout=10).close()  # warm the connection
        no_env = requests.Session()
        no_env.trust_env = False  # as the client does: no proxy/netrc lookups per request
        no_env.get(direct, timeout=10).close()
        loops = {"requests_get": lambda: requests.get(direct, timeout=10).content,
                 "session_get": lambda: session.get(direct, timeout=10).content,
                 "session_get_trust_env_off": lambda: no_env.get(direct, timeout=10).content,
                 "polite_client": lambda: client.fetch(mirror.url(image_path), image=True)}
        # many short interleaved rounds, best round per method: the machine is shared, and a busy
        # moment should not land on one method only. CPU time of this process is reported too: it is
        # what the client itself costs and it does not move with the load of other processes.
        wall: dict[str, list[float]] = {k: [] for k in loops}
        cpu: dict[str, list[float]] = {k: [] for k in loops}
        n_rounds = 20
        per_round = max(5, n_requests // n_rounds)
        for _ in range(n_rounds):
            for name, fn in loops.items():
                w, c = _loop(fn, per_round)
                wall[name].append(w)
                cpu[name].append(c)
        best_wall = {k: min(v) for k, v in wall.items()}
        best_cpu = {k: min(v) for k, v in cpu.items()}
        out["per_request_ms"] = {
            "wall": {k: round(v * 1e3, 3) for k, v in best_wall.items()},
            "cpu": {k: round(v * 1e3, 3) for k, v in best_cpu.items()},
            "ratio_wall": {f"polite_vs_{k}": round(best_wall["polite_client"] / v, 2)
                           for k, v in best_wall.items() if k != "polite_client"},
            "ratio_cpu": {f"polite_vs_{k}": round(best_cpu["polite_client"] / v, 2)
                          for k, v in best_cpu.items() if k != "polite_client"},
            "requests_per_method": per_round * n_rounds, "target_ratio": 1.5,
        }
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
