"""The parser on the 20 real wikiHow pages (counts from tests/fixtures/wikihow_html/SOURCES.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pytest

from wikihow_tiir.parse import ParseError, detect_layout, parse_html
from wikihow_tiir.parse.page import url_hash_id

HTML = Path(__file__).resolve().parents[1] / "fixtures" / "wikihow_html"


class P(NamedTuple):
    id: str | None  # None: no article id on the page (a URL hash is expected)
    revision: str | None
    lang: str
    layout: str
    title: str
    sections: list[tuple[str, str, int]]  # (kind, title, number of steps)
    images: int
    videos: int


EXPECTED: dict[str, P] = {
    "administer-first-aid-to-a-choking-child.fragment.html": P(
        None, None, "en", "app-fragment", "How to Administer First Aid to a Choking Child",
        [("steps", "", 12)], 6, 0),
    "clean-gold-jewelry.html": P(
        "86030", "4150679", "en", "desktop-2010", "How to Clean Gold Jewelry",
        [("method", "Dish Soap Method", 5), ("method", "Ammonia Method", 4),
         ("method", "For Jewelry with Gemstones", 3), ("method", "Toothpaste Method", 1),
         ("method", "Boil In Water Method", 1)], 0, 0),
    "cook-lamb-steaks.html": P(
        "4614251", "28480029", "en", "responsive-2019", "How to Cook Lamb Steaks",
        [("method", "Prepping the Lamb Steaks", 4), ("method", "Grilling the Lamb Steaks", 5),
         ("method", "Baking the Lamb Steaks", 6)], 5, 10),
    "cope-with-the-stress-of-homeschooling.html": P(
        "12076176", "28501940", "en", "responsive-2019",
        "How to Cope with the Stress of Homeschooling (for Parents)",
        [("method", "Adjusting Your Mindset", 5), ("method", "Reducing Stress with a Routine", 7),
         ("method", "Planning for Rough Days", 5)], 16, 0),
    "determine-if-an-information-source-is-reliable.html": P(
        "12064680", "28484635", "en", "responsive-2019",
        "How to Determine if an Information Source Is Reliable (COVID 19)",
        [("method", "Vetting the Source", 6), ("method", "Looking for Signs of Misinformation", 5),
         ("method", "Stopping the Spread of Misinformation", 4)], 15, 0),
    "find-good-exercises-for-kids-online.html": P(
        "12069015", "28504950", "en", "responsive-2019", "How to Find Good Exercises for Your Kids to Do Online",
        [("method", "Kids under Age 5", 6), ("method", "Elementary, Middle, and High School Kids", 5)], 11, 0),
    "grill-fish.html": P(
        "12232", "28438232", "en", "responsive-2019", "How to Grill Fish",
        [("method", "Cleaning the Grill to Prevent Sticking", 4), ("method", "Fillets", 7),
         ("method", "Whole Fish", 8)], 8, 11),
    "grill-zucchini.html": P(
        "4346099", "28457654", "en", "responsive-2019", "How to Grill Zucchini",
        [("method", "Basic Grilled Zucchini", 6), ("method", "Variations", 7),
         ("method", "Picking Out a Good Zucchini", 4)], 11, 6),
    "ja-apply-foundation.html": P(
        "ja-4503712", "13560841", "ja", "responsive-2019", "ファンデーションを塗る方法",
        [("part", "肌を整え、下地を作る", 5), ("part", "ファンデーションを塗る", 5),
         ("part", "自分に合ったファンデーションを選ぶ", 3)], 3, 10),
    "ja-deal-with-people-who-ignore-you.html": P(
        "ja-4508833", "13562229", "ja", "responsive-2019", "自分を無視する相手に対処する方法",
        [("method", "状況を解決する", 8), ("method", "関係を終わらせる時期を知る", 5), ("method", "自信をつける", 8),
         ("method", "より強固な友情を育む", 6)], 27, 0),
    "ja-get-your-crush-to-like-you.html": P(
        "ja-4505565", "13553844", "ja", "responsive-2019", "片思いの相手に好きになってもらう方法",
        [("steps", "", 11), ("method", "自分に興味を持ってもらう", 7)], 18, 0),
    "ja-prepare-for-job-hunting.html": P(
        "ja-4509575", "13567208", "ja", "responsive-2019", "就活の準備をする方法",
        [("method", "自己分析をする", 5), ("method", "業界研究をする", 3), ("method", "企業研究をする", 4)], 0, 0),
    "ja-remove-grease-and-oil-from-a-car-interior.html": P(
        "ja-4508303", "13579448", "ja", "responsive-2019", "車の内装に付着したグリースとオイルを取り除く方法",
        [("method", "カーペットや座席の布地に付着したオイルやグリースを取り除く", 8),
         ("method", "油性洗浄剤を用いてレザーからグリースやオイルを取り除く", 4),
         ("method", "重曹を用いてレザーからオイルやグリースを取り除く", 4),
         ("method", "プラスチックに付着したオイルやグリースを取り除く", 4)], 20, 0),
    "know-if-you-are-in-ketosis.html": P(
        "12078158", "28508550", "en", "responsive-2019", "How to Know if You Are in Ketosis",
        [("method", "Checking Your Ketones", 4), ("method", "Recognizing Common Symptoms", 5)], 9, 0),
    "make-ube-halaya.html": P(
        "1339947", "28405157", "en", "responsive-2019", "How to Make Ube Halaya",
        [("part", "Making Ube Halaya", 10), ("part", "Making Latik (for Topping)", 7)], 7, 10),
    "marinate-pork.html": P(
        "1804516", "28413939", "en", "responsive-2019", "How to Marinate Pork",
        [("method", "Make-your-own marinade", 7), ("method", "Red wine pork marinade", 6)], 3, 10),
    "prevent-cardio-from-burning-muscle.html": P(
        "12067559", "28477204", "en", "responsive-2019", "How to Prevent Cardio from Burning Muscle",
        [("method", "Effective Cardio Workouts", 5), ("method", "Strength Training Workouts", 5),
         ("method", "Exercise Options", 4), ("method", "What to Eat", 4)], 18, 0),
    "unclog-a-toilet.fragment.html": P(
        None, None, "en", "app-fragment", "How to Unclog a Toilet",
        [("steps", "", 3), ("method", "Dish Soap and Hot Water Method", 2), ("method", "Plunger Method", 2),
         ("method", "Wire Coat Hanger Method", 2), ("method", "Plumbing Snake Method", 3)], 6, 0),
    "verify-your-youtube-account.html": P(
        "7902775", "28476336", "en", "responsive-2019", "How to Verify Your YouTube Account",
        [("method", "Verifying Your Account", 6), ("method", "Using New Features and Troubleshooting", 4)], 10, 0),
}

LEAKS = ("WH.", "if (WH.video)", "addScrollLoadItem", "Go to source", "Thanks! Helpful", "Not Helpful",
         "Trustworthy Source", "Advertisement", "広告", "[1]", "google_ad", "\x00")


@cache
def parsed(name: str):
    return parse_html((HTML / name).read_bytes())


def all_texts(article) -> list[str]:
    texts = [article.title, article.goal, article.intro, *article.tips, *article.warnings,
             *article.things_needed, *article.categories]
    for s in article.sections:
        texts.append(s.title)
        for st in s.steps:
            texts += [st.summary, st.detail, *(m.alt for m in st.media), *(m.license for m in st.media)]
    return texts


def test_every_fixture_page_is_covered():
    pages = {p.name for p in HTML.glob("*.html")}
    assert pages == set(EXPECTED) | {"ja-cook-adobo-quality-review.html"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_structure_counts_and_identity(name):
    want = EXPECTED[name]
    a = parsed(name)
    assert a.layout == want.layout == detect_layout((HTML / name).read_bytes())
    assert [(s.kind, s.title, len(s.steps)) for s in a.sections] == want.sections
    assert [s.index for s in a.sections] == list(range(1, len(a.sections) + 1))
    for s in a.sections:
        assert [st.index for st in s.steps] == list(range(1, len(s.steps) + 1))
    kinds = [m.kind for s in a.sections for st in s.steps for m in st.media]
    assert (kinds.count("image"), kinds.count("video")) == (want.images, want.videos)
    assert a.title == want.title and a.goal == want.title
    assert a.lang == want.lang and a.revision == want.revision
    if want.id is None:
        assert a.id == url_hash_id(a.url) and a.url.startswith("https://www.wikihow.com/")
    else:
        assert a.id == want.id
    assert len(a.sha256) == 64


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_script_or_widget_leaks(name):
    for text in all_texts(parsed(name)):
        for leak in LEAKS:
            assert leak not in text, f"{leak!r} leaked into {text[:120]!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_media_urls_are_absolute_and_unique_per_step(name):
    for s in parsed(name).sections:
        for st in s.steps:
            urls = [m.url for m in st.media]
            assert len(urls) == len(set(urls))
            for m in st.media:
                assert m.url.startswith(("https://", "http://"))
                assert m.large_url is None or m.large_url.startswith(("https://", "http://"))
                if m.kind == "video":
                    assert m.url.startswith("https://www.wikihow.com/video/") and " " not in m.url
                    assert m.poster_url and "550px-nowatermark" in m.poster_url
                else:
                    assert m.poster_url is None and "magnify-clip" not in m.url


@pytest.mark.parametrize("name", sorted(n for n, p in EXPECTED.items() if p.layout == "responsive-2019"))
def test_json_ld_cross_check_is_quiet_on_consistent_pages(name):
    assert not any("json-ld" in note for note in parsed(name).parse_notes)


def test_grill_zucchini_details():
    a = parsed("grill-zucchini.html")
    assert a.url == "https://www.wikihow.com/Grill-Zucchini"
    assert a.categories == ["Squash", "Fruits and Vegetables", "Recipes", "Food and Entertaining"]
    assert a.intro.startswith("Zucchini is perfect for dinner parties")
    first = a.sections[0].steps[0]
    assert first.summary == "Heat up the grill."
    assert first.detail.startswith("Grilled zucchini is delicious when well-seared.")
    assert "\n- Heating up a grill is easy." in first.detail
    [img] = first.media
    assert img.url == ("https://www.wikihow.com/images/thumb/0/0f/Grill-Zucchini-Step-1-Version-2.jpg/"
                       "v4-460px-Grill-Zucchini-Step-1-Version-2.jpg")
    assert img.large_url == ("https://www.wikihow.com/images/thumb/0/0f/Grill-Zucchini-Step-1-Version-2.jpg/"
                             "aid4346099-v4-728px-Grill-Zucchini-Step-1-Version-2.jpg")
    assert (img.width, img.height) == (460, 259)
    assert img.alt == "Image titled Grill Zucchini Step 1"
    assert img.license.startswith("© 2020 wikiHow, Inc. All rights reserved.")
    assert "not licensed under the Creative Commons license" in img.license and "<" not in img.license
    second = a.sections[0].steps[1]
    assert second.summary == "Slice the zucchini."
    assert "1⁄4 to 1⁄2 inch" in second.detail  # span.frac kept readable
    [vid] = second.media
    assert vid.kind == "video"
    assert vid.url == "https://www.wikihow.com/video/a/a9/Grill%20Zucchini%20Step%202.360p.mp4"
    assert vid.poster_url == ("https://www.wikihow.com/images/thumb/7/76/Grill-Zucchini-Step-2-Version-2.jpg/"
                              "550px-nowatermark-Grill-Zucchini-Step-2-Version-2.jpg")
    assert vid.license == ""
    assert a.tips[0].startswith("If you're also cooking meat on the grill")
    assert not a.warnings


def test_nested_bold_summary_is_one_sentence():
    # <b class="whb">Go to the <a><b class="whb">verification page</b></a> in ...</b>
    a = parsed("verify-your-youtube-account.html")
    summaries = [st.summary for s in a.sections for st in s.steps]
    assert any(s.startswith("Go to the verification page in") for s in summaries)
    assert all("verification pageverification" not in s for s in summaries)
    assert {m.license for s in a.sections for st in s.steps for m in st.media} == {"License: Fair Use (screenshot)"}


def test_licences_differ_by_site():
    assert {m.license for s in parsed("ja-deal-with-people-who-ignore-you.html").sections
            for st in s.steps for m in st.media} == {""}
    assert all(m.license.startswith("©") for s in parsed("prevent-cardio-from-burning-muscle.html").sections
               for st in s.steps for m in st.media)


def test_creative_commons_licence_text():
    from selectolax.lexbor import LexborHTMLParser

    from wikihow_tiir.parse.media import step_media

    tree = LexborHTMLParser((HTML / "grill-zucchini.html").read_bytes())
    [intro_image] = step_media(tree.css_first("#intro"), "https://www.wikihow.com")
    assert intro_image.license == "Image by: Uploader License: Creative Commons"


def test_ja_page_identity_and_relative_hosts():
    a = parsed("ja-get-your-crush-to-like-you.html")
    assert a.url.startswith("https://www.wikihow.jp/")
    assert a.categories == ["人間関係", "愛"]
    assert a.sections[0].steps[1].summary == "前向きでいる"  # linked bold + extra empty-ish b.whb
    img = a.sections[0].steps[1].media[0]
    assert img.url.startswith("https://www.wikihow.com/images_en/thumb/0/06/")
    assert img.large_url.startswith("https://www.wikihow.com/images/thumb/0/06/")
    assert img.alt.endswith("というタイトルの画像")
    assert len(a.tips) == 10


def test_ja_parts_and_video_steps():
    a = parsed("ja-apply-foundation.html")
    assert [s.kind for s in a.sections] == ["part"] * 3
    first = a.sections[0].steps[0]
    assert first.summary == "顔を洗う"
    assert first.media[0].url == ("https://www.wikihow.com/video/a/a2/"
                                  "Apply%20Foundation%20Step%201%20Version%207.360p.mp4")
    # the page really reuses one clip for steps 3 and 4: reported, not fatal
    assert any("same media URL" in n for n in a.parse_notes)


def test_ja_text_only_article_and_lists():
    a = parsed("ja-prepare-for-job-hunting.html")
    assert all(not st.media for s in a.sections for st in s.steps)
    assert len(a.tips) == 3 and len(a.warnings) == 3
    b = parsed("ja-remove-grease-and-oil-from-a-car-interior.html")
    assert len(b.things_needed) == 8 and len(b.warnings) == 3
    assert b.warnings[0] == "溶剤やクリーナーは換気の良い場所で用いるようにしましょう。"


def test_text_only_first_step():
    a = parsed("cope-with-the-stress-of-homeschooling.html")
    assert a.sections[0].steps[0].media == []
    assert all(len(st.media) == 1 for s in a.sections for st in s.steps[1:])


def test_desktop_2010_page():
    a = parsed("clean-gold-jewelry.html")
    dish = a.sections[0].steps
    assert dish[0].summary == "Put a few drops of liquid dish detergent in a bowl of warm water."
    assert dish[0].detail.startswith("Mix gently.")
    assert dish[1].summary == "Soak the gold jewelry in the solution for 15 minutes."  # <b><b.whb>..</b>..</b>
    assert a.sections[1].title == "Ammonia Method"  # reference marker stripped from the heading
    assert a.sections[3].steps[0].summary == ""  # a bullet-list "method" without bold
    assert a.sections[3].steps[0].detail.startswith("Use an old toothbrush")
    assert a.categories[:2] == ["Personal Care and Style", "Fashion"]
    assert a.url == "https://www.wikihow.com/Clean-Gold-Jewelry"
    assert a.intro.startswith("Although gold doesn't tarnish")
    assert len(a.tips) == 3 and len(a.warnings) == 2
    assert any("without a bold summary" in n for n in a.parse_notes)


def test_2009_app_fragment():
    a = parsed("administer-first-aid-to-a-choking-child.fragment.html")
    steps = a.sections[0].steps
    assert steps[0].summary == "Let coughing happen."
    assert steps[1].summary == "Look for the following signs of choking"
    assert "\n- Being unable to talk or vocalize" in steps[1].detail
    assert steps[11].summary == "Begin child CPR if the child does not begin breathing normally again."
    img = steps[3].media[0]
    assert img.url == "https://www.wikihow.com/images/thumb/2/2f/Chokingbaby1_840.jpg/180px-Chokingbaby1_840.jpg"
    assert img.large_url == "https://www.wikihow.com/images/2/2f/Chokingbaby1_840.jpg"
    assert (img.width, img.height) == (180, 97)
    assert a.url == "https://www.wikihow.com/Administer-First-Aid-to-a-Choking-Child"


def test_2011_app_fragment_heading_walk():
    a = parsed("unclog-a-toilet.fragment.html")
    assert a.sections[0].steps[2].summary == "Protect the floor."
    protect = a.sections[0].steps[2].media[0]
    assert protect.url == "http://pad3.whstatic.com/images/thumb/d/d3/Protect_floor_1c_854.jpg/180px-Protect_floor_1c_854.jpg"
    assert protect.alt == "Place newspaper on the floor"
    assert a.sections[2].steps[1].summary == "Insert plunger into the bowl and press down firmly but slowly"
    assert any("Vacuum Method" in n for n in a.parse_notes)  # headings without a list are reported
    assert len(a.things_needed) == 7
    assert a.things_needed[:3] == ["A sanitary waterless plunger", "A plunger", "Optional dish soap"]
    assert len(a.tips) == 4 and len(a.warnings) == 6


def test_parts_in_english():
    a = parsed("make-ube-halaya.html")
    assert [s.kind for s in a.sections] == ["part", "part"]
    assert len(a.things_needed) == 3 and len(a.warnings) == 2


def test_quality_review_stub_has_no_steps():
    with pytest.raises(ParseError) as info:
        parse_html((HTML / "ja-cook-adobo-quality-review.html").read_bytes())
    assert info.value.reason == "no-steps"
    assert detect_layout((HTML / "ja-cook-adobo-quality-review.html").read_bytes()) == "responsive-2019"


def test_deterministic_output():
    raw = (HTML / "grill-fish.html").read_bytes()
    one = json.dumps(parse_html(raw).to_dict(), ensure_ascii=False, sort_keys=True)
    two = json.dumps(parse_html(raw).to_dict(), ensure_ascii=False, sort_keys=True)
    assert one == two


def test_str_and_bytes_give_the_same_article():
    raw = (HTML / "know-if-you-are-in-ketosis.html").read_bytes()
    a, b = parse_html(raw), parse_html(raw.decode("utf-8"))
    assert a.sections == b.sections and a.id == b.id


def test_categories_are_deduplicated():
    cats = parsed("grill-fish.html").categories
    assert len(cats) == len(set(cats)) and cats[:2] == ["Barbecue Fish", "Barbecue"]
