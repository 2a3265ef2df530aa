"""The one tokenizer of the project's text checks, and the answer-leak figures built on it.

Words for spaced scripts, single characters for CJK (Japanese and Chinese have no spaces), all
lower-cased, punctuation dropped. Generation counts query length with it, the filter measures
lexical copying and answer leaks with it, and the offline writer uses the same leak figures to
avoid giving the answer away, so what the writer avoids is exactly what the filter rejects.

(The filter's length limits are counted in MiniLM WordPiece tokens instead; see ``stats.py``.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

TOKENIZER_NAME = "words+cjk-chars"  # how "text tokens" are counted in stats and checks

# Hiragana, Katakana, CJK ideographs (+ extension A, compatibility), half-width Katakana
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_TOKEN = re.compile(rf"[{CJK_CHARS}]|[^\W{CJK_CHARS}]+")
_CJK_RUN = re.compile(rf"[{CJK_CHARS}]+")
_CJK_ONE = re.compile(rf"[{CJK_CHARS}]")
_PARENTHETICAL = re.compile(r"\([^()]*\)|（[^（）]*）|\[[^\[\]]*\]")
_HOW_TO = re.compile(r"^\s*how\s+to\s+", re.IGNORECASE)
# Japanese titles end in "...する方法" / "...の仕方" ("the way to ..."): the goal is what comes before
_JA_GOAL_SUFFIX = re.compile(r"(?:する|の)?(?:方法|やり方|仕方|コツ)\s*$")
NO_SPACE_LANGS = frozenset({"ja", "zh"})


def tokens(text: str) -> list[str]:
    """Lower-cased words; each CJK character is its own token."""
    return _TOKEN.findall((text or "").lower())


def count_tokens(text: str) -> int:
    return len(tokens(text))


def cjk_runs(text: str) -> list[str]:
    return _CJK_RUN.findall(text or "")


def is_cjk_heavy(text: str) -> bool:
    """More CJK characters than other tokens (a Japanese or Chinese text)."""
    toks = tokens(text)
    cjk = sum(1 for t in toks if _CJK_ONE.fullmatch(t))
    return cjk > len(toks) - cjk


def base_lang(code: str) -> str:
    """``"pt-BR"`` -> ``"pt"``, ``"zh_Hans"`` -> ``"zh"``."""
    return re.split(r"[-_]", (code or "").strip().lower(), maxsplit=1)[0]


# --------------------------------------------------------------------------- answer leaks


def goal_core(goal: str) -> str:
    """The goal as a query might restate it: without "How to", parenthetical qualifiers or the
    Japanese "...する方法" ending. ``"How to Grill Zucchini (Easy)"`` -> ``"Grill Zucchini"``."""
    text = _PARENTHETICAL.sub(" ", goal or "")
    text = _HOW_TO.sub("", text).strip().rstrip(".!?。！？")
    return _JA_GOAL_SUFFIX.sub("", text).strip()


def phrase_tokens(text: str) -> list[str]:
    """Tokens of a title-like phrase (parenthetical qualifiers dropped)."""
    return tokens(_PARENTHETICAL.sub(" ", text or ""))


def longest_common_run(a: Sequence[str], b: Sequence[str], cap: int = 256) -> int:
    """Length of the longest run of consecutive tokens that occurs in both ``a`` and ``b``.

    Grows the run one token at a time, following only the start positions of ``a`` that still
    match: about ``len(a) + len(b)`` set operations per length reached, no quadratic table.
    """
    if not a or not b:
        return 0
    vocab = set(b)
    starts = [i for i in range(len(a)) if a[i] in vocab]
    n = 0
    while starts and n < cap:
        n += 1
        grams = {tuple(b[j:j + n]) for j in range(len(b) - n + 1)}
        starts = [i for i in starts if i + n <= len(a) and tuple(a[i:i + n]) in grams]
        if not starts:
            return n - 1
    return n


def contains_run(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    """Whether ``needle`` occurs as consecutive tokens in ``haystack``."""
    k = len(needle)
    if k == 0 or k > len(haystack):
        return False
    first = needle[0]
    target = list(needle)
    return any(haystack[i] == first and list(haystack[i:i + k]) == target for i in range(len(haystack) - k + 1))


@dataclass(frozen=True, slots=True)
class LeakFigures:
    """How much of its answer a query's text gives away (all measured on :func:`tokens`).

    ``goal`` / ``title``: share of the goal's (section title's) tokens in the longest run of them
    found verbatim in the query (1.0 = the whole phrase is in the text); ``None`` when the phrase is
    empty. ``goal_tokens`` / ``title_tokens``: the phrase lengths (a one-word title is too common to
    count as a leak). ``step_copy``: the longest run of tokens copied verbatim from one step text.
    """

    goal: float | None
    goal_tokens: int
    title: float | None
    title_tokens: int
    step_copy: int


def _share_of_phrase(query: Sequence[str], phrase: Sequence[str]) -> float | None:
    if not phrase:
        return None
    if contains_run(query, phrase):
        return 1.0
    return longest_common_run(phrase, query) / len(phrase)


def leak_figures(text: str, goal: str, title: str, steps: Sequence[str]) -> LeakFigures:
    """The leak figures of a query text against its positive document's goal, title and step texts."""
    q = tokens(text)
    g = tokens(goal_core(goal))
    t = phrase_tokens(title)
    copy = max((longest_common_run(q, tokens(s)) for s in steps if s), default=0)
    return LeakFigures(goal=_share_of_phrase(q, g), goal_tokens=len(g), title=_share_of_phrase(q, t),
                       title_tokens=len(t), step_copy=copy)
