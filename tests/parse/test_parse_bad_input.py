"""Bad and odd input: every case ends in a ParseError with a reason or in a parse note, never a crash.

Variants are built in memory from the real fixture pages (the files themselves are never touched).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from wikihow_tiir.parse import ParseError, detect_layout, parse_html

HTML = Path(__file__).resolve().parents[1] / "fixtures" / "wikihow_html"


def page(name: str) -> str:
    return (HTML / name).read_text(encoding="utf-8")


def reason(html, url=None) -> str:
    with pytest.raises(ParseError) as info:
        parse_html(html, url=url)
    assert str(info.value)  # a message for people, not only a code
    return info.value.reason


@pytest.mark.parametrize("html", [b"", "", b"   \n\t ", "\ufeff"])
def test_empty(html):
    assert reason(html) == "empty"


def test_binary_garbage():
    rng = random.Random(7)
    assert reason(rng.randbytes(20000)) == "not-html"
    png = b"\x89PNG\r\n\x1a\n" + rng.randbytes(4000)
    assert reason(png) == "not-html"
    assert detect_layout(png) == "unknown"


def test_plain_text_and_wrong_types():
    assert reason(b"just some words, no markup at all") == "not-html"
    assert reason(None) == "not-html"  # type: ignore[arg-type]
    assert reason(12345) == "not-html"  # type: ignore[arg-type]


def test_not_a_wikihow_page():
    other = ("<!doctype html><html lang=en><head><title>Recipes</title></head><body><h1>How to Boil Eggs</h1>"
             "<h2>Steps</h2><ol><li><b>Boil water.</b> Then add eggs.</li></ol>"
             "<p>Found via wikiHow, thanks!</p></body></html>")
    assert reason(other) == "not-wikihow"
    assert detect_layout(other) == "unknown"


def test_no_steps_stub():
    assert reason((HTML / "ja-cook-adobo-quality-review.html").read_bytes()) == "no-steps"


def test_no_steps_but_json_ld_says_otherwise():
    html = page("grill-zucchini.html").replace('class="section steps', 'class="section stepz') \
                                     .replace("steps_list_2", "steps_list_9")
    with pytest.raises(ParseError) as info:
        parse_html(html)
    assert info.value.reason == "no-steps" and "JSON-LD HowTo lists 17 steps" in str(info.value)


def test_truncated_mid_step_keeps_complete_steps():
    html = page("grill-zucchini.html")
    cut = html.index("Dull or dead-looking zucchinis")  # inside step 2 of the last method
    article = parse_html(html[:cut])
    assert [len(s.steps) for s in article.sections] == [6, 7, 1]
    assert article.sections[-1].steps[0].summary == "Look for a small-to-medium-sized zucchini."
    assert any("truncated inside step 2 of section 3" in n for n in article.parse_notes)
    assert article.sections[-1].steps[0].media  # the complete step keeps its image


def test_json_ld_step_count_mismatch_is_a_note():
    html = page("grill-zucchini.html")
    # the last step of the page (li.final_li) turned into a non-step element
    html = html.replace('<li class="final_li" id="step-id-216">', '<div class="final_li" id="step-id-216">')
    article = parse_html(html)
    assert [len(s.steps) for s in article.sections] == [6, 7, 3]
    assert "json-ld HowTo has 17 steps, DOM has 16" in article.parse_notes


def test_truncated_after_the_steps_is_only_a_note():
    html = page("grill-zucchini.html")
    cut = html.index('<div class="section tips')
    article = parse_html(html[:cut].encode("utf-8"))
    assert [len(s.steps) for s in article.sections] == [6, 7, 4]
    assert any("truncated" in n for n in article.parse_notes)


def test_truncated_before_any_complete_step():
    html = page("cook-lamb-steaks.html")
    cut = html.index('<div class="step_num">1</div>')
    assert reason(html[:cut]) == "truncated"
    assert reason(html[: len(html) // 10]) == "truncated"


def test_step_without_bold_summary():
    html = page("grill-zucchini.html").replace('<b class="whb">Heat up the grill.</b>', "", 1)
    article = parse_html(html)
    first = article.sections[0].steps[0]
    assert first.summary == ""
    assert first.detail.startswith("Grilled zucchini is delicious")
    assert len(first.media) == 1
    assert any("without a bold summary: 1.1" in n for n in article.parse_notes)


def test_bold_lead_not_at_the_start_is_still_the_summary():
    html = page("grill-zucchini.html").replace('<b class="whb">Heat up the grill.</b>',
                                               'First, <b class="whb">heat up the grill.</b>', 1)
    first = parse_html(html).sections[0].steps[0]
    assert first.summary == "heat up the grill."
    assert first.detail.startswith("First, Grilled zucchini")


def test_image_block_wrapped_in_stray_markup():
    html = page("grill-zucchini.html")
    anchor = '<a name="step_1_1" class="stepanchor"></a>'
    num = '<div class="step_num">1</div>'
    start, end = html.index(anchor) + len(anchor), html.index(num)
    html = html[:start] + '<div class="stray"><b class="whb"><span>' + html[start:end] + "</span></b></div>" + html[end:]
    first = parse_html(html).sections[0].steps[0]
    assert first.summary == "Heat up the grill."
    assert [m.url.rsplit("/", 1)[-1] for m in first.media] == ["v4-460px-Grill-Zucchini-Step-1-Version-2.jpg"]


def test_duplicate_image_urls():
    html = page("grill-zucchini.html")
    anchor = '<a name="step_1_1" class="stepanchor"></a>'
    num = '<div class="step_num">1</div>'
    start, end = html.index(anchor) + len(anchor), html.index(num)
    block = html[start:end]
    # the same image block twice in step 1, and once more in step 3
    html = html[:start] + block + block + html[start + len(block):]
    anchor3 = '<a name="step_1_3" class="stepanchor"></a>'
    at = html.index(anchor3) + len(anchor3)
    html = html[:at] + block + html[at:]
    article = parse_html(html)
    steps = article.sections[0].steps
    assert len(steps[0].media) == 1
    assert steps[0].media[0].url in [m.url for m in steps[2].media]
    assert any("same media URL in several steps: 1.3 repeats 1.1" in n for n in article.parse_notes)


def test_relative_and_protocol_relative_urls():
    html = page("grill-zucchini.html")
    small = 'data-src="https://www.wikihow.com/images/thumb/0/0f/'
    html = html.replace(small, 'data-src="//www.wikihow.com/images/thumb/0/0f/', 1)
    html = html.replace('data-poster="https://www.wikihow.com/images/thumb/7/76/',
                        'data-poster="/images/thumb/7/76/', 1)
    steps = parse_html(html).sections[0].steps
    assert steps[0].media[0].url.startswith("https://www.wikihow.com/images/thumb/0/0f/")
    assert steps[1].media[0].poster_url.startswith("https://www.wikihow.com/images/thumb/7/76/")


def test_relative_urls_resolve_against_the_page_host():
    html = page("ja-get-your-crush-to-like-you.html").replace(
        'data-srclarge="https://www.wikihow.com/images/thumb/0/06/', 'data-srclarge="/images/thumb/0/06/', 1)
    img = parse_html(html).sections[0].steps[1].media[0]
    assert img.large_url.startswith("https://www.wikihow.jp/images/thumb/0/06/")


def test_fragment_with_url_argument():
    raw = (HTML / "unclog-a-toilet.fragment.html").read_bytes()
    article = parse_html(raw, url="https://es.wikihow.com/Desatascar-un-inodoro")
    assert article.url == "https://es.wikihow.com/Desatascar-un-inodoro"
    assert article.lang == "es"


def test_declared_legacy_charset_is_honoured():
    html = page("ja-prepare-for-job-hunting.html").replace('<meta charset="utf-8"', '<meta charset="shift_jis"', 1)
    raw = html.encode("shift_jis", errors="replace")
    ours = parse_html(raw)
    assert ours.sections[0].steps[0].summary == parse_html(page("ja-prepare-for-job-hunting.html")).sections[0].steps[0].summary


def test_invalid_utf8_bytes_are_replaced_not_fatal():
    raw = (HTML / "marinate-pork.html").read_bytes()
    at = raw.index(b"<ol class=\"steps_list_2\">")
    broken = raw[:at] + b"\xff\xfe\xc3(" + raw[at:]
    assert [len(s.steps) for s in parse_html(broken).sections] == [7, 6]


def test_unclosed_tags_and_junk_inside_steps():
    html = page("know-if-you-are-in-ketosis.html").replace("</li>", "</li><script>WH.broken(", 3)
    article = parse_html(html)
    assert sum(len(s.steps) for s in article.sections) >= 1
    assert all("WH." not in st.detail for s in article.sections for st in s.steps)


def test_tips_and_warnings_in_an_unknown_language_by_position():
    html = page("ja-prepare-for-job-hunting.html")
    html = html.replace("ポイント", "Savjeti").replace("注意事項", "Upozorenja")
    named = parse_html(html)  # the ad slots still say data-type="tips" / "warnings"
    assert len(named.tips) == 3 and len(named.warnings) == 3
    assert not any("position" in n for n in named.parse_notes)
    html = html.replace('data-type="tips"', 'data-type="a"').replace('data-type="warnings"', 'data-type="b"')
    by_position = parse_html(html)
    assert by_position.tips == named.tips and by_position.warnings == named.warnings
    assert "tips recognised by position only" in by_position.parse_notes


def test_step_list_without_the_steps_list_2_class():
    html = page("know-if-you-are-in-ketosis.html").replace('class="steps_list_2"', 'class="steps_list_3"')
    assert [len(s.steps) for s in parse_html(html).sections] == [4, 5]


def test_plain_bold_lead_when_a_step_lacks_b_whb():
    html = page("grill-zucchini.html").replace('<b class="whb">Heat up the grill.</b>',
                                               "<strong>Heat up the grill.</strong>", 1)
    assert parse_html(html).sections[0].steps[0].summary == "Heat up the grill."


def test_nested_sub_bullets_keep_their_depth():
    html = page("grill-zucchini.html").replace(
        "<li>While waiting for the grill to heat up",
        "<li>Prep <ul><li>Set the table.</li></ul></li><li>While waiting for the grill to heat up", 1)
    detail = parse_html(html).sections[0].steps[0].detail
    assert "\n- Prep\n  - Set the table.\n- While waiting" in detail


def test_pathological_nesting_keeps_the_article():
    # was a "parser-error" (RecursionError in the renderer); see test_parse_pathological.py
    deep = "<span>" * 3000 + "deep" + "</span>" * 3000
    html = page("grill-zucchini.html").replace("Grilled zucchini is delicious", deep + " Grilled", 1)
    article = parse_html(html)
    assert article.sections[0].steps[0].detail.startswith("deep Grilled")
    assert "2503 element(s) nested deeper than 512 levels flattened (their text is kept)" in article.parse_notes
