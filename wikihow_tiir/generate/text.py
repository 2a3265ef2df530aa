"""Language-agnostic text helpers: sentences, tokens, BM25 salience, verbatim-copy share.

No English-only rules: Japanese and Chinese text has no spaces, so sentences also end at
"。！？", tokens count each CJK character, and matching uses CJK character bigrams.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from wikihow_tiir.tokens import CJK_CHARS, TOKENIZER_NAME, count_tokens, tokens

__all__ = ["TOKENIZER_NAME", "bm25_salience", "copied_share", "count_tokens", "match_terms", "overlap",
           "split_sentences", "tokens"]

_CJK_RUN = re.compile(rf"[{CJK_CHARS}]+")
# a sentence ends at . ! ? (also before a closing quote or bracket) followed by a space, at 。！？, or a line end
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"”’)\]])\s+|(?<=[。！？])|\n+")
_SPACE = re.compile(r"\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences (and lines) of ``text``, stripped, empties dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def match_terms(text: str) -> list[str]:
    """Terms for matching: lowercased words, plus CJK character bigrams (a CJK 'word' proxy)."""
    out = tokens(text)
    for run in _CJK_RUN.findall(text):
        out.extend(run[i:i + 2] for i in range(len(run) - 1))
    return out


def bm25_salience(sentences: Sequence[str], query: str, k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 score of each sentence for ``query`` (the sentences are the collection).

    Used to find the query sentences that say most about what the document's pictures show.
    """
    docs = [Counter(match_terms(s)) for s in sentences]
    if not docs:
        return []
    n = len(docs)
    avg_len = sum(sum(d.values()) for d in docs) / n or 1.0
    df: Counter[str] = Counter()
    for d in docs:
        df.update(d.keys())
    q_terms = set(match_terms(query))
    scores = []
    for d in docs:
        length = sum(d.values())
        score = 0.0
        for t in q_terms:
            tf = d.get(t, 0)
            if not tf:
                continue
            idf = math.log(1.0 + (n - df[t] + 0.5) / (df[t] + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg_len))
        scores.append(score)
    return scores


def _normalized(text: str) -> str:
    return _SPACE.sub(" ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def _char_ngrams(text: str, n: int) -> set[str]:
    t = _normalized(text)
    return {t[i:i + n] for i in range(max(0, len(t) - n + 1))}


def copied_share(source: str, query: str, n: int = 12) -> float:
    """Share of ``source``'s character n-grams that reappear in ``query`` (0 = none, 1 = all).

    Character n-grams work for every script; n=12 is about two English words or a CJK phrase,
    long enough that shared vocabulary alone does not count as copying.
    """
    src = _char_ngrams(source, n)
    if not src:
        return 0.0
    return len(src & _char_ngrams(query, n)) / len(src)


def overlap(a: str, b: str) -> float:
    """Share of ``a``'s matching terms that occur in ``b`` (for mapping sentences to steps)."""
    ta = set(match_terms(a))
    if not ta:
        return 0.0
    return len(ta & set(match_terms(b))) / len(ta)
