"""Per-query text checks that need no embeddings: encoding, placeholders, language, lexical copy.

Everything here is pure and cheap (regular expressions over one query at a time), so the filter
can run it over the paper's ~81k queries in seconds.
"""

from __future__ import annotations

import functools
import re

from wikihow_tiir.tokens import base_lang, tokens

# ----------------------------------------------------------------------------- encoding


def text_problem(text: str) -> str | None:
    """Why ``text`` is not clean Unicode text, or None.

    Non-UTF-8 input reaches us either as lone surrogates (``errors="surrogateescape"``) or as
    U+FFFD replacement characters (``errors="replace"``); both mean the generator saw broken bytes.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"not encodable as UTF-8 at character {exc.start} (lone surrogate: undecodable input bytes)"
    if "\ufffd" in text:
        return f"contains the replacement character U+FFFD at character {text.index(chr(0xFFFD))}"
    if "\x00" in text:
        return "contains a NUL character"
    return None


def safe_text(text: str) -> str:
    """``text`` with anything unencodable replaced, so tokenizers and the embedder never fail on it."""
    return text.encode("utf-8", errors="replace").decode("utf-8")


# ----------------------------------------------------------------------------- placeholders

# Leftovers of prompt templates and of the generator's own image markers. The interleaved format keeps
# images in their own positions, so any of these inside a text position is a generation bug.
_PLACEHOLDER = re.compile(
    r"""
      \[\s*(?:img|image|picture|photo|caption|figure)[^\]\n]{0,20}\]     # [img] [Image 2] [caption]
    | <\s*/?\s*(?:img|image|picture)\b[^>\n]{0,40}>                    # <image> <img src=...> <image_1>
    | \{\{?\s*[A-Za-z_][\w.\- ]{0,40}\}\}?                             # {caption} {{ goal }}
    | <\|[^|\n]{1,40}\|>                                               # <|im_end|> and other special tokens
    | \b(?:TODO|TBD|PLACEHOLDER|INSERT\s+\w+\s+HERE|lorem\s+ipsum)\b
    | \b(?:IMAGE|IMG)_\d+\b                                            # IMAGE_1
    """,
    re.VERBOSE | re.IGNORECASE,
)


def find_placeholder(text: str) -> str | None:
    """The first leftover placeholder in ``text`` (as written there), or None."""
    m = _PLACEHOLDER.search(text)
    return m.group(0) if m else None


# ----------------------------------------------------------------------------- language

_SCRIPTS = {
    "kana": re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]"),
    "han": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"),
    "hangul": re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "arabic": re.compile(r"[\u0600-\u06ff\u0750-\u077f]"),
    "thai": re.compile(r"[\u0e00-\u0e7f]"),
    "devanagari": re.compile(r"[\u0900-\u097f]"),
    "hebrew": re.compile(r"[\u0590-\u05ff]"),
    "greek": re.compile(r"[\u0370-\u03ff]"),
    "latin": re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]"),
}

# the script(s) a language is written in; Latin-script languages are told apart by langdetect
_LANG_SCRIPTS: dict[str, tuple[str, ...]] = {
    "ja": ("kana", "han"), "zh": ("han",), "ko": ("hangul", "han"),
    "ru": ("cyrillic",), "uk": ("cyrillic",), "bg": ("cyrillic",),
    "ar": ("arabic",), "fa": ("arabic",), "ur": ("arabic",),
    "th": ("thai",), "hi": ("devanagari",), "mr": ("devanagari",), "ne": ("devanagari",),
    "he": ("hebrew",), "el": ("greek",),
}
_LATIN_LANGS = {"en", "es", "pt", "de", "fr", "it", "nl", "id", "vi", "cs", "tr", "pl", "ro", "sv", "da",
                "no", "fi", "hu", "sk", "sl", "hr", "ca", "tl", "so", "sw", "af", "et", "lt", "lv", "sq", "cy"}
_LANGDETECT_CHARS = 400  # langdetect's answer is stable well before this; longer input only costs time

# Function words of the biggest Latin-script wikiHow languages. A text where the article language's
# function words clearly dominate is accepted without langdetect (~3 ms a query, minutes at 81k queries);
# anything less clear-cut goes to langdetect.
_FUNCTION_WORDS: dict[str, frozenset[str]] = {k: frozenset(v.split()) for k, v in {
    "en": "the and to of a i is it my in for that with on you this was have but not be are at so do can "
          "what how they or if me we an from there just when about would all your them one will",
    "es": "de la que el en y los se del las un por con no una su para es al lo como más pero sus le ya o "
          "este porque esta entre cuando muy sin sobre también me hasta hay donde mi qué cómo",
    "pt": "de a o que e do da em um para é com não uma os no se na por mais as dos como mas ao ele das "
          "à seu sua ou quando muito nos já eu também só pelo pela até isso você meu minha",
    "fr": "de la le et les des en un une du est que pour qui dans pas sur au il ne se ce plus par je avec "
          "vous mais ou son sa mon ma comment faire",
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an "
          "er hat aus bei sind wie ich mein meine aber oder wenn kann",
    "it": "di e il la che in a per un è non una del le si con da i mi come ma ho al della lo sono gli "
          "se anche nel questo cosa mio mia",
    "nl": "de het een en van in is dat op te ik niet zijn met voor die er maar om je als aan ook hoe "
          "mijn wat bij nog kan",
    "id": "yang dan di itu dengan untuk tidak ini dari dalam akan pada juga saya ke karena bisa ada "
          "mereka atau sudah apa bagaimana",
}.items()}
_FAST_PATH_MIN_WORDS = 12


def language_supported(code: str) -> bool:
    lang = base_lang(code)
    return lang in _LANG_SCRIPTS or lang in _LATIN_LANGS


def script_shares(text: str) -> dict[str, float]:
    """Share of each script among the letters of ``text`` (scripts with no letters are left out)."""
    counts = {name: len(rx.findall(text)) for name, rx in _SCRIPTS.items()}
    total = sum(counts.values())
    if total == 0:
        return {}
    return {k: v / total for k, v in counts.items() if v}


@functools.lru_cache(maxsize=1)
def _langdetect():
    from langdetect import DetectorFactory, detect_langs

    DetectorFactory.seed = 0  # langdetect samples n-grams at random; a fixed seed makes it deterministic
    return detect_langs


def language_score(text: str, lang: str) -> float | None:
    """Estimated probability that ``text`` is written in ``lang`` (0..1), or None when ``lang`` is unknown.

    Non-Latin languages are judged by script alone (Japanese: kana + kanji; a Japanese query written in
    English scores ~0), which needs no model and works on short CJK text where n-gram detectors fail.
    Latin-script languages: the Latin share times langdetect's probability for ``lang``.
    """
    lang = base_lang(lang)
    shares = script_shares(text)
    if lang in _LANG_SCRIPTS:
        score = sum(shares.get(s, 0.0) for s in _LANG_SCRIPTS[lang])
        if lang == "zh" and shares.get("kana", 0.0) > 0.05:  # kana means Japanese, not Chinese
            score = 0.0
        return max(0.0, min(1.0, score))
    if lang not in _LATIN_LANGS:
        return None
    latin = shares.get("latin", 0.0)
    if latin < 0.5:
        return latin
    if lang in _FUNCTION_WORDS and _function_words_say(text, lang):
        return latin
    from langdetect.lang_detect_exception import LangDetectException

    try:
        found = _langdetect()(text[:_LANGDETECT_CHARS])
    except LangDetectException:  # no letters langdetect can use
        return 0.0
    prob = next((g.prob for g in found if base_lang(g.lang) == lang), 0.0)
    return latin * prob


def _function_words_say(text: str, lang: str) -> bool:
    """True when ``lang``'s function words are frequent and at least 1.5x any other language's."""
    words = _WORD.findall(text.lower())
    if len(words) < _FAST_PATH_MIN_WORDS:
        return False
    ratios = {k: sum(w in fw for w in words) / len(words) for k, fw in _FUNCTION_WORDS.items()}
    mine = ratios.pop(lang)
    return mine >= 0.2 and mine >= 1.5 * max(ratios.values())


_WORD = re.compile(r"[^\W\d_]+")


# ----------------------------------------------------------------------------- lexical copy

def lexical_tokens(text: str) -> list[str]:
    """Lower-cased words; each CJK character is its own token (CJK text has no spaces)."""
    return tokens(text)


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def lexical_overlap(query: str, document: str, n: int = 3) -> float:
    """Share of the query's distinct word n-grams that also occur in the document (0..1).

    n-grams rather than words: a genuine paraphrase shares many single words with its document
    (topic words, function words) but few 3-word runs; a query that pastes step summaries shares most.
    """
    q = ngrams(lexical_tokens(query), n)
    if not q:
        return 0.0
    d = ngrams(lexical_tokens(document), n)
    return len(q & d) / len(q)
