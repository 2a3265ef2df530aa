"""A loopback wikiHow mirror for crawler tests and benchmarks (img2dataset's local-server pattern).

It serves, on 127.0.0.1 and a free port:

* the real fixture pages (``tests/fixtures/wikihow_html``), byte for byte, at their original paths
  (taken from each page's canonical link). Clients reach it through the crawler's ``origin_map``
  (``https://www.wikihow.com`` -> this server), so URLs, Host headers and archive keys stay wikiHow's;
* step images under ``/images...``: the bundled archive's stand-in bytes when present
  (``data/sample/archive``, keyed by the original wikiHow URL), else a small PNG rendered from the path;
* ``/robots.txt``, ``/sitemap_index.xml`` -> ``/sitemap-pages-N.xml`` (with ``lastmod``), and
  ``/api.php?action=query&list=categorymembers`` over a small category tree, with ``cmcontinue``;
* fault routes driven by the test through :attr:`WikihowMirror.faults` (path -> :class:`Fault`):
  429 with Retry-After, 5xx, slow answers, bodies dripping in a byte at a time, bodies cut
  mid-transfer (with a Content-Length, chunked, or delimited by the connection closing), whole bodies
  framed chunked or by the close, connection resets, redirects, oversized bodies, ``X-Robots-Tag``
  opt-outs, any status. A fault clears after ``times`` hits.

Every request is logged (arrival time, host, path, status) so tests can check what was contacted
and the gaps between requests. :class:`RecordingServer` is a bare server for a second loopback
address (e.g. 127.0.0.2 as a "foreign host") that only records whether anyone came.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

REPO = Path(__file__).resolve().parents[2]
FIXTURE_PAGES = REPO / "tests" / "fixtures" / "wikihow_html"
SAMPLE_ARCHIVE = REPO / "data" / "sample" / "archive"
_CANONICAL = re.compile(rb'<link rel="canonical" href="(https://www\.wikihow\.(?:com|jp))(/[^"]*)"')

DEFAULT_ROBOTS = """# loopback mirror of wikiHow's robots.txt (the 2020 rules that matter)
User-agent: *
Disallow: /index.php
Disallow: /Special:
Allow: /Special:Sitemap
Disallow: /*action=history
Disallow: /*feed=rss
Disallow: /private-area/
"""


@dataclass
class Fault:
    kind: str  # "status" | "429" | "slow" | "drip" | "truncate" | "reframe" | "reset" | "redirect" | "huge" | "noai"
    times: int | None = 1  # hits before it clears (None: forever)
    status: int = 503  # for "status"
    retry_after: str | None = "1"  # for "429"
    delay: float = 1.0  # for "slow": seconds before the answer starts
    interval: float = 0.1  # for "drip": seconds between two bytes of the body
    give_up_after: float = 30.0  # for "drip": the server hangs up after this long (the body unfinished)
    # for "truncate" and "reframe": how the body's end is announced - "length" (Content-Length),
    # "chunked" (Transfer-Encoding: chunked) or "close" (neither: the body ends when the connection does)
    framing: str = "length"
    mid_chunk: bool = True  # for "truncate" with "chunked": cut inside a chunk, else between two chunks
    location: str = ""  # for "redirect"
    declared: bool = True  # for "huge": announce the size in Content-Length, or just stream
    size: int = 4 * 1024 * 1024  # for "huge"
    header: str = "noai, noimageai"  # for "noai"
    hits: int = 0

    def active(self) -> bool:
        return self.times is None or self.hits < self.times


@dataclass(frozen=True)
class Hit:
    t: float  # time.monotonic() on arrival
    host: str  # the Host header
    path: str  # path + query as requested
    user_agent: str


@dataclass
class Category:
    pages: list[str] = field(default_factory=list)  # article titles ("Grill Zucchini")
    subcats: list[str] = field(default_factory=list)  # category names without the prefix


def stand_in_png(key: str, size: int = 64) -> bytes:
    """A small deterministic PNG for an image path the archive has no stand-in for."""
    from PIL import Image

    digest = hashlib.sha256(key.encode()).digest()
    img = Image.new("RGB", (size, size), tuple(digest[:3]))
    img.putpixel((0, 0), tuple(digest[3:6]))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class WikihowMirror:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, robots_txt: str = DEFAULT_ROBOTS,
                 archive_dir: Path | None = SAMPLE_ARCHIVE, page_files: list[str] | None = None):
        self.host = host
        self.robots_txt = robots_txt
        self.faults: dict[str, Fault] = {}
        self.hits: list[Hit] = []
        self.categories: dict[str, Category] = {}
        self.lastmod: dict[str, str] = {}  # path -> lastmod for the sitemap (default 2020-08-21)
        self.sitemap_pages: list[str] | None = None  # paths listed in the sitemaps (default: all pages)
        self.extra_routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.api_limit: int | None = None  # force cmcontinue paging with small pages
        self._lock = threading.Lock()
        self._images_cache: dict[str, bytes] = {}
        self._archive = None
        if archive_dir is not None and (Path(archive_dir) / "index.jsonl").is_file():
            from wikihow_tiir.sources.archive import Archive

            self._archive = Archive(archive_dir)
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.origin = f"http://{host}:{self.port}"  # where it really listens
        self.public = "https://www.wikihow.com"  # what it stands in for
        self.pages: dict[str, bytes] = {}  # path -> page bytes
        self.page_titles: dict[str, str] = {}  # path -> "Grill Zucchini"
        self.original_url: dict[str, str] = {}  # path -> canonical wikiHow URL
        for f in sorted(FIXTURE_PAGES.glob("*.html")):
            if page_files is not None and f.name not in page_files:
                continue
            raw = f.read_bytes()
            m = _CANONICAL.search(raw)
            if m is None:  # fragments and the 2010 dev-server page have no canonical URL
                continue
            path = m.group(2).decode()
            self.pages[path] = raw
            self.original_url[path] = (m.group(1) + m.group(2)).decode()
            self.page_titles[path] = re.sub(r"%[0-9A-F]{2}", "", path[1:]).replace("-", " ") or path
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> WikihowMirror:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"mirror-{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WikihowMirror:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers for tests
    def url(self, path: str) -> str:
        """The public (wikiHow) URL of a path on this mirror."""
        return self.public + path

    def origin_map(self) -> dict[str, str]:
        """The crawler setting that routes wikiHow's origins to this mirror."""
        return {"https://www.wikihow.com": self.origin, "https://www.wikihow.jp": self.origin}

    def hits_for(self, path_prefix: str = "") -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path.startswith(path_prefix)]

    def reset_log(self) -> None:
        with self._lock:
            self.hits.clear()

    def image_bytes(self, path: str) -> bytes:
        if path not in self._images_cache:
            data = None
            if self._archive is not None:
                data = self._archive.get_bytes("https://www.wikihow.com" + path)
            self._images_cache[path] = data if data is not None else stand_in_png(path)
        return self._images_cache[path]

    # ------------------------------------------------------------------ content
    def sitemap_index(self) -> bytes:
        parts = "".join(f"<sitemap><loc>{self.public}/sitemap-pages-{i}.xml</loc>"
                        f"<lastmod>2020-08-21</lastmod></sitemap>" for i in (1, 2))
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex '
                f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{parts}</sitemapindex>').encode()

    def sitemap(self, n: int) -> bytes:
        paths = (sorted(p for p in self.pages if self.original_url[p].startswith(self.public))
                 if self.sitemap_pages is None else list(self.sitemap_pages))
        mine = paths[n - 1::2]
        urls = "".join(f"<url><loc>{self.public}{p}</loc><lastmod>{self.lastmod.get(p, '2020-08-21')}"
                       f"</lastmod></url>" for p in mine)
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset '
                f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>').encode()

    def api(self, query: dict[str, list[str]]) -> tuple[int, bytes]:
        q = {k: v[0] for k, v in query.items()}
        if q.get("action") != "query" or q.get("list") != "categorymembers":
            return 400, json.dumps({"error": {"code": "badparams", "info": "unsupported"}}).encode()
        title = q.get("cmtitle", "")
        name = title.removeprefix("Category:").replace("_", " ")
        cat = self.categories.get(name)
        if cat is None:
            return 200, json.dumps({"batchcomplete": "", "query": {"categorymembers": []}}).encode()
        types = set(q.get("cmtype", "page|subcat").split("|"))
        members = []
        if "subcat" in types:
            members += [{"ns": 14, "title": f"Category:{s}", "type": "subcat"} for s in cat.subcats]
        if "page" in types:
            members += [{"ns": 0, "title": t, "type": "page"} for t in cat.pages]
        start = int(q.get("cmcontinue", "0") or 0)
        limit = min(int(q.get("cmlimit", "500")), self.api_limit or 500)
        chunk = members[start:start + limit]
        body: dict = {"query": {"categorymembers": chunk}}
        if start + limit < len(members):
            body["continue"] = {"cmcontinue": str(start + limit), "continue": "-||"}
        else:
            body["batchcomplete"] = ""
        return 200, json.dumps(body).encode()

    def content(self, path: str) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path)
        if path in self.extra_routes:
            return self.extra_routes[path]
        if parts.path == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, self.robots_txt.encode()
        if parts.path == "/sitemap_index.xml":
            return 200, {"Content-Type": "application/xml"}, self.sitemap_index()
        m = re.fullmatch(r"/sitemap-pages-(\d)\.xml", parts.path)
        if m:
            return 200, {"Content-Type": "application/xml"}, self.sitemap(int(m.group(1)))
        if parts.path == "/api.php":
            status, body = self.api(parse_qs(parts.query))
            return status, {"Content-Type": "application/json"}, body
        if parts.path.startswith(("/images/", "/images_en/")):
            data = self.image_bytes(parts.path)
            ctype = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
            return 200, {"Content-Type": ctype}, data
        page = self.pages.get(parts.path) or self.pages.get(quote(parts.path, safe="/%()-"))
        if page is None:
            # fault routes and benchmark copies that end in a page: /fault/<name>/<Page>, /copy/<n>/<Page>
            m = re.fullmatch(r"/(?:fault|copy)/[^/]+(/.*)", parts.path)
            if m and m.group(1) in self.pages:
                page = self.pages[m.group(1)]
        if page is not None:
            return 200, {"Content-Type": "text/html; charset=UTF-8",
                         "Last-Modified": "Fri, 21 Aug 2020 10:00:00 GMT"}, page
        return 404, {"Content-Type": "text/html"}, b"<html><body>Not found</body></html>"


def _make_handler(mirror: WikihowMirror):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "wikihow-mirror/1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls

        def log_message(self, *args) -> None:  # quiet
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except (ConnectionError, BrokenPipeError, TimeoutError, OSError):
                pass  # the client gave up (timeouts) or we reset on purpose

        def _send(self, status: int, headers: dict[str, str], body: bytes, length: int | None = None) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)

        def _send_framed(self, status: int, headers: dict[str, str], body: bytes, fault: Fault, cut: bool) -> None:
            part = body[: max(1, len(body) // 3)] if cut else body
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if fault.framing == "length":
                self.send_header("Content-Length", str(len(body)))
            elif fault.framing == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
            elif fault.framing == "close":
                self.send_header("Connection", "close")
            else:
                raise ValueError(f"unknown framing {fault.framing!r}")
            self.end_headers()
            if fault.framing == "chunked":
                for i in range(0, len(part), 4096):
                    piece = part[i:i + 4096]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                if cut and fault.mid_chunk:  # a chunk announced in full, a tenth of it sent
                    self.wfile.write(b"%x\r\n%s" % (1000, body[len(part):len(part) + 100]))
                elif not cut:
                    self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(part)
            if cut or fault.framing == "close":
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            arrived = time.monotonic()
            path = self.path
            with mirror._lock:
                mirror.hits.append(Hit(arrived, self.headers.get("Host", ""), path,
                                       self.headers.get("User-Agent", "")))
                fault = mirror.faults.get(urlsplit(path).path)
                if fault is not None and fault.active():
                    fault.hits += 1
                else:
                    fault = None
            status, headers, body = mirror.content(path)
            if fault is None:
                self._send(status, headers, body)
                return
            kind = fault.kind
            if kind == "status":
                self._send(fault.status, {"Content-Type": "text/plain"}, b"fault")
            elif kind == "429":
                h = {"Content-Type": "text/plain"}
                if fault.retry_after is not None:
                    h["Retry-After"] = fault.retry_after
                self._send(429, h, b"Too Many Requests")
            elif kind == "slow":
                time.sleep(fault.delay)
                self._send(status, headers, body)
            elif kind == "drip":  # announce the full length, then one byte at a time until the server gives up
                self.close_connection = True
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.flush()
                give_up = time.monotonic() + fault.give_up_after
                for i in range(len(body)):
                    if time.monotonic() >= give_up:
                        break
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(fault.interval)
                self.connection.shutdown(socket.SHUT_RDWR)
            elif kind == "truncate":  # announce the body as framed, send a third of it, hang up
                self._send_framed(status, headers, body, fault, cut=True)
            elif kind == "reframe":  # the whole body, framed as the fault says
                self._send_framed(status, headers, body, fault, cut=False)
            elif kind == "reset":  # RST instead of an answer
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            elif kind == "redirect":
                self._send(302, {"Location": fault.location}, b"")
            elif kind == "huge":
                if fault.declared:
                    self._send(200, {"Content-Type": "application/octet-stream"}, b"", length=fault.size)
                    self.close_connection = True
                else:  # no Content-Length: stream until the client gives up
                    self.close_connection = True
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    block = b"x" * 65536
                    for _ in range(fault.size // len(block)):
                        self.wfile.write(block)
            elif kind == "noai":
                self._send(status, {**headers, "X-Robots-Tag": fault.header}, body)
            else:
                raise ValueError(f"unknown fault kind {kind!r}")

    return Handler


class RecordingServer:
    """A bare HTTP server on another loopback address that records every request it receives."""

    def __init__(self, host: str = "127.0.0.2", port: int = 0):
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"hi")

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.origin = f"http://{host}:{self.port}"

    def __enter__(self) -> RecordingServer:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
