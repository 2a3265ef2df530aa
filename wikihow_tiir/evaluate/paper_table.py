"""``evaluate --paper-table``: our runs beside the paper's Table 2 (``difficulty.PAPER_REFERENCE``).

Each of the paper's eleven rows is followed by our runs of the same model family (``gme:`` under
GME, ``st:`` BGE/GTE models under theirs, ``clip:`` under the fine-tuned CLIP row ...), every row
labelled *paper* or *ours* with the number of queries and documents it was scored on; our runs
that match no row of the paper follow at the end. Numbers over a smaller corpus are higher than
the paper's would be on the same model: the table says so instead of hiding it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from wikihow_tiir.evaluate.results import label
from wikihow_tiir.retrieval.metrics import PAPER_METRICS

# paper row number -> our runs that reproduce it (a regular expression on the run name, lower-cased)
MATCHES: dict[int, str] = {
    2: r"^gme:",
    3: r"^e5v:",
    5: r"^st:.*bge",
    6: r"^st:.*gte-large",
    7: r"^st:.*gte-qwen",
    8: r"^jina-clip:",
    9: r"^clip:",
    11: r"^mme:|^mme-",
}


def paper_comparison(rows: Mapping[str, Mapping[str, float]], n_documents: int, n_queries: int,
                     split: str = "test") -> str:
    """Markdown: the paper's Table 2 with our matching runs under each of its rows."""
    from wikihow_tiir.difficulty import PAPER_REFERENCE

    ref = PAPER_REFERENCE
    theirs = f"paper ({ref['test_queries']:,} q / {ref['corpus_documents']:,} docs)"
    ours = f"ours ({n_queries:,} q / {n_documents:,} docs)"
    out = ["## Beside the paper's Table 2\n\n",
           f"*paper*: Table 2 of arXiv 2502.12799, test split, {ref['test_queries']:,} queries over "
           f"{ref['corpus_documents']:,} documents. *ours*: this evaluation, split `{split}`, {n_queries:,} "
           f"queries over **{n_documents:,} documents**"
           + (" (a smaller corpus is easier: our numbers are not comparable with the paper's)"
              if n_documents < ref["corpus_documents"] else "") + ".\n\n",
           "| No. | Setting | Model | #Param | Source | " + " | ".join(label(c) for c in PAPER_METRICS) + " |\n",
           "|---:|---|---|---|---|" + "---:|" * len(PAPER_METRICS) + "\n"]
    used: set[str] = set()
    for r in ref["rows"]:
        out.append(f"| {r['no']} | {r['setting']} | {r['model']} | {r['params']} | {theirs} | "
                   + " | ".join(f"{r[c]:.2f}" for c in PAPER_METRICS) + " |\n")
        pattern = MATCHES.get(r["no"])
        for run, m in rows.items():
            if pattern and run not in used and re.search(pattern, run.lower()):
                used.add(run)
                out.append(f"| | | `{run}` | | {ours} | " + " | ".join(f"{100 * m[c]:.2f}" for c in PAPER_METRICS)
                           + " |\n")
    for run, m in rows.items():
        if run not in used:
            out.append(f"| | (not in the paper) | `{run}` | | {ours} | "
                       + " | ".join(f"{100 * m[c]:.2f}" for c in PAPER_METRICS) + " |\n")
    return "".join(out)
