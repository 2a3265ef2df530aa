"""The build, stage by stage, as shard-level functions with no orchestration dependency.

`flows/build_dataset.py` runs these functions as Prefect tasks (one task per shard); tests call them
directly, or :func:`run_build` with its default inline map. Every shard function is idempotent: it
writes its outputs atomically, then a ``.done`` marker holding the fingerprint of its inputs and
settings and the size and sha256 of each file it wrote, and returns at once when the marker matches
and so do the files.
So a killed build, re-run, redoes only the missing (or damaged) shards and ends with the same bytes
as an uninterrupted one.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wikihow_tiir import __version__, layout, remote, resume
from wikihow_tiir.build_folder import check_output_folder, claim_output_folder, stale_reject_files
from wikihow_tiir.config import BuildConfig
from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.io import (
    atomic_write_json,
    atomic_write_text,
    dumps,
    read_jsonl,
    sha256_file,
    stable_hash,
    write_jsonl,
)
from wikihow_tiir.layout import work_dir
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
from wikihow_tiir.storage import (
    file_entries,
    parquet_bytes,
    read_rows,
    read_rows_where,
    read_rows_without,
    remove_shards,
    table_bytes,
    write_sharded,
    write_sharded_iter,
    write_tables,
)

# bump when a stage's output for the same inputs changes
STAGE_VERSIONS = {"corpus": "2", "queries": "2"}  # queries 2: the offline writer v2 reads the writer context
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardSpec:
    stage: str
    index: int
    keys: tuple[str, ...]  # page URLs, VGSI article offsets, or document ids

    @property
    def name(self) -> str:
        return layout.work_shard_name(self.index)


class BuildError(WikihowTiirError, RuntimeError):
    """An expected build failure (bad input or settings): the CLI prints it as one ``error:`` line."""

    reason = "build-error"


# --------------------------------------------------------------------------- helpers


def _marker(output: Path, spec: ShardSpec) -> Path:
    return layout.shard_file(output, spec.stage, spec.name, "done")


def _done(output: Path, spec: ShardSpec, fingerprint: str) -> dict[str, Any] | None:
    """The stats of a finished shard, or None when it must be (re)built (``resume.done``)."""
    return resume.done(layout.work_dir(output, spec.stage), spec.name, fingerprint)


def _jsonl_bytes(records: Iterable[Any]) -> bytes:
    return "".join(dumps(r) + "\n" for r in records).encode("utf-8")


def _finish(output: Path, spec: ShardSpec, fingerprint: str, stats: dict[str, Any],
            files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Write the marker last (``resume.finish``): it vouches for the fingerprint and each file."""
    return resume.finish(layout.work_dir(output, spec.stage), spec.name, fingerprint, stats, files)


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
def _archive(path: str, stamp: tuple[Any, ...] | None):
    from wikihow_tiir.sources.archive import open_archive_at

    return open_archive_at(path)


def open_archive(cfg: BuildConfig):
    """The archive of this build (a folder or an fsspec URL), loaded once per process while its index is
    unchanged."""
    from wikihow_tiir.sources.archive import INDEX

    if remote.is_remote(cfg.source.archive):
        try:
            stamp: tuple[Any, ...] | None = (remote.version_tag(remote.RemoteFolder(str(cfg.source.archive)).info(INDEX)),)
        except FileNotFoundError:
            stamp = None
        return _archive(str(cfg.source.archive), stamp)
    try:
        st = (Path(cfg.source.archive) / INDEX).stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    return _archive(str(cfg.source.archive), stamp)


def acquire(cfg: BuildConfig, progress: bool = False) -> dict[str, Any]:
    """Live source: crawl into the archive first (the crawler resumes by itself). An archive on object
    storage is crawled in a local copy, which is then uploaded (new blobs, the index)."""
    if cfg.source.kind != "live":
        return {}
    from wikihow_tiir.sources.live import crawl

    if remote.is_remote(cfg.source.archive):
        mirror = remote.archive_mirror(str(cfg.source.archive), cfg.runner.staging)
        mirror.pull()
        summary = crawl(cfg.source.crawl, mirror.local, progress=progress)
        mirror.push(delete=False)
    else:
        summary = crawl(cfg.source.crawl, Path(cfg.source.archive), progress=progress)
    _archive.cache_clear()
    return summary


def plan_corpus(cfg: BuildConfig, rejects: list[Reject] | None = None) -> list[ShardSpec]:
    """Corpus shards: archive page URLs, or the byte offsets of the VGSI records. What cannot be read
    goes to ``rejects``: bad VGSI records (stage ``vgsi``), archive index lines that are not records
    (stage ``archive``, reason ``archive-index-line``). No page at all is a BuildError."""
    found: list[Reject] = rejects if rejects is not None else []
    if cfg.source.kind == "vgsi":
        from wikihow_tiir.sources.vgsi import scan_vgsi

        keys = [str(o) for o in scan_vgsi(cfg.source.vgsi, found.append)]
        if not keys:
            raise BuildError(f"the VGSI file {cfg.source.vgsi.text_file} holds no usable article "
                             f"({len(found)} bad record(s); the first: {found[0].detail if found else '-'})")
    else:
        from wikihow_tiir.sources.archive import INDEX, ArchiveError

        try:
            archive = open_archive(cfg)
            keys = [rec.url for rec in archive.pages()]
        except ArchiveError as exc:
            raise BuildError(str(exc)) from None
        bad = archive.bad_lines()
        found.extend(Reject("archive", f"{INDEX}:{b.line}", "archive-index-line",
                            f"line {b.line} of {INDEX} is {b.problem}; skipped: {b.text}", {"line": b.line})
                     for b in bad)
        if not keys:
            why = f" ({len(bad)} line(s) of its {INDEX} are not records; line {bad[0].line}: {bad[0].problem})"
            raise BuildError(f"the archive {cfg.source.archive} holds no pages{why if bad else ''}")
    return [ShardSpec("corpus", i, c) for i, c in enumerate(_chunks(keys, cfg.source.pages_per_shard))]


class _VgsiStore:
    def __init__(self, cfg: BuildConfig, image_ids: list[tuple[str, str]]):
        from wikihow_tiir.sources.vgsi import VgsiImageStore

        self._store = VgsiImageStore(cfg.source.vgsi, image_ids=image_ids)

    def get_bytes(self, url: str) -> bytes | None:
        return self._store.get_bytes(url)


# --------------------------------------------------------------------------- corpus stage

# what a shard writes besides its marker (corpus rejects carry the page they came from: see finalize_corpus)
_CORPUS_FILES = layout.SHARD_KINDS["corpus"]
_QUERY_FILES = layout.SHARD_KINDS["queries"]


def corpus_fingerprint(cfg: BuildConfig, spec: ShardSpec) -> str:
    if cfg.source.kind == "vgsi":
        inputs: list[Any] = [cfg.source.vgsi.model_dump(mode="json"), list(spec.keys)]
    else:
        archive = open_archive(cfg)
        inputs = [(u, rec.sha256 if (rec := archive.get(u)) else None) for u in spec.keys]
    return stable_hash("corpus", STAGE_VERSIONS["corpus"], __version__, SCHEMA_VERSION,
                       cfg.section_json("segment", "images"), cfg.source.kind, inputs)


def run_corpus_shard(cfg: BuildConfig, output: Path, spec: ShardSpec) -> dict[str, Any]:
    """Parse, segment and attach images for one shard; writes
    work/corpus/shard-N.{parquet,page-rejects.jsonl,articles.jsonl} and then the marker."""
    from wikihow_tiir.corpus import PageInput, build_corpus_shard

    output = Path(output)
    fp = corpus_fingerprint(cfg, spec)
    if (stats := _done(output, spec, fp)) is not None:
        return stats
    if cfg.source.kind == "vgsi":
        from wikihow_tiir.sources.vgsi import read_vgsi_articles

        # the store of just this shard's pictures: mapping every URL of the release per shard made the
        # corpus stage quadratic in the number of articles
        image_ids: list[tuple[str, str]] = []
        articles = read_vgsi_articles(cfg.source.vgsi, [int(k) for k in spec.keys], image_ids)
        shard = build_corpus_shard(None, _VgsiStore(cfg, image_ids), cfg, articles=articles)
    else:
        from wikihow_tiir.sources.archive import ArchiveError

        archive = open_archive(cfg)
        pages, unread = [], []
        for url in spec.keys:
            rec = archive.get(url)
            try:
                if rec is None:
                    raise ArchiveError(f"{url} is no longer in the archive index", "archive-page-missing")
                body = archive.read(rec)
            except ArchiveError as exc:  # this page is lost, not the build
                unread.append(Reject("archive", url, exc.reason, str(exc)))
                continue
            pages.append(PageInput(url=url, body=body, fetched_at=rec.fetched_at, sha256=rec.sha256,
                                   source=cfg.source.kind))
        shard = build_corpus_shard(pages, archive, cfg, unread=unread)
    _write_image_blobs(output, shard.documents)
    page_rejects = ({"page": p, "reject": r.to_dict()} for p, r in zip(shard.reject_pages, shard.rejects, strict=True))
    articles = (_article_summary(a, p) for p, a in zip(shard.article_pages, shard.articles, strict=True))
    files = _write_shard_files(output, spec, {
        "parquet": parquet_bytes([document_to_row(d) for d in shard.documents], "corpus"),
        "page-rejects.jsonl": _jsonl_bytes(page_rejects),
        "articles.jsonl": _jsonl_bytes(articles),
        "context.parquet": _contexts_bytes(shard.contexts, shard.documents),
    })
    return _finish(output, spec, fp, shard.stats, files)


def _write_image_blobs(output: Path, documents: list[Document]) -> None:
    """The documents' pictures into the blob folder (:func:`layout.corpus_image_blob`), where the offline
    renderer reads the few it picks for a query (from the corpus files a pick costs a whole row group of
    pictures: every query shard read most of the corpus). A file that exists is the same picture: its name
    is its sha256, which readers check. No fsync: a torn file fails that check and the corpus is read."""
    import os
    import tempfile

    for doc in documents:
        for data, meta in zip(doc.content.images, doc.content.image_meta, strict=True):
            if meta is None or not data or not meta.sha256:
                continue
            path = layout.corpus_image_blob(output, meta.sha256)
            if path.is_file():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)


def _write_shard_files(output: Path, spec: ShardSpec, contents: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """Write a shard's files (``work/<stage>/<shard>.<kind>`` for each kind), in this order; returns what
    its marker records about each, by file name."""
    files = {}
    for kind, data in contents.items():
        path = layout.shard_file(output, spec.stage, spec.name, kind)
        files[path.name] = resume.write_file(path, data)
    return files


_CONTEXT_ROW_GROUP = 1000  # rows of the writer context files (no images: small rows)


def _contexts_bytes(contexts: dict[str, dict[str, Any]], documents: list[Document]) -> bytes:
    """The documents' writer context (``segment.section_context``) as Parquet (id, article_id, JSON)."""
    import pyarrow as pa

    docs = sorted(documents, key=lambda d: d.id)
    table = pa.table({"id": pa.array([d.id for d in docs], pa.string()),
                      "article_id": pa.array([d.article_id for d in docs], pa.string()),
                      "context": pa.array([json.dumps(contexts.get(d.id, {}), ensure_ascii=False, sort_keys=True)
                                           for d in docs], pa.string())})
    return table_bytes(table, _CONTEXT_ROW_GROUP)


def _merge_contexts(output: Path, specs: list[ShardSpec], kept: Callable[[ShardSpec, dict[str, Any]], bool]) -> None:
    """work/corpus/context.parquet: the kept documents' writer contexts, one shard's rows at a time."""
    import pyarrow as pa

    from wikihow_tiir.storage import read_table

    def parts():
        for spec in specs:
            table = read_table([layout.shard_file(output, "corpus", spec.name, "context.parquet")])
            rows = table.select(["id", "article_id"]).to_pylist()
            yield table.filter(pa.array([kept(spec, r) for r in rows], pa.bool_()))

    write_tables(layout.corpus_context(output), parts(), _CONTEXT_ROW_GROUP)


def read_contexts(output: Path, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The writer context of these documents (``{}`` for a build without one: the offline writer then
    uses its plain phrases)."""
    path = layout.corpus_context(output)
    if not path.is_file():
        return {}
    return {r["id"]: json.loads(r["context"]) for r in read_rows_where([path], "id", ids, columns=["id", "context"])}


def _article_summary(a, page: str) -> dict[str, Any]:
    return {"id": a.id, "url": a.url, "page": page, "revision": a.revision, "lang": a.lang, "title": a.title,
            "layout": a.layout, "sections": len(a.sections), "steps": a.n_steps, "fetched_at": a.fetched_at,
            "sha256": a.sha256, "source": a.source, "parse_notes": a.parse_notes}


def _kept_copies(output: Path, specs: list[ShardSpec]) -> tuple[dict[str, tuple[int, dict[str, Any]]],
                                                                 list[tuple[dict[str, Any], dict[str, Any]]]]:
    """One article, one copy: of the pages that parsed to the same article id, in any shard, the first
    by ``corpus.copy_rank`` is kept. Returns {article id: (shard index, kept page's summary)} and the
    (dropped, kept) summary pairs. A shard makes documents of its own best copy only, and the best
    copy of all is the best of its shard, so the rows of the kept copy are in that shard."""
    from wikihow_tiir.corpus import copy_rank

    best: dict[str, tuple[tuple[Any, ...], int, dict[str, Any]]] = {}
    copies: list[tuple[tuple[Any, ...], int, dict[str, Any]]] = []
    for spec in specs:
        f = layout.shard_file(output, "corpus", spec.name, "articles.jsonl")
        for pos, a in enumerate(read_jsonl(f) if f.is_file() else ()):
            key = (copy_rank(a["page"], a["url"], a["revision"]), spec.index, pos)
            copies.append((key, spec.index, a))
            if a["id"] not in best or key < best[a["id"]][0]:
                best[a["id"]] = (key, spec.index, a)
    keep = {aid: (shard, a) for aid, (_, shard, a) in best.items()}
    dropped = [(a, best[a["id"]][2]) for key, _, a in copies if key != best[a["id"]][0]]
    return keep, dropped


def _duplicate_reject(dropped: dict[str, Any], kept: dict[str, Any]) -> Reject:
    from wikihow_tiir.corpus import copy_rank

    d_rank = copy_rank(dropped["page"], dropped["url"], dropped["revision"])
    k_rank = copy_rank(kept["page"], kept["url"], kept["revision"])
    if k_rank[0] != d_rank[0]:
        why = f"it is a newer revision ({kept['revision'] or 'none'}, this page {dropped['revision'] or 'none'})"
    elif not k_rank[1]:
        why = f"same revision ({kept['revision'] or 'none'}), and it is at the article's canonical URL"
    else:
        why = f"same revision ({kept['revision'] or 'none'}), neither page is at the canonical URL; its URL sorts first"
    return Reject("corpus", dropped["page"], "duplicate-article",
                  f"the same article ({dropped['id']}) as {kept['page']}, which is kept: {why}",
                  {"kept": kept["page"], "article_id": dropped["id"]})


def finalize_corpus(cfg: BuildConfig, output: Path, specs: list[ShardSpec]) -> dict[str, Any]:
    """Merge the shards into corpus/corpus-0000i-of-0000N.parquet, one copy per article.

    Returns ``documents``, ``files`` and ``rejects``: the corpus shards' rejects, less those of pages
    dropped as duplicates, plus one ``duplicate-article`` reject per dropped page (stage ``corpus``).
    Rows are counted and checked before corpus/ is touched, so a failure leaves it as it was.
    """
    output = Path(output)
    _prune_stale_shards(output, "corpus", specs, _CORPUS_FILES)
    keep, dropped = _kept_copies(output, specs)
    rejects = [_duplicate_reject(d, k) for d, k in dropped]
    dropped_pages = {d["page"] for d, _ in dropped}
    for spec in specs:
        for rec in read_jsonl(layout.shard_file(output, "corpus", spec.name, "page-rejects.jsonl")):
            if rec["page"] not in dropped_pages:
                rejects.append(Reject(**rec["reject"]))
    rejects.sort(key=lambda r: (r.stage, r.item_id, r.reason, dumps(r.to_dict())))

    def kept(spec: ShardSpec, row: dict[str, Any]) -> bool:
        return keep.get(row["article_id"], (spec.index,))[0] == spec.index

    def shard_rows(spec: ShardSpec) -> Path:
        return layout.shard_file(output, "corpus", spec.name, "parquet")

    ids: set[str] = set()
    for spec in specs:
        for row in read_rows([shard_rows(spec)], columns=["id", "article_id"]):
            if kept(spec, row):
                if row["id"] in ids:  # one copy per article leaves none: a bug, not bad input
                    raise BuildError(f"duplicate document id {row['id']} in the corpus shards")
                ids.add(row["id"])
    total = len(ids)

    def rows():
        for spec in specs:
            yield from (row for row in read_rows([shard_rows(spec)]) if kept(spec, row))

    paths = write_sharded_iter(layout.config_dir(output, "corpus"), rows(), total, "corpus", layout.CORPUS_SPLIT,
                               cfg.output.rows_per_file)
    _merge_contexts(output, specs, kept)
    # the corpus's identity for the query shards' fingerprints: its shards' fingerprints (inputs and
    # settings), so no query shard has to hash the corpus files (tens of GB at the paper's scale)
    shard_fps = [json.loads(_marker(output, s).read_text(encoding="utf-8"))["fingerprint"] for s in specs]
    atomic_write_text(layout.corpus_id_file(output), stable_hash("corpus", shard_fps) + "\n")
    return {"documents": total, "files": [p.name for p in paths], "rejects": rejects}


def _prune_stale_shards(output: Path, stage: str, specs: list[ShardSpec], kinds: tuple[str, ...]) -> None:
    """Delete the shard files of ``work/<stage>/`` that this plan does not use: shards of an earlier plan
    with more shards, and file kinds an earlier version wrote (rejects are gathered from these folders)."""
    names = {s.name for s in specs}
    for f in layout.work_shard_files(output, stage):
        name, kind = layout.shard_of(f)
        if f.is_file() and (name not in names or kind not in (*kinds, "done")):
            f.unlink()


# --------------------------------------------------------------------------- query stage
#
# The query stage reads a corpus (``corpus_root``, default the build folder itself) and writes its shards
# into ``output``'s work/queries/ and work/generate/. `wikihow-tiir generate` runs the same functions with
# a folder of its own as ``output`` and any dataset folder as ``corpus_root``, so it resumes as a build does.


def _corpus_marker(files: list[Path]) -> str:
    return stable_hash([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files])


@functools.lru_cache(maxsize=1)
def _load_corpus(output: str, marker: str) -> tuple[Document, ...]:
    """All corpus documents of a build *without their image bytes* (texts, metadata, perceptual hashes:
    what the filter and the image pool need), read once per process. At the paper's scale the bytes
    are tens of GB; shards read the bytes of their own documents only (:func:`read_documents`)."""
    return tuple(document_from_row(r) for r in read_rows_without(layout.corpus_files(output)))


def load_corpus(output: Path) -> tuple[Document, ...]:
    """The corpus of a build without image bytes (see :func:`_load_corpus`)."""
    return _load_corpus(str(output), _corpus_marker(layout.corpus_files(output)))


def read_documents(output: Path, ids: list[str]) -> list[Document]:
    """These corpus documents, image bytes included, in the order of ``ids`` (a filtered read)."""
    found = {r["id"]: document_from_row(r) for r in read_rows_where(layout.corpus_files(output), "id", ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise BuildError(f"{len(missing)} document(s) of the plan are not in the corpus: {missing[:3]}")
    return [found[i] for i in ids]


@functools.lru_cache(maxsize=1)
def _image_pool(corpus_root: str, marker: str, vector_cache: str):
    """The lazy image pool of the corpus (no bytes held); its step-text embeddings are cached in
    work/generate/ once per build, so every shard and worker re-uses them."""
    from wikihow_tiir.generate import ImagePool

    return ImagePool.from_corpus_files(layout.corpus_files(corpus_root), vector_cache=Path(vector_cache),
                                       blobs=layout.corpus_image_blobs(corpus_root))


def _pool(output: Path, corpus_root: Path):
    return _image_pool(str(corpus_root), _corpus_marker(layout.corpus_files(corpus_root)),
                       str(work_dir(output, "generate")))


def plan_queries(cfg: BuildConfig, output: Path, corpus_root: Path | None = None,
                 limit: int | None = None) -> list[ShardSpec]:
    """Query shards of ``generate.documents_per_shard`` corpus documents (the first ``limit`` by id), in
    corpus order: a shard's documents are then neighbours in the corpus files and reading them touches
    one or two row groups (sorted ids of a release not sorted by id touch every one)."""
    output = Path(output)
    source = Path(corpus_root) if corpus_root is not None else output
    files = layout.corpus_files(source)
    ids = [r["id"] for r in read_rows(files, columns=["id"])]
    if limit is not None:
        chosen = set(sorted(ids)[:limit])
        ids = [i for i in ids if i in chosen]
    if cfg.generate.render.kind == "offline" and ids:
        _pool(output, source).vectors()  # computed here once, not per worker
    specs = [ShardSpec("queries", i, c) for i, c in enumerate(_chunks(ids, cfg.generate.documents_per_shard))]
    _prune_stale_shards(output, "queries", specs, _QUERY_FILES)
    return specs


@functools.lru_cache(maxsize=4)
def _hashed_corpus_id(corpus_root: str, marker: str) -> str:
    """A hash of the corpus files' names and sha256: those the folder's manifest lists for them (a
    published dataset), else read from the files (hashing tens of GB once per process)."""
    files = layout.corpus_files(corpus_root)
    try:
        listed = json.loads(layout.manifest_path(corpus_root).read_text(encoding="utf-8")).get("files") or {}
    except (OSError, ValueError, AttributeError):
        listed = {}

    def sha256(f: Path) -> str:
        entry = listed.get(f.relative_to(corpus_root).as_posix())
        if isinstance(entry, dict) and entry.get("bytes") == f.stat().st_size and entry.get("sha256"):
            return str(entry["sha256"])
        return sha256_file(f)

    return stable_hash("corpus-files", [(f.name, sha256(f)) for f in files])


def _corpus_id(output: Path, corpus_root: Path | None) -> str:
    """The identity of the corpus the queries are for: the build's (written by :func:`finalize_corpus`),
    or, for a dataset folder without one (`wikihow-tiir generate` on a downloaded or imported dataset),
    a hash of its corpus files."""
    source = Path(corpus_root) if corpus_root is not None else Path(output)
    try:
        return layout.corpus_id_file(source).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if corpus_root is None:
            raise BuildError(f"{output}: the corpus stage has not finished (no work/corpus/corpus-id)") from None
    return _hashed_corpus_id(str(source), _corpus_marker(layout.corpus_files(source)))


def queries_fingerprint(cfg: BuildConfig, output: Path, spec: ShardSpec, corpus_root: Path | None = None) -> str:
    from wikihow_tiir.generate import prompt_manifest

    corpus_id = _corpus_id(Path(output), corpus_root)  # the pool of images depends on the whole corpus
    return stable_hash("queries", STAGE_VERSIONS["queries"], __version__, cfg.seed,
                       cfg.section_json("generate"), prompt_manifest(), corpus_id, list(spec.keys))


def run_query_shard(cfg: BuildConfig, output: Path, spec: ShardSpec, corpus_root: Path | None = None
                    ) -> dict[str, Any]:
    """Caption, write, visualize and render the queries of one shard's documents; writes
    work/queries/shard-N.{parquet,rejects.jsonl} (and work/generate/ records) and then the marker."""
    from wikihow_tiir.generate import generate_queries

    output = Path(output)
    source = Path(corpus_root) if corpus_root is not None else output
    fp = queries_fingerprint(cfg, output, spec, corpus_root)
    if (stats := _done(output, spec, fp)) is not None:
        return stats
    docs = read_documents(source, list(spec.keys))
    result = generate_queries(docs, _pool(output, source), cfg.generate,
                              seed=cfg.seed, work_dir=work_dir(output, "generate"), shard_id=spec.name,
                              contexts=read_contexts(source, list(spec.keys)))
    files = _write_shard_files(output, spec, {
        "parquet": parquet_bytes([query_to_row(q) for q in result.queries], "queries"),
        "rejects.jsonl": _jsonl_bytes(r.to_dict() for r in result.rejects),
    })
    stats = {"documents": len(docs), "queries": len(result.queries),
             "rejects": dict(Counter(f"{r.stage}:{r.reason}" for r in result.rejects)),
             "generation": result.stats}
    return _finish(output, spec, fp, stats, files)


def query_shard_rejects(output: Path, specs: list[ShardSpec]) -> Iterator[dict[str, Any]]:
    """The rejects of these query shards, shard by shard, as written."""
    for spec in specs:
        yield from read_jsonl(layout.shard_file(output, "queries", spec.name, "rejects.jsonl"))


def _query_rows_with_images(queries: list[Query], shard_files: list[Path], chunk: int) -> Iterator[dict[str, Any]]:
    """Rows of these (filtered, scored) queries with their image bytes put back from the query shards."""
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


def filter_stage(cfg: BuildConfig, output: Path, specs: list[ShardSpec]) -> dict[str, Any]:
    """Filter the whole query set against the whole corpus (without image bytes: the checks read texts,
    metadata and perceptual hashes). Returns ``queries`` (all generated) and the filter's ``result``
    (None when the filter is off)."""
    from wikihow_tiir.filter import filter_queries

    output = Path(output)
    shard_files = [layout.shard_file(output, "queries", spec.name, "parquet") for spec in specs]
    queries: list[Query] = [query_from_row(r) for r in read_rows_without(shard_files)]
    if not cfg.filter.enabled:
        return {"queries": queries, "result": None}
    corpus = list(load_corpus(output))
    return {"queries": queries, "result": filter_queries(queries, corpus, cfg.filter, cache_dir=work_dir(output, "filter"))}


def split_stage(cfg: BuildConfig, output: Path, specs: list[ShardSpec], filtered: dict[str, Any],
                previous_sides: dict[str, str] | None = None) -> dict[str, Any]:
    """Split by article (``previous_sides``: the sides of the previous version's articles, which they keep),
    apply the split rules, write queries/ and qrels/ per split; the kept queries' image bytes are
    streamed in from the query shards, a file's worth at a time."""
    from wikihow_tiir.filter import apply_split_rules, exclude_from_test
    from wikihow_tiir.split import split_queries

    output = Path(output)
    shard_files = [layout.shard_file(output, "queries", spec.name, "parquet") for spec in specs]
    queries, result = filtered["queries"], filtered["result"]
    if result is not None:
        excluded = exclude_from_test(result, cfg.filter)
        splits = split_queries(result.kept, cfg.split, exclude_from_test=excluded, previous=previous_sides)
        splits, split_rejects = apply_split_rules(splits, result, cfg.filter)
        splits, sticky_rejects = _keep_previous_test(splits, excluded)
        rejects, flagged, report = result.rejects + split_rejects + sticky_rejects, result.flagged, result.report
        kept = [q for qs in splits.values() for q in qs]
    else:
        kept, rejects, flagged, report = queries, [], {}, {"enabled": False}
        splits = split_queries(kept, cfg.split, previous=previous_sides)
    written: dict[str, Any] = {}
    for split in layout.QUERY_SPLITS:
        qs = sorted(splits.get(split, []), key=lambda q: q.id)
        qdir, rdir = layout.config_dir(output, "queries"), layout.config_dir(output, "qrels")
        if not qs:  # an empty split is reported, not written as a broken file
            for d in (qdir, rdir):
                remove_shards(d, split)
            written[split] = {"queries": 0, "note": "empty split: no files written"}
            continue
        write_sharded_iter(qdir, _query_rows_with_images(qs, shard_files, cfg.output.rows_per_file), len(qs),
                           "queries", split, cfg.output.rows_per_file)
        qrels = [Qrel(q.id, q.positive_id, 1) for q in qs]
        write_sharded(rdir, [qrel_to_row(r) for r in qrels], "qrels", split, max(cfg.output.rows_per_file, 10000))
        written[split] = {"queries": len(qs)}
    write_jsonl(layout.filter_kept(output),
                [{"id": q.id, "split": q.split, "scores": q.scores} for q in sorted(kept, key=lambda q: q.id)])
    return {"generated": len(queries), "kept": len(kept), "splits": written, "rejects": rejects,
            "flagged": flagged, "filter_report": report, "split_queries": splits}


def _keep_previous_test(splits: dict[str, list[Query]], excluded: set[str]) -> tuple[dict[str, list[Query]],
                                                                                     list[Reject]]:
    """A query the filter would send to train with its whole article (``train-only``) whose article stays in
    test (it was there in the previous version) is dropped instead, with its reason."""
    drop = [q for q in splits.get("test", []) if q.id in excluded]
    if not drop:
        return splits, []
    out = {**splits, "test": [q for q in splits["test"] if q.id not in excluded]}
    return out, [Reject("filter", q.id, "likely-false-negative",
                        "flagged likely-false-negative, whose rule moves the article to train; the article was "
                        "in the test split of the previous version and stays there, so the query is dropped",
                        {"split": "test", "article_id": q.article_id}) for q in drop]


def finalize_queries(cfg: BuildConfig, output: Path, specs: list[ShardSpec]) -> dict[str, Any]:
    """Filter the whole query set, split by article, write queries/ and qrels/ per split."""
    return split_stage(cfg, output, specs, filter_stage(cfg, output, specs))


# --------------------------------------------------------------------------- manifest


def collect_rejects(output: Path, extra: list[Reject] | None = None) -> dict[str, dict[str, int]]:
    """Gather shard rejects into rejects/<stage>.jsonl; return counts per stage and reason."""
    output = Path(output)
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for stage in ("corpus", "queries"):
        for f in layout.work_shard_files(output, stage, "rejects.jsonl"):
            for r in read_jsonl(f):
                by_stage.setdefault(r["stage"], []).append(r)
    for r in extra or []:
        by_stage.setdefault(r.stage, []).append(r.to_dict())
    layout.rejects_dir(output).mkdir(parents=True, exist_ok=True)
    for old in stale_reject_files(output, keep=set(by_stage)):  # never a file the build did not write
        old.unlink()
    counts: dict[str, dict[str, int]] = {}
    for stage, recs in sorted(by_stage.items()):
        recs.sort(key=lambda r: (r["item_id"], r["reason"]))
        write_jsonl(layout.reject_file(output, stage), recs)
        counts[stage] = dict(sorted(Counter(r["reason"] for r in recs).items()))
    return counts


def corpus_summary(output: Path) -> dict[str, Any]:
    """Statistics, licence counts and stand-in counts of the written corpus (reads meta columns only)."""
    from wikihow_tiir.stats import interleaved_row

    rows = list(read_rows(layout.corpus_files(output), ["texts", "image_meta", "lang", "article_id"]))
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
    atomic_write_json(layout.manifest_path(output), manifest)
    return manifest


def split_stats(splits: dict[str, list[Query]]) -> dict[str, Any]:
    from wikihow_tiir.stats import interleaved_row

    return {s: interleaved_row(((q.content.texts, q.content.image_meta) for q in qs), positives=1)
            for s, qs in sorted(splits.items()) if qs}


def source_summary(cfg: BuildConfig, output: Path, specs: list[ShardSpec]) -> dict[str, Any]:
    # one article, one copy: the pages dropped as duplicates are not counted (see _kept_copies)
    arts = [a for _, a in sorted(_kept_copies(output, specs)[0].values(), key=lambda kept: kept[1]["page"])]
    dates = sorted({a["fetched_at"][:10] for a in arts if a.get("fetched_at")})
    return {
        "kind": cfg.source.kind,
        "archive": remote.describe(cfg.source.archive) if cfg.source.kind != "vgsi" else None,
        "pages": sum(len(s.keys) for s in specs) if cfg.source.kind != "vgsi" else None,
        "articles": len(arts),
        "snapshot_dates": dates,
        "layouts": dict(sorted(Counter(a["layout"] for a in arts).items())),
        "parse_notes": sum(len(a.get("parse_notes") or []) for a in arts),
    }


# --------------------------------------------------------------------------- the whole build, inline


MapFn = Callable[[Callable[..., dict[str, Any]], list[ShardSpec]], list[dict[str, Any]]]
StepFn = Callable[[str, Callable[[], Any]], Any]
SHARD_FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {"corpus": run_corpus_shard, "queries": run_query_shard}


def run_shard(stage: str, cfg: BuildConfig, output: str | Path, spec: ShardSpec) -> dict[str, Any]:
    """One shard of a build whose folder is ``output``: a local folder, or an fsspec URL (the shard then
    runs in a local folder and is committed to object storage, see :mod:`wikihow_tiir.remote`)."""
    fn = SHARD_FUNCTIONS[stage]
    if remote.is_remote(output):
        return remote.run_remote_shard(stage, str(remote.location(output)), cfg.runner.staging, spec,
                                       lambda folder: fn(cfg, folder, spec), with_cache=cfg.generate.cache)
    return fn(cfg, Path(output), spec)


def _just_run(name: str, fn: Callable[[], Any]) -> Any:
    return fn()


class _LocalSync:
    """A build folder on a local filesystem: nothing to fetch or send."""

    def after_shards(self, stage: str, specs: list[ShardSpec]) -> None:
        pass

    def before_queries(self) -> None:
        pass

    def finish(self) -> None:
        pass


def run_build(cfg: BuildConfig, output: str | Path, map_shards: MapFn | None = None,
              log: Callable[[str], None] = lambda m: None, force: bool = False, step: StepFn | None = None,
              previous: Any = None) -> dict[str, Any]:
    """The whole build. ``map_shards(fn, specs)`` runs ``fn(spec)`` for every shard (the flow passes a
    Prefect-backed one; the default runs them one after another in this process); ``step(name, fn)``
    runs each stage between the shards (the flow makes each a Prefect task). ``force``: build in a
    non-empty folder that is not a build of ours (see :mod:`wikihow_tiir.build_folder`).

    ``output`` may be an fsspec URL (``s3://bucket/builds/v1``): the build then runs in a local copy
    (``runner.staging``) and its shards and results are committed there (:mod:`wikihow_tiir.remote`).
    ``previous``: the previous version of the dataset (a folder, URL or ``ORG/NAME@vX``, or a
    :class:`~wikihow_tiir.changelog.PreviousVersion`): articles keep their split, and the manifest and
    card say what changed (:mod:`wikihow_tiir.changelog`)."""
    step = step or _just_run
    if cfg.source.kind == "vgsi" and any(remote.is_remote(v) for v in (cfg.source.vgsi.text_file, cfg.source.vgsi.images)):
        raise BuildError("the VGSI files must be local paths (object storage is read for archives only)")
    prev = None
    if previous is not None:
        from wikihow_tiir.changelog import PreviousVersion, open_previous

        # before any work: a previous version that cannot be read costs nothing
        prev = previous if isinstance(previous, PreviousVersion) else step("previous-version",
                                                                           lambda: open_previous(str(previous)))
    if remote.is_remote(output):
        from wikihow_tiir.build_folder import check_remote_output

        url = str(remote.location(output))
        check_remote_output(url, force)
        sync = remote.BuildSync(url, cfg.runner.staging)
        step("fetch-build-folder", sync.start)
        result = _build(cfg, sync.mirror.local, url, map_shards, log, True, step, prev, sync)
        return {**result, "output": sync.mirror.remote.public, "local_copy": str(sync.mirror.local)}
    return _build(cfg, Path(output), Path(output), map_shards, log, force, step, prev, _LocalSync())


def _build(cfg: BuildConfig, output: Path, target: str | Path, map_shards: MapFn | None,
           log: Callable[[str], None], force: bool, step: StepFn, prev: Any, sync: Any) -> dict[str, Any]:
    """The build in the local folder ``output``; its shards run against ``target`` (the same folder, or
    the URL ``output`` is a copy of)."""
    check_output_folder(output, force)
    output.mkdir(parents=True, exist_ok=True)
    claim_output_folder(output)
    if map_shards is None:
        def map_shards(fn, specs):
            return [fn(s) for s in specs]

    crawl_summary = step("acquire", lambda: acquire(cfg))
    plan_rejects: list[Reject] = []
    specs = step("plan-corpus", lambda: plan_corpus(cfg, plan_rejects))
    log(f"corpus: {len(specs)} shard(s)")
    map_shards(functools.partial(run_shard, "corpus", cfg, target), specs)
    sync.after_shards("corpus", specs)
    corpus_info = step("merge-corpus", lambda: finalize_corpus(cfg, output, specs))
    log(f"corpus: {corpus_info['documents']} documents")
    info: dict[str, Any] = {"sources": source_summary(cfg, output, specs)}
    if crawl_summary:
        info["crawl"] = crawl_summary
    summary = step("corpus-statistics", lambda: corpus_summary(output))
    info["statistics"] = {"corpus": summary["statistics"], "queries": {}}
    info["licenses"] = summary["licenses"]
    info["stand_in_images"] = summary["stand_in_images"]
    info["languages"] = summary["languages"]
    extra_rejects: list[Reject] = plan_rejects + corpus_info.pop("rejects")
    if cfg.generate.enabled and corpus_info["documents"]:
        from wikihow_tiir.generate import prompt_manifest

        qspecs = step("plan-queries", lambda: plan_queries(cfg, output))
        sync.before_queries()
        log(f"queries: {len(qspecs)} shard(s)")
        qstats = map_shards(functools.partial(run_shard, "queries", cfg, target), qspecs)
        sync.after_shards("queries", qspecs)
        # the pool (an object and a vector per corpus image) served the query shards; the flow process
        # lets it go before the filter loads the corpus, so their memory never adds up
        _image_pool.cache_clear()
        filtered = step("filter", lambda: filter_stage(cfg, output, qspecs))
        sides = step("previous-splits", prev.article_sides) if prev is not None else None
        fin = step("split", lambda: split_stage(cfg, output, qspecs, filtered, sides))
        extra_rejects += fin["rejects"]
        info["statistics"]["queries"] = split_stats(fin["split_queries"])
        info["generation"] = {"prompts": prompt_manifest(), "backends": cfg.section_json("generate")["generate"],
                              "shards": _merge_generation_stats(qstats)}
        info["filter"] = {"thresholds": cfg.section_json("filter")["filter"], "report": fin["filter_report"],
                          "generated": fin["generated"], "kept": fin["kept"],
                          "flagged": {k: sorted(v) for k, v in fin["flagged"].items()},
                          "splits": fin["splits"]}
        log(f"queries: {fin['generated']} generated, {fin['kept']} kept")
        if cfg.difficulty.enabled:
            from wikihow_tiir.difficulty import measure_difficulty

            info["difficulty"] = step("difficulty", lambda: measure_difficulty(
                fin["split_queries"], load_corpus(output), cfg, cache_dir=layout.filter_embeddings(output)))
            for warning in info["difficulty"]["warnings"]:
                log(f"difficulty: {warning}")
        _load_corpus.cache_clear()  # the filter and the difficulty table are done with the corpus
    info["rejects"] = step("rejects", lambda: collect_rejects(output, extra_rejects))
    info["changelog"] = [{"version": __version__, "note": "Built with wikihow-tiir " + __version__}]
    if prev is not None:
        from wikihow_tiir.changelog import compute_changes

        info["changes"] = step("changes", lambda: compute_changes(prev, output, SCHEMA_VERSION))
        _log_changes(info["changes"], log)
    manifest = step("manifest", lambda: write_manifest(cfg, output, info))
    card = step("card", lambda: _write_card(output, manifest))
    from wikihow_tiir.audit import AuditError, reapply_after_build

    try:  # people's decisions from `wikihow-tiir audit --apply` on this folder: dropped pairs stay dropped
        audited = step("audit", lambda: reapply_after_build(output, log))
    except AuditError as exc:
        raise BuildError(f"the stored audit decisions cannot be applied: {exc}") from None
    if audited is not None and prev is not None:
        manifest = _update_changes(output, prev)  # the audit dropped test pairs: count them too
    # after the audit: the scorer's test numbers are those of the final test split
    if cfg.scorer.enabled:
        # run here, the stage's messages go to this build's log; as a Prefect task (which runs the
        # stage's task, not this function), to the module's logger
        if str(target) == str(output):
            scorer = map_shards(functools.partial(run_scorer_shard, cfg, output, log_to=log), [SCORER_SPEC])[0]
        else:  # a build on object storage: train in the flow's local copy, pushed with the rest at the end
            scorer = step("scorer", lambda: run_scorer_shard(cfg, output, log_to=log))
    else:
        scorer = remove_scorer(output)
    card = record_scorer(output, scorer, log) or card
    from wikihow_tiir.publish.validate import validate_dataset

    # a quick check (the full load_dataset read-back is `wikihow-tiir validate`); problems are reported,
    # not raised: a corpus-only or all-rejected build is still worth looking at, and publish refuses it
    problems = step("validate", lambda: validate_dataset(output, check_load=False))
    for p in problems:
        log(f"validation: {p}")
    from wikihow_tiir.report import write_report

    report = step("report", lambda: write_report(output))
    log(f"report: {report}")
    step("upload", sync.finish)
    return {"output": str(output), "documents": corpus_info["documents"], "report": str(report),
            "validation_problems": problems,
            "queries": {s: v.get("queries", 0) for s, v in manifest.get("filter", {}).get("splits", {}).items()},
            "rejects": info["rejects"], "card": card}


def _log_changes(changes: dict[str, Any], log: Callable[[str], None]) -> None:
    d, q = changes["documents"], changes["queries"]
    log(f"changes since {changes['previous']['location']}: documents {len(d['added'])} added, "
        f"{len(d['removed'])} removed, {len(d['changed'])} changed, {d['unchanged']} unchanged; queries "
        f"{q['carried_over']} carried over, {len(q['new'])} new, {len(q['changed'])} changed, {len(q['removed'])} removed")


def _update_changes(output: Path, prev: Any) -> dict[str, Any]:
    from wikihow_tiir.changelog import compute_changes

    manifest = json.loads(layout.manifest_path(output).read_text(encoding="utf-8"))
    manifest["changes"] = compute_changes(prev, output, SCHEMA_VERSION)
    atomic_write_json(layout.manifest_path(output), manifest)
    _write_card(output, manifest)
    return manifest


# --------------------------------------------------------------------------- the reference scorer

SCORER_SPEC = ShardSpec("scorer", 0, ())


def run_scorer_shard(cfg: BuildConfig, output: Path, spec: ShardSpec = SCORER_SPEC,
                     log_to: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or keep) the reference MME scorer and score it: ``scorer/`` (``wikihow_tiir.mme.scorer``).
    Returns the manifest's ``scorer`` section. Its own fingerprints keep an unchanged scorer untrained."""
    from wikihow_tiir.evaluate.scorer_numbers import score_numbers
    from wikihow_tiir.mme.scorer import run_scorer_stage

    return run_scorer_stage(cfg, Path(output), score_numbers, log=log_to or log.info)


def remove_scorer(output: Path) -> dict[str, Any]:
    """``scorer.enabled`` is false: no ``scorer/`` in the dataset (one of an earlier build would be stale)."""
    import shutil

    shutil.rmtree(layout.scorer_dir(output), ignore_errors=True)
    return {"skipped": "disabled (scorer.enabled is false, or --no-scorer)"}


def record_scorer(output: Path, section: dict[str, Any], log: Callable[[str], None]) -> str | None:
    """Put the scorer's section into manifest.json and re-render the card (its leaderboard)."""
    path = layout.manifest_path(output)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["scorer"] = section
    atomic_write_json(path, manifest)
    if section.get("skipped"):
        log(f"scorer: none ({section['skipped']})")
    else:
        best = next(r for r in section["leaderboard"] if r.get("kind") == "scorer")
        log(f"scorer: {best['model']} nDCG@10 {100 * best['ndcg_at_10']:.2f} on {section['test_queries']} test "
            f"queries over {section['corpus_documents']} documents")
    return _write_card(output, manifest)


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
    card = layout.card_path(output)
    atomic_write_text(card, render_card(manifest))
    return str(card)
