import datasets
import pytest

from wikihow_tiir.config import load_config, parse_override
from wikihow_tiir.io import sha256_file
from wikihow_tiir.model import (
    Document,
    ImageMeta,
    Interleaved,
    Query,
    document_from_row,
    document_to_row,
    query_from_row,
    query_to_row,
)
from wikihow_tiir.sources.archive import Archive, ArchiveError
from wikihow_tiir.storage import read_rows, write_sharded


def _png(color):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def _doc(i):
    c = Interleaved()
    c.add_text("How to X")
    c.add_text(f"step {i}")
    c.add_image(ImageMeta(source_url=f"u{i}", license="L", sha256="s", width=8, height=8, phash="0" * 16),
                _png((i * 40 % 255, 0, 0)))
    return Document(id=f"wh-1-s{i}", article_id="1", url="u", lang="en", goal="How to X", section_title="t",
                    section_kind="method", section_index=i, content=c)


def test_corpus_shards_round_trip_and_load_with_datasets(tmp_path):
    rows = [document_to_row(_doc(i)) for i in range(5)]
    paths = write_sharded(tmp_path / "corpus", rows, "corpus", "corpus", rows_per_shard=2)
    assert [p.name for p in paths] == [f"corpus-0000{i}-of-00003.parquet" for i in range(3)]
    back = [document_from_row(r) for r in read_rows(paths)]
    assert [d.id for d in back] == [f"wh-1-s{i}" for i in range(5)]
    assert back[2].content.images[2] == rows[2]["images"][2]["bytes"]
    ds = datasets.load_dataset("parquet", data_files=[str(p) for p in paths], split="train")
    img = ds[0]["images"][2]
    assert img.size == (8, 8)  # decoded to a PIL image: the Image feature is declared in the files
    assert ds[0]["images"][0] is None
    # same rows, same bytes
    again = write_sharded(tmp_path / "again", rows, "corpus", "corpus", rows_per_shard=2)
    assert [sha256_file(p) for p in paths] == [sha256_file(p) for p in again]


def test_rewriting_with_fewer_shards_removes_stale_files(tmp_path):
    rows = [document_to_row(_doc(i)) for i in range(4)]
    write_sharded(tmp_path, rows, "corpus", "corpus", rows_per_shard=1)
    write_sharded(tmp_path, rows, "corpus", "corpus", rows_per_shard=4)
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == ["corpus-00000-of-00001.parquet"]


def test_query_row_round_trip_keeps_provenance_and_scores():
    c = Interleaved()
    c.add_text("I have a problem")
    c.add_image(ImageMeta(source_url="generated:x"), b"\x89PNG")
    q = Query(id="q-1", positive_id="wh-1-s1", article_id="1", lang="en", content=c, image_prompts=["a pan"],
              provenance={"backend": "offline"}, scores={"relevance": 0.5})
    back = query_from_row(query_to_row(q))
    assert back.provenance == {"backend": "offline"} and back.scores == {"relevance": 0.5}
    assert back.content.texts == c.texts and back.image_prompts == ["a pan"]


def test_interleaved_check_refuses_both_or_neither():
    c = Interleaved(texts=["a", None], images=[None, None], image_meta=[None, None])
    with pytest.raises(ValueError, match="position 1"):
        c.check()


def test_archive_put_get_compact_and_torn_last_line(tmp_path):
    a = Archive(tmp_path / "arc", create=True)
    a.put("https://x/b", b"two", "page", status=200)
    a.put("https://x/a", b"one", "image", stand_in=True)
    a.put("https://x/b", b"three", "page", status=200)  # last record per URL wins
    with open(tmp_path / "arc" / "index.jsonl", "a") as f:
        f.write('{"url": "https://x/c", "kind"')  # a crawl killed mid-append
    b = Archive(tmp_path / "arc")
    assert b.get_bytes("https://x/b") == b"three"
    assert b.is_stand_in("https://x/a") and not b.is_stand_in("https://x/b")
    assert "https://x/c" not in b
    b.compact()
    lines = (tmp_path / "arc" / "index.jsonl").read_text().splitlines()
    assert [line.split('"url":"')[1].split('"')[0] for line in lines] == ["https://x/a", "https://x/b"]
    # a corrupted blob is detected
    rec = b.get("https://x/a")
    b.blob_path(rec.sha256).write_bytes(b"tampered")
    with pytest.raises(ArchiveError, match="sha256"):
        Archive(tmp_path / "arc").read("https://x/a")


def test_archive_missing_folder_has_a_clear_error(tmp_path):
    with pytest.raises(ArchiveError, match="not an archive"):
        Archive(tmp_path / "nowhere")


def test_config_profiles_files_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("segment:\n  min_images: 3\nfilter:\n  relevance_min: 0.1\n")
    cfg = load_config(f, profile="sample", overrides=["filter.relevance_min=0.4", "runner.kind=dask"])
    assert cfg.segment.min_images == 3 and cfg.filter.relevance_min == 0.4 and cfg.runner.kind == "dask"
    assert load_config(profile="live").source.kind == "live"
    assert parse_override("a.b=x") == {"a": {"b": "x"}}
    with pytest.raises(ValueError, match="unknown profile"):
        load_config(profile="nope")
    with pytest.raises(Exception, match="segmnt"):
        load_config(overrides=["segmnt.min_images=2"])  # typos are refused, not ignored


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """Not mkstemp's 0600: a dataset folder written for a team must be readable by the team."""
    import os
    import stat

    from wikihow_tiir.io import atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~mask
