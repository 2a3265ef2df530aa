"""`wikihow-tiir audit DATASET --output review.html`: a self-contained, deterministic review page."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from audit_helpers import decision, folder_bytes, split_ids, write_decisions
from PIL import Image
from typer.testing import CliRunner

from wikihow_tiir.audit import AuditError, apply_audit, write_review_page
from wikihow_tiir.audit.decisions import REASONS
from wikihow_tiir.audit.page import THUMB_MAX_SIDE, _json_script, _thumbnail
from wikihow_tiir.cli import app
from wikihow_tiir.layout import split_files
from wikihow_tiir.model import query_from_row
from wikihow_tiir.storage import read_rows


def storage_key(page: str) -> str:
    return re.search(r'"storage_key": "(wikihow-tiir-audit:[0-9a-f]+)"', page).group(1)


def test_the_page_shows_every_test_pair_offline_with_its_keys_documented(sample_build, tmp_path):
    before = folder_bytes(sample_build)
    out = tmp_path / "review.html"
    result = CliRunner().invoke(app, ["audit", str(sample_build), "--output", str(out)])
    assert result.exit_code == 0, result.output
    ids = split_ids(sample_build, "queries", "test")
    assert f"pairs 1-{len(ids)} of {len(ids)} test pairs" in result.stdout
    page = out.read_text()
    for ref in ('src="http', "src='http", 'href="http', "url(http", "@import", "<link"):
        assert ref not in page  # nothing is fetched: pictures are data: URIs, style and script inline
    assert re.findall(r'data-qid="([^"]+)"', page) == ids  # every test pair, by id
    queries = [query_from_row(r) for r in read_rows(split_files(sample_build, "queries", "test"))]
    # every query picture and every picture of its positive document, inlined
    assert page.count('src="data:image/') >= sum(q.content.n_images for q in queries) + 2 * len(queries)
    assert all(f"positive document {q.positive_id}" in page for q in queries)
    for key in ("y", "1", "2", "3", "4", "e", "u", "j / k", "n", "x", "?"):
        assert f"<kbd>{key}</kbd>" in page, key
    for reason in REASONS:
        assert f"<code>{reason}</code>" in page
    assert '{"query_id", "decision": "keep"|"drop", "reason", "note", "reviewer"}' in page.replace("&quot;", '"')
    assert folder_bytes(sample_build) == before  # the page only reads the dataset
    first = out.read_bytes()
    assert CliRunner().invoke(app, ["audit", str(sample_build), "--output", str(out)]).exit_code == 0
    assert out.read_bytes() == first  # same dataset -> same bytes


def test_slices_of_a_large_split_and_their_errors(sample_build, tmp_path):
    ids = split_ids(sample_build, "queries", "test")
    info = write_review_page(sample_build, tmp_path / "part.html", offset=2, limit=2)
    page = (tmp_path / "part.html").read_text()
    assert re.findall(r'data-qid="([^"]+)"', page) == ids[2:4]
    assert (info["first"], info["last"], info["test_pairs"]) == (3, 4, len(ids))
    assert "next slice: <code>--offset 4</code>" in page
    whole = write_review_page(sample_build, tmp_path / "all.html")
    assert info["dataset"] == whole["dataset"]  # one review, whatever the slice: one storage key
    with pytest.raises(AuditError, match=f"--offset {len(ids)} is past the last test pair"):
        write_review_page(sample_build, tmp_path / "x.html", offset=len(ids))
    result = CliRunner().invoke(app, ["audit", str(sample_build), "--output", str(tmp_path), "--limit", "3"])
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {tmp_path} is a folder")
    result = CliRunner().invoke(app, ["audit", str(sample_build), "--output", str(tmp_path / "y.html"),
                                      "--limit", "0"])
    assert result.exit_code == 2 and "--limit 1 or more" in result.stderr


def test_progress_belongs_to_the_test_split_as_generated_and_survives_applying(dataset, tmp_path):
    ids = split_ids(dataset, "queries", "test")
    before = (tmp_path / "before.html")
    write_review_page(dataset, before)
    apply_audit(dataset, [write_decisions(tmp_path / "a.jsonl", [decision(ids[0]),
                                                                 decision(ids[1], "drop", "illogical")])])
    after = tmp_path / "after.html"
    write_review_page(dataset, after)
    page = after.read_text()
    assert storage_key(page) == storage_key(before.read_text())
    assert re.findall(r'data-qid="([^"]+)"', page) == [ids[0], *ids[2:]]
    assert "applied earlier: keep by &#x27;ana&#x27;" in page
    assert "1 pair(s) already dropped by applied decisions" in page


def test_a_changed_test_split_is_another_review(dataset, sample_build, tmp_path):
    import pyarrow.parquet as pq

    from wikihow_tiir.storage import write_parquet

    write_review_page(sample_build, tmp_path / "a.html")
    f = split_files(dataset, "queries", "test")[0]
    rows = pq.read_table(f).to_pylist()
    rows[0]["texts"][0] += " (rewritten)"
    write_parquet(f, rows, "queries")
    write_review_page(dataset, tmp_path / "b.html")
    assert storage_key((tmp_path / "a.html").read_text()) != storage_key((tmp_path / "b.html").read_text())


def test_large_pictures_are_scaled_down_and_small_ones_kept():
    buf = io.BytesIO()
    Image.new("RGB", (1200, 900), (10, 120, 200)).save(buf, format="PNG")
    small = _thumbnail(buf.getvalue())
    with Image.open(io.BytesIO(small)) as im:
        assert im.format == "JPEG" and max(im.size) == THUMB_MAX_SIDE and im.size == (480, 360)
    tiny = io.BytesIO()
    Image.new("RGB", (40, 30)).save(tiny, format="PNG")
    assert _thumbnail(tiny.getvalue()) == tiny.getvalue()
    assert _thumbnail(b"not a picture") == b"not a picture"


def test_embedded_data_cannot_close_its_script_element():
    text = _json_script("audit-data", {"applied": {"q-</script><script>alert(1)</script>": True}})
    assert text.count("</script>") == 1 and "\\u003c/script>" in text


def test_an_empty_test_split_has_nothing_to_review(dataset, tmp_path):
    for f in [*split_files(dataset, "queries", "test"), *split_files(dataset, "qrels", "test")]:
        Path(f).unlink()
    with pytest.raises(AuditError, match="has no test pairs to review"):
        write_review_page(dataset, tmp_path / "r.html")
