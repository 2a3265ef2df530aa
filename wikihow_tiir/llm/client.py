"""The OpenAI-compatible client shared by query generation and the filter's judge (vLLM, Ollama,
llama.cpp, OpenAI ...).

One :class:`LLMClient` per stage wraps an ``openai.OpenAI`` client with our own retry loop
(the client's is switched off so retries are counted and 429 pauses are shared): 5xx, timeouts,
connection errors and malformed bodies (not UTF-8, cut JSON, an HTML page with status 200) are
retried with exponential backoff; a 429 pauses *every* worker of the stage for the server's
``Retry-After``, until the call has waited ``rate_limit_max_wait_s`` in all. The body is read by
us, never more than ``max_response_mb``, and a chat answer longer than ``max_answer_chars`` is
refused (``answer-too-long``) before it reaches the :class:`~wikihow_tiir.llm.cache.RequestCache`.
Structured answers are parsed into pydantic models; one repair turn, then a
:class:`GenerationError` whose ``reason`` becomes the recorded reject and whose ``answer`` keeps
what the model wrote. Only :class:`GenerationError` leaves a call (whatever the ``openai`` package
raises is turned into one), so callers never import ``openai``. Every error text and every answer
is redacted (:mod:`wikihow_tiir.redact`): a server that echoes the API key cannot write it into
rejects, records or the cache.
"""

from __future__ import annotations

import base64
import importlib
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from wikihow_tiir.config import BackendConfig
from wikihow_tiir.errors import ConfigError
from wikihow_tiir.llm.cache import RequestCache, request_key
from wikihow_tiir.llm.errors import BadResponse, GenerationError, Invalid
from wikihow_tiir.llm.prompts import Prompt
from wikihow_tiir.llm.responses import (
    REFUSAL,
    body_json,
    chat_answer,
    images_answer,
    parse_json_object,
    valid_cached,
)
from wikihow_tiir.llm.retry import RateGate, backoff_s, rate_limit_pause_s
from wikihow_tiir.llm.usage import RunCounters, Usage
from wikihow_tiir.redact import redact, redact_tokens, register_secret

T = TypeVar("T", bound=BaseModel)


def _transports() -> list[Any]:
    """The HTTP libraries the ``openai`` package may stream with (1.x: httpx, 3.x: httpx2). While a
    body is read their own errors reach us unwrapped, so each is caught by its base classes."""
    found = []
    for name in ("httpx", "httpx2"):
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            continue
    return found


_HTTP = _transports()
_TIMEOUT_ERRORS = tuple(m.TimeoutException for m in _HTTP)
_DECODING_ERRORS = tuple(m.DecodingError for m in _HTTP)
_TRANSPORT_ERRORS = tuple(m.TransportError for m in _HTTP)


class _BodyTimeout(Exception):
    """The body did not arrive within ``timeout_s`` (a server trickling bytes)."""


def _said(exc: BaseException, limit: int) -> str:
    """An exception's text for a reject: redacted *before* it is cut, so no prefix of a secret survives."""
    return redact(str(exc))[:limit]


class LLMClient:
    """Calls of one stage (``stage`` also namespaces its request-cache keys); ``setting`` names the
    configuration in messages (``generate.write``, ``filter.llm_judge``)."""

    def __init__(self, stage: str, cfg: BackendConfig, cache: RequestCache | None, seed: int,
                 counters: RunCounters, setting: str | None = None):
        if not cfg.base_url or not cfg.model:
            raise ConfigError(f"{setting or 'generate.' + stage}: the openai backend needs base_url and model")
        self.stage = stage
        self.cfg = cfg
        self.cache = cache
        self.seed = seed
        self.counters = counters
        self.gate = RateGate()
        self._json_mode = cfg.json_mode
        # local servers ignore the key, but the client insists on one
        api_key = os.environ.get(cfg.api_key_env) or "not-needed"
        register_secret(os.environ.get(cfg.api_key_env))  # never written anywhere, whatever a server echoes
        self.client = openai.OpenAI(base_url=cfg.base_url, api_key=api_key, timeout=cfg.timeout_s,
                                    max_retries=0)

    @property
    def model(self) -> str:
        return str(self.cfg.model)

    # ------------------------------------------------------------------ transport

    def _params(self) -> dict[str, Any]:
        c = self.cfg
        return {"temperature": c.temperature, "max_tokens": c.max_tokens, "seed": self.seed,
                "json_mode": self._json_mode, "json_schema": c.json_schema, "extra": c.extra,
                "image_size": c.image_size}

    def _request(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One HTTP request; the body is read by us (at most ``max_response_mb``) and parsed strictly."""
        api = self.client.chat.completions if kind == "chat" else self.client.images
        create = api.with_streaming_response.create if kind == "chat" else api.with_streaming_response.generate
        limit = int(self.cfg.max_response_mb * 2**20)
        with create(**payload) as response:
            http = response.http_response
            deadline = time.monotonic() + self.cfg.timeout_s  # a server trickling bytes is a timeout too
            chunks, size = [], 0
            for chunk in http.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise GenerationError("answer-too-long", f"the response is larger than "
                                          f"{self.cfg.max_response_mb:g} MB (max_response_mb)")
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise _BodyTimeout("the body did not arrive within the timeout")
            data = body_json(b"".join(chunks), http.headers.get("content-type", ""))
        return chat_answer(data) if kind == "chat" else images_answer(data)

    def _send(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One call with retries; returns the answer as plain JSON data (redacted).

        ``retries`` bounds the failed attempts (5xx, timeouts, connection errors, malformed bodies);
        429s do not use them up but are bounded by ``rate_limit_max_wait_s`` of pauses in all."""
        attempts = max(1, self.cfg.retries + 1)
        failures = limited = 0
        waited = 0.0
        while True:
            self.gate.wait()
            self.counters.bump("http_requests")
            try:
                return self._redacted(kind, self._request(kind, payload))
            except openai.RateLimitError as exc:
                self.counters.bump("rate_limited")
                headers = getattr(exc.response, "headers", None) or {}
                pause = rate_limit_pause_s(headers.get("retry-after"), self.cfg.backoff_s, limited)
                limited += 1
                if waited + pause > self.cfg.rate_limit_max_wait_s:
                    raise GenerationError("rate-limited", f"HTTP 429 {limited} times; not waiting more than "
                                          f"rate_limit_max_wait_s = {self.cfg.rate_limit_max_wait_s:g} s in all: "
                                          f"{_said(exc, 160)}") from None
                waited += pause
                self.gate.pause(pause)
                self.counters.bump("retries")
                continue
            except (openai.APITimeoutError, _BodyTimeout, *_TIMEOUT_ERRORS) as exc:
                last = GenerationError("timeout", f"no answer within {self.cfg.timeout_s} s ({_said(exc, 160)})")
            except (openai.APIConnectionError, *_TRANSPORT_ERRORS) as exc:
                last = GenerationError("connection-error", f"{type(exc).__name__}: {_said(exc, 160)}")
            except BadResponse as exc:
                last = GenerationError("bad-response", _said(exc, 200))
            except _DECODING_ERRORS as exc:  # e.g. "Content-Encoding: gzip" on a body that is not
                last = GenerationError("bad-response", f"the body could not be decoded ({_said(exc, 160)})")
            except openai.APIStatusError as exc:
                code = exc.status_code
                if code == 400 and "response_format" in payload and "response_format" in str(exc):
                    # no JSON mode (chat), or an images model that always answers base64: ask
                    # without it; the answer is still validated
                    if kind == "chat":
                        self._json_mode = False
                    payload = {k: v for k, v in payload.items() if k != "response_format"}
                    continue
                if code >= 500 or code in (408, 409):
                    last = GenerationError("server-error", f"HTTP {code}: {_said(exc, 160)}")
                else:
                    raise GenerationError(f"http-{code}", _said(exc, 200)) from None
            except openai.OpenAIError as exc:  # anything else the client raises: this call fails, no crash
                raise GenerationError("bad-response", f"{type(exc).__name__}: {exc}") from None
            failures += 1
            if failures >= attempts:
                raise last
            self.counters.bump("retries")
            time.sleep(backoff_s(self.cfg.backoff_s, failures - 1))

    @staticmethod
    def _redacted(kind: str, answer: dict[str, Any]) -> dict[str, Any]:
        """The answer without credentials (a server may echo the key even with status 200)."""
        if kind == "chat":
            return {**answer, **{k: redact_tokens(answer[k]) for k in ("content", "refusal") if answer.get(k)}}
        return {**answer, "urls": [redact(u) for u in answer.get("urls") or []]}

    def _check_size(self, kind: str, answer: dict[str, Any]) -> None:
        """Refuse a chat answer over ``max_answer_chars`` (cached answers too: an older build's cache
        may hold one), so nothing oversized reaches the cache or the stage records."""
        if kind != "chat":
            return
        n = len(answer.get("content") or "") + len(answer.get("refusal") or "")
        if n > self.cfg.max_answer_chars:
            raise GenerationError("answer-too-long", f"the answer has {n} characters; max_answer_chars is "
                                  f"{self.cfg.max_answer_chars}", answer=answer.get("content") or answer.get("refusal"))

    def call(self, kind: str, payload: dict[str, Any], prompt_sha256: str, usage: Usage,
             attempt_tag: int = 0) -> dict[str, Any]:
        """``_send`` through the cache (``attempt_tag`` separates deliberate re-asks of the same payload)."""
        key = request_key(self.stage, self.model, self._params(), prompt_sha256, [kind, attempt_tag, payload])
        answer = self.cache.get(key) if self.cache is not None else None
        if answer is not None and not valid_cached(kind, answer):
            answer = None  # not what we store: ask again (and overwrite it)
        if answer is not None:
            self.counters.bump("cache_hits")
            self._check_size(kind, answer)
        else:
            answer = self._send(kind, payload)
            self._check_size(kind, answer)
            if self.cache is not None:
                self.cache.put(key, self.stage, self.model, answer)
        if kind == "chat":
            usage.add(answer)
        else:
            usage.calls += 1
        return answer

    # ------------------------------------------------------------------ chat

    def _chat_payload(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None,
                      seed: int | None) -> dict[str, Any]:
        c = self.cfg
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": c.temperature,
                                   "max_tokens": c.max_tokens, "seed": self.seed if seed is None else seed}
        if schema is not None and self._json_mode:
            if c.json_schema == "openai":
                payload["response_format"] = {"type": "json_schema",
                                              "json_schema": {"name": "answer", "schema": schema}}
            elif c.json_schema == "llama-cpp":
                payload["response_format"] = {"type": "json_object", "schema": schema}
            else:
                payload["response_format"] = {"type": "json_object"}
        if c.extra:
            payload["extra_body"] = dict(c.extra)
        return payload

    def chat_text(self, messages: list[dict[str, Any]], prompt: Prompt, usage: Usage,
                  seed: int | None = None) -> str:
        answer = self.call("chat", self._chat_payload(messages, None, seed), prompt.sha256, usage)
        if answer.get("refusal"):
            raise GenerationError("refusal", str(answer["refusal"])[:200], answer=answer["refusal"])
        text = (answer.get("content") or "").strip()
        if not text:
            raise GenerationError("empty-answer", "the model returned no text", answer=answer.get("content"))
        if REFUSAL.match(text):
            raise GenerationError("refusal", text[:200], answer=text)
        return text

    def chat_json(self, messages: list[dict[str, Any]], model: type[T], prompt: Prompt, repair: Prompt,
                  usage: Usage, check: Callable[[T], None] | None = None, schema: dict[str, Any] | None = None,
                  seed: int | None = None) -> T:
        """Ask, validate (pydantic + ``check``), repair once, else raise ``GenerationError``."""
        schema = schema or model.model_json_schema()
        for turn in range(2):
            payload = self._chat_payload(messages, schema, seed)
            answer = self.call("chat", payload, prompt.sha256 + repair.sha256, usage)
            if answer.get("refusal"):
                raise GenerationError("refusal", str(answer["refusal"])[:200], answer=answer["refusal"])
            content = answer.get("content")
            try:
                value = parse_json_object(content)
                try:
                    obj = model.model_validate(value)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first.get("loc", ()))
                    raise Invalid("schema-mismatch", f"{where or 'answer'}: {first.get('msg')}") from None
                if check is not None:
                    check(obj)
                return obj
            except Invalid as bad:
                if turn == 1:  # the answer stays with the reject, so a failing prompt can be read and fixed
                    raise GenerationError(bad.reason, bad.detail, answer=content) from None
                messages = [*messages, {"role": "assistant", "content": content or ""},
                            {"role": "user", "content": repair.render("user", problem=bad.detail)}]
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ images

    def render(self, prompt_text: str, prompt: Prompt, usage: Usage, attempt_tag: int = 0) -> bytes:
        """One image for ``prompt_text`` from the images API, as raw bytes (validated by the caller)."""
        payload: dict[str, Any] = {"model": self.model, "prompt": prompt_text, "n": 1,
                                   "size": self.cfg.image_size, "response_format": "b64_json"}
        if self.cfg.extra:
            payload["extra_body"] = dict(self.cfg.extra)
        answer = self.call("images", payload, prompt.sha256, usage, attempt_tag=attempt_tag)
        images = [b for b in answer.get("images") or [] if b]
        if len(images) != 1:
            got = len(images) if images or not answer.get("urls") else "a URL instead of data"
            raise Invalid("wrong-image-count", f"expected 1 image as base64 data, got {got}")
        try:
            return base64.b64decode(images[0], validate=True)
        except (ValueError, TypeError):
            raise Invalid("invalid-image", "the image payload is not valid base64") from None
