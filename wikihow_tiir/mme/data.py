"""Training data for MME: (query, positive) pairs from a built dataset, their pictures read lazily, and hard negatives.

Nothing here holds the corpus's pictures in memory: the documents and queries are read without their
image bytes, and an :class:`ImageStore` (an SQLite file written once, a Parquet row group at a time)
gives a batch its pictures when it is encoded. At the paper's 155k documents / 770k images that is
tens of GB on disk instead of in memory; the texts and ids are what stays resident.
"""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wikihow_tiir.model import Document, Query, document_from_row, qrel_from_row, query_from_row

HARD_NEGATIVES = ("random", "minilm-top-k")


class ImageStore:
    """The image bytes of a dataset's documents and queries, keyed by (role, item id, position).

    Written once from the Parquet files (streaming: one row group in memory at a time), read per batch.
    SQLite, from the standard library: random reads of single rows, which Parquet row groups of a
    thousand pictures are not made for.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)

    @classmethod
    def build(cls, path: str | Path, sources: list[tuple[str, list[Path]]]) -> ImageStore:
        """``sources``: (role, Parquet files) pairs, e.g. ``[("doc", corpus files), ("query", query files)]``."""
        from wikihow_tiir.storage import read_rows

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        db = sqlite3.connect(str(path))
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE images (item TEXT, pos INTEGER, data BLOB, PRIMARY KEY (item, pos)) WITHOUT ROWID")
        for role, files in sources:
            # storage reads one row group at a time: memory is bounded by a row group, not the corpus
            for row in read_rows(sorted(files), columns=["id", "images"]):
                db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?)",
                               [(f"{role}:{row['id']}", pos, im["bytes"]) for pos, im in enumerate(row["images"] or [])
                                if im is not None and im.get("bytes") is not None])
            db.commit()
        db.close()
        return cls(path)

    def images(self, role: str, item: str) -> dict[int, bytes]:
        rows = self._db.execute("SELECT pos, data FROM images WHERE item = ?", (f"{role}:{item}",)).fetchall()
        return {int(pos): bytes(data) for pos, data in rows}

    def fill(self, role: str, item: Document | Query) -> Document | Query:
        """A copy of ``item`` with its image bytes (the item itself stays without them)."""
        found = self.images(role, item.id)
        content = dataclasses.replace(item.content, images=[
            found.get(pos) if meta is not None else None
            for pos, meta in enumerate(item.content.image_meta)])
        return dataclasses.replace(item, content=content)

    def close(self) -> None:
        self._db.close()


@dataclass(slots=True)
class TrainingData:
    documents: dict[str, Document]  # the whole corpus, without image bytes
    queries: list[Query]  # only queries whose positive is in the corpus, in file order, without image bytes
    positives: dict[str, list[str]]  # query id -> relevant document ids (the first is the target)
    notes: list[str] = field(default_factory=list)  # fallbacks taken, items skipped
    corpus_files: list[Path] = field(default_factory=list)
    query_files: list[Path] = field(default_factory=list)

    def image_store(self, path: str | Path) -> ImageStore:
        """Write the pictures of the corpus and of these queries to an SQLite file at ``path``."""
        return ImageStore.build(path, [("doc", self.corpus_files), ("query", self.query_files)])


def _files(dataset_dir: Path, config: str, split: str | None) -> list[Path]:
    from wikihow_tiir.layout import config_files, split_files

    return split_files(dataset_dir, config, split) if split else config_files(dataset_dir, config)


def load_training_data(dataset_dir: str | Path, split: str = "train") -> TrainingData:
    """Read ``corpus/``, ``queries/<split>-*`` and ``qrels/<split>-*`` of a built dataset, without image bytes.

    Without a ``<split>`` split, all queries (and all qrels) are used, and a note says so; without
    qrels, each query's ``positive_id`` is its positive.
    """
    from wikihow_tiir.storage import read_rows, read_rows_without

    dataset_dir = Path(dataset_dir)
    notes: list[str] = []
    corpus_files = _files(dataset_dir, "corpus", None)
    if not corpus_files:
        raise ValueError(f"{dataset_dir}: no corpus/*.parquet - is this a built dataset? "
                         "(make build-dataset writes one to data/builds/sample)")
    documents = {d.id: d for d in (document_from_row(r) for r in read_rows_without(corpus_files))}
    query_files = _files(dataset_dir, "queries", split)
    qrel_files = _files(dataset_dir, "qrels", split)
    if not query_files:
        query_files = _files(dataset_dir, "queries", None)
        qrel_files = _files(dataset_dir, "qrels", None)
        if not query_files:
            raise ValueError(f"{dataset_dir}: no queries/*.parquet to train on")
        notes.append(f"no '{split}' split in {dataset_dir}/queries: training on all queries "
                     "(their test scores are then not held-out)")
    queries = [query_from_row(r, split=split) for r in read_rows_without(query_files)]
    positives: dict[str, list[str]] = {}
    for qrel in (qrel_from_row(r) for r in read_rows(qrel_files)):
        if qrel.score > 0:
            positives.setdefault(qrel.query_id, []).append(qrel.corpus_id)
    if not qrel_files:
        notes.append("no qrels: each query's positive_id is its positive")
    kept, missing = [], 0
    for q in queries:
        rel = positives.get(q.id) or [q.positive_id]
        # the query's own positive_id first when it is relevant, so the target is stable
        rel = sorted(set(rel), key=lambda d: (d != q.positive_id, d))
        rel = [d for d in rel if d in documents]
        if not rel:
            missing += 1
            continue
        positives[q.id] = rel
        kept.append(q)
    if missing:
        notes.append(f"{missing} queries skipped: their positive document is not in the corpus")
    if not kept:
        raise ValueError(f"{dataset_dir}: no query has its positive document in the corpus")
    return TrainingData(documents, kept, {q.id: positives[q.id] for q in kept}, notes, corpus_files, query_files)


def mine_hard_negatives(data: TrainingData, pool: int = 5, block: int = 1024) -> dict[str, list[str]]:
    """For each query the ``pool`` top documents of the text baseline (all-MiniLM-L6-v2 on the
    text positions), never a relevant one (the ``minilm-top-k`` option; training samples one per
    query and epoch)."""
    from wikihow_tiir.encoders.minilm import encode_texts

    doc_ids = list(data.documents)
    d = encode_texts([data.documents[i].content.text for i in doc_ids])
    q = encode_texts([x.content.text for x in data.queries])
    out: dict[str, list[str]] = {}
    for start in range(0, len(q), block):  # blocks: the full data has ~73k queries x ~100k documents
        scores = q[start:start + block] @ d.T
        queries = data.queries[start:start + block]
        keep = min(len(doc_ids), pool + max(len(data.positives[x.id]) for x in queries))
        top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep] if keep < len(doc_ids) else \
            np.tile(np.arange(len(doc_ids)), (len(queries), 1))
        for row, cand, query in zip(scores, top, queries, strict=True):
            relevant = set(data.positives[query.id])
            order = sorted(cand.tolist(), key=lambda j: (-row[j], j))  # score, then corpus order: stable
            out[query.id] = [doc_ids[j] for j in order if doc_ids[j] not in relevant][:pool]
    return out


class HardNegatives:
    """One hard negative per query and epoch, never a relevant document.

    ``random`` (the paper: "sampled at random"): drawn uniformly from every document of the corpus that
    is not relevant to the query. ``minilm-top-k`` (our option): drawn uniformly from the ``k`` documents
    the text baseline ranks highest. Either way the draw is a pure function of (seed, epoch, query), so
    a resumed run draws what an uninterrupted one would.
    """

    def __init__(self, data: TrainingData, kind: str = "random", k: int = 5, seed: int = 0):
        if kind not in HARD_NEGATIVES:
            raise ValueError(f"unknown hard negatives {kind!r}; choose one of {list(HARD_NEGATIVES)}")
        self.kind, self.k, self.seed = kind, k, seed
        self.positives = data.positives
        self.doc_ids = list(data.documents)
        self.pools = mine_hard_negatives(data, pool=k) if kind == "minilm-top-k" else {}

    def draw(self, query_id: str, epoch: int) -> str | None:
        rng = random.Random(f"{self.seed}:hard:{epoch}:{query_id}")
        if self.kind == "minilm-top-k":
            pool = self.pools.get(query_id) or []
            return rng.choice(pool) if pool else None
        relevant = set(self.positives[query_id])
        if len(relevant) >= len(self.doc_ids):
            return None
        while True:  # rejection sampling: no per-query list of 155k candidates
            d = self.doc_ids[rng.randrange(len(self.doc_ids))]
            if d not in relevant:
                return d
