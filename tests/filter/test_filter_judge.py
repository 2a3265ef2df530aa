"""The optional LLM judge, against the project's OpenAI-compatible test server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from filter_helpers import make_corpus, make_queries, make_query
from servers.openai_server import OpenAIServer

from wikihow_tiir.config import BackendConfig, FilterConfig
from wikihow_tiir.filter import filter_queries

JUDGE_MARKER = re.compile(r"\[\[judge:([\w=-]+)\]\]")


class JudgeServer(OpenAIServer):
    """The shared scripted server, taught to answer the filter's judge prompt.

    Verdicts are scripted in the query text: ``[[judge:no]]`` -> not answerable, ``[[judge:500x1]]`` ->
    one HTTP 500 then an answer, ``[[judge:invalid-json]]`` -> never valid JSON; otherwise answerable.
    """

    def _chat(self, body):
        messages = body.get("messages") or []
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        if "Decide whether the document answers the query" not in system:
            return super()._chat(body)
        user = next(m["content"] for m in messages if m.get("role") == "user")
        found = JUDGE_MARKER.findall(user)
        fault = found[0] if found else None
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            seen = self._seen[key]
            self._seen[key] += 1
        if (err := self._transport_fault(fault, seen)) is not None:
            return "judge", err
        if fault == "invalid-json":
            return "judge", self._completion("Yes, I think so.")
        yes = fault != "no"
        return "judge", self._completion(json.dumps({
            "on_topic": yes, "addresses_problem": yes, "consistent_pictures": True, "self_contained": True,
            "reason": "the steps solve the problem" if yes else "the document is about something else"}))


OTHER_TEXTS = {  # a second, different query per article (so they are not near-duplicates of the first)
    "rims": ["The alloy wheels on my old sedan have gone dull and grey over the winter months.",
             "Salt and road dirt seem baked onto them.", "Is there a safe way to make them look new again?"],
    "toilet": ["Our only toilet is blocked and the water sits high in the bowl after every flush.",
               "We have guests coming tonight and no plumber can come.", "How can I clear it myself quickly?"],
    "letter": ["A company I admire opened a junior designer position and wants a short motivation text.",
               "My last one sounded stiff and generic.", "How should I structure it so it stands out?"],
}


def marked(article: str, qid: str, marker: str):
    texts = list(OTHER_TEXTS[article])
    texts[-1] = f"{texts[-1]} {marker}"
    return make_query(article, qid, texts=texts)


@pytest.fixture(scope="module")
def server():
    with JudgeServer() as s:
        yield s


def judge_cfg(server) -> FilterConfig:
    return FilterConfig(llm_judge=BackendConfig(kind="openai", base_url=server.base_url, model="scripted-1",
                                                retries=2, backoff_s=0.01, concurrency=4, timeout_s=10))


def test_judge_verdicts_become_scores_and_reasons(server, tmp_path):
    queries = make_queries() + [
        marked("rims", "q-judge-no", "[[judge:no]]"),
        marked("toilet", "q-judge-flaky", "[[judge:500x1]]"),
        marked("letter", "q-judge-garbage", "[[judge:invalid-json]]"),
        make_query("zucchini", "q-no-images", n_images=0, prompts=[]),  # fails before the judge
    ]
    before = server.count("judge")
    result = filter_queries(queries, make_corpus(), judge_cfg(server), cache_dir=tmp_path)
    reasons = {r.item_id: r for r in result.rejects}
    assert reasons["q-judge-no"].reason == "judge-unanswerable"
    assert "something else" in reasons["q-judge-no"].detail
    assert reasons["q-judge-garbage"].reason == "judge-failed"
    assert "invalid-json" in reasons["q-judge-garbage"].detail
    assert reasons["q-no-images"].reason == "too-few-images"
    assert "judge" not in reasons["q-no-images"].extra["scores"]  # never sent to the judge
    kept = {q.id: q for q in result.kept}
    assert set(kept) == {q.id for q in make_queries()} | {"q-judge-flaky"}
    assert all(q.scores["judge"] == 1.0 for q in kept.values())
    assert server.count("judge", status=500) >= 1
    # 9 queries reach the judge: +1 retry of the flaky one, +1 repair turn and its retry-free failure
    assert server.count("judge") - before == 9 + 1 + 1
    rep = result.report["checks"]["llm-judge"]
    assert rep["rejected"] == 2 and rep["judge"]["asked"] == 9

    # a re-run answers from the request cache: no new HTTP request
    n = len(server.requests)
    again = filter_queries(queries, make_corpus(), judge_cfg(server), cache_dir=tmp_path)
    assert len(server.requests) - n == 0  # every answer the server gave came from the cache
    assert {q.id for q in again.kept} == set(kept)


def test_judge_needs_an_openai_backend():
    cfg = FilterConfig(llm_judge=BackendConfig(kind="offline"))
    with pytest.raises(ValueError, match="filter.llm_judge needs kind: openai"):
        filter_queries(make_queries(), make_corpus(), cfg)
    with pytest.raises(ValueError, match="base_url and model"):  # refused as the settings are read
        FilterConfig(llm_judge=BackendConfig(kind="openai"))


def test_a_hostile_judge_server_fails_single_verdicts_and_leaks_no_key(server, tmp_path, monkeypatch):
    key = "judge-key-0b7e41c9d2a85f36"
    monkeypatch.setenv("TIIR_JUDGE_KEY", key)
    queries = make_queries() + [
        marked("rims", "q-judge-echo", "[[judge:echo-key]]"),  # 401 quoting the Authorization header
        marked("toilet", "q-judge-html", "[[judge:html]]"),  # a 200 HTML page, every time
        marked("letter", "q-judge-echo500", "[[judge:echo-key-500]]"),  # 500s quoting it, then given up
    ]
    cfg = judge_cfg(server)
    cfg = cfg.model_copy(update={"llm_judge": cfg.llm_judge.model_copy(update={"api_key_env": "TIIR_JUDGE_KEY"})})
    result = filter_queries(queries, make_corpus(), cfg, cache_dir=tmp_path)
    reasons = {r.item_id: r for r in result.rejects}
    assert {q.id for q in result.kept} == {q.id for q in make_queries()}
    assert reasons["q-judge-echo"].reason == "judge-failed" and "http-401" in reasons["q-judge-echo"].detail
    assert "[REDACTED]" in reasons["q-judge-echo"].detail
    assert reasons["q-judge-html"].reason == "judge-failed" and "bad-response" in reasons["q-judge-html"].detail
    assert "[REDACTED]" in reasons["q-judge-echo500"].detail
    assert key not in json.dumps([r.to_dict() for r in result.rejects]) + json.dumps(result.report)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f
