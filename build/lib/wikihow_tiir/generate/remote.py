"""The ``openai`` backend: any OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenAI ...).

One :class:`RemoteBackend` per stage wraps an ``openai.OpenAI`` client with our own retry loop
(the client's is switched off so retries are counted and 429 pauses are shared): 5xx, timeouts
and connection errors are retried with exponential backoff; a 429 pauses *every* worker of the
stage for the server's ``Retry-After``. Answers pass through the :class:`RequestCache`.
Structured answers are parsed into pydantic models; one repair turn, then a
:class:`GenerationError` whose ``reason`` becomes the recorded reject.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from wikihow_tiir.config import BackendConfig
from wikihow_tiir.generate.cache import RequestCache, request_key
from wikihow_tiir.generate.prompts import Prompt

T = TypeVar("T", bound=BaseModel)

MAX_RETRY_AFTER_S = 120.0
_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:'|no)t|i cannot|i won'?t|as an ai)", re.I)
_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.I)


class GenerationError(Exception):
    """A call that produced nothing usable; ``reason`` is the reject code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Invalid(Exception):
    """An answer that parsed but is not acceptable (``reason``, and ``problem`` told to the model)."""

    def __init__(self, reason: str, problem: str):
        super().__init__(problem)
        self.reason = reason
        self.problem = problem


@dataclass
class Usage:
    """Tokens and images of one work item (stored with its record, so resumed runs count the same)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0  # model calls made for the item (cached or not)
    images: int = 0

    def add(self, response: dict[str, Any]) -> None:
        u = response.get("usage") or {}
        self.prompt_tokens += int(u.get("prompt_tokens") or 0)
        self.completion_tokens += int(u.get("completion_tokens") or 0)
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
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


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

    def _send(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One call with retries; returns the answer as plain JSON data."""
        attempts = max(1, self.cfg.retries + 1)
        last: GenerationError | None = None
        for attempt in range(attempts):
            self.gate.wait()
            self.counters.bump("http_requests")
            try:
                if kind == "chat":
                    r = self.client.chat.completions.create(**payload)
                    choice = r.choices[0] if r.choices else None
                    msg = choice.message if choice else None
                    usage = r.usage.model_dump() if r.usage else {}
                    return {"content": msg.content if msg else None,
                            "refusal": getattr(msg, "refusal", None) if msg else None,
                            "finish_reason": choice.finish_reason if choice else None, "usage": usage}
                r = self.client.images.generate(**payload)
                return {"images": [d.b64_json for d in (r.data or [])],
                        "urls": [d.url for d in (r.data or []) if getattr(d, "url", None)]}
            except openai.RateLimitError as exc:
                self.counters.bump("rate_limited")
                wait = retry_after_s(exc.response)
                self.gate.pause(wait if wait is not None else self._backoff(attempt))
                last = GenerationError("rate-limited", str(exc)[:200])
            except openai.APITimeoutError as exc:
                last = GenerationError("timeout", f"no answer within {self.cfg.timeout_s} s ({exc})"[:200])
                time.sleep(self._backoff(attempt))
            except openai.APIConnectionError as exc:
                last = GenerationError("connection-error", str(exc)[:200])
                time.sleep(self._backoff(attempt))
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
                    last = GenerationError("server-error", f"HTTP {code}: {str(exc)[:160]}")
                    time.sleep(self._backoff(attempt))
                else:
                    raise GenerationError(f"http-{code}", str(exc)[:200]) from None
            if attempt + 1 < attempts:
                self.counters.bump("retries")
        assert last is not None
        raise last

    def _backoff(self, attempt: int) -> float:
        return min(self.cfg.backoff_s * (2 ** attempt), 60.0)

    def call(self, kind: str, payload: dict[str, Any], prompt_sha256: str, usage: Usage,
             attempt_tag: int = 0) -> dict[str, Any]:
        """``_send`` through the cache (``attempt_tag`` separates deliberate re-asks of the same payload)."""
        key = request_key(self.stage, self.model, self._params(), prompt_sha256, [kind, attempt_tag, payload])
        answer = self.cache.get(key) if self.cache is not None else None
        if answer is not None:
            self.counters.bump("cache_hits")
        else:
            answer = self._send(kind, payload)
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
            raise GenerationError("refusal", str(answer["refusal"])[:200])
        text = (answer.get("content") or "").strip()
        if not text:
            raise GenerationError("empty-answer", "the model returned no text")
        if _REFUSAL.match(text):
            raise GenerationError("refusal", text[:200])
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
                raise GenerationError("refusal", str(answer["refusal"])[:200])
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
                if turn == 1:
                    raise GenerationError(bad.reason, bad.problem) from None
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
