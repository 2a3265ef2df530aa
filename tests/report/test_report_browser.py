"""The build report renders in a real headless Chromium, offline, with its images."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from wikihow_tiir.io import write_jsonl
from wikihow_tiir.model import (
    Document,
    ImageMeta,
    Interleaved,
    Qrel,
    Query,
    document_to_row,
    qrel_to_row,
    query_to_row,
)
from wikihow_tiir.report import GALLERY_PAGE_SIZE, write_report
from wikihow_tiir.storage import write_sharded

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _jpeg(i: int) -> bytes:
    im = Image.new("RGB", (120, 90), ((i * 53) % 255, (i * 97) % 255, 180))
    ImageDraw.Draw(im).ellipse((10 + i % 30, 10, 80, 70), fill=(255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def make_dataset(root: Path, n: int = 30) -> Path:
    docs, queries = [], []
    for i in range(n):
        c = Interleaved()
        c.add_text(f"How to Do Thing {i}")
        c.add_text("Method one")
        for k in range(3):
            c.add_text(f"Step {k} of thing {i}.")
            c.add_image(ImageMeta(source_url=f"https://www.wikihow.com/images/{i}-{k}.jpg", license="CC",
                                  stand_in=True), _jpeg(i * 3 + k))
        docs.append(Document(id=f"wh-{i}-s1", article_id=str(i), url="u", lang="en", goal=f"How to Do Thing {i}",
                             section_title="Method one", section_kind="method", section_index=1, content=c))
        qc = Interleaved()
        qc.add_text(f"I am stuck with thing {i} <script>alert(1)</script>")
        qc.add_image(ImageMeta(source_url="pool"), _jpeg(i + 500))
        qc.add_text("and then")
        qc.add_image(ImageMeta(source_url="pool"), _jpeg(i + 900))
        queries.append(Query(id=f"q-{i}", positive_id=f"wh-{i}-s1", article_id=str(i), lang="en", content=qc,
                             image_prompts=["a thing", "another thing"], scores={"relevance": 0.3 + i / 100}))
    write_sharded(root / "corpus", [document_to_row(d) for d in docs], "corpus", "corpus")
    write_sharded(root / "queries", [query_to_row(q) for q in queries], "queries", "test")
    write_sharded(root / "qrels", [qrel_to_row(Qrel(q.id, q.positive_id)) for q in queries], "qrels", "test")
    write_jsonl(root / "rejects" / "parse.jsonl",
                [{"stage": "parse", "item_id": "https://www.wikihow.jp/stub", "reason": "no-steps", "detail": "",
                  "extra": {}}])
    (root / "manifest.json").write_text(json.dumps({
        "sources": {"kind": "archive", "pages": n + 1, "articles": n},
        "filter": {"generated": n + 2, "kept": n, "thresholds": {"relevance_min": 0.25}},
        "statistics": {"corpus": {"examples": n, "avg_images": 3.0, "min_images": 3, "max_images": 3,
                                  "avg_text_tokens": 20.0},
                       "queries": {"test": {"examples": n, "avg_images": 2.0, "min_images": 2, "max_images": 2,
                                            "avg_text_tokens": 12.0, "positives": 1}}},
        "stand_in_images": {"count": 3 * n, "total": 3 * n}, "created_by": {"version": "0.1.0"}}))
    return root


def test_report_pages_are_self_contained_and_paginated(tmp_path):
    ds = make_dataset(tmp_path / "ds")
    index = write_report(ds)
    text = index.read_text()
    for attr in ('src="http', "src='http", 'href="http', "url(http", "@import"):
        assert attr not in text  # nothing is fetched from the network
    assert "<script>alert(1)</script>" not in text  # query text is escaped
    assert "stand-ins" in text and "no-steps" in text and "relevance_min = 0.25" in text
    n_pages = -(-30 // GALLERY_PAGE_SIZE)
    assert sorted(p.name for p in (ds / "report").glob("gallery-*.html")) == [
        f"gallery-{i:03d}.html" for i in range(2, n_pages + 1)]
    # deterministic
    first = index.read_bytes()
    write_report(ds)
    assert index.read_bytes() == first


def test_a_large_build_shows_a_capped_gallery_with_a_note(tmp_path, monkeypatch):
    import wikihow_tiir.report as report

    ds = make_dataset(tmp_path / "ds", n=30)
    monkeypatch.setattr(report, "GALLERY_MAX_PAIRS", 5)
    text = write_report(ds).read_text()
    assert "Showing 5 of 30 queries" in text and text.count('class="pair"') == 5
    first = sorted(f"q-{i}" for i in range(30))[:5]  # the first ids (as strings), with their pictures
    assert all(f"query {q} " in text for q in first) and "query q-2 " not in text
    assert text.count("data:image/jpeg;base64") >= 5 * (2 + 3)
    assert "30 queries" in text  # tables and plots still count everything
    assert not list((ds / "report").glob("gallery-*.html"))


def test_report_shows_an_evaluation_from_any_folder(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=4)
    assert "<h2>Evaluation</h2>" not in write_report(ds).read_text()
    ev = tmp_path / "elsewhere"
    ev.mkdir()
    (ev / "comparison.md").write_text("| Model | R@5 |\n|---|---:|\n| my-model | 42.00 |\n")
    text = write_report(ds, ev).read_text()
    assert "my-model" in text and "42.00" in text
    with pytest.raises(FileNotFoundError, match="evaluation folder"):
        write_report(ds, tmp_path / "missing")


def test_report_without_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        write_report(tmp_path)


@pytest.mark.browser
def test_report_renders_in_headless_chromium_offline(tmp_path):
    assert CHROMIUM, "Debian's chromium is required for the browser tests (make install-browser)"
    from playwright.sync_api import sync_playwright

    ds = make_dataset(tmp_path / "ds")
    index = write_report(ds)
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(index.as_uri())
        page.wait_for_load_state("load")
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=False)
        images = page.eval_on_selector_all(
            ".pair img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
        svgs = page.eval_on_selector_all(".plots svg", "els => els.length")
        page.fill("#q", "thing 1 ")
        visible = page.eval_on_selector_all(".pair", "els => els.filter(e => e.style.display !== 'none').length")
        browser.close()
    assert len(images) == GALLERY_PAGE_SIZE * 5  # 2 query + 3 document images per pair
    assert all(c and w > 0 and h > 0 for c, w, h in images), images
    assert svgs >= 3
    assert visible == 1
    assert shot.stat().st_size > 10_000
    # nothing left the machine: only the file itself and inline data: URIs were requested
    assert all(u.startswith(("file://", "data:")) for u in requests), [u for u in requests if "data:" not in u]
