"""An OpenAI-compatible server on 127.0.0.1 for tests and benchmarks (werkzeug, threaded).

It answers ``POST /v1/chat/completions`` (text and vision), ``POST /v1/images/generations`` and
``GET /v1/models`` with deterministic answers computed from the request, so the generation
pipeline can run end to end. Faults are scripted *inside the data*: a marker such as
``[[write:500x2]]`` in a document's text makes the server misbehave when it answers that stage
for that document. Markers (``<stage>`` is caption | write | visualize | render):

==================  ==========================================================================
``500x<n>``         HTTP 500 for the first n identical requests, then a normal answer
``429``             HTTP 429 with ``Retry-After: <retry_after_s>`` for the first request
``timeout``         the first request hangs ``hang_s`` seconds (longer than the client waits)
``timeout-always``  every request hangs
``invalid-json``    an answer that is not JSON, every time (``invalid-json-once``: repair works)
``refusal``         "I'm sorry, but I can't help with that."
``copy``            (write) the document's text verbatim as the query
``images=<n>``      (visualize) n segments instead of 3
``bad-image``       (render) base64 of bytes that are not an image
``two-images``      (render) two images for n=1; ``no-image``: none
``429-always``      HTTP 429 with ``Retry-After: <retry_after_s>`` for every request
``429-bad-date``    HTTP 429 with a malformed ``Retry-After`` date for the first request
``non-utf8``        a 200 JSON body with a 0xff byte in it, every time (``-once``: then normal)
``cut-json``        a 200 JSON body cut in the middle (framed correctly), every time (``-once``)
``html``            a 200 ``text/html`` page instead of JSON, every time (``-once``)
``deep-json``       a 200 body of 100,000 nested JSON arrays, every time (``-once``)
``bad-gzip``        a 200 body marked ``Content-Encoding: gzip`` that is not gzip, every time (``-once``)
``stall-body``      a 200 body whose second half comes ``hang_s`` seconds late, every time (``-once``)
``cut-body``        a 200 body that ends (connection closed) before its Content-Length, every time (``-once``)
``deep-answer``     (write) a well-formed body whose answer nests 40,000 JSON arrays
``huge=<n>``        (write) a valid answer whose query has n words
``echo-key``        HTTP 401 whose error message quotes the request's Authorization header
``echo-key-500``    HTTP 500 quoting it (retried, then server-error)
``echo-key-answer`` (write) a 200 answer, too short to keep, that quotes it
``echo-key-ok``     (write) a good answer whose query quotes it
==================  ==========================================================================

A request whose text says "ignore previous instructions" is answered as a gullible model would:
``{"query": "HACKED", "leak": "<the system prompt>"}``. Every request is logged in ``requests`` (stage, status,
start/end times, a hash of the body, and the chat messages as text).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
from collections import Counter
from typing import Any

from PIL import Image, ImageDraw
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

MARKER = re.compile(r"\[\[(caption|write|visualize|render):([\w=-]+)\]\]")
REFUSAL = "I'm sorry, but I can't help with that."


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?。！？])\s*|\n+", text) if s and s.strip()]


def _tag(text: str, name: str) -> str:
    m = re.search(rf"<{name}>\s*(.*?)\s*</{name}>", text, re.S)
    return m.group(1) if m else ""


def _image_png(seed_text: str, side: int = 96) -> bytes:
    """A deterministic picture: stripes and a disc whose colours and layout come from the text."""
    h = hashlib.sha256(seed_text.encode("utf-8")).digest()
    im = Image.new("RGB", (side, side), (h[0], h[1], h[2]))
    d = ImageDraw.Draw(im)
    for i in range(6):
        y = (h[3 + i] % side)
        d.rectangle([0, y, side, y + 4 + h[9 + i] % 10], fill=(h[15 + i], h[21 + i], h[27 - i]))
    r = 10 + h[30] % 30
    d.ellipse([h[31] % side - r, h[29] % side - r, h[31] % side + r, h[29] % side + r], fill=(255 - h[0], h[2], 90))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


class _QuietHandler(WSGIRequestHandler):
    def log(self, *args: object, **kwargs: object) -> None:  # tests read ``requests`` instead
        pass


class OpenAIServer:
    def __init__(self, latency_s: float = 0.0, hang_s: float = 2.0, retry_after_s: int = 1,
                 model: str = "scripted-1", reject_response_format: bool = False):
        self.latency_s = latency_s
        self.reject_response_format = reject_response_format  # act like a server without JSON mode
        self.hang_s = hang_s
        self.retry_after_s = retry_after_s
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()  # the request being answered (for the echo-key faults)
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True,
                                   request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, stage: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if (stage is None or r["stage"] == stage)
                       and (status is None or r["status"] == status))

    # ------------------------------------------------------------------ WSGI

    @Request.application
    def _app(self, request: Request) -> Response:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        started = time.monotonic()
        stage, status, text = "?", 500, ""
        key = hashlib.sha256(request.get_data()).hexdigest()
        self._local.authorization = request.headers.get("Authorization", "")
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            if request.method == "GET" and request.path.endswith("/models"):
                stage, resp = "models", _json({"object": "list", "data": [{"id": self.model, "object": "model"}]})
            elif request.path.endswith("/chat/completions"):
                body = request.get_json(force=True)
                text = json.dumps(body.get("messages"), ensure_ascii=False)
                stage, resp = self._chat(body)
            elif request.path.endswith("/images/generations"):
                stage, resp = self._images(request.get_json(force=True))
            else:
                resp = _json({"error": {"message": "not found"}}, 404)
            status = resp.status_code
            return resp
        finally:
            with self._lock:
                self.in_flight -= 1
                self.requests.append({"stage": stage, "status": status, "start": started, "key": key,
                                      "end": time.monotonic(), "path": request.path, "text": text})

    def _fault(self, stage: str, text: str, key: str) -> tuple[str | None, int]:
        """The scripted fault for this stage, and how many times this exact request came before."""
        faults = [f for s, f in MARKER.findall(text) if s == stage]
        with self._lock:
            seen = self._seen[key]
            self._seen[key] += 1
        return (faults[0] if faults else None), seen

    def _transport_fault(self, fault: str | None, seen: int) -> Response | None:
        if fault is None:
            return None
        m = re.fullmatch(r"500x(\d+)", fault)
        if m and seen < int(m.group(1)):
            return _json({"error": {"message": "scripted server error", "type": "server_error"}}, 500)
        if (fault == "429" and seen == 0) or fault == "429-always":
            return _json({"error": {"message": "slow down", "type": "rate_limit"}}, 429,
                         {"Retry-After": str(self.retry_after_s)})
        if fault == "429-bad-date" and seen == 0:
            return _json({"error": {"message": "slow down", "type": "rate_limit"}}, 429,
                         {"Retry-After": "Wed, 32 Foo 2024 99:99:99 GMT"})
        auth = getattr(self._local, "authorization", "")
        if fault == "echo-key":
            return _json({"error": {"message": f"Incorrect API key provided: {auth}", "type": "invalid_request_error",
                                    "headers": {"Authorization": auth}}}, 401)
        if fault == "echo-key-500":
            return _json({"error": {"message": f"upstream failed for request with Authorization: {auth}"}}, 500)
        body_fault = fault.removesuffix("-once")
        if body_fault in ("non-utf8", "cut-json", "html", "deep-json", "bad-gzip", "cut-body") and (
                fault == body_fault or seen == 0):
            return _malformed(body_fault)
        if body_fault == "stall-body" and (fault == body_fault or seen == 0):
            return _stalled(self.hang_s)
        if fault == "timeout-always" or (fault == "timeout" and seen == 0):
            time.sleep(self.hang_s)
        return None

    # ------------------------------------------------------------------ chat

    def _chat(self, body: dict[str, Any]) -> tuple[str, Response]:
        messages = body.get("messages") or []
        texts, images = [], []
        for m in messages:
            content = m.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                for part in content:
                    if part.get("type") == "text":
                        texts.append(part.get("text", ""))
                    elif part.get("type") == "image_url":
                        images.append(part.get("image_url", {}).get("url", ""))
        text = "\n".join(texts)
        user = next((m["content"] for m in messages if m.get("role") == "user"), "")
        user = user if isinstance(user, str) else "\n".join(p.get("text", "") for p in user if p.get("type") == "text")
        stage = "caption" if images else "write" if "<document>" in user else "visualize" if "<query>" in user else "chat"
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        fault, seen = self._fault(stage, text, key)
        if (err := self._transport_fault(fault, seen)) is not None:
            return stage, err
        if self.reject_response_format and "response_format" in body:
            return stage, _json({"error": {"message": "response_format is not supported"}}, 400)
        repairing = any(m.get("role") == "assistant" for m in messages)

        if "ignore previous instructions" in text.lower():
            system = next((m["content"] for m in messages if m.get("role") == "system"), "")
            return stage, self._completion(json.dumps({"query": "HACKED", "leak": system[:80]}))
        if fault == "refusal":
            return stage, self._completion(REFUSAL)
        if fault == "invalid-json" or (fault == "invalid-json-once" and not repairing):
            return stage, self._completion("Sure! Here is your query: {query: unquoted, oops")

        if stage == "caption":
            return stage, self._caption(images[0], _tag(user, "step"))
        if stage == "write" and fault and fault.startswith("huge="):
            words = int(fault.split("=", 1)[1])
            return stage, self._completion(json.dumps({"query": " ".join(["overlong"] * words)}))
        if stage == "write" and fault == "deep-answer":
            return stage, self._completion('{"query": ' + "[" * 40_000 + "]" * 40_000 + "}")
        if stage == "write" and fault == "echo-key-answer":
            return stage, self._completion(json.dumps({"query": f"my key is {self._local.authorization}"}))
        if stage == "write":
            return stage, self._write(_tag(user, "document"), fault)
        if stage == "visualize":
            return stage, self._visualize(_tag(user, "query"), fault)
        return stage, self._completion("Hello from the scripted server.")

    def _completion(self, content: str) -> Response:
        prompt_tokens = 50
        completion_tokens = max(1, len(content.split()))
        return _json({
            "id": "chatcmpl-" + hashlib.sha1(content.encode()).hexdigest()[:12], "object": "chat.completion",
            "created": 0, "model": self.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    def _caption(self, url: str, step: str) -> Response:
        m = re.fullmatch(r"data:image/[\w.+-]+;base64,(.+)", url, re.S)
        if not m:
            return _json({"error": {"message": "image_url must be a base64 data URL"}}, 400)
        try:
            im = Image.open(io.BytesIO(base64.b64decode(m.group(1), validate=True)))
            im.load()
        except Exception:  # noqa: BLE001 - any decoding problem is the client's fault
            return _json({"error": {"message": "image_url does not hold a decodable image"}}, 400)
        r, g, b = im.convert("RGB").resize((1, 1)).getpixel((0, 0))
        tone = "reddish" if r >= max(g, b) else "greenish" if g >= b else "bluish"
        words = " ".join(step.split()[:6])
        return self._completion(f"A {tone} {im.width}x{im.height} photo of someone at work: {words}.")

    def _write(self, document: str, fault: str | None) -> Response:
        if fault == "copy":
            steps = [re.sub(r"^\d+\.\s*|\s*\[picture:.*?\]", "", ln) for ln in document.splitlines()
                     if re.match(r"^\d+\.", ln)]
            return self._completion(json.dumps({"query": " ".join(steps)}))
        goal = re.search(r"Goal:\s*(.*)", document)
        goal_text = re.sub(r"^how to\s+", "", goal.group(1).strip(), flags=re.I) if goal else "get this done"
        steps = [ln for ln in document.splitlines() if re.match(r"^\d+\.", ln)]
        hints = [" ".join(re.sub(r"^\d+\.\s*", "", s).split()[:2]).rstrip(".,") for s in steps[:4]]
        query = (f"I have been trying to {goal_text.lower()} for a few days now and it is not going well. "
                 "I have most of what I need at home, but I am not sure about the order of things. "
                 + " ".join(f"Things got confusing around step {n}, the part with {h.lower()}."
                            for n, h in enumerate(hints, 1))
                 + " A friend tried to explain it over the phone, but I could not follow along. "
                 "What am I doing wrong, and how should I go about it?")
        if fault == "echo-key-ok":
            query += f" The server said my credentials were {self._local.authorization}."
        return self._completion(json.dumps({"query": query}))

    def _visualize(self, query: str, fault: str | None) -> Response:
        n = 3
        if fault and fault.startswith("images="):
            n = int(fault.split("=", 1)[1])
        sentences = _sentences(query) or [query]
        markers = " ".join(sorted(set(re.findall(r"\[\[render:[\w=-]+\]\]", query))))
        per = max(1, len(sentences) // max(n, 1))
        segments = []
        for i in range(n):
            chunk = " ".join(sentences[i * per:(i + 1) * per]) or "And then this happened:"
            subject = " ".join(chunk.split()[-10:])  # the end of a chunk differs most between chunks
            scene = hashlib.sha256(f"{query}|{i}".encode()).hexdigest()[:6]  # one query's pictures are its own
            segments.append({"text": chunk + " This is what I see:",
                             "image_prompt": f"A photo illustrating: {subject} (scene {scene}) {markers}".strip()})
        closing = " ".join(sentences[n * per:]) or "What should I do next?"
        return self._completion(json.dumps({"segments": segments, "closing": closing}))

    # ------------------------------------------------------------------ images

    def _images(self, body: dict[str, Any]) -> tuple[str, Response]:
        prompt = str(body.get("prompt", ""))
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        fault, seen = self._fault("render", prompt, key)
        if (err := self._transport_fault(fault, seen)) is not None:
            return "render", err
        good = base64.b64encode(_image_png(prompt)).decode("ascii")
        if fault == "bad-image":
            data = [{"b64_json": base64.b64encode(b"this is not an image at all " * 8).decode("ascii")}]
        elif fault == "two-images":
            data = [{"b64_json": good}, {"b64_json": base64.b64encode(_image_png(prompt + "2")).decode("ascii")}]
        elif fault == "no-image":
            data = []
        else:
            data = [{"b64_json": good}]
        return "render", _json({"created": 0, "data": data})


def _stalled(hang_s: float) -> Response:
    """A good chat body whose second half arrives ``hang_s`` seconds after the first."""
    body = json.dumps({"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "{\"query\": \"hi\"}"}}]}).encode()

    def chunks():
        yield body[:len(body) // 2]
        time.sleep(hang_s)
        yield body[len(body) // 2:]

    return Response(chunks(), status=200, mimetype="application/json", headers={"Content-Length": str(len(body))})


def _malformed(kind: str) -> Response:
    """A status-200 body that is not what the API promises."""
    good = json.dumps({"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "{\"query\": \"hi\"}"}}]})
    if kind == "non-utf8":
        return Response(good.encode()[:40] + b"\xff\xfe" + good.encode()[40:], status=200,
                        mimetype="application/json")
    if kind == "cut-json":
        return Response(good[:len(good) // 2], status=200, mimetype="application/json")
    if kind == "cut-body":
        return Response(iter([good[:len(good) // 2].encode()]), status=200, mimetype="application/json",
                        headers={"Content-Length": str(len(good)), "Connection": "close"})
    if kind == "bad-gzip":
        return Response(good, status=200, mimetype="application/json", headers={"Content-Encoding": "gzip"})
    if kind == "deep-json":
        return Response("[" * 100_000 + "]" * 100_000, status=200, mimetype="application/json")
    return Response("<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>", status=200,
                    mimetype="text/html")


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(obj), status=status, headers=headers, mimetype="application/json")
