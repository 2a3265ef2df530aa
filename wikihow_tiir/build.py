"""The build, stage by stage, as shard-level functions with no orchestration dependency.

`flows/build_dataset.py` runs these functions as Prefect tasks (one task per shard); tests and
`run_build_inline` call them directly. Every shard function is idempotent: it writes its outputs
atomically, then a ``.done`` marker holding the fingerprint of its inputs and settings, and
returns at once when a matching marker exists. So a killed build, re-run, redoes only the
missing shards and ends with the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import functools
import json
import math
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wikihow_tiir import __version__
from wikihow_tiir.build_folder import check_output_folder, claim_output_folder, stale_reject_files
from wikihow_tiir.config import BuildConfig
from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.io import (
    atomic_write_json,
    atomic_write_text,
    read_jsonl,
    stable_hash,
    write_jsonl,
)
from wikihow_tiir.model import (
    SCHEMA_VERSION,
    TEXT_LICENSE,
    Document,
    Qrel,
    Query,
    Reject,
    document_from_row,
    document_to_row,
    qrel_to_row,
    query_from_row,
    query_to_row,
)
from wikihow_tiir.publish.manifest import file_entries
from wikihow_tiir.publish.parquet import read_rows, write_parquet, write_sharded, write_sharded_iter

# bump when a stage's output for the same inputs changes
STAGE_VERSIONS = {"corpus": "1", "queries": "1"}
DATASET_FILES = ("README.md", "manifest.json", "corpus", "queries", "qrels")


@dataclass(frozen=True)
class ShardSpec:
    stage: str
    index: int
    keys: tuple[str, ...]  # page URLs, VGSI article offsets, or document ids

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"


class BuildError(WikihowTiirError, RuntimeError):
    """An expected build failure (bad input or settings): the CLI prints it as one ``error:`` line."""

    reason = "build-error"


# --------------------------------------------------------------------------- helpers


def work_dir(output: Path, stage: str) -> Path:
    return Path(output) / "work" / stage


def _marker(output: Path, spec: ShardSpec) -> Path:
    return work_dir(output, spec.stage) / f"{spec.name}.done"


def _done(output: Path, spec: ShardSpec, fingerprint: str) -> dict[str, Any] | None:
    m = _marker(output, spec)
    if not m.is_file():
        return None
    try:
        data = json.loads(m.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if data.get("fingerprint") != fingerprint:
        return None
    return data.get("stats", {})


def _finish(output: Path, spec: ShardSpec, fingerprint: str, stats: dict[str, Any]) -> dict[str, Any]:
    atomic_write_json(_marker(output, spec), {"fingerprint": fingerprint, "stats": stats})
    return stats


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _chunks(items: list[str], size: int) -> list[tuple[str, ...]]:
    size = max(1, size)
    return [tuple(items[i:i + size]) for i in range(0, len(items), size)]


# --------------------------------------------------------------------------- sources


@functools.lru_cache(maxsize=4)
def _archive(path: str):
    from wikihow_tiir.sources.archive import Archive

    return Archive(path)


def open_archive(cfg: BuildConfig):
    return _archive(str(cfg.source.archive))


def acquire(cfg: BuildConfig, progress: bool = False) -> dict[str, Any]:
    """Live source: crawl into the archive first (the crawler resumes by itself)."""
    if cfg.source.kind != "live":
        return {}
    from wikihow_tiir.sources.live import crawl

    summary = crawl(cfg.source.crawl, Path(cfg.source.archive), progress=progress)
    _archive.cache_clear()
    return summary


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # s3://, gs://, https:// (Path() keeps "s3:/")


def plan_corpus(cfg: BuildConfig, rejects: list[Reject] | None = None) -> list[ShardSpec]:
    """Corpus shards: archive page URLs, or the byte offsets of the VGSI records (bad records go to
    ``rejects``, stage ``vgsi``)."""
    if cfg.source.kind == "vgsi":
        from wikihow_tiir.sources.vgsi import scan_vgsi

        found: list[Reject] = rejects if rejects is not None else []
        keys = [str(o) for o in scan_vgsi(cfg.source.vgsi, found.append)]
        if not keys:
            raise BuildError(f"the VGSI file {cfg.source.vgsi.text_file} holds no usable article "
                             f"({len(found)} bad record(s); the first: {found[0].detail if found else '-'})")
    else:
        archive = open_archive(cfg)
        keys = [rec.url for rec in archive.pages()]
        if not keys:
            raise BuildError(f"the archive {cfg.source.archive} holds no pages")
    return [ShardSpec("corpus", i, c) for i, c in enumerate(_chunks(keys, cfg.source.pages_per_shard))]


class _VgsiStore:
    def __init__(self, cfg: BuildConfig):
        from wikihow_tiir.sources.vgsi import VgsiImageStore

        self._store = VgsiImageStore(cfg.source.vgsi)

    def get_bytes(self, url: str) -> bytes | None:
        return self._store.get_bytes(url)


# --------------------------------------------------------------------------- corpus stage


def corpus_fingerprint(cfg: BuildConfig, spec: ShardSpec) -> str:
    if cfg.source.kind == "vgsi":
        inputs: list[Any] = [cfg.source.vgsi.model_dump(mode="json"), list(spec.keys)]
    else:
        archive = open_archive(cfg)
        inputs = [(u, archive.get(u).sha256) for u in spec.keys]  # type: ignore[union-attr]
    return stable_hash("corpus", STAGE_VERSIONS["corpus"], __version__, SCHEMA_VERSION,
                       cfg.section_json("segment", "images"), cfg.source.kind, inputs)


def run_corpus_shard(cfg: BuildConfig, output: Path, spec: ShardSpec) -> dict[str, Any]:
    """Parse, segment and attach images for one shard; writes work/corpus/shard-N.{parquet,rejects.jsonl}."""
    from wikihow_tiir.corpus import PageInput, build_corpus_shard

    output = Path(output)
    fp = corpus_fingerprint(cfg, spec)
    if (stats := _done(output, spec, fp)) is not None:
        return stats
    if cfg.source.kind == "vgsi":
        from wikihow_tiir.sources.vgsi import read_vgsi_articles

        articles = read_vgsi_articles(cfg.source.vgsi, [int(k) for k in spec.keys])
        shard = build_corpus_shard(None, _VgsiStore(cfg), cfg, articles=articles)
    else:
        archive = open_archive(cfg)
        pages = []
        for url in spec.keys:
            rec = archive.get(url)
            pages.append(PageInput(url=url, body=archive.read(rec), fetched_at=rec.fetched_at, sha256=rec.sha256,
                                   source=cfg.source.kind))
        shard = build_corpus_shard(pages, archive, cfg)
    wd = work_dir(output, "corpus")
    write_parquet(wd / f"{spec.name}.parquet", [document_to_row(d) for d in shard.documents], "corpus")
    write_jsonl(wd / f"{spec.name}.rejects.jsonl", [r.to_dict() for r in shard.rejects])
    write_jsonl(wd / f"{spec.name}.articles.jsonl", [_article_summary(a) for a in shard.articles])
    return _finish(output, spec, fp, shard.stats)


def _article_summary(a) -> dict[str, Any]:
    return {"id": a.id, "url": a.url, "lang": a.lang, "title": a.title, "layout": a.layout,
            "sections": len(a.sections), "steps": a.n_steps, "fetched_at": a.fetched_at, "sha256": a.sha256,
            "source": a.source, "parse_notes": a.parse_notes}


def iter_work_documents(output: Path, specs: list[ShardSpec]) -> Iterator[Document]:
    for spec in specs:
        for row in read_rows([work_dir(output, "corpus") / f"{spec.name}.parquet"]):
            yield document_from_row(row)


def finalize_corpus(cfg: BuildConfig, output: Path, specs: list[ShardSpec],
                    shard_stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate the shards into corpus/corpus-0000i-of-0000N.parquet; duplicate ids are an error."""
    output = Path(output)
    total = sum(s["documents"] for s in shard_stats)
    ids: set[str] = set()

    def rows():
        for spec in specs:
            for row in read_rows([work_dir(output, "corpus") / f"{spec.name}.parquet"]):
                if row["id"] in ids:
                    raise BuildError(f"duplicate document id {row['id']} (the same article twice in the source?)")
                ids.add(row["id"])
                yield row

    paths = write_sharded_iter(output / "corpus", rows(), total, "corpus", "corpus", cfg.output.rows_per_file)
    # the corpus's identity for the query shards' fingerprints: its shards' fingerprints (inputs and
    # settings), so no query shard has to hash the corpus files (tens of GB at the paper's scale)
    shard_fps = [json.loads(_marker(output, s).read_text(encoding="utf-8"))["fingerprint"] for s in specs]
    atomic_write_text(_corpus_id_file(output), stable_hash("corpus", shard_fps) + "\n")
    return {"documents": total, "files": [p.name for p in paths]}


def _corpus_id_file(output: Path) -> Path:
    return work_dir(output, "corpus") / "corpus-id"


# --------------------------------------------------------------------------- query stage


def _corpus_files(output: Path) -> list[Path]:
    return sorted((Path(output) / "corpus").glob("corpus-*.parquet"))


def _corpus_marker(files: list[Path]) -> str:
    return stable_hash([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files])


@functools.lru_cache(maxsize=1)
def _load_corpus(output: str, marker: str) -> tuple[Document, ...]:
    """All corpus documents of a build *without their image bytes* (texts, metadata, perceptual hashes:
    what the filter and the image pool need), read once per process. At the paper's scale the bytes
    are tens of GB; shards read the bytes of their own documents only (:func:`read_documents`)."""
    from wikihow_tiir.publish.parquet import read_rows_without

    return tuple(document_from_row(r) for r in read_rows_without(_corpus_files(Path(output))))


def load_corpus(output: Path) -> tuple[Document, ...]:
    """The corpus of a build without image bytes (see :func:`_load_corpus`)."""
    return _load_corpus(str(output), _corpus_marker(_corpus_files(output)))


def read_documents(output: Path, ids: list[str]) -> list[Document]:
    """These corpus documents, image bytes included, in the order of ``ids`` (a filtered read)."""
    from wikihow_tiir.publish.parquet import read_rows_where

    found = {r["id"]: document_from_row(r) for r in read_rows_where(_corpus_files(output), "id", ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise BuildError(f"{len(missing)} document(s) of the plan are not in the corpus: {missing[:3]}")
    return [found[i] for i in ids]


@functools.lru_cache(maxsize=1)
def _image_pool(output: str, marker: str):
    """The lazy image pool of the corpus (no bytes held); its step-text embeddings are cached in
    work/generate/ once per build, so every shard and worker re-uses them."""
    from wikihow_tiir.generate import ImagePool

    return ImagePool.from_corpus_files(_corpus_files(Path(output)), vector_cache=work_dir(Path(output), "generate"))


def plan_queries(cfg: BuildConfig, output: Path) -> list[ShardSpec]:
    files = _corpus_files(output)
    ids = sorted(r["id"] for r in read_rows(files, columns=["id"]))
    if cfg.generate.render.kind == "offline" and ids:
        _image_pool(str(output), _corpus_marker(files)).vectors()  # computed here once, not per worker
    return [ShardSpec("queries", i, c) for i, c in enumerate(_chunks(ids, cfg.generate.documents_per_shard))]


def queries_fingerprint(cfg: BuildConfig, output: Path, spec: ShardSpec) -> str:
    from wikihow_tiir.generate import prompt_manifest

    try:  # the pool of images depends on the whole corpus
        corpus_id = _corpus_id_file(Path(output)).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise BuildError(f"{output}: the corpus stage has not finished (no work/corpus/corpus-id)") from None
    return stable_hash("queries", STAGE_VERSIONS["queries"], __version__, cfg.seed,
                       cfg.section_json("generate"), prompt_manifest(), corpus_id, list(spec.keys))


def run_query_shard(cfg: BuildConfig, output: Path, spec: ShardSpec) -> dict[str, Any]:
    from wikihow_tiir.generate import generate_queries

    output = Path(output)
    fp = queries_fingerprint(cfg, output, spec)
    if (stats := _done(output, spec, fp)) is not None:
        return stats
    docs = read_documents(output, list(spec.keys))
    result = generate_queries(docs, _image_pool(str(output), _corpus_marker(_corpus_files(output))), cfg.generate,
                              seed=cfg.seed,
                              work_dir=work_dir(output, "generate"), shard_id=spec.name)
    wd = work_dir(output, "queries")
    write_parquet(wd / f"{spec.name}.parquet", [query_to_row(q) for q in result.queries], "queries")
    write_jsonl(wd / f"{spec.name}.rejects.jsonl", [r.to_dict() for r in result.rejects])
    stats = {"documents": len(docs), "queries": len(result.queries),
             "rejects": dict(Counter(f"{r.stage}:{r.reason}" for r in result.rejects)),
             "generation": result.stats}
    return _finish(output, spec, fp, stats)


def _query_rows_with_images(queries: list[Query], shard_files: list[Path], chunk: int) -> Iterator[dict[str, Any]]:
    """Rows of these (filtered, scored) queries with their image bytes put back from the query shards."""
    from wikihow_tiir.publish.parquet import read_rows_where

    for i in range(0, len(queries), chunk):
        part = queries[i:i + chunk]
        images = {r["id"]: r["images"] for r in read_rows_where(shard_files, "id", [q.id for q in part],
                                                                 columns=["id", "images"])}
        for q in part:
            row = query_to_row(q)
            if q.id not in images:
                raise BuildError(f"query {q.id} is missing from the query shards")
            row["images"] = images[q.id]
            yield row


def finalize_queries(cfg: BuildConfig, output: Path, specs: list[ShardSpec]) -> dict[str, Any]:
    """Filter the whole query set, split by article, write queries/ and qrels/ per split."""
    from wikihow_tiir.filter import filter_queries
    from wikihow_tiir.publish.parquet import read_rows_without
    from wikihow_tiir.split import split_queries

    output = Path(output)
    # queries and corpus without image bytes (the checks read texts, metadata and perceptual hashes);
    # the kept queries' bytes are streamed into the split files below, a file's worth at a time
    shard_files = [work_dir(output, "queries") / f"{spec.name}.parquet" for spec in specs]
    queries: list[Query] = [query_from_row(r) for r in read_rows_without(shard_files)]
    corpus = list(load_corpus(output))
    if cfg.filter.enabled:
        result = filter_queries(queries, corpus, cfg.filter, cache_dir=work_dir(output, "filter"))
        kept, rejects, flagged, report = result.kept, result.rejects, result.flagged, result.report
    else:
        kept, rejects, flagged, report = queries, [], {}, {"enabled": False}
    exclude = set(flagged.get("likely-false-negative", []))
    splits = split_queries(kept, cfg.split, exclude_from_test=exclude)
    written: dict[str, Any] = {}
    for split in ("train", "test"):
        qs = sorted(splits.get(split, []), key=lambda q: q.id)
        qdir, rdir = output / "queries", output / "qrels"
        if not qs:  # an empty split is reported, not written as a broken file
            for d in (qdir, rdir):
                for old in d.glob(f"{split}-*.parquet"):
                    old.unlink()
            written[split] = {"queries": 0, "note": "empty split: no files written"}
            continue
        write_sharded_iter(qdir, _query_rows_with_images(qs, shard_files, cfg.output.rows_per_file), len(qs),
                           "queries", split, cfg.output.rows_per_file)
        qrels = [Qrel(q.id, q.positive_id, 1) for q in qs]
        write_sharded(rdir, [qrel_to_row(r) for r in qrels], "qrels", split, max(cfg.output.rows_per_file, 10000))
        written[split] = {"queries": len(qs)}
    write_jsonl(work_dir(output, "filter") / "kept.jsonl",
                [{"id": q.id, "split": q.split, "scores": q.scores} for q in sorted(kept, key=lambda q: q.id)])
    return {"generated": len(queries), "kept": len(kept), "splits": written, "rejects": rejects,
            "flagged": flagged, "filter_report": report, "split_queries": splits}


# --------------------------------------------------------------------------- manifest


def collect_rejects(output: Path, extra: list[Reject] | None = None) -> dict[str, dict[str, int]]:
    """Gather shard rejects into rejects/<stage>.jsonl; return counts per stage and reason."""
    output = Path(output)
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for stage in ("corpus", "queries"):
        for f in sorted(work_dir(output, stage).glob("shard-*.rejects.jsonl")):
            for r in read_jsonl(f):
                by_stage.setdefault(r["stage"], []).append(r)
    for r in extra or []:
        by_stage.setdefault(r.stage, []).append(r.to_dict())
    rdir = output / "rejects"
    rdir.mkdir(parents=True, exist_ok=True)
    for old in stale_reject_files(output, keep=set(by_stage)):  # never a file the build did not write
        old.unlink()
    counts: dict[str, dict[str, int]] = {}
    for stage, recs in sorted(by_stage.items()):
        recs.sort(key=lambda r: (r["item_id"], r["reason"]))
        write_jsonl(rdir / f"{stage}.jsonl", recs)
        counts[stage] = dict(sorted(Counter(r["reason"] for r in recs).items()))
    return counts


def corpus_summary(output: Path) -> dict[str, Any]:
    """Statistics, licence counts and stand-in counts of the written corpus (reads meta columns only)."""
    from wikihow_tiir.stats import interleaved_row

    files = sorted((Path(output) / "corpus").glob("corpus-*.parquet"))
    rows = list(read_rows(files, ["texts", "image_meta", "lang", "article_id"]))
    licences: Counter[str] = Counter()
    stand_in = total = 0
    for r in rows:
        for m in r["image_meta"]:
            if m is None:
                continue
            total += 1
            stand_in += bool(m["stand_in"])
            licences[_licence_label(m["license"])] += 1
    return {
        "statistics": interleaved_row((r["texts"], r["image_meta"]) for r in rows),
        "licenses": dict(sorted(licences.items())),
        "stand_in_images": {"count": stand_in, "total": total},
        "languages": dict(sorted(Counter(r["lang"] for r in rows).items())),
        "articles": len({r["article_id"] for r in rows}),
    }


def _licence_label(text: str) -> str:
    text = " ".join((text or "").split())
    if not text:
        return "unspecified"
    return text if len(text) <= 160 else text[:157] + "..."


def write_manifest(cfg: BuildConfig, output: Path, info: dict[str, Any]) -> dict[str, Any]:
    """manifest.json: provenance, counts, statistics, licences, rejects and sha256 of every dataset file.

    Holds no wall-clock time, so two builds of the same inputs write the same bytes.
    """
    output = Path(output)
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": "wikiHow-TIIR",
        "created_by": {"package": "wikihow-tiir", "version": __version__, "git_commit": git_commit()},
        # the task runner is how the build ran, not what it built: left out so both give the same bytes
        "config": cfg.model_dump(mode="json", exclude={"runner"}),
        **info,
        "files": file_entries(output),  # sha256, bytes, rows of every dataset file
    }
    manifest["licenses"] = {"text": TEXT_LICENSE, "images": info.get("licenses", {})}
    atomic_write_json(output / "manifest.json", manifest)
    return manifest


def split_stats(splits: dict[str, list[Query]]) -> dict[str, Any]:
    from wikihow_tiir.stats import interleaved_row

    return {s: interleaved_row(((q.content.texts, q.content.image_meta) for q in qs), positives=1)
            for s, qs in sorted(splits.items()) if qs}


def source_summary(cfg: BuildConfig, output: Path, specs: list[ShardSpec]) -> dict[str, Any]:
    arts = []
    for spec in specs:
        f = work_dir(output, "corpus") / f"{spec.name}.articles.jsonl"
        if f.is_file():
            arts.extend(read_jsonl(f))
    dates = sorted({a["fetched_at"][:10] for a in arts if a.get("fetched_at")})
    return {
        "kind": cfg.source.kind,
        "archive": str(cfg.source.archive) if cfg.source.kind != "vgsi" else None,
        "pages": sum(len(s.keys) for s in specs) if cfg.source.kind != "vgsi" else None,
        "articles": len(arts),
        "snapshot_dates": dates,
        "layouts": dict(sorted(Counter(a["layout"] for a in arts).items())),
        "parse_notes": sum(len(a.get("parse_notes") or []) for a in arts),
    }


# --------------------------------------------------------------------------- the whole build, inline


MapFn = Callable[[Callable[..., dict[str, Any]], list[ShardSpec]], list[dict[str, Any]]]


def run_build(cfg: BuildConfig, output: Path, map_shards: MapFn | None = None,
              log: Callable[[str], None] = lambda m: None, force: bool = False) -> dict[str, Any]:
    """The whole build. ``map_shards(fn, specs)`` runs ``fn(spec)`` for every shard (the flow passes a
    Prefect-backed one; the default runs them one after another in this process). ``force``: build in
    a non-empty folder that is not a build of ours (see :mod:`wikihow_tiir.build_folder`)."""
    for what, value in (("output", output), ("source.archive", cfg.source.archive)):
        if value is not None and _URL_SCHEME.match(str(value)):
            raise BuildError(f"{what} {str(value)!r} looks like a URL: fsspec/remote locations are not supported "
                             "yet; use a local or mounted filesystem path")
    output = Path(output)
    check_output_folder(output, force)
    output.mkdir(parents=True, exist_ok=True)
    claim_output_folder(output)
    if map_shards is None:
        def map_shards(fn, specs):
            return [fn(s) for s in specs]

    crawl_summary = acquire(cfg)
    plan_rejects: list[Reject] = []
    specs = plan_corpus(cfg, plan_rejects)
    log(f"corpus: {len(specs)} shard(s)")
    stats = map_shards(functools.partial(run_corpus_shard, cfg, output), specs)
    corpus_info = finalize_corpus(cfg, output, specs, stats)
    log(f"corpus: {corpus_info['documents']} documents")
    info: dict[str, Any] = {"sources": source_summary(cfg, output, specs)}
    if crawl_summary:
        info["crawl"] = crawl_summary
    summary = corpus_summary(output)
    info["statistics"] = {"corpus": summary["statistics"], "queries": {}}
    info["licenses"] = summary["licenses"]
    info["stand_in_images"] = summary["stand_in_images"]
    info["languages"] = summary["languages"]
    extra_rejects: list[Reject] = list(plan_rejects)
    if cfg.generate.enabled and corpus_info["documents"]:
        from wikihow_tiir.generate import prompt_manifest

        qspecs = plan_queries(cfg, output)
        log(f"queries: {len(qspecs)} shard(s)")
        qstats = map_shards(functools.partial(run_query_shard, cfg, output), qspecs)
        fin = finalize_queries(cfg, output, qspecs)
        extra_rejects += fin["rejects"]
        info["statistics"]["queries"] = split_stats(fin["split_queries"])
        info["generation"] = {"prompts": prompt_manifest(), "backends": cfg.section_json("generate")["generate"],
                              "shards": _merge_generation_stats(qstats)}
        info["filter"] = {"thresholds": cfg.section_json("filter")["filter"], "report": fin["filter_report"],
                          "generated": fin["generated"], "kept": fin["kept"],
                          "flagged": {k: sorted(v) for k, v in fin["flagged"].items()},
                          "splits": fin["splits"]}
        log(f"queries: {fin['generated']} generated, {fin['kept']} kept")
    info["rejects"] = collect_rejects(output, extra_rejects)
    info["changelog"] = [{"version": __version__, "note": "Built with wikihow-tiir " + __version__}]
    manifest = write_manifest(cfg, output, info)
    card = _write_card(output, manifest)
    from wikihow_tiir.publish.validate import validate_dataset

    # a quick check (the full load_dataset read-back is `wikihow-tiir validate`); problems are reported,
    # not raised: a corpus-only or all-rejected build is still worth looking at, and publish refuses it
    problems = validate_dataset(output, check_load=False)
    for p in problems:
        log(f"validation: {p}")
    from wikihow_tiir.report import write_report

    report = write_report(output)
    log(f"report: {report}")
    return {"output": str(output), "documents": corpus_info["documents"], "report": str(report),
            "validation_problems": problems,
            "queries": {s: v.get("queries", 0) for s, v in manifest.get("filter", {}).get("splits", {}).items()},
            "rejects": info["rejects"], "card": card}


def _merge_generation_stats(qstats: list[dict[str, Any]]) -> dict[str, Any]:
    """The generation stats of all query shards added up; run-time figures (wall time, cache hits) stay
    out, so that the manifest of a resumed or re-run build is byte-identical."""
    from wikihow_tiir.generate import merge_stats

    merged = merge_stats([s["generation"] for s in qstats if s.get("generation")])
    merged.pop("run", None)
    return merged


def _write_card(output: Path, manifest: dict[str, Any]) -> str | None:
    try:
        from wikihow_tiir.publish.card import render_card
    except ImportError:
        return None
    from wikihow_tiir.io import atomic_write_text

    atomic_write_text(Path(output) / "README.md", render_card(manifest))
    return str(Path(output) / "README.md")


def n_files(total: int, per_file: int) -> int:
    return math.ceil(total / per_file) if total else 0
