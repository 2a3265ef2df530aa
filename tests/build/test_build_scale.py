"""Issue 15: the build at growing size. The synthetic wikiHow-VGSI source of the `scale` bench is seeded,
nests by size and builds unchanged with the `vgsi` profile; query shards read what they need, not the corpus;
the flow process holds nothing proportional to the corpus once the stage that needed it is done."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

from PIL import Image

from benchmarks.synth_vgsi import GENERATOR_VERSION, IMAGES, TEXT_FILE, generate
from wikihow_tiir import build, layout
from wikihow_tiir.config import load_config
from wikihow_tiir.generate import ImagePool


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "synth.json"}


def test_synthetic_vgsi_source_is_seeded_nests_by_size_and_builds_unchanged(tmp_path):
    small = generate(tmp_path / "small", 3, seed=5)
    again = generate(tmp_path / "again", 3, seed=5)
    assert _files(tmp_path / "small") == _files(tmp_path / "again")  # same seed and size: same bytes
    assert small["generator"] == GENERATOR_VERSION and small["articles"] == again["articles"] == 3
    large = generate(tmp_path / "large", 6, seed=5, images_from=tmp_path / "small")
    lines = (tmp_path / "large" / TEXT_FILE).read_text(encoding="utf-8").splitlines()
    assert lines[:3] == (tmp_path / "small" / TEXT_FILE).read_text(encoding="utf-8").splitlines()
    assert large["pictures_drawn"] < large["image_files"]  # the first 3 articles' pictures were linked
    generate(tmp_path / "other", 3, seed=6)
    assert _files(tmp_path / "other") != _files(tmp_path / "small")
    # real pictures at wikiHow's step-image sizes; VGSI's record schema
    for p in sorted((tmp_path / "large" / IMAGES).iterdir())[:10]:
        with Image.open(p) as im:
            im.load()
            assert im.format in ("JPEG", "PNG") and max(im.size) in (460, 728)
    rec = json.loads(lines[0])
    assert rec["goal"].startswith("How to ") and rec["methods"]
    assert {"headline", "description", "img", "img_license", "step_id"} <= set(rec["methods"][0]["steps"][0])
    cfg = load_config(profile="vgsi", overrides=[
        f'source.vgsi.text_file="{tmp_path / "large" / TEXT_FILE}"',
        f'source.vgsi.images="{tmp_path / "large" / IMAGES}"', "generate.enabled=false"])
    result = build.run_build(cfg, tmp_path / "out")
    assert result["documents"] >= 6 and "vgsi" not in result["rejects"]  # every record reads as VGSI


def test_query_shards_read_their_picked_pictures_from_the_blob_folder(tmp_path, tiny_archive, monkeypatch):
    """Every corpus picture is kept once by content (work/corpus/images/<sha[:2]>/<sha>.jpg) and a query
    shard reads the few pool pictures it picks from there: from the corpus files each pick cost a whole
    row group of pictures, so every shard read most of the corpus. A damaged blob is not trusted (its
    name is its sha256): the picture is read from the corpus instead, and the shard writes the same bytes."""
    import wikihow_tiir.generate.pool as pool_mod
    from wikihow_tiir.storage import read_rows

    out = tmp_path / "out"
    cfg = load_config(overrides=[f'source.archive="{tiny_archive}"', "generate.documents_per_shard=2"])
    build.run_build(cfg, out)
    blobs = layout.corpus_image_blobs(out)
    shas = {m["sha256"] for r in read_rows(layout.corpus_files(out), ["image_meta"]) for m in r["image_meta"] if m}
    assert shas and {p.stem for p in blobs.rglob("*.jpg")} >= shas
    read = []
    real = pool_mod._read_corpus_bytes
    monkeypatch.setattr(pool_mod, "_read_corpus_bytes", lambda files, keys: (read.extend(keys), real(files, keys))[1])
    specs = build.plan_queries(cfg, out)
    spec = specs[0]
    shard = layout.shard_file(out, "queries", spec.name, "parquet")
    before = shard.read_bytes()
    pool_keys = {im["pool"] for line in (build.work_dir(out, "generate") / "render" / f"{spec.name}.jsonl")
                 .read_text(encoding="utf-8").splitlines() if (rec := json.loads(line)).get("ok")
                 for im in rec["value"]["images"] if "pool" in im}
    assert pool_keys
    for again in ("blobs", "damaged"):
        build._marker(out, spec).unlink()
        build._image_pool.cache_clear()
        build.run_query_shard(cfg, out, spec)
        assert shard.read_bytes() == before
        if again == "blobs":
            assert read == []
            for p in blobs.rglob("*.jpg"):
                p.write_bytes(b"not the picture")
    assert sorted(set(read)) == sorted(pool_keys)


def test_a_query_shard_holds_neighbours_in_the_corpus_files(tmp_path):
    """Query shards take documents in corpus order, so a shard reads one or two row groups of pictures;
    by sorted id, the shards of a release not sorted by id (the synthetic one, like the real one) each
    touched row groups all over the corpus."""
    import pyarrow.parquet as pq

    generate(tmp_path / "src", 12, seed=5)
    cfg = load_config(profile="vgsi", overrides=[
        f'source.vgsi.text_file="{tmp_path / "src" / TEXT_FILE}"',
        f'source.vgsi.images="{tmp_path / "src" / IMAGES}"', "generate.enabled=false", "output.rows_per_file=4"])
    out = tmp_path / "out"
    build.run_build(cfg, out)
    where = {}
    for f in layout.corpus_files(out):
        for doc_id in pq.read_table(f, columns=["id"]).column("id").to_pylist():
            where[doc_id] = f.name
    specs = build.plan_queries(cfg.model_copy(update={"generate": cfg.generate.model_copy(update={
        "documents_per_shard": 4})}), out)
    assert len(specs) >= 6 and sorted(where) != list(where)  # the release is not in id order
    assert [d for s in specs for d in s.keys] == list(where)
    assert all(len({where[d] for d in s.keys}) <= 2 for s in specs)


def test_the_flow_process_lets_go_of_the_pool_and_the_corpus(tmp_path, tiny_archive, monkeypatch):
    """The image pool (an object and a vector per corpus image) is released once the query shards are
    done, the corpus without bytes once the filter and the difficulty table are: at the paper's scale each
    is hundreds of MB that otherwise stayed in the flow process until the end of the build."""
    pools = []
    init = ImagePool.__init__

    def tracked(self, *a, **k):
        init(self, *a, **k)
        pools.append(weakref.ref(self))

    monkeypatch.setattr(ImagePool, "__init__", tracked)
    result = build.run_build(load_config(overrides=[f'source.archive="{tiny_archive}"']), tmp_path / "out")
    assert sum(result["queries"].values()) > 0 and pools
    gc.collect()
    assert all(ref() is None for ref in pools)
    assert build._load_corpus.cache_info().currsize == 0


def _run(articles: int, wall_per_article: float, quad: float = 0.0, flow_mb: float = 1000.0) -> dict:
    corpus = wall_per_article * articles + quad * articles ** 2
    stages = {"corpus": {"wall_s": corpus, "cpu_s": 2 * corpus}, "other": {"wall_s": 10.0, "cpu_s": 10.0}}
    wall = corpus + 10.0
    docs = 3 * articles
    return {"articles": articles, "documents": docs, "stages": stages, "flow_peak_mb": flow_mb,
            "worker_peak_mb": 0, "wall_ms_per_document": 1000 * wall / docs,
            "cpu_ms_per_document": 1000 * (2 * corpus + 10) / docs, "minilm_texts_per_s": 70.0}


def test_the_scale_bench_extrapolates_the_marginal_cost_and_sees_a_quadratic_part():
    """The extrapolation to the paper's scale follows the line through the two largest sizes (fixed costs
    do not dilute it), shows a quadratic stage beside it, scales wall time by how fast MiniLM ran against
    the quiet-machine reference, and spreads only the shard stages over N workers."""
    from benchmarks.bench_scale import _growth, extrapolate

    linear = [_run(a, 0.5) for a in (100, 400, 1600)]
    ext = extrapolate(linear, 10_000, reference_rate=140.0)
    assert ext["stages"]["corpus"]["wall_s"] == 5000.0 and ext["stages"]["other"]["wall_s"] == 10.0
    assert ext["stages"]["corpus"]["wall_quadratic_s"] == 5000.0
    assert ext["documents"] == 30_000 and ext["minilm_speed_vs_reference"] == 0.5
    assert ext["unloaded_wall_h"] == round(5010 * 0.5 / 3600, 2)
    assert ext["on_n_workers_h"]["4"] == round((10 + 5000 / 2) * 0.5 / 3600, 2)
    quadratic = [_run(a, 0.5, quad=1e-3) for a in (100, 400, 1600)]
    q = extrapolate(quadratic, 10_000)
    assert q["stages"]["corpus"]["wall_quadratic_s"] > 1.5 * q["stages"]["corpus"]["wall_s"]
    growth = _growth(linear)
    assert growth["time_per_document"] < 1.0 and growth["meets_time_target"]
    grown = _growth([_run(100, 0.5), _run(1600, 0.5, quad=1e-3, flow_mb=2000.0)])
    assert not grown["meets_time_target"] and not grown["meets_memory_target"]
    assert grown["flow_peak_memory"] == 2.0
