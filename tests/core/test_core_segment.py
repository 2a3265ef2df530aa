from wikihow_tiir.config import SegmentConfig
from wikihow_tiir.model import Article, Media, Section, Step
from wikihow_tiir.segment import segment_article


def _step(i, summary, media=None, detail=""):
    return Step(index=i, summary=summary, detail=detail, media=media or [])


def _img(n):
    return Media(kind="image", url=f"https://www.wikihow.com/images/s{n}.jpg",
                 large_url=f"https://www.wikihow.com/images/l{n}.jpg", license="License: Creative Commons")


def _video(n):
    return Media(kind="video", url=f"https://www.wikihow.com/video/v{n}.mp4",
                 poster_url=f"https://www.wikihow.com/images/p{n}.jpg", license="")


def _article(sections):
    return Article(id="42", url="https://www.wikihow.com/Test", lang="en", title="How to Test",
                   goal="How to Test", sections=sections)


def test_document_interleaves_goal_title_summary_then_picture():
    sec = Section(1, "method", "First Way", [_step(1, "Do this.", [_img(1)]), _step(2, "Then that.", [_video(2)]),
                                            _step(3, "Text only.")])
    docs, rejects = segment_article(_article([sec]))
    assert not rejects
    (doc,) = docs
    assert doc.id == "wh-42-s1"
    c = doc.content
    assert c.texts == ["How to Test", "First Way", "Do this.", None, "Then that.", None, "Text only."]
    urls = [m.source_url for m in c.image_meta if m is not None]
    # the large variant for an image step, the poster still for a video step
    assert urls == ["https://www.wikihow.com/images/l1.jpg", "https://www.wikihow.com/images/p2.jpg"]
    assert c.image_meta[3].license == "License: Creative Commons"
    c.check()


def test_sections_outside_image_bounds_are_rejected_with_reasons():
    few = Section(1, "part", "Few", [_step(1, "a", [_img(1)]), _step(2, "b")])
    many = Section(2, "part", "Many", [_step(i, f"s{i}", [_img(i)]) for i in range(1, 6)])
    ok = Section(3, "part", "Ok", [_step(i, f"s{i}", [_img(10 + i)]) for i in range(1, 4)])
    empty = Section(4, "method", "Empty", [])
    docs, rejects = segment_article(_article([few, many, ok, empty]), SegmentConfig(min_images=2, max_images=4))
    assert [d.id for d in docs] == ["wh-42-s3"]
    reasons = {r.item_id: r.reason for r in rejects}
    assert reasons == {"wh-42-s1": "too-few-images", "wh-42-s2": "too-many-images", "wh-42-s4": "no-steps"}


def test_unnamed_block_has_no_title_text_and_detail_is_optional():
    sec = Section(1, "steps", "", [_step(1, "Lead.", [_img(1)], detail="More words here."),
                                   _step(2, "", [_img(2)], detail="No bold lead. Second sentence.")])
    (doc,), _ = segment_article(_article([sec]))
    assert doc.content.texts[:2] == ["How to Test", "Lead."]
    # a step without a bold summary contributes its first sentence
    assert "No bold lead." in doc.content.texts
    (doc2,), _ = segment_article(_article([sec]), SegmentConfig(include_detail=True))
    assert "Lead. More words here." in doc2.content.texts


def test_article_without_sections_is_a_reject():
    docs, rejects = segment_article(_article([]))
    assert docs == [] and rejects[0].reason == "no-sections"
