"""The review page in a real headless Chromium: three pairs reviewed with the keyboard, exported, applied."""

from __future__ import annotations

import json
import shutil

import pytest
from audit_helpers import split_ids
from typer.testing import CliRunner

from wikihow_tiir.audit import write_review_page
from wikihow_tiir.cli import app
from wikihow_tiir.publish.validate import validate_dataset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic"]


def statuses(page) -> list[str]:
    return page.eval_on_selector_all(".pair-card .status", "els => els.map(e => e.textContent)")


@pytest.mark.browser
def test_review_three_pairs_with_the_keyboard_export_and_apply(dataset, tmp_path):
    assert CHROMIUM, "Debian's chromium is required for the browser tests (make install-browser)"
    from playwright.sync_api import sync_playwright

    ids = split_ids(dataset, "queries", "test")
    n = len(ids)
    assert n >= 5, ids  # the bundled build's test split
    review = tmp_path / "review.html"
    write_review_page(dataset, review)
    exported = tmp_path / "downloads" / "audit.jsonl"
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(review.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        assert page.locator(".pair-card.current").get_attribute("data-qid") == ids[0]

        page.keyboard.press("y")  # no reviewer yet: nothing is decided, the name field asks for one
        assert "Reviewer field" in page.inner_text("#message")
        assert page.evaluate("document.activeElement.id") == "reviewer"
        page.keyboard.type("Ana Lima")
        page.keyboard.press("Enter")  # back to the pairs

        page.keyboard.press("y")  # keep the first pair; the next undecided pair becomes current
        assert page.locator(".pair-card.current").get_attribute("data-qid") == ids[1]
        page.keyboard.press("2")  # drop: illogical
        page.keyboard.press("4")  # drop: other, which asks for a note
        page.keyboard.press("Enter")  # an empty note is refused
        assert "needs a note" in page.inner_text("#message")
        page.keyboard.type("the same picture twice")
        page.keyboard.press("Enter")
        page.keyboard.press("y")  # a fourth decision, taken back: k goes to the previous pair, u undoes
        assert page.locator(".pair-card.current").get_attribute("data-qid") == ids[4]
        page.keyboard.press("k")
        page.keyboard.press("u")
        assert statuses(page)[:4] == ["keep (Ana Lima)", "drop: illogical (Ana Lima)",
                                      "drop: other \u2014 the same picture twice (Ana Lima)", "undecided"]
        assert page.inner_text("#progress") == f"3 of {n} pairs on this page decided · 3 of {n} in this browser"

        page.reload()  # progress is kept in the browser
        page.wait_for_selector("body[data-ready='1']")
        assert statuses(page)[:4] == ["keep (Ana Lima)", "drop: illogical (Ana Lima)",
                                      "drop: other \u2014 the same picture twice (Ana Lima)", "undecided"]
        assert page.input_value("#reviewer") == "Ana Lima"

        with page.expect_download() as download:
            page.keyboard.press("x")
        assert download.value.suggested_filename == "audit.jsonl"
        exported.parent.mkdir()
        download.value.save_as(exported)

        result = CliRunner().invoke(app, ["audit", str(dataset), "--apply", str(exported)])
        assert result.exit_code == 0, result.output

        # the page of the audited dataset: the same review (storage key), the dropped pairs gone
        again = tmp_path / "review-2.html"
        write_review_page(dataset, again)
        page.goto(again.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        shown = page.eval_on_selector_all(".pair-card", "els => els.map(e => e.getAttribute('data-qid'))")
        progress = page.inner_text("#progress")
        applied = page.inner_text(f".pair-card[data-qid='{ids[0]}'] .applied")
        browser.close()

    assert errors == []
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == [
        {"query_id": ids[0], "decision": "keep", "reason": None, "note": "", "reviewer": "Ana Lima"},
        {"query_id": ids[1], "decision": "drop", "reason": "illogical", "note": "", "reviewer": "Ana Lima"},
        {"query_id": ids[2], "decision": "drop", "reason": "other", "note": "the same picture twice",
         "reviewer": "Ana Lima"},
    ]
    assert list(json.loads(lines[0])) == ["query_id", "decision", "reason", "note", "reviewer"]
    # the dataset lost exactly the two dropped pairs, queries and qrels
    assert split_ids(dataset, "queries", "test") == [ids[0], *ids[3:]]
    assert split_ids(dataset, "qrels", "test") == [ids[0], *ids[3:]]
    audit = json.loads((dataset / "manifest.json").read_text())["audit"]
    assert audit["pairs"] == {"generated": n, "kept": n - 2, "dropped": 2, "unaudited": n - 3}
    assert audit["reasons"] == {"illogical": 1, "other": 1} and audit["reviewers"] == {"Ana Lima": 3}
    assert f"test split: {n - 2} of {n} generated pairs kept after human review" in (dataset / "README.md").read_text()
    assert validate_dataset(dataset, check_load=False) == []
    assert shown == [ids[0], *ids[3:]]
    assert progress == f"1 of {n - 2} pairs on this page decided · 3 of {n} in this browser"
    assert applied == "applied earlier: keep by 'Ana Lima'"
    # nothing left the machine: the pages themselves, inline data: pictures and the exported blob
    assert all(u.startswith(("file://", "data:", "blob:")) for u in requests), [
        u for u in requests if not u.startswith("data:")]
