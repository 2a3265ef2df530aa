"""Run and result files: TREC runs, MTEB-shaped metrics JSON, per-query metrics, the comparison table.

Rendering is kept apart from the metric math (``metrics.py``). Every file here is a pure function
of its inputs, so a re-run gives the same bytes; wall times go to ``timings.json`` only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from wikihow_tiir.io import atomic_write_text
from wikihow_tiir.retrieval.metrics import MAIN_METRIC, PAPER_METRICS, ranked

TASK_NAME = "WikiHowTIIRRetrieval"  # the MTEB task's name (mteb_task.py), so results line up
_LABELS = {"recall": "R", "mrr": "MRR", "ndcg": "nDCG"}


def slug(model: str) -> str:
    """A file-name-safe form of a run name: ``clip:openai/clip-vit+fusion`` -> ``clip-openai-clip-vit+fusion``."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", model).strip("-.") or "model"


def label(metric: str) -> str:
    """``ndcg_at_10`` -> ``nDCG@10``."""
    name, _, k = metric.partition("_at_")
    return f"{_LABELS.get(name, name)}@{k}"


def format_score(score: float) -> str:
    # repr round-trips, so metrics from a re-read run file equal the in-memory ones
    return repr(float(score))


def write_trec_run(path: Path, run: Mapping[str, Mapping[str, float]], tag: str) -> None:
    """``qid Q0 docid rank score tag`` lines, queries sorted, ranks in trec_eval's order."""
    tag = slug(tag)
    lines = []
    for q in sorted(run):
        scores = run[q]
        for rank, d in enumerate(ranked(scores), 1):
            lines.append(f"{q} Q0 {d} {rank} {format_score(scores[d])} {tag}\n")
    atomic_write_text(path, "".join(lines))


def read_trec_run(path: Path) -> dict[str, dict[str, float]]:
    """A TREC run file (6 fields, or tevatron's 3 ``qid docid score``); duplicate pairs are an error."""
    run: dict[str, dict[str, float]] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 6:
            q, _, d, _, s, _ = parts
        elif len(parts) == 3:
            q, d, s = parts
        else:
            raise ValueError(f"{path}:{n}: expected 'qid Q0 docid rank score tag' or 'qid docid score'")
        if d in run.setdefault(q, {}):
            raise ValueError(f"{path}:{n}: document {d!r} appears twice for query {q!r}")
        run[q][d] = float(s)
    return run


def mteb_result(model: str, metrics: Mapping[str, float], split: str, revision: str | None,
                n_queries: int, languages: Sequence[str] = ("eng-Latn",), extra: Mapping | None = None) -> dict:
    """The metrics in MTEB's TaskResult shape (values as fractions, ``main_score`` = nDCG@10).

    ``languages``: the data's (``dataset.languages``); ``extra``: how the run was made (adaptation,
    perturbation, model settings, captions), kept beside the scores for people, ignored by MTEB."""
    scores = {k: float(v) for k, v in sorted(metrics.items())}
    scores.update(main_score=scores[MAIN_METRIC], hf_subset="default", languages=list(languages))
    out = {
        "dataset_revision": revision,
        "task_name": TASK_NAME,
        "mteb_version": None,
        "model_name": model,
        "n_queries": n_queries,
        "scores": {split: [scores]},
        "evaluation_time": None,  # wall times are in timings.json (they differ run to run)
        "kg_co2_emissions": None,
    }
    if extra:
        out["wikihow_tiir"] = dict(extra)
    return out


def per_query_tsv(per_query: Mapping[str, Mapping[str, float]], metric_order: Sequence[str]) -> str:
    lines = ["query-id\t" + "\t".join(metric_order) + "\n"]
    for q in sorted(per_query):
        lines.append(q + "\t" + "\t".join(format_score(per_query[q][m]) for m in metric_order) + "\n")
    return "".join(lines)


def comparison_table(rows: Mapping[str, Mapping[str, float]], title: str = "",
                     extra: Sequence[str] = ("recall_at_1", "recall_at_20", "recall_at_100")) -> str:
    """Markdown: one row per model, the paper's Table 2 columns (x100, 2 decimals) then ``extra``."""
    columns = list(PAPER_METRICS) + [m for m in extra if all(m in r for r in rows.values())]
    out = [f"{title}\n\n" if title else ""]
    out.append("| Model | " + " | ".join(label(c) for c in columns) + " |\n")
    out.append("|---|" + "---:|" * len(columns) + "\n")
    for model, metrics in rows.items():
        out.append(f"| {model} | " + " | ".join(f"{100 * metrics[c]:.2f}" for c in columns) + " |\n")
    return "".join(out)
