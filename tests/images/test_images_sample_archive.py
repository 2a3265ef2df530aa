"""The bundled sample archive and the script that makes it."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime
from pathlib import Path

import pytest

from wikihow_tiir.images import normalize_image
from wikihow_tiir.io import sha256_bytes, sha256_file
from wikihow_tiir.sources.archive import Archive
from wikihow_tiir.sources.standins import ORIGIN, renderer_fingerprint


@pytest.fixture(scope="module")
def script(repo_root: Path):
    spec = importlib.util.spec_from_file_location("make_sample_archive", repo_root / "scripts/make_sample_archive.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fresh(script, fixtures_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fresh") / "archive"
    script.build(out, fixtures_dir / "wikihow_html")
    return out


@pytest.fixture(scope="module")
def committed(sample_archive: Path) -> Archive:
    return Archive(sample_archive)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_is_deterministic(script, fixtures_dir, fresh, tmp_path):
    again = tmp_path / "archive"
    script.build(again, fixtures_dir / "wikihow_html")
    assert tree(again) == tree(fresh)


def test_committed_archive_equals_a_fresh_build(fresh, sample_archive):
    committed_manifest = json.loads((sample_archive / "manifest.json").read_text(encoding="utf-8"))
    if committed_manifest["renderer"] == renderer_fingerprint():
        assert tree(fresh) == tree(sample_archive), "run scripts/make_sample_archive.py and commit the result"
    else:
        # another Pillow build renders other JPEG bytes: everything but the card bytes must still agree
        def strip(root: Path) -> list[dict]:
            recs = [json.loads(line) for line in (root / "index.jsonl").read_text(encoding="utf-8").splitlines()]
            for r in recs:
                if r["kind"] == "image":
                    r["sha256"] = r["size"] = None
            return recs

        assert strip(fresh) == strip(sample_archive)


def test_every_fixture_page_is_stored_byte_identical(committed, fixtures_dir):
    pages = {r.origin: r for r in committed.records("page")}
    files = sorted((fixtures_dir / "wikihow_html").glob("*.html"))
    assert len(files) == 20 and len(pages) == 20
    for path in files:
        rec = pages[f"fixture:{path.name}"]
        assert rec.sha256 == sha256_file(path)
        assert committed.read(rec) == path.read_bytes()
        assert (rec.status, rec.content_type, rec.stand_in) == (200, "text/html; charset=utf-8", False)
        assert rec.url.startswith(("https://www.wikihow.com/", "https://www.wikihow.jp/"))
        assert datetime.fromisoformat(rec.fetched_at).year in range(2009, 2023)


def test_page_urls_are_the_real_ones(committed):
    urls = {r.origin.removeprefix("fixture:"): r.url for r in committed.records("page")}
    assert urls["unclog-a-toilet.fragment.html"] == "https://www.wikihow.com/Unclog-a-Toilet"
    assert urls["administer-first-aid-to-a-choking-child.fragment.html"] == (
        "https://www.wikihow.com/Administer-First-Aid-to-a-Choking-Child")
    assert urls["clean-gold-jewelry.html"] == "https://www.wikihow.com/Clean-Gold-Jewelry"
    assert urls["grill-zucchini.html"] == "https://www.wikihow.com/Grill-Zucchini"
    # the quality-review stub has no canonical link: its page name on the Japanese wiki
    assert urls["ja-cook-adobo-quality-review.html"] == (
        "https://www.wikihow.jp/%E3%82%A2%E3%83%89%E3%83%9C%E3%81%AE%E8%AA%BF%E7%90%86")


def test_every_image_is_a_marked_stand_in_that_normalizes(committed):
    images = committed.records("image")
    assert len(images) > 200
    page_urls = {r.url for r in committed.records("page")}
    by_blob: dict[str, bytes] = {}
    for rec in images:
        assert rec.stand_in is True and rec.origin == ORIGIN
        assert rec.content_type == "image/jpeg" and rec.status == 200
        assert rec.page_url in page_urls
        if rec.sha256 not in by_blob:
            by_blob[rec.sha256] = committed.read(rec)
    assert committed.stand_in_count() == len(images)
    for data in by_blob.values():
        n = normalize_image(data)
        assert (n.width, n.height) == (460, 345)
    # the per-image licence of the real picture travels with its stand-in
    licences = {r.license for r in images}
    assert any("Creative Commons" in x for x in licences)
    assert any("Fair Use" in x for x in licences)
    assert any("All rights reserved" in x for x in licences)


def test_every_url_variant_of_every_step_picture_resolves(committed):
    from wikihow_tiir.parse import ParseError, parse_html

    checked = 0
    for rec, body in committed.iter_pages():
        try:
            article = parse_html(body, url=rec.url)
        except ParseError:
            continue
        for section in article.sections:
            for step in section.steps:
                for media in step.media:
                    if not media.still_url:
                        continue
                    still = committed.get_bytes(media.still_url)
                    assert still is not None, media.still_url
                    variants = [media.url, media.large_url] if media.kind == "image" else []
                    for url in filter(None, variants):
                        assert committed.get_bytes(url) == still, url
                    checked += 1
    assert checked > 200


def test_distinct_steps_get_distinct_cards(committed):
    from wikihow_tiir.images import phash_distance

    blobs = {r.sha256: r for r in committed.records("image")}
    hashes = [normalize_image(committed.read(r)).phash for r in list(blobs.values())[:60]]
    assert len(set(blobs)) == json.loads((committed.root / "manifest.json").read_text())["stand_in_images"]
    assert min(phash_distance(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]) > 6


def test_archive_docs_and_size(sample_archive, repo_root):
    text = (sample_archive / "ARCHIVE.md").read_text(encoding="utf-8")
    manifest = json.loads((sample_archive / "manifest.json").read_text(encoding="utf-8"))
    assert f"**{manifest['stand_in_images']} stand-in step images**" in text
    for needle in ("Creative Commons BY-NC-SA 3.0", "STAND-IN", "f52936d98abf30198f8b31009e33a51b7a9de235",
                   "scripts/make_sample_archive.py"):
        assert needle in text
    total = sum(p.stat().st_size for p in (repo_root / "data/sample").rglob("*") if p.is_file())
    assert total < 12 * 1024 * 1024
    assert manifest["index_sha256"] == sha256_bytes((sample_archive / "index.jsonl").read_bytes())


def test_script_refuses_unknown_fixtures_with_a_reason(script, tmp_path):
    src = tmp_path / "pages"
    src.mkdir()
    (src / "new-page.html").write_text("<html></html>", encoding="utf-8")
    with pytest.raises(script.BuildError, match="no capture date for new-page.html"):
        script.build(tmp_path / "out", src)
    assert script.main(["--fixtures", str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 2
