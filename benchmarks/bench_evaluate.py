"""Evaluation figures at the paper's scale: metric speed vs pytrec_eval / ranx, exact search time and memory.

* metrics: 7,654 queries x top-100 (the test split), one relevant document each, ~70% retrieved;
  ours vs pytrec-eval-terrier (one call: recall + ndcg_cut + recip_rank; and the full set, whose
  MRR@5/10/20 need truncated runs) and ranx (numba; first call includes compilation).
* search: 7,654 queries over 155,262 x 384 float32 documents (the corpus), top 100, in a child
  process so its peak RSS is its own; plus the same-process ratio against a plain numpy
  ``argpartition`` search on the first 1,024 queries.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

N_QUERIES, N_DOCS, DIM, K = 7654, 155_262, 384, 100


def _metrics_case(n_queries: int, n_docs: int, seed: int = 0):
    rng = random.Random(seed)
    qrels = {f"q{i}": {f"d{rng.randrange(n_docs)}": 1} for i in range(n_queries)}
    run = {}
    for i in range(n_queries):
        docs = rng.sample(range(n_docs), K)
        if rng.random() < 0.7:
            docs[rng.randrange(K)] = int(next(iter(qrels[f"q{i}"]))[1:])
        run[f"q{i}"] = {f"d{d}": rng.random() for d in docs}
    return qrels, run


def bench_metrics(n_queries: int) -> dict:
    import pytrec_eval
    from ranx import Qrels, Run, evaluate

    from wikihow_tiir.retrieval.metrics import compute_metrics, ranked

    qrels, run = _metrics_case(n_queries, N_DOCS)
    out: dict = {"queries": n_queries, "depth": K}

    t = time.perf_counter()
    ours = compute_metrics(qrels, run)
    out["ours_s"] = time.perf_counter() - t

    t = time.perf_counter()
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"recall.1,5,20,100", "ndcg_cut.5,10,20", "recip_rank"})
    per = ev.evaluate(run)
    out["pytrec_eval_one_call_s"] = time.perf_counter() - t
    for k in (5, 10, 20):
        cut = {q: {d: s[d] for d in ranked(s)[:k]} for q, s in run.items()}
        pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
    out["pytrec_eval_full_set_s"] = time.perf_counter() - t
    ref = sum(v["ndcg_cut_10"] for v in per.values()) / len(qrels)
    out["max_abs_diff_ndcg_at_10_vs_pytrec"] = abs(ref - ours["ndcg_at_10"])

    names = ["recall@1", "recall@5", "recall@20", "recall@100", "mrr@5", "mrr@10", "mrr@20",
             "ndcg@5", "ndcg@10", "ndcg@20"]
    for label in ("ranx_first_call_s", "ranx_warm_s"):
        t = time.perf_counter()
        evaluate(Qrels(qrels), Run(run), names)
        out[label] = time.perf_counter() - t
    out["speedup_vs_pytrec_eval_one_call"] = out["pytrec_eval_one_call_s"] / out["ours_s"]
    out["speedup_vs_pytrec_eval_full_set"] = out["pytrec_eval_full_set_s"] / out["ours_s"]
    out["speedup_vs_ranx_warm"] = out["ranx_warm_s"] / out["ours_s"]
    return out


_SEARCH_CHILD = """
import json, resource, sys, time
import numpy as np
import torch
from wikihow_tiir.evaluate.search import exact_search
exact_search(np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32), k=2)  # warm-up: lazy imports
nq, nd, dim, k = (int(x) for x in sys.argv[1:5])
rng = np.random.default_rng(0)
docs = rng.standard_normal((nd, dim), dtype=np.float32)
docs /= np.linalg.norm(docs, axis=1, keepdims=True)
queries = rng.standard_normal((nq, dim), dtype=np.float32)
queries /= np.linalg.norm(queries, axis=1, keepdims=True)
ids = [f"wh-{i}-s1" for i in range(nd)]
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
top = exact_search(queries, docs, k=k, doc_ids=ids)
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
# same-process baseline: plain numpy, 1024-query blocks, argpartition + sort of the k best
sub = queries[:1024]
t = time.perf_counter()
ours_sub = exact_search(sub, docs, k=k, doc_ids=ids)
ours_sub_s = time.perf_counter() - t
t = time.perf_counter()
scores = sub @ docs.T
part = np.argpartition(-scores, k, axis=1)[:, :k]
best = np.take_along_axis(scores, part, axis=1)
order = np.argsort(-best, axis=1, kind="stable")
naive = np.take_along_axis(part, order, axis=1)
naive_s = time.perf_counter() - t
agree = float((naive[:, :10] == ours_sub.indices[:, :10]).mean())
print(json.dumps({"queries": nq, "documents": nd, "dim": dim, "k": k, "wall_s": wall,
                  "peak_rss_mib": peak / 1024, "rss_before_search_mib": base_rss / 1024,
                  "inputs_mib": (docs.nbytes + queries.nbytes) / 2**20,
                  "first_1024_queries_s": ours_sub_s, "numpy_argpartition_1024_queries_s": naive_s,
                  "ratio_vs_numpy_argpartition": naive_s / ours_sub_s,
                  "top10_agreement_with_numpy": agree}))
"""


def bench_search(n_queries: int, n_docs: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", _SEARCH_CHILD, str(n_queries), str(n_docs), str(DIM), str(K)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict:
    import os

    nq, nd = (1000, 20_000) if quick else (N_QUERIES, N_DOCS)
    return {
        "cpu_count": os.cpu_count(),
        "metrics": bench_metrics(nq),
        "search": bench_search(nq, nd),
        "targets": {"metrics": "no slower than pytrec_eval", "search": "under 30 s and 2 GiB on 2 cores"},
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
