"""The embedding-free checks: encoding, placeholders, language id, lexical overlap."""

from __future__ import annotations

import pytest

from wikihow_tiir.filter.text import (
    base_lang,
    find_placeholder,
    language_score,
    language_supported,
    lexical_overlap,
    lexical_tokens,
    safe_text,
    text_problem,
)

EN = "I want to clean the wheels of my car because they are covered in brake dust after a long trip."
ES = "Quiero limpiar las ruedas de mi coche porque están cubiertas de polvo de freno después de un viaje largo."
JA = "化粧をするといつも肌がかさかさして、ファンデーションがきれいにのりません。どうすればいいですか？"
ZH = "我想清洁汽车的轮毂，因为长途旅行后上面全是刹车粉尘。我应该怎么做？"


def test_text_problem_finds_undecodable_input():
    raw = b"caf\xe9 au lait"  # Latin-1 bytes, not UTF-8
    assert "surrogate" in text_problem(raw.decode("utf-8", errors="surrogateescape"))
    assert "U+FFFD" in text_problem(raw.decode("utf-8", errors="replace"))
    assert text_problem("a\x00b") == "contains a NUL character"
    assert text_problem(JA) is None and text_problem(EN) is None
    assert safe_text("x\udcffy") == "x?y"


@pytest.mark.parametrize("text", [
    "My wheels are dirty [img] and dull.", "See [Image 2] below", "Look at <image> here", "<image_1> my sink",
    "I tried {caption} already", "{{ goal }} is what I want", "done<|im_end|>", "TODO: write the query",
    "as shown in IMAGE_3", "<img src='x.png'>",
])
def test_placeholders_are_found(text):
    assert find_placeholder(text)


@pytest.mark.parametrize("text", [EN, ES, JA, "I paid $20 (in cash) [approximately] for it.",
                                  "Use a 3:1 ratio of water to vinegar; see step 2."])
def test_ordinary_text_has_no_placeholder(text):
    assert find_placeholder(text) is None


def test_language_scores():
    assert language_score(EN, "en") > 0.9
    assert language_score(ES, "es") > 0.9
    assert language_score(ES, "en") < 0.5
    assert language_score(EN, "es") < 0.5
    assert language_score(JA, "ja") > 0.9
    assert language_score(EN, "ja") < 0.1  # a Japanese article's query written in English
    assert language_score(JA, "en") < 0.5
    assert language_score(ZH, "zh") > 0.9
    assert language_score(JA, "zh") == 0.0  # kana: Japanese, not Chinese
    assert language_score(EN, "pt-BR") < 0.5 and base_lang("pt-BR") == "pt"
    assert language_score(EN, "xx") is None and not language_supported("xx")
    assert language_score("12345 !!!", "en") == 0.0


def test_language_score_is_deterministic():
    short = "Clean rims fast"
    assert len({language_score(short, "en") for _ in range(5)}) == 1


def test_lexical_overlap():
    doc = "Rinse the rims with a hose. Spray wheel cleaner on each rim. Scrub the rims with a soft brush."
    assert lexical_overlap("Spray wheel cleaner on each rim.", doc) == 1.0
    assert lexical_overlap("My wheels are filthy and I do not know what to use on them.", doc) == 0.0
    assert 0 < lexical_overlap("I will rinse the rims with a hose and then call my friend.", doc) < 0.6
    assert lexical_overlap("", doc) == 0.0
    assert lexical_tokens("肌を整える Rims!") == ["肌", "を", "整", "え", "る", "rims"]
    assert lexical_overlap("化粧水で肌を保湿する。", "洗顔して肌を清潔にする。化粧水で肌を保湿する。") == 1.0
