"""Score models on one split of a dataset and write the run, metrics and comparison files.

```
<output>/
  comparison.md                 one row per run: R@5 MRR@5 MRR@10 nDCG@5 nDCG@10 (x100), R@1/20/100;
                                with paper_table, the paper's Table 2 beside ours (``paper_table.py``)
  ablations.md                  with several adaptations / perturbations: one row per model x
                                adaptation x perturbation, and the change against the model's first run
  summary.json                  dataset, split, counts, languages, every run's metrics, settings, files
  runs/<model>.trec             top-k per query: qid Q0 docid rank score tag
  results/<model>.json          MTEB TaskResult shape: scores.<split>[0].{ndcg_at_10, ..., main_score}
  per_query/<model>.tsv         every metric of every query
  timings.json                  wall seconds per model (the only file that differs between runs)
  mme-sweep/                    with mme_sweep: the MME engineer's table + plot
```

A run is one model spec under one adaptation (``adapts``: ``--adapt``, families only; None = the
family's default) and one perturbation (``perturbs``: ``--perturb``; None = none). Its name is the
spec, then ``+adaptation`` and ``+perturbation`` where given: ``gme:ID+screenshot+shuffle-order``.
A family's weights are loaded once for all of its runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wikihow_tiir.evaluate.base import ScoringModel
from wikihow_tiir.evaluate.baselines import ModelOptions, build_model
from wikihow_tiir.evaluate.results import (
    comparison_table,
    mteb_result,
    per_query_tsv,
    slug,
    write_trec_run,
)
from wikihow_tiir.evaluate.search import EmbeddingError, TopK, exact_search, normalize, top_k_blocks
from wikihow_tiir.io import atomic_write_json, atomic_write_text
from wikihow_tiir.layout import manifest_path
from wikihow_tiir.retrieval import registry
from wikihow_tiir.retrieval.dataset import EvalSplit, describe, languages, load_split
from wikihow_tiir.retrieval.metrics import evaluate_run, metric_names

log = logging.getLogger(__name__)


def _encode_all(records, encode, images: bool, batch_size: int, what: str) -> tuple[np.ndarray, int]:
    """Encode every record batch by batch, checking each batch's vectors (ids named on error)."""
    parts: list[np.ndarray] = []
    dim: int | None = None
    for batch in records.batches(batch_size, images=images):
        ids = [it.id for it in batch]
        vectors = normalize(encode(batch), ids, what, dim=dim)
        dim = vectors.shape[1]
        parts.append(vectors)
    if not parts:
        raise EmbeddingError(f"{what}: nothing to encode")
    return np.concatenate(parts), dim or 0


def dense_search(model, ev: EvalSplit, k: int, batch_size: int, use_faiss: bool = False) -> TopK:
    images = getattr(model, "needs_images", True)
    docs, dim = _encode_all(ev.documents, model.encode_documents, images, batch_size,
                            f"{model.name}: document vectors")
    queries, _ = _encode_all(ev.queries, model.encode_queries, images, batch_size,
                             f"{model.name}: query vectors")
    if queries.shape[1] != dim:
        raise EmbeddingError(f"{model.name}: query vectors have {queries.shape[1]} dimensions, documents {dim} "
                             f"(queries {ev.queries.ids[:3]}, documents {ev.documents.ids[:3]})")
    return exact_search(queries, docs, k=k, doc_ids=ev.documents.ids, use_faiss=use_faiss)


def scoring_search(model: ScoringModel, ev: EvalSplit, k: int, query_block: int = 256) -> TopK:
    import torch

    from wikihow_tiir.evaluate.search import id_order

    images = getattr(model, "needs_images", True)
    documents = ev.documents.load(images=images)
    tie_key = id_order(ev.documents.ids)
    k = min(k, len(documents))
    idx_parts, sc_parts = [], []
    for batch in ev.queries.batches(query_block, images=images):
        scores = np.asarray(model.score(batch, documents))
        ids = [q.id for q in batch]
        if scores.shape != (len(batch), len(documents)):
            raise EmbeddingError(f"{model.name}: score matrix of shape {scores.shape}, expected "
                                 f"({len(batch)}, {len(documents)}) for queries {ids[:3]}")
        bad = ~np.isfinite(scores).all(axis=1)
        if bad.any():
            raise EmbeddingError(f"{model.name}: NaN or infinite scores for queries "
                                 f"{[ids[i] for i in np.flatnonzero(bad)[:10]]}")
        i, s = top_k_blocks([(0, torch.from_numpy(scores.astype(np.float32)))], k, tie_key)
        idx_parts.append(i)
        sc_parts.append(s)
    return TopK(np.concatenate(idx_parts), np.concatenate(sc_parts))


def score_model(model, ev: EvalSplit, k: int = 100, batch_size: int = 32,
                use_faiss: bool = False) -> dict[str, dict[str, float]]:
    """The run (query id -> doc id -> score, top k) of one model on one split."""
    if isinstance(model, ScoringModel) and not hasattr(model, "encode_queries"):
        top = scoring_search(model, ev, k)
    else:
        top = dense_search(model, ev, k, batch_size, use_faiss)
    return top.to_run(ev.queries.ids, ev.documents.ids)


def run_name(spec: str, adapt: str | None, perturb: str | None) -> str:
    return spec + (f"+{adapt}" if adapt else "") + (f"+{perturb}" if perturb else "")


def _expand(values: Sequence[str | None] | None) -> list[str | None]:
    return list(values) if values else [None]


def _runs(models: Sequence[str], adapts: list, perturbs: list, prebuilt: dict) -> list[tuple[str, str | None, str | None]]:
    """Every (spec, adaptation, perturbation), checked before anything is encoded."""
    from wikihow_tiir.evaluate.families import ADAPTATIONS, family_of
    from wikihow_tiir.evaluate.perturb import PERTURBATIONS

    for a in adapts:
        if a is not None and a != "all" and a not in ADAPTATIONS:
            raise ValueError(f"unknown adaptation {a!r}; choose {', '.join(ADAPTATIONS)} or all")
    for p in perturbs:
        if p is not None and p != "all" and p not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {p!r}; choose {', '.join(PERTURBATIONS)} or all")
    if "all" in perturbs:
        perturbs = [None, *PERTURBATIONS]
    if any(a is not None for a in adapts):
        plain = [m for m in models if not family_of(m) and m not in prebuilt]
        if plain:
            raise ValueError(f"--adapt applies to the model families gme:, e5v:, st:, jina-clip:, clip:; "
                             f"{plain} read their input their own way")
    return [(m, a, p) for m in models for a in adapts for p in perturbs]


def evaluate_models(dataset: str | Path, models: Sequence[str], split: str = "test",
                    output: Path = Path("eval"), layout: str = "ours", k: int = 100, batch_size: int = 32,
                    options: ModelOptions | None = None, use_faiss: bool = False, mme_sweep: bool = False,
                    prebuilt: dict[str, Any] | None = None, adapts: Sequence[str | None] | None = None,
                    perturbs: Sequence[str | None] | None = None, seed: int = 0, paper_table: bool = False,
                    captions_provenance: dict | None = None) -> dict:
    """Score ``models`` (``--model`` specs) on ``split`` and write the files listed in the module doc.

    ``prebuilt`` maps a spec to an already built model object (tests, notebooks), skipping
    :func:`build_model`. ``adapts`` / ``perturbs``: see the module doc (``"all"`` expands to every
    adaptation the family can run / every perturbation after the unperturbed run); ``seed`` seeds
    the perturbations. Returns the summary (also written as ``summary.json``).
    """
    if not models:
        raise ValueError("no models to score: give at least one --model")
    if len(set(models)) != len(models):
        raise ValueError(f"a model is listed twice: {sorted(m for m in set(models) if list(models).count(m) > 1)}")
    prebuilt = prebuilt or {}
    runs = _runs(models, _expand(adapts), _expand(perturbs), prebuilt)
    if mme_sweep and sum(m == "mme" or m.startswith("mme:") for m in models) != 1:
        raise ValueError("--mme-sweep needs exactly one --model mme or mme:PATH")
    output = Path(output)
    ev = load_split(dataset, split, layout)
    opts = options or ModelOptions()
    if opts.dataset is None:  # `--model mme` is the scorer released with this dataset
        opts = dataclasses.replace(opts, dataset=str(dataset))
    names = metric_names()
    langs = languages(ev)
    summary: dict[str, Any] = {"dataset": {**describe(ev), "languages": langs}, "k": k, "metrics": names,
                               "models": {}}
    if captions_provenance:
        summary["captions"] = captions_provenance
    timings: dict[str, float] = {}
    rows: dict[str, dict[str, float]] = {}
    ablation: list[tuple[str, str, str, dict[str, float]]] = []
    families: dict[str, Any] = {}
    done: set[str] = set()
    for spec, adapt, perturb in runs:
        for a, model, info in _models_for(spec, adapt, opts, prebuilt, families):
            rid = run_name(spec, a if adapt else None, perturb)
            if rid in done:
                continue
            done.add(rid)
            name = slug(rid)
            if any(slug(r) == name for r in done - {rid}):
                raise ValueError(f"runs {sorted(r for r in done if slug(r) == name)} would write the same file "
                                 f"names; rename or score them separately")
            start = time.perf_counter()
            scored = model if perturb is None else _perturbed(model, perturb, seed)
            log.info("scoring %s on %d queries x %d documents", rid, len(ev.queries), len(ev.documents))
            run = score_model(scored, ev, k=k, batch_size=batch_size, use_faiss=use_faiss)
            scores = evaluate_run(ev.qrels, run)
            how = {"adaptation": a, "perturbation": perturb, "perturbation_seed": seed if perturb else None,
                   "settings": info or None}
            if captions_provenance and a == "captions":
                how["captions"] = captions_provenance
            how = {key: v for key, v in how.items() if v is not None}
            write_trec_run(output / "runs" / f"{name}.trec", run, tag=name)
            atomic_write_json(output / "results" / f"{name}.json",
                              mteb_result(rid, scores.aggregate, split, ev.revision, len(ev.queries),
                                          languages=langs, extra=how))
            atomic_write_text(output / "per_query" / f"{name}.tsv", per_query_tsv(scores.per_query, names))
            # the table shows the model's own name (mme-mini@N=3) unless two runs share it
            shown = rid if (adapt or perturb) else getattr(model, "name", spec)
            rows[shown if shown not in rows else rid] = scores.aggregate
            ablation.append((spec, a or "-", perturb or "none", scores.aggregate))
            summary["models"][rid] = {
                "name": shown, "metrics": scores.aggregate, **how,
                "files": {"run": f"runs/{name}.trec", "result": f"results/{name}.json",
                          "per_query": f"per_query/{name}.tsv"},
            }
            if hasattr(scored, "report"):  # e.g. MME's truncation counts
                summary["models"][rid]["report"] = scored.report()
            timings[rid] = round(time.perf_counter() - start, 3)
    if mme_sweep:
        summary["mme_sweep"] = _run_sweep(ev, models, output, opts)
    d = summary["dataset"]
    title = (f"wikiHow-TIIR `{split}`: {d['n_queries']} queries, {d['n_documents']} documents "
             f"(metrics x100, ties by doc id)")
    table = comparison_table(rows, title=title) if rows else ""
    if paper_table:
        from wikihow_tiir.evaluate.paper_table import paper_comparison

        table += "\n" + paper_comparison(rows, n_documents=d["n_documents"], n_queries=d["n_queries"], split=split)
        summary["paper_table"] = True
    atomic_write_text(output / "comparison.md", table)
    summary["comparison"] = "comparison.md"
    if len({(a, p) for _, a, p, _ in ablation}) > 1:
        atomic_write_text(output / "ablations.md", ablation_table(ablation, title=title))
        summary["ablations"] = "ablations.md"
    atomic_write_json(output / "summary.json", summary)
    atomic_write_json(output / "timings.json", {"seconds": timings})
    summary["table"] = table
    return summary


def _perturbed(model, kind: str, seed: int):
    from wikihow_tiir.evaluate.perturb import perturbed

    return perturbed(model, kind, seed)


def _models_for(spec: str, adapt: str | None, opts: ModelOptions, prebuilt: dict, families: dict):
    """``(adaptation, model, settings)`` for one spec and ``--adapt`` value (``all``: each one the family
    can run); a family's weights are loaded once (``families`` caches them)."""
    from dataclasses import replace

    from wikihow_tiir.evaluate.families import assemble, family_of, load_family

    if spec in prebuilt:
        yield adapt, prebuilt[spec], None
        return
    if not family_of(spec):
        yield None, build_model(spec, opts), None
        return
    if spec not in families:
        families[spec] = load_family(spec, opts)
    fam = families[spec]
    # all: every adaptation the family can run; captions only when there is a captions file
    every = [a for a in fam.adaptations() if a != "captions" or opts.captions is not None]
    for a in (every if adapt == "all" else [adapt or fam.default_adapt]):
        yield a, assemble(fam, a, replace(opts, adapt=a), name=spec), fam.info


def ablation_table(rows: Sequence[tuple[str, str, str, dict[str, float]]], title: str = "") -> str:
    """Markdown: model | adaptation | perturbation | the paper's metrics (x100) | change of nDCG@10
    against the model's first run (its default adaptation, unperturbed, when listed first)."""
    from wikihow_tiir.evaluate.results import label
    from wikihow_tiir.retrieval.metrics import PAPER_METRICS

    out = [f"{title}\n\n" if title else ""]
    out.append("| Model | Adaptation | Perturbation | " + " | ".join(label(c) for c in PAPER_METRICS)
               + " | Δ nDCG@10 |\n")
    out.append("|---|---|---|" + "---:|" * (len(PAPER_METRICS) + 1) + "\n")
    first: dict[str, float] = {}
    for spec, adapt, perturb, m in rows:
        base = first.setdefault(spec, m[MAIN])
        out.append(f"| {spec} | {adapt} | {perturb} | " + " | ".join(f"{100 * m[c]:.2f}" for c in PAPER_METRICS)
                   + f" | {100 * (m[MAIN] - base):+.2f} |\n")
    return "".join(out)


MAIN = "ndcg_at_10"


def _run_sweep(ev: EvalSplit, models: Sequence[str], output: Path, opts: ModelOptions) -> dict:
    found = registry.family(next(m for m in models if m == "mme" or m.startswith("mme:")))
    if found is None or found[0].sweep is None:
        raise ValueError("--mme-sweep: no registered model family 'mme' with a sweep")
    family, checkpoint = found
    result = family.sweep(ev.documents.load(), ev.queries.load(), ev.qrels, checkpoint, output / "mme-sweep",
                          options=opts)
    return json.loads(json.dumps(result, default=str))


def score_run_file(dataset: str | Path, run_file: str | Path, split: str = "test", layout: str = "ours",
                   name: str | None = None) -> dict:
    """Score a TREC run file (``qid Q0 docid rank score tag`` or ``qid docid score``) against the dataset's
    qrels with the paper's metrics, as :func:`evaluate_models` scores a model's run (the same metric code).

    Returns ``{"name", "dataset", "metrics", "notes", "leaderboard", "table"}``: the leaderboard is the reference
    scorer's and the baselines' rows recorded in the dataset's manifest, shown beside the run when they were
    computed on this same test split.
    """
    from wikihow_tiir.evaluate.results import read_trec_run
    from wikihow_tiir.retrieval.dataset import DatasetError, resolve_dataset

    run_file = Path(run_file)
    try:
        run = read_trec_run(run_file)
    except OSError as exc:
        raise DatasetError(f"{run_file}: cannot read the run file ({exc.strerror or exc})") from None
    if not run:
        raise DatasetError(f"{run_file}: the run file holds no lines")
    ev = load_split(dataset, split, layout)
    notes = []
    queries, docs = set(ev.queries.ids), set(ev.documents.ids)
    if extra := sorted(set(run) - queries):
        notes.append(f"{len(extra)} queries of the run are not in split {split!r} and were ignored (e.g. {extra[0]})")
    if missing := sorted(queries - set(run)):
        notes.append(f"{len(missing)} queries of split {split!r} are not in the run: they score 0 (e.g. {missing[0]})")
    unknown = sorted({d for q in run for d in run[q]} - docs)
    if unknown:
        notes.append(f"{len(unknown)} document ids of the run are not in the corpus (e.g. {unknown[0]})")
    scores = evaluate_run(ev.qrels, {q: run[q] for q in run if q in queries})
    label = name or run_file.stem
    rows: dict[str, dict[str, float]] = {label: scores.aggregate}
    board = _leaderboard(resolve_dataset(dataset)[0], ev, split, notes)
    rows.update(board)
    d = describe(ev)
    title = (f"wikiHow-TIIR `{split}`: {d['n_queries']} queries, {d['n_documents']} documents "
             f"(metrics x100, ties by doc id)")
    return {"name": label, "dataset": d, "metrics": scores.aggregate, "notes": notes, "leaderboard": board,
            "table": comparison_table(rows, title=title)}


def _leaderboard(root: Path, ev: EvalSplit, split: str, notes: list[str]) -> dict[str, dict[str, float]]:
    """The leaderboard rows of the dataset's manifest (``scorer`` section), when they are of this split."""
    try:
        manifest = json.loads(manifest_path(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    section = manifest.get("scorer") or {}
    if not section.get("leaderboard"):
        return {}
    if split != "test":
        notes.append(f"the dataset's leaderboard is of the test split, not {split!r}: not shown")
        return {}
    from wikihow_tiir.revision import identity_of_test_split

    if identity_of_test_split(root)["revision"] != section.get("test_revision"):
        notes.append("the dataset's leaderboard was computed on another version of the test split: not shown")
        return {}
    return {f"{r['model']} (leaderboard)": {k: v for k, v in r.items() if isinstance(v, float)}
            for r in section["leaderboard"]}
