"""Difficulty evidence for every build: how far text-only retrieval gets on the finished splits.

After the split, the build scores three cheap models with the evaluation code (``evaluate``'s
models, search and metrics, not a copy) on the test split and on every kept query:

* ``bm25``: BM25 over the query text (pictures ignored);
* ``minilm``: all-MiniLM-L6-v2 over the query text alone (pictures dropped);
* ``minilm-prompts``: the same model with each picture replaced by its image prompt (what it shows).

``minilm-prompts`` above ``minilm`` means the pictures carry information the text lacks (the
benchmark's point); a high text-only Recall@1 means a keyword search already solves the split, and
the build says so in a plain warning. Numbers depend on the corpus size (the paper searches 155,262
documents), which is stated next to them, beside the paper's reference rows (Table 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wikihow_tiir.config import BuildConfig
from wikihow_tiir.model import Document, Query

MODELS: dict[str, str] = {
    "bm25": "BM25, query text only",
    "minilm": "all-MiniLM-L6-v2, query text only (pictures dropped)",
    "minilm-prompts": "all-MiniLM-L6-v2, query text + image prompts (what the pictures show)",
}
TEXT_ONLY = ("bm25", "minilm")
METRICS = ("recall_at_1", "recall_at_5", "mrr_at_5", "mrr_at_10", "ndcg_at_5", "ndcg_at_10")

# The paper's Table 2 (arXiv 2502.12799), test split: 7,654 queries over 155,262 documents; all eleven
# rows, metrics x100 (``evaluate --paper-table`` prints them beside ours, the card shows them).
PAPER_REFERENCE: dict[str, Any] = {
    "corpus_documents": 155262,
    "test_queries": 7654,
    "rows": [
        {"no": 1, "setting": "Text w/ Merged Image", "model": "VISTA", "params": "0.21B",
         "recall_at_5": 45.06, "mrr_at_5": 31.95, "mrr_at_10": 33.73, "ndcg_at_5": 33.14, "ndcg_at_10": 35.22},
        {"no": 2, "setting": "Text w/ Merged Image", "model": "GME_Qwen2-VL-2B", "params": "2.21B",
         "recall_at_5": 65.85, "mrr_at_5": 50.12, "mrr_at_10": 51.65, "ndcg_at_5": 51.18, "ndcg_at_10": 54.06},
        {"no": 3, "setting": "Text w/ Merged Image", "model": "E5-V", "params": "8.36B",
         "recall_at_5": 62.66, "mrr_at_5": 46.47, "mrr_at_10": 48.16, "ndcg_at_5": 47.64, "ndcg_at_10": 50.52},
        {"no": 4, "setting": "Text w/ Merged Image", "model": "MM-Embed", "params": "8.18B",
         "recall_at_5": 68.73, "mrr_at_5": 52.24, "mrr_at_10": 53.67, "ndcg_at_5": 53.25, "ndcg_at_10": 56.37},
        {"no": 5, "setting": "Text w/ Caption", "model": "BGE-v1.5-large", "params": "0.34B",
         "recall_at_5": 39.66, "mrr_at_5": 27.54, "mrr_at_10": 29.14, "ndcg_at_5": 28.58, "ndcg_at_10": 30.56},
        {"no": 6, "setting": "Text w/ Caption", "model": "GTE-v1.5-large", "params": "0.43B",
         "recall_at_5": 41.44, "mrr_at_5": 27.74, "mrr_at_10": 29.56, "ndcg_at_5": 28.94, "ndcg_at_10": 31.14},
        {"no": 7, "setting": "Text w/ Caption", "model": "GTE-Qwen2-7B", "params": "7.61B",
         "recall_at_5": 47.24, "mrr_at_5": 33.40, "mrr_at_10": 35.28, "ndcg_at_5": 34.63, "ndcg_at_10": 36.85},
        {"no": 8, "setting": "Vector-Fusion", "model": "Jina-CLIP-v2", "params": "0.87B",
         "recall_at_5": 58.80, "mrr_at_5": 43.29, "mrr_at_10": 45.00, "ndcg_at_5": 44.44, "ndcg_at_10": 47.17},
        {"no": 9, "setting": "Vector-Fusion", "model": "CLIP-large fine-tuned", "params": "0.43B",
         "recall_at_5": 69.41, "mrr_at_5": 53.06, "mrr_at_10": 54.73, "ndcg_at_5": 54.25, "ndcg_at_10": 57.15},
        {"no": 10, "setting": "TIIR (fine-tuned)", "model": "DPR DeepSeek-VL", "params": "1.98B",
         "recall_at_5": 74.79, "mrr_at_5": 59.43, "mrr_at_10": 60.87, "ndcg_at_5": 60.49, "ndcg_at_10": 63.28},
        {"no": 11, "setting": "TIIR (fine-tuned)", "model": "MME N=3", "params": "1.98B",
         "recall_at_5": 77.40, "mrr_at_5": 62.07, "mrr_at_10": 63.40, "ndcg_at_5": 63.01, "ndcg_at_10": 65.91},
    ],
}


def _split_items(queries: Sequence[Query], corpus: Sequence[Document], name: str):
    from wikihow_tiir.retrieval.dataset import EvalSplit, Records

    docs = sorted(corpus, key=lambda d: d.id)  # the filter's order: its cached document vectors are reused
    qs = sorted(queries, key=lambda q: q.id)
    return EvalSplit(split=name, documents=Records("documents", [d.id for d in docs], items=docs),
                     queries=Records("queries", [q.id for q in qs], items=qs, split=name),
                     qrels={q.id: {q.positive_id: 1} for q in qs})


def _model(name: str, cache_dir: Path | None):
    from wikihow_tiir.evaluate.adapters import TextOnly, TextWithImagePrompts
    from wikihow_tiir.evaluate.baselines import BM25, MiniLMText

    if name == "bm25":
        return BM25()
    text = MiniLMText(cache_dir=cache_dir)
    return TextOnly(text, name="minilm") if name == "minilm" else TextWithImagePrompts(text, name="minilm-prompts")


def measure_difficulty(splits: Mapping[str, Sequence[Query]], corpus: Sequence[Document], cfg: BuildConfig,
                       cache_dir: Path | None = None) -> dict[str, Any]:
    """The ``difficulty`` section of ``manifest.json`` (deterministic: no timings).

    ``splits``: the finished splits (kept queries); scored on ``test`` and on ``all`` kept queries.
    ``cache_dir``: the filter's embedding cache, so the corpus is not encoded a second time.
    """
    from wikihow_tiir.evaluate.runner import score_model
    from wikihow_tiir.retrieval.metrics import evaluate_run

    groups = {"test": list(splits.get("test", [])), "all": [q for qs in splits.values() for q in qs]}
    out: dict[str, Any] = {"corpus_documents": len(corpus), "models": dict(MODELS), "metrics": list(METRICS),
                           "ceiling": {"text_only_recall_at_1": cfg.difficulty.max_text_only_recall_at_1},
                           "splits": {}, "warnings": [], "paper_reference": PAPER_REFERENCE}
    if not corpus:
        out["warnings"].append("the corpus is empty: nothing to measure")
        return out
    batch = cfg.filter.embed_shard_size  # document batches = the filter's cache shards (no re-encoding)
    for group, queries in groups.items():
        if not queries:
            out["splits"][group] = {"queries": 0}
            continue
        ev = _split_items(queries, corpus, group)
        rows: dict[str, dict[str, float]] = {}
        for name in MODELS:
            run = score_model(_model(name, cache_dir), ev, k=min(100, len(corpus)), batch_size=batch)
            agg = evaluate_run(ev.qrels, run, recall_at=(1, 5), mrr_at=(5, 10), ndcg_at=(5, 10)).aggregate
            rows[name] = {m: round(agg[m], 6) for m in METRICS}
        out["splits"][group] = {"queries": len(queries), "articles": len({q.article_id for q in queries}),
                                "models": rows}
        worst = max(TEXT_ONLY, key=lambda m: rows[m]["recall_at_1"])
        r1 = rows[worst]["recall_at_1"]
        if group == "test" and r1 > cfg.difficulty.max_text_only_recall_at_1:
            out["warnings"].append(
                f"text-only retrieval is easy on this test split: {worst} finds the positive at rank 1 for "
                f"{r1:.0%} of its {len(queries)} queries (ceiling {cfg.difficulty.max_text_only_recall_at_1:.0%}) "
                f"in a corpus of {len(corpus)} documents; the paper's text models reach about 40% Recall@5 "
                f"over {PAPER_REFERENCE['corpus_documents']:,} documents. A small corpus is easy; a generator "
                "whose text names the answer is easy at any size.")
    return out


def difficulty_table(section: Mapping[str, Any]) -> list[str]:
    """Markdown lines of the difficulty table (card and report), ours beside the paper's rows."""
    if not section or not section.get("splits"):
        return []
    n_docs = section.get("corpus_documents", 0)
    lines = [f"Scored by the build on this dataset's corpus of **{n_docs:,} documents** (x100; R = Recall):",
             "", "| queries | model | input | R@1 | R@5 | MRR@10 | nDCG@10 |", "|---|---|---|---:|---:|---:|---:|"]
    for group, label in (("test", "test split"), ("all", "all kept queries")):
        data = section["splits"].get(group) or {}
        if not data.get("queries"):
            continue
        for name, desc in section["models"].items():
            m = data["models"][name]
            lines.append(f"| {label} ({data['queries']}) | {name} | {desc} | {100 * m['recall_at_1']:.2f} | "
                         f"{100 * m['recall_at_5']:.2f} | {100 * m['mrr_at_10']:.2f} | {100 * m['ndcg_at_10']:.2f} |")
    ref = section.get("paper_reference") or PAPER_REFERENCE
    lines += ["", f"The paper's Table 2 for reference (test split, {ref['test_queries']:,} queries over "
                  f"**{ref['corpus_documents']:,} documents**; not comparable with a smaller corpus):", "",
              "| setting | model | R@5 | MRR@10 | nDCG@10 |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['setting']} | {r['model']} | {r['recall_at_5']:.2f} | {r['mrr_at_10']:.2f} | "
              f"{r['ndcg_at_10']:.2f} |" for r in ref["rows"]]
    for w in section.get("warnings", []):
        lines += ["", f"> **Warning:** {w}"]
    return lines
