"""Training data for MME: (query, positive) pairs from a built dataset, and text-mined hard negatives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wikihow_tiir.model import Document, Query, document_from_row, qrel_from_row, query_from_row


@dataclass(slots=True)
class TrainingData:
    documents: dict[str, Document]
    queries: list[Query]  # only queries whose positive is in the corpus, in file order
    positives: dict[str, list[str]]  # query id -> relevant document ids (the first is the target)
    notes: list[str] = field(default_factory=list)  # fallbacks taken, items skipped


def _files(dataset_dir: Path, config: str, split: str | None) -> list[Path]:
    from wikihow_tiir.layout import config_files, split_files

    return split_files(dataset_dir, config, split) if split else config_files(dataset_dir, config)


def load_training_data(dataset_dir: str | Path, split: str = "train") -> TrainingData:
    """Read ``corpus/``, ``queries/<split>-*`` and ``qrels/<split>-*`` of a built dataset.

    Without a ``<split>`` split, all queries (and all qrels) are used, and a note says so; without
    qrels, each query's ``positive_id`` is its positive.
    """
    from wikihow_tiir.storage import read_rows

    dataset_dir = Path(dataset_dir)
    notes: list[str] = []
    corpus_files = _files(dataset_dir, "corpus", None)
    if not corpus_files:
        raise ValueError(f"{dataset_dir}: no corpus/*.parquet - is this a built dataset? "
                         "(make build-dataset writes one to data/builds/sample)")
    documents = {d.id: d for d in (document_from_row(r) for r in read_rows(corpus_files))}
    query_files = _files(dataset_dir, "queries", split)
    qrel_files = _files(dataset_dir, "qrels", split)
    if not query_files:
        query_files = _files(dataset_dir, "queries", None)
        qrel_files = _files(dataset_dir, "qrels", None)
        if not query_files:
            raise ValueError(f"{dataset_dir}: no queries/*.parquet to train on")
        notes.append(f"no '{split}' split in {dataset_dir}/queries: training on all queries "
                     "(their test scores are then not held-out)")
    queries = [query_from_row(r, split=split) for r in read_rows(query_files)]
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
    return TrainingData(documents, kept, {q.id: positives[q.id] for q in kept}, notes)


def mine_hard_negatives(data: TrainingData, pool: int = 5, block: int = 1024) -> dict[str, list[str]]:
    """For each query the ``pool`` top documents of the text baseline (all-MiniLM-L6-v2 on the
    text positions), never a relevant one. Training samples one of them per query and epoch, as
    the paper samples its hard negative at random."""
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
