"""The ``openai`` backend: any OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI ...).

One :class:`RemoteBackend` per stage wraps an ``openai.OpenAI`` client with our own retry loop
(the client's is switched off so retries are counted and 429 pauses are shared): 5xx, timeouts,
connection errors and malformed bodies (not UTF-8, cut JSON, an HTML page with status 200) are
retried with exponential backoff; a 429 pauses *every* worker of the stage for the server's
``Retry-After``, until the call has waited ``rate_limit_max_wait_s`` in all. The body is read by
us, never more than ``max_response_mb``, and a chat answer longer than ``max_answer_chars`` is
refused (``answer-too-long``) before it reaches the :class:`RequestCache`.
Structured answers are parsed into pydantic models; one repair turn, then a
:class:`GenerationError` whose ``reason`` becomes the recorded reject and whose ``answer`` keeps
what the model wrote. Every error text and every answer is redacted (:mod:`wikihow_tiir.redact`):
a server that echoes the API key cannot write it into rejects, records or the cache.
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, TypeVar

import httpx
import openai
from pydantic import BaseModel, ValidationError

from wikihow_tiir.config import BackendConfig
from wikihow_tiir.generate.cache import RequestCache, request_key
from wikihow_tiir.generate.prompts import Prompt
from wikihow_tiir.redact import redact, redact_tokens, register_secret

T = TypeVar("T", bound=BaseModel)

MAX_RETRY_AFTER_S = 120.0
# the least pause after the n-th 429 of one call (doubling from this): a server that keeps
# answering 429 with "Retry-After: 0" is not hammered, and the request count stays bounded
MIN_RATE_LIMIT_PAUSE_S = 0.05
_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:'|no)t|i cannot|i won'?t|as an ai)", re.I)
_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.I)


class GenerationError(Exception):
    """A call that produced nothing usable; ``reason`` is the reject code, ``detail`` the (redacted)
    explanation and ``answer`` the model's answer when it was refused for its content."""

    def __init__(self, reason: str, detail: str = "", answer: str | None = None):
        detail = redact(detail)
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.answer = answer


class Invalid(Exception):
    """An answer that parsed but is not acceptable (``reason``, and ``problem`` told to the model)."""

    def __init__(self, reason: str, problem: str, answer: str | None = None):
        super().__init__(problem)
        self.reason = reason
        self.problem = problem
        self.answer = answer


class BadResponse(Exception):
    """A body that is not the answer the API promises (retried, then the reject ``bad-response``)."""


@dataclass
class Usage:
    """Tokens and images of one work item (stored with its record, so resumed runs count the same)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0  # model calls made for the item (cached or not)
    images: int = 0

    def add(self, response: dict[str, Any]) -> None:
        u = _usage(response.get("usage"))  # counts a server or an old cache got wrong count as 0
        self.prompt_tokens += u.get("prompt_tokens", 0)
        self.completion_tokens += u.get("completion_tokens", 0)
        self.calls += 1

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "calls": self.calls, "images": self.images}


@dataclass
class RunCounters:
    """What this process did over the network (differs between a fresh and a resumed run)."""

    http_requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bump(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def to_dict(self) -> dict[str, int]:
        return {"http_requests": self.http_requests, "cache_hits": self.cache_hits,
                "retries": self.retries, "rate_limited": self.rate_limited}


class RateGate:
    """After a 429, no worker of the stage sends anything before the server's Retry-After."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self) -> None:
        while True:
            with self._lock:
                delay = self._until - time.monotonic()
            if delay <= 0:
                return
            time.sleep(delay)


def retry_after_s(response: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when there is
    none or it is malformed (the caller then backs off on its own: a bad header never raises)."""
    headers = getattr(response, "headers", None) or {}
    value = str(headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if parsed is None:
            return None
        if parsed.tzinfo is None:  # HTTP dates are GMT
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _said(exc: BaseException, limit: int) -> str:
    """An exception's text for a reject: redacted *before* it is cut, so no prefix of a secret survives."""
    return redact(str(exc))[:limit]


def _body_json(body: bytes, content_type: str) -> Any:
    """The JSON value of a 200 body, or :class:`BadResponse` saying what it was instead."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadResponse(f"the body is not UTF-8 text (byte 0x{body[exc.start]:02x} at {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        kind = content_type.split(";")[0].strip() or "no content type"
        if text.lstrip().startswith("<"):
            raise BadResponse(f"the body is an HTML/XML page ({kind}), not JSON") from None
        raise BadResponse(f"the body is not valid JSON ({exc.msg} at char {exc.pos} of {len(text)}; "
                          f"{kind})") from None


def _str_or_none(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise BadResponse(f"{what} is {type(value).__name__}, not a string")


def _usage(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            if isinstance(v := value.get(k), int) and not isinstance(v, bool) and v >= 0}


def chat_answer(data: Any) -> dict[str, Any]:
    """A chat completion body as our plain answer dict, or :class:`BadResponse`."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise BadResponse("the body is not a chat completion (no 'choices' list)")
    choice = data["choices"][0] if data["choices"] else None
    if choice is not None and not isinstance(choice, dict):
        raise BadResponse("choices[0] is not an object")
    msg = choice.get("message") if choice else None
    if msg is not None and not isinstance(msg, dict):
        raise BadResponse("choices[0].message is not an object")
    return {"content": _str_or_none(msg.get("content") if msg else None, "the message content"),
            "refusal": _str_or_none(msg.get("refusal") if msg else None, "the refusal"),
            "finish_reason": _str_or_none(choice.get("finish_reason") if choice else None, "finish_reason"),
            "usage": _usage(data.get("usage"))}


def images_answer(data: Any) -> dict[str, Any]:
    """An images API body as ``{"images": [base64 | None], "urls": [...]}``, or :class:`BadResponse`."""
    if not isinstance(data, dict) or not isinstance(data.get("data") or [], list):
        raise BadResponse("the body is not an images answer (no 'data' list)")
    items = data.get("data") or []
    if not all(isinstance(d, dict) for d in items):
        raise BadResponse("an entry of 'data' is not an object")
    return {"images": [_str_or_none(d.get("b64_json"), "b64_json") for d in items],
            "urls": [u for d in items if (u := _str_or_none(d.get("url"), "url"))]}


def _valid_cached(kind: str, answer: Any) -> bool:
    """A cached answer has the shape we store (anything else is treated as not cached)."""
    if not isinstance(answer, dict):
        return False
    if kind == "chat":
        return (all(answer.get(k) is None or isinstance(answer.get(k), str) for k in ("content", "refusal"))
                and isinstance(answer.get("usage", {}), dict))
    return isinstance(answer.get("images", []), list) and isinstance(answer.get("urls", []), list)


def parse_json_object(text: str | None) -> dict[str, Any]:
    """The JSON object in a model's answer (tolerating a ``json`` code fence), or :class:`Invalid`."""
    if not text or not text.strip():
        raise Invalid("empty-answer", "the answer was empty")
    body = _FENCE.sub("", text.strip())
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        start, end = body.find("{"), body.rfind("}")
        try:
            value = json.loads(body[start:end + 1]) if 0 <= start < end else None
        except json.JSONDecodeError:
            value = None
        if value is None:
            if _REFUSAL.match(body):
                raise Invalid("refusal", "the answer was a refusal, not a JSON object") from None
            raise Invalid("invalid-json", "the answer was not valid JSON") from None
    if not isinstance(value, dict):
        raise Invalid("invalid-json", "the answer was JSON but not an object")
    return value


class RemoteBackend:
    def __init__(self, stage: str, cfg: BackendConfig, cache: RequestCache | None, seed: int,
                 counters: RunCounters):
        if not cfg.base_url or not cfg.model:
            raise ValueError(f"generate.{stage}: the openai backend needs base_url and model")
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
                    raise httpx.ReadTimeout("the body did not arrive within the timeout")
            data = _body_json(b"".join(chunks), http.headers.get("content-type", ""))
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
                told = retry_after_s(exc.response)
                pause = max(told if told is not None else self._backoff(limited),
                            MIN_RATE_LIMIT_PAUSE_S * 2 ** min(limited, 8))
                limited += 1
                if waited + pause > self.cfg.rate_limit_max_wait_s:
                    raise GenerationError("rate-limited", f"HTTP 429 {limited} times; not waiting more than "
                                          f"rate_limit_max_wait_s = {self.cfg.rate_limit_max_wait_s:g} s in all: "
                                          f"{_said(exc, 160)}") from None
                waited += pause
                self.gate.pause(pause)
                self.counters.bump("retries")
                continue
            except (openai.APITimeoutError, httpx.TimeoutException) as exc:
                last = GenerationError("timeout", f"no answer within {self.cfg.timeout_s} s ({_said(exc, 160)})")
            except (openai.APIConnectionError, httpx.TransportError) as exc:
                last = GenerationError("connection-error", f"{type(exc).__name__}: {_said(exc, 160)}")
            except BadResponse as exc:
                last = GenerationError("bad-response", _said(exc, 200))
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
            failures += 1
            if failures >= attempts:
                raise last
            self.counters.bump("retries")
            time.sleep(self._backoff(failures - 1))

    def _backoff(self, attempt: int) -> float:
        return min(self.cfg.backoff_s * (2 ** attempt), 60.0)

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
        if answer is not None and not _valid_cached(kind, answer):
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
        if _REFUSAL.match(text):
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
                    raise GenerationError(bad.reason, bad.problem, answer=content) from None
                messages = [*messages, {"role": "assistant", "content": content or ""},
                            {"role": "user", "content": repair.render("user", problem=bad.problem)}]
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


def image_data_url(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
