"""Reading what an OpenAI-compatible server sent: strict body parsing, and the JSON in a model's answer.

A 200 body that is not UTF-8, cut JSON or an HTML page is a :class:`BadResponse` (retried by the
client); an answer that is not the JSON object asked for is :class:`Invalid` (repaired once).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from wikihow_tiir.llm.errors import BadResponse, Invalid
from wikihow_tiir.llm.usage import token_counts

REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|sorry,|i can(?:'|no)t|i cannot|i won'?t|as an ai)", re.I)
_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.I)


def body_json(body: bytes, content_type: str) -> Any:
    """The JSON value of a 200 body, or :class:`BadResponse` saying what it was instead."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadResponse(f"the body is not UTF-8 text (byte 0x{body[exc.start]:02x} at {exc.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise BadResponse("the body is JSON nested too deeply to read") from None
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
            "usage": token_counts(data.get("usage"))}


def images_answer(data: Any) -> dict[str, Any]:
    """An images API body as ``{"images": [base64 | None], "urls": [...]}``, or :class:`BadResponse`."""
    if not isinstance(data, dict) or not isinstance(data.get("data") or [], list):
        raise BadResponse("the body is not an images answer (no 'data' list)")
    items = data.get("data") or []
    if not all(isinstance(d, dict) for d in items):
        raise BadResponse("an entry of 'data' is not an object")
    return {"images": [_str_or_none(d.get("b64_json"), "b64_json") for d in items],
            "urls": [u for d in items if (u := _str_or_none(d.get("url"), "url"))]}


def valid_cached(kind: str, answer: Any) -> bool:
    """A cached answer has the shape we store (anything else is treated as not cached)."""
    if not isinstance(answer, dict):
        return False
    if kind == "chat":
        return (all(answer.get(k) is None or isinstance(answer.get(k), str) for k in ("content", "refusal"))
                and isinstance(answer.get("usage", {}), dict))
    return isinstance(answer.get("images", []), list) and isinstance(answer.get("urls", []), list)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:  # a hostile answer nests thousands of brackets: not an answer, not a crash
        raise Invalid("invalid-json", "the answer nests JSON too deeply") from None


def parse_json_object(text: str | None) -> dict[str, Any]:
    """The JSON object in a model's answer (tolerating a ``json`` code fence), or :class:`Invalid`."""
    if not text or not text.strip():
        raise Invalid("empty-answer", "the answer was empty")
    body = _FENCE.sub("", text.strip())
    try:
        value = _loads(body)
    except json.JSONDecodeError:
        start, end = body.find("{"), body.rfind("}")
        try:
            value = _loads(body[start:end + 1]) if 0 <= start < end else None
        except json.JSONDecodeError:
            value = None
        if value is None:
            if REFUSAL.match(body):
                raise Invalid("refusal", "the answer was a refusal, not a JSON object") from None
            raise Invalid("invalid-json", "the answer was not valid JSON") from None
    if not isinstance(value, dict):
        raise Invalid("invalid-json", "the answer was JSON but not an object")
    return value


def image_data_url(data: bytes) -> str:
    """A JPEG as a ``data:`` URL, the way a vision chat message carries a picture."""
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
