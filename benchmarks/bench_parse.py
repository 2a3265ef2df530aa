"""Parser throughput on the 20 real wikiHow fixture pages, on one core.

Figures: pages/s (CPU time of this process, so other load on the machine matters less; wall-clock
figures are reported beside them), against an in-process baseline that only builds the selectolax
tree and reads ``ol.steps_list_2 > li`` texts, and against BeautifulSoup+lxml when bs4 is installed.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "wikihow_html"


def _pages() -> list[bytes]:
    return [p.read_bytes() for p in sorted(PAGES_DIR.glob("*.html"))]


def _rate(fn: Callable[[bytes], object], pages: list[bytes], seconds: float) -> dict:
    for page in pages:  # warm-up (imports, caches)
        fn(page)
    cpu0, wall0, n = time.process_time(), time.perf_counter(), 0
    while time.process_time() - cpu0 < seconds:
        for page in pages:
            fn(page)
        n += len(pages)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"pages": n, "pages_per_s_cpu": round(n / cpu, 1), "pages_per_s_wall": round(n / wall, 1)}


def _ours(page: bytes) -> object:
    from wikihow_tiir.parse import ParseError, parse_html

    try:
        return parse_html(page)
    except ParseError as exc:
        return exc.reason


def _bare_selectolax(page: bytes) -> object:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(page)
    return [li.text() for li in tree.css("ol.steps_list_2 > li")]


def _bs4_lxml(page: bytes) -> object:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page, "lxml")
    return [li.get_text() for li in soup.select("ol.steps_list_2 > li")]


def run(quick: bool = False) -> dict:
    pages = _pages()
    seconds = 0.5 if quick else 3.0
    total_bytes = sum(map(len, pages))
    ours = _rate(_ours, pages, seconds)
    bare = _rate(_bare_selectolax, pages, seconds / 2)
    result = {
        "fixture_pages": len(pages),
        "fixture_mb": round(total_bytes / 1e6, 2),
        "parse_html": ours,
        "mb_per_s_cpu": round(ours["pages_per_s_cpu"] * total_bytes / len(pages) / 1e6, 1),
        "baseline_bare_selectolax_steps": bare,
        "share_of_bare_selectolax_speed": round(ours["pages_per_s_cpu"] / bare["pages_per_s_cpu"], 3),
        "target_pages_per_s": 300,
        "meets_target": ours["pages_per_s_cpu"] >= 300,
    }
    try:
        import bs4  # noqa: F401
        import lxml  # noqa: F401
    except ImportError:
        result["baseline_bs4_lxml"] = "not installed"
    else:
        bs = _rate(_bs4_lxml, pages, seconds / 2)
        result["baseline_bs4_lxml"] = bs
        result["speedup_vs_bs4_lxml"] = round(ours["pages_per_s_cpu"] / bs["pages_per_s_cpu"], 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
