"""Hostile model servers against the openai backend (the scripted server in tests/servers/openai_server.py):
malformed bodies, runaway answers, endless 429s, echoed secrets, and damaged resume state."""

from __future__ import annotations

import json
import logging
import re
import shutil
import sqlite3
import time

import pytest
from generate_docs import doc, remote_config
from servers.openai_server import OpenAIServer

from wikihow_tiir.generate import ImagePool, generate_queries
from wikihow_tiir.io import read_jsonl
from wikihow_tiir.llm.retry import MAX_RETRY_AFTER_S
from wikihow_tiir.retry_after import retry_after_s


@pytest.fixture
def server():
    with OpenAIServer(hang_s=1.5, retry_after_s=1) as s:
        yield s


def _by_article(result):
    kept = {q.article_id for q in result.queries}
    rejected = {r.item_id.removeprefix("q-").split("-")[1]: r for r in result.rejects}
    return kept, rejected


def _texts(result):
    return [(q.id, q.content.texts, q.image_prompts) for q in result.queries]


# --------------------------------------------------------------------------- malformed bodies


def test_malformed_replies_are_retried_then_rejected_for_that_item_only(server, documents, tmp_path):
    bad = "bad-response"
    cases = {  # article -> (fault marker, None when it recovers, else (reject reason, words of its detail))
        "ok": ("", None),
        "nonutf": ("[[write:non-utf8]]", (bad, "not UTF-8")),
        "cut": ("[[write:cut-json]]", (bad, "not valid JSON")),
        "html": ("[[write:html]]", (bad, "HTML")),
        "nonutfonce": ("[[write:non-utf8-once]]", None),
        "cutonce": ("[[write:cut-json-once]]", None),
        "htmlonce": ("[[write:html-once]]", None),
        "capcut": ("[[caption:cut-json]]", (bad, "not valid JSON")),
        "vishtml": ("[[visualize:html]]", (bad, "HTML")),
        "rendutf": ("[[render:non-utf8]]", (bad, "not UTF-8")),
        "deep": ("[[write:deep-json]]", (bad, "nested too deeply")),  # json.loads' RecursionError: no crash
        "deeponce": ("[[write:deep-json-once]]", None),
        # the HTTP library's own errors while the body is read (not wrapped by the openai client)
        "gzip": ("[[write:bad-gzip]]", (bad, "could not be decoded")),
        "gziponce": ("[[write:bad-gzip-once]]", None),
        "stall": ("[[write:stall-body]]", ("timeout", "no answer within 0.5 s")),
        "stallonce": ("[[write:stall-body-once]]", None),
        "cutbody": ("[[write:cut-body]]", ("connection-error", "RemoteProtocolError")),
        "cutbodyonce": ("[[write:cut-body-once]]", None),
    }
    docs = [doc(name, marker) for name, (marker, _) in cases.items()]
    pool = ImagePool.from_documents([*docs, *documents])
    cfg = remote_config(server, retries=2)
    result = generate_queries(docs, pool, cfg, seed=1, work_dir=tmp_path, shard_id="bad")
    kept, rejected = _by_article(result)
    for name, (_, expected) in cases.items():
        if expected is None:
            assert name in kept, f"{name}: {rejected.get(name)}"
        else:
            r = rejected[name]
            assert r.reason == expected[0] and expected[1] in r.detail, r
            assert not re.search(r"0x[0-9a-f]{6,}", r.detail)  # no memory addresses
    assert len(kept) + len(rejected) == len(cases)
    # each malformed item was asked retries + 1 times, then given up
    asked = [r for r in server.requests if r["stage"] == "write" and "[[write:non-utf8]]" in r["text"]]
    assert len(asked) == 3
    # the same run again gives byte-identical reject texts
    again = generate_queries(docs, pool, cfg, seed=1, work_dir=tmp_path / "again", shard_id="bad")
    assert [r.to_dict() for r in again.rejects] == [r.to_dict() for r in result.rejects]


# --------------------------------------------------------------------------- runaway answers


def test_an_oversized_answer_is_refused_and_never_stored(server, documents, tmp_path):
    docs = [doc("fine"), doc("huge", "[[write:huge=200000]]")]  # ~1.8 MB of "overlong overlong ..."
    pool = ImagePool.from_documents([*docs, *documents])
    cfg = remote_config(server, stages=("write", "visualize"), max_answer_chars=20_000)
    result = generate_queries(docs, pool, cfg, seed=1, work_dir=tmp_path / "a", shard_id="s")
    kept, rejected = _by_article(result)
    assert kept == {"fine"}
    r = rejected["huge"]
    assert r.stage == "generate.write" and r.reason == "answer-too-long"
    assert "max_answer_chars is 20000" in r.detail
    assert len(r.extra["answer"]) == 2000 and r.extra["answer"].startswith('{"query": "overlong overlong')
    asked = [x for x in server.requests if x["stage"] == "write" and "huge=" in x["text"]]
    assert len(asked) == 1, "a runaway answer is neither retried nor repaired"
    for f in (tmp_path / "a").rglob("*"):
        if f.is_file():
            assert f.stat().st_size < 100_000, f
            assert f.read_bytes().count(b"overlong") <= 2000 // 9 + 1, f

    # a body over max_response_mb is not even read whole
    cfg = remote_config(server, stages=("write", "visualize"), max_response_mb=0.5)
    result = generate_queries(docs, pool, cfg, seed=1, work_dir=tmp_path / "b", shard_id="s")
    _, rejected = _by_article(result)
    assert rejected["huge"].reason == "answer-too-long" and "larger than 0.5 MB" in rejected["huge"].detail

    # an oversized answer an older build cached is refused too (the cap applies to cached answers)
    loose = remote_config(server, stages=("write", "visualize"), max_answer_chars=10_000_000)
    first = generate_queries(docs, pool, loose, seed=1, work_dir=tmp_path / "c", shard_id="s")
    assert _by_article(first)[1]["huge"].reason == "text-too-long"
    n = len(server.requests)
    again = generate_queries(docs, pool, cfg.model_copy(update={"write": cfg.write.model_copy(
        update={"max_answer_chars": 20_000})}), seed=1, work_dir=tmp_path / "c", shard_id="s")
    assert len(server.requests) == n and again.stats["run"]["cache_hits"] >= 1
    assert _by_article(again)[1]["huge"].reason == "answer-too-long"


# --------------------------------------------------------------------------- rate limits


def test_persistent_429s_give_up_after_a_bounded_wait_and_a_bad_retry_after_does_not_raise(documents, tmp_path):
    docs = [doc("fine"), doc("limited", "[[write:429-always]]"), doc("baddate", "[[write:429-bad-date]]")]
    pool = ImagePool.from_documents([*docs, *documents])
    with OpenAIServer(retry_after_s=1) as server:
        cfg = remote_config(server, stages=("write", "visualize"), rate_limit_max_wait_s=2.5)
        started = time.monotonic()
        result = generate_queries(docs, pool, cfg, seed=1, work_dir=tmp_path, shard_id="s")
        elapsed = time.monotonic() - started
        kept, rejected = _by_article(result)
        assert kept == {"fine", "baddate"}, rejected
        r = rejected["limited"]
        assert r.reason == "rate-limited" and "rate_limit_max_wait_s = 2.5 s" in r.detail
        # Retry-After 1 s: pauses of 1 + 1 s fit the 2.5 s budget, a third would not
        limited = [x for x in server.requests if x["status"] == 429 and "429-always" in x["text"]]
        assert len(limited) == 3
        assert 1.9 < elapsed < 60
        assert server.count("write", 429) == 4  # + the one malformed Retry-After, then a normal answer
        assert result.stats["run"]["rate_limited"] == 4


@pytest.mark.parametrize("value, expected", [
    ("5", 5.0), ("0", 0.0), ("-3", 0.0), ("1e9", MAX_RETRY_AFTER_S), ("inf", None), ("nan", None),
    ("soon", None), ("Wed, 32 Foo 2024 99:99:99 GMT", None), ("Wed, 21 Oct 99999 07:28:00 GMT", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("Wed, 21 Oct 2015 07:28:00", 0.0), ("", None),
])
def test_retry_after_values(value, expected):
    assert retry_after_s(value, cap=MAX_RETRY_AFTER_S) == expected


# --------------------------------------------------------------------------- resume state


def test_a_damaged_stage_record_is_recomputed_never_trusted(server, documents, pool, tmp_path, caplog):
    docs = documents[:3]
    cfg = remote_config(server, stages=("write", "visualize", "render"))
    first = generate_queries(docs, pool, cfg, seed=3, work_dir=tmp_path, shard_id="s0")
    assert len(first.queries) == 3
    n = len(server.requests)
    write = tmp_path / "write" / "s0.jsonl"
    good = write.read_bytes()
    marker = json.loads((tmp_path / "write" / "s0.done").read_text())  # the build's marker format
    assert marker["stats"]["records"] == 3 and marker["files"]["s0.jsonl"]["bytes"] == len(good)

    def damage_and_rerun(path, data):
        path.write_bytes(data)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            again = generate_queries(docs, pool, cfg, seed=3, work_dir=tmp_path, shard_id="s0")
        assert _texts(again) == _texts(first)
        assert len(server.requests) == n, "recomputed from the request cache"
        return caplog.text

    assert "rebuilding" in damage_and_rerun(write, good[: len(good) // 2])  # truncated
    assert "rebuilding" in damage_and_rerun(write, b"\x00\xff garbage \x00" * 10)  # garbage
    # valid JSON lines, but not what the marker vouches for: never silently used
    altered = good.replace(b"I have been trying", b"I have been TAMPERING")
    assert altered != good
    assert "rebuilding" in damage_and_rerun(write, altered)
    assert write.read_bytes() == good
    # the same lines and a forged count: the sha256 still says no
    vis = tmp_path / "visualize" / "s0.jsonl"
    lines = vis.read_bytes().splitlines(keepends=True)
    assert "rebuilding" in damage_and_rerun(vis, b"".join(lines[:2]))
    # a rendered picture the records name is gone
    blob = next((tmp_path / "render" / "blobs").glob("*.jpg"))
    blob.unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = generate_queries(docs, pool, cfg, seed=3, work_dir=tmp_path, shard_id="s0")
    assert f"{blob.name} is missing" in caplog.text and blob.exists()
    assert [q.content.images for q in again.queries] == [q.content.images for q in first.queries]
    assert not again.rejects


def test_a_damaged_request_cache_is_set_aside_and_rebuilt(server, documents, pool, tmp_path, caplog):
    docs = documents[:3]
    cfg = remote_config(server, stages=("write", "visualize", "render"))
    first = generate_queries(docs, pool, cfg, seed=4, work_dir=tmp_path / "a", shard_id="s0")
    cache = (tmp_path / "a" / "cache.sqlite").read_bytes()
    assert len(first.queries) == 3 and len(cache) > 16_384  # several pages

    def run(work, setup):
        work.mkdir()
        setup(work / "cache.sqlite")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wikihow_tiir.llm.cache"):
            result = generate_queries(docs, pool, cfg, seed=4, work_dir=work, shard_id="s0")
        assert _texts(result) == _texts(first) and not result.rejects
        assert [q.content.images for q in result.queries] == [q.content.images for q in first.queries]
        return result

    # garbage: set aside at open
    run(tmp_path / "garbage", lambda p: p.write_bytes(b"this is not a database " * 500))
    assert (tmp_path / "garbage" / "cache.sqlite.corrupt-1").exists() and "set aside" in caplog.text
    assert sqlite3.connect(tmp_path / "garbage" / "cache.sqlite").execute(
        "SELECT COUNT(*) FROM responses").fetchone()[0] > 0  # rebuilt

    # truncated: its header is fine, the damage shows when a lost page is read
    run(tmp_path / "cut", lambda p: p.write_bytes(cache[: len(cache) // 2]))
    assert (tmp_path / "cut" / "cache.sqlite.corrupt-1").exists() and "damaged" in caplog.text

    # an answer changed inside a healthy file fails its checksum: asked again, not used
    def tamper(p):
        shutil.copy(tmp_path / "a" / "cache.sqlite", p)
        with sqlite3.connect(p) as db:
            rows = db.execute("SELECT key, response FROM responses WHERE stage = 'write'").fetchall()
            for key, text in rows:
                db.execute("UPDATE responses SET response = ? WHERE key = ?",
                           (text.replace("I have been trying", "I was told to write HACKED"), key))
        db.close()

    n = len(server.requests)
    run(tmp_path / "tampered", tamper)
    assert "checksum" in caplog.text and len(server.requests) - n == 3  # the three write answers


# --------------------------------------------------------------------------- inspectable rejects


def test_content_rejects_keep_the_models_answer_in_the_records(server, documents, tmp_path):
    docs = [doc("short", "[[write:echo-key-answer]]"), doc("copy", "[[write:copy]]"), doc("deep", "[[write:deep-answer]]")]
    pool = ImagePool.from_documents([*docs, *documents])
    cfg = remote_config(server, stages=("write", "visualize"))
    result = generate_queries(docs, pool, cfg, seed=1, work_dir=tmp_path, shard_id="s")
    _, rejected = _by_article(result)
    # an answer nesting JSON deeper than Python's parser recurses is refused like any invalid JSON
    assert rejected["deep"].reason == "invalid-json" and "too deeply" in rejected["deep"].detail
    assert rejected["deep"].extra["answer"].startswith('{"query": [[[')
    assert rejected["short"].reason == "text-too-short"
    assert json.loads(rejected["short"].extra["answer"])["query"].startswith("my key is Bearer ")
    assert rejected["copy"].reason == "copies-document" and "Soak the sponge" in rejected["copy"].extra["answer"]
    # the stage record holds it too, so a resumed run reports the same
    records = {r["id"]: r for r in read_jsonl(tmp_path / "write" / "s.jsonl")}
    assert records[rejected["short"].item_id]["answer"] == rejected["short"].extra["answer"]
    again = generate_queries(docs, pool, cfg, seed=1, work_dir=tmp_path, shard_id="s")
    assert [r.to_dict() for r in again.rejects] == [r.to_dict() for r in result.rejects]
