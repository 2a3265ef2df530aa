"""The test numbers of a build's reference scorer and of the offline baselines, through the evaluation code.

The scorer stage (``wikihow_tiir.mme.scorer``) gets this function from ``build.py``: ``evaluate`` and ``mme``
never import each other, and the scorer is built as ``--model mme:FOLDER --mme-n N`` is (the registry), so
``wikihow-tiir evaluate --model mme`` on the released data scores exactly these numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wikihow_tiir.evaluate.baselines import build_model
from wikihow_tiir.evaluate.runner import score_model
from wikihow_tiir.retrieval.dataset import load_split
from wikihow_tiir.retrieval.metrics import evaluate_run
from wikihow_tiir.retrieval.registry import ModelOptions


def score_numbers(dataset: str | Path, folder: str | Path, baselines: Sequence[str], ns: Sequence[int],
                  device: str | None = None) -> dict[str, Any]:
    """``{"baselines": {name: metrics}, "mme": {n: metrics}, "corpus_documents", "queries", "device",
    "rejected_images", "truncated_sequences"}`` on the test split of ``dataset`` (``device`` is the scorer's
    own choice, as ``evaluate`` makes it; it is recorded, not forced)."""
    ev = load_split(dataset, "test")
    out: dict[str, Any] = {"baselines": {}, "mme": {}, "corpus_documents": len(ev.documents),
                           "queries": len(ev.queries)}
    for name in baselines:
        out["baselines"][name] = evaluate_run(ev.qrels, score_model(build_model(name), ev)).aggregate
    first = build_model(f"mme:{folder}", ModelOptions(mme_n=ns[0]))
    for n in ns:  # one encoder for every N: the vision tower runs once per image
        model = first.at_n(n) if n != first.n else first
        out["mme"][n] = evaluate_run(ev.qrels, score_model(model, ev)).aggregate
    report = first.report()
    out["device"] = report.get("device", device or "cpu")
    out["rejected_images"] = sum(report["rejected_images"].values())
    out["truncated_sequences"] = report["truncated_sequences"]
    return out
