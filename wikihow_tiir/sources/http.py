"""The polite HTTP client shared by page, image, sitemap and API fetching.

Why ``requests`` and threads rather than httpx/async: a polite crawl spends almost all its time
waiting for its per-host slot (1 request/s by default), so a handful of threads is plenty, and
``requests`` is already a dependency. What the client guarantees, per request and per redirect hop:

* only ``http``/``https`` URLs on allowlisted hosts, resolving to public addresses (loopback and
  private ranges only when ``allow_private_addresses``; link-local, e.g. the cloud metadata address
  169.254.169.254, never) - checked *before* connecting;
* robots.txt fetched once per host and cached; ``Disallow`` and ``Crawl-delay`` honoured;
* per host, one request at a time and a gap of at least ``1 / requests_per_second`` (or the robots
  ``Crawl-delay`` when longer) from the end of one response to the start of the next - so the gap
  the *server* sees between two requests can never be shorter, whatever the network does - and at
  most ``max_concurrency`` requests in flight overall;
* retries with exponential backoff and jitter on timeouts, connection errors, cut bodies and 5xx;
  on 429 the whole host pauses for ``Retry-After`` (or ``pause_on_429_s``), never longer than
  ``max_backoff_s``: a longer wish ends that URL as ``rate-limited`` at once, and a host that
  repeats it right after the pause is not contacted again in this run (its URLs end
  ``rate-limited`` without a request; the next run retries them);
* 404/410 and other 4xx are final; size caps and timeouts on every response, and a whole body must
  arrive within 4 x ``timeout_s`` (checked while reading, so a body dripping in cannot hold the
  host's slot longer);
* a body is only accepted when it is known to be complete: its Content-Length was met or its
  chunked encoding ended; a body delimited by nothing but the connection closing must be an HTML
  document that ends (``</html>``) or an image that decodes to its end, else it is ``truncated``.

Failures never raise: :meth:`PoliteClient.fetch` returns a :class:`FetchResult` whose ``error`` is a
short reason code (``http-404``, ``robots-disallowed``, ``host-not-allowed`` ...).
"""

from __future__ import annotations

import ipaddress
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from wikihow_tiir.config import CrawlConfig
from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.retry_after import retry_after_s
from wikihow_tiir.sources.robots import RobotsRules

# Reasons worth another try on a later attempt or a later run; everything else is final.
TRANSIENT_REASONS = frozenset({
    "timeout", "connection-error", "truncated", "rate-limited", "robots-unreachable", "server-error", "cancelled",
})
NOTE_HEADERS = ("content-type", "last-modified", "etag", "x-robots-tag", "retry-after", "content-length",
                "location")
_REDIRECTS = (301, 302, 303, 307, 308)
# A host that asks twice in a row for a pause longer than max_backoff_s is closed for the rest of the
# run: once could be one URL's limit, twice after honouring the capped pause is the host's answer.
_REFUSALS_TO_CLOSE = 2
_HTML_END = re.compile(rb"</html\s*>", re.IGNORECASE)
_HTML_TAIL = 4096  # the end tag must be in the last 4 KiB (a comment or whitespace may follow it)
_DNS_TTL_S = 300.0


class CrawlSetupError(WikihowTiirError, ValueError):
    """The crawl configuration is not fit for a live crawl (no contact address, bad allowlist ...)."""

    reason = "crawl-setup"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class FetchResult:
    url: str
    status: int = 0  # HTTP status of the last response, 0 when none came
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)  # headers of note, lower-case names
    final_url: str = ""
    error: str = ""  # "" on success, else a reason code
    detail: str = ""
    attempts: int = 0
    fetched_at: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def transient(self) -> bool:
        return self.error in TRANSIENT_REASONS

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def host_allowed(host: str, patterns: list[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(fnmatchcase(host, p.lower()) for p in patterns)


def user_agent(cfg: CrawlConfig) -> str:
    contact = (cfg.contact or "").strip()
    if not contact:
        raise CrawlSetupError(
            "a live crawl needs a contact address for the User-Agent: set source.crawl.contact "
            "(e.g. --contact you@example.org) so wikiHow can reach you about your crawler")
    return f"{cfg.user_agent} (+{contact})"


def _crawl_delay_gap(rules: RobotsRules) -> float:
    return rules.crawl_delay or 0.0


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


_PEER_REFUSED = "not a public address"


def _address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return "link-local/multicast: never fetched"
    if (ip.is_private or ip.is_loopback or ip.is_reserved) and not allow_private:
        return "non-public"
    return None


class _PeerCheck:
    """Mixed into urllib3's connections: the address actually connected to is checked again, so a
    DNS answer that changes between our check and the connect (DNS rebinding) cannot reach a
    private address. The socket is closed before a byte is sent."""

    allow_private = False

    def _new_conn(self):
        sock = super()._new_conn()  # type: ignore[misc]
        peer = sock.getpeername()[0]
        problem = _address_problem(ipaddress.ip_address(peer.split("%", 1)[0]), self.allow_private)
        if problem:
            sock.close()
            raise OSError(f"connected peer {peer} is {_PEER_REFUSED} ({problem}); refused before sending")
        return sock


class _PeerCheckingAdapter(HTTPAdapter):
    def __init__(self, allow_private: bool, **kwargs):
        self._allow_private = allow_private
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        flag = {"allow_private": self._allow_private}
        http_conn = type("CheckedHTTPConnection", (_PeerCheck, HTTPConnection), flag)
        https_conn = type("CheckedHTTPSConnection", (_PeerCheck, HTTPSConnection), flag)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("CheckedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("CheckedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }


class _Host:
    """Per-host politeness state: the next free request slot, a 429 pause, robots rules."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.robots_lock = threading.Lock()
        self.busy = threading.Lock()  # held from waiting for the slot to the end of the response
        self.next_at = 0.0  # earliest start of the next request (end of the last one + gap)
        self.paused_until = 0.0  # set by a 429, at most max_backoff_s ahead
        self.refusals = 0  # 429s in a row asking for more than max_backoff_s
        self.closed_until = 0.0  # after _REFUSALS_TO_CLOSE of them: no request before this
        self.closed_detail = ""
        self.robots: RobotsRules | None = None


class PoliteClient:
    """One per crawl; safe to share between threads (each thread gets its own HTTP session)."""

    def __init__(self, cfg: CrawlConfig, on_robots: Callable[[FetchResult], None] | None = None):
        self.cfg = cfg
        self.user_agent = user_agent(cfg)
        if not cfg.requests_per_second and not cfg.allow_private_addresses:
            raise CrawlSetupError("requests_per_second=0 switches the rate limit off; that is only allowed "
                                  "against a local mirror (allow_private_addresses), never the live site")
        self.agent_token = cfg.user_agent.split("/", 1)[0].split()[0]
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(cfg.max_concurrency)
        self._local = threading.local()
        self._on_robots = on_robots
        self._stats_lock = threading.Lock()
        self.stats: Counter[str] = Counter()  # requests, bytes, status-NNN, retries, pauses ...
        self.recent: deque[float] = deque(maxlen=512)  # request start times, for the live rate display
        self.interval = 1.0 / cfg.requests_per_second if cfg.requests_per_second else 0.0
        self._origin_map = {_origin(k): v.rstrip("/") for k, v in cfg.origin_map.items()}
        for target in self._origin_map.values():
            if urlsplit(target).scheme not in ("http", "https") or not urlsplit(target).hostname:
                raise CrawlSetupError(f"origin_map target {target!r} is not an http(s) origin")
        self._dns: dict[str, tuple[float, list[str]]] = {}
        self._cancel = threading.Event()

    # ------------------------------------------------------------------ public
    def fetch(self, url: str, *, max_bytes: int | None = None, image: bool = False,
              check_robots: bool = True) -> FetchResult:
        """GET ``url`` politely, following allowed redirects, retrying transient failures."""
        cfg = self.cfg
        max_bytes = max_bytes or (cfg.max_image_bytes if image else cfg.max_page_bytes)
        attempt = 0
        while True:
            res = self._fetch_once(url, max_bytes, image, check_robots)
            res.attempts = attempt + 1
            wait = self._pause_s(res) if res.status == 429 else None  # the host is paused already
            if wait is not None and wait > cfg.max_backoff_s:  # a longer break than we may wait: give up now
                has_header = retry_after_s(res.headers.get("retry-after")) is not None
                asked = "Retry-After" if has_header else "pause_on_429_s"
                res.detail = (f"429 with a {wait:.0f}s pause ({asked}), more than max_backoff_s "
                              f"({cfg.max_backoff_s:g}s): the host was paused {cfg.max_backoff_s:g}s instead")
                return res
            if res.ok or not res.transient or res.error == "robots-unreachable" or attempt >= cfg.max_retries:
                return res
            if res.error == "rate-limited" and res.status != 429:  # the host is closed for this run
                return res
            # after a 429 no sleep here: _acquire_host holds every request to the host until the pause ends
            if wait is None:
                delay = min(cfg.max_backoff_s, cfg.backoff_base_s * (2 ** attempt))
                if self._cancel.wait(delay + random.uniform(0, delay / 2)):
                    return res
            attempt += 1
            self._count("retries")

    def robots_for(self, url: str) -> RobotsRules:
        parts = urlsplit(url)
        host = self._host(parts.netloc.lower())
        with host.robots_lock:
            if host.robots is None:
                robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
                res = self.fetch(robots_url, max_bytes=512 * 1024, check_robots=False)
                if res.ok and res.body is not None:
                    rules = RobotsRules.parse(res.body.decode("utf-8", "replace"), self.agent_token)
                elif 400 <= res.status < 500 and res.status != 429:  # RFC 9309: 4xx means no restrictions
                    rules = RobotsRules(source="missing")
                else:  # unreachable / 5xx: assume complete disallow (RFC 9309 §2.3.1.4)
                    rules = RobotsRules(disallow_all=True, source="unreachable")
                host.robots = rules
                delay = _crawl_delay_gap(rules)
                if delay > self.interval:
                    self._count("crawl-delay-hosts")
                    with host.lock:  # the robots.txt request itself already counts against the delay
                        host.next_at += delay - self.interval
                if self._on_robots is not None:
                    self._on_robots(res)
            return host.robots

    def cancel(self) -> None:
        """Make waiting requests give up (reason ``cancelled``) instead of sleeping out a pause."""
        self._cancel.set()

    def rate(self, window_s: float = 10.0) -> float:
        """Requests per second over the last ``window_s`` seconds."""
        now = time.monotonic()
        times = [t for t in list(self.recent) if now - t <= window_s]
        if not times:
            return 0.0
        return len(times) / max(now - times[0], 1.0)  # a young crawl: divide by its age, not the window

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()

    # ------------------------------------------------------------------ internals
    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _host(self, netloc: str) -> _Host:
        with self._hosts_lock:
            host = self._hosts.get(netloc)
            if host is None:
                host = self._hosts[netloc] = _Host()
            return host

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # never route through an environment proxy we did not vet
            adapter = _PeerCheckingAdapter(self.cfg.allow_private_addresses)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({"User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate"})
            self._local.session = session
        return session

    def physical(self, url: str) -> tuple[str, str | None]:
        """(URL really requested, Host header to send) after ``origin_map``."""
        parts = urlsplit(url)
        target = self._origin_map.get(f"{parts.scheme}://{parts.netloc}".lower())
        if target is None:
            return url, None
        return target + (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), parts.netloc

    def _refuse_target(self, url: str) -> tuple[str, str] | None:
        """(reason, detail) when ``url`` must not be contacted, checked before any connection."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "bad-url", f"not an http(s) URL: {url!r}"
        if not host_allowed(parts.hostname, self.cfg.allowed_hosts):
            return "host-not-allowed", f"{parts.hostname} is not in allowed_hosts"
        target = urlsplit(self.physical(url)[0])
        hostname = target.hostname or ""
        cached = self._dns.get(hostname)
        if cached is None or time.monotonic() - cached[0] > _DNS_TTL_S:
            try:
                infos = socket.getaddrinfo(hostname, target.port or (443 if target.scheme == "https" else 80),
                                           proto=socket.IPPROTO_TCP)
            except (socket.gaierror, UnicodeError) as exc:
                return "dns-error", f"{hostname}: {exc}"
            cached = self._dns[hostname] = (time.monotonic(), sorted({info[4][0] for info in infos}))
        for addr in cached[1]:
            ip = ipaddress.ip_address(addr.split("%", 1)[0])
            problem = _address_problem(ip, self.cfg.allow_private_addresses)
            if problem == "non-public":
                return "private-address", f"{hostname} resolves to non-public {ip}"
            if problem:
                return "private-address", f"{hostname} resolves to {ip} ({problem})"
        return None

    def _pause_s(self, res: FetchResult) -> float:
        wait = retry_after_s(res.headers.get("retry-after"))
        return self.cfg.pause_on_429_s if wait is None else wait

    def _pause_host(self, host: _Host, netloc: str, wanted: float) -> None:
        """After a 429 (``host.lock`` held): pause for ``wanted`` seconds, at most ``max_backoff_s``."""
        cap = self.cfg.max_backoff_s
        now = time.monotonic()
        host.paused_until = max(host.paused_until, now + min(wanted, cap))
        if wanted <= cap:
            host.refusals = 0
            return
        host.refusals += 1
        if host.refusals >= _REFUSALS_TO_CLOSE:
            self._count("hosts-closed-429")
            host.closed_until = max(host.closed_until, now + wanted)
            host.closed_detail = (f"{netloc} asked {host.refusals} times in a row for a pause longer than "
                                  f"max_backoff_s ({cap:g}s); not contacted again in this run")

    def _closed(self, host: _Host, res: FetchResult) -> bool:
        """True (and ``res`` says why) when the host refused us for longer than we may wait."""
        with host.lock:
            if time.monotonic() >= host.closed_until:
                return False
            res.error, res.detail = "rate-limited", host.closed_detail
        return True

    def _acquire_host(self, host: _Host, interval: float) -> tuple[bool, bool]:
        """Wait for our turn on a host: (go ahead, we hold ``host.busy``). Not ahead when cancelled."""
        holding = False
        if interval > 0:  # rate-limited: one request at a time per host
            while not host.busy.acquire(timeout=0.25):
                if self._cancel.is_set():
                    return False, False
            holding = True
        while True:
            with host.lock:
                delay = max(host.next_at, host.paused_until) - time.monotonic()
            if delay <= 0:
                return True, holding
            if self._cancel.wait(delay):
                if holding:
                    host.busy.release()
                return False, False

    def _fetch_once(self, url: str, max_bytes: int, image: bool, check_robots: bool) -> FetchResult:
        res = FetchResult(url=url)
        current = url
        for _hop in range(self.cfg.max_redirects + 1):
            res.final_url = current
            refused = self._refuse_target(current)
            if refused is not None:
                res.error, res.detail = refused
                return res
            parts = urlsplit(current)
            netloc = parts.netloc.lower()
            interval = self.interval
            if check_robots and self.cfg.respect_robots:
                rules = self.robots_for(current)
                if rules.disallow_all and rules.source == "unreachable":
                    res.error, res.detail = "robots-unreachable", f"robots.txt of {netloc} could not be read"
                    return res
                if not rules.allowed(current):
                    res.error, res.detail = "robots-disallowed", f"robots.txt of {netloc} disallows {parts.path}"
                    return res
                interval = max(interval, _crawl_delay_gap(rules))
            host = self._host(netloc)
            if self._closed(host, res):
                return res
            ahead, holding = self._acquire_host(host, interval)
            if not ahead:
                res.error, res.detail = "cancelled", "the crawl was stopped"
                return res
            if self._closed(host, res):  # closed while we waited for our turn
                if holding:
                    host.busy.release()
                return res
            try:
                self._request(current, max_bytes, image, res)
            finally:
                with host.lock:
                    host.next_at = max(host.next_at, time.monotonic() + interval)
                    if res.status == 429:  # pause the whole host before anyone else may start
                        self._count("pauses-429")
                        self._pause_host(host, netloc, self._pause_s(res))
                    elif res.status:
                        host.refusals = 0
                if holding:
                    host.busy.release()
            if res.status in _REDIRECTS and not res.error:
                location = res.headers.get("location")
                if not location:
                    res.error, res.detail = "bad-redirect", f"{res.status} without Location"
                    return res
                current = urljoin(current, location)
                continue
            return res
        res.error, res.detail = "too-many-redirects", f"more than {self.cfg.max_redirects} redirects"
        return res

    def _request(self, url: str, max_bytes: int, image: bool, res: FetchResult) -> None:
        cfg = self.cfg
        res.body = None
        res.error = res.detail = ""
        res.fetched_at = now_iso()
        with self._slots:
            started = time.monotonic()
            self.recent.append(started)
            self._count("requests")
            target, host_header = self.physical(url)
            try:
                resp = self._session().get(target, stream=True, allow_redirects=False,
                                           headers={"Host": host_header} if host_header else None,
                                           timeout=(cfg.timeout_s, cfg.timeout_s))
            except requests.exceptions.Timeout as exc:
                res.status, res.error, res.detail = 0, "timeout", str(exc)[:300]
                return
            except requests.exceptions.RequestException as exc:
                text = str(exc)
                if _PEER_REFUSED in text:  # not transient: never retried
                    i = text.find("connected peer")
                    res.status, res.error, res.detail = 0, "private-address", text[i:i + 300]
                else:
                    res.status, res.error, res.detail = 0, "connection-error", text[:300]
                return
            try:
                self._read(resp, max_bytes, image, started, res)
            finally:
                resp.close()
        self._count(f"status-{res.status}")

    def _read(self, resp: requests.Response, max_bytes: int, image: bool, started: float,
              res: FetchResult) -> None:
        cfg = self.cfg
        res.status = resp.status_code
        res.headers = {k: resp.headers[k] for k in NOTE_HEADERS if k in resp.headers}
        status = resp.status_code
        if status in _REDIRECTS:
            return
        if status == 429:
            res.error, res.detail = "rate-limited", "429 Too Many Requests"
            return
        if status >= 500:
            res.error, res.detail = "server-error", f"HTTP {status}"
            return
        if status >= 400 or status < 200:
            res.error, res.detail = f"http-{status}", f"HTTP {status}"
            return
        if image and cfg.skip_noai_images:
            tags = resp.headers.get("x-robots-tag", "").lower().replace(":", ",").split(",")
            hit = sorted({t.strip() for t in tags} & {d.lower() for d in cfg.noai_directives})
            if hit:
                res.error, res.detail = "x-robots-tag-opt-out", f"X-Robots-Tag: {', '.join(hit)}"
                return
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            res.error, res.detail = "too-large", f"Content-Length {declared} > {max_bytes}"
            return
        body = self._read_body(resp.raw, max_bytes, started, res)
        if body is None:
            return
        if not resp.raw.chunked and "content-length" not in resp.headers:
            cut = _cut_short(body, resp.headers.get("content-type", ""), image)
            if cut:
                res.error, res.detail = "truncated", f"no Content-Length or chunked encoding, and {cut}"
                return
        res.body = body
        self._count("bytes", len(body))

    def _read_body(self, raw, max_bytes: int, started: float, res: FetchResult) -> bytes | None:
        """The decoded body, or None with ``res.error`` set.

        Read with ``read1`` (one receive at a time) rather than ``iter_content``, which blocks until
        a whole 64 KiB block or the end has arrived: a body dripping in a byte at a time would
        otherwise hold the connection and the host's slot until the server gave up. Before each
        receive the socket's timeout is cut to what is left of the whole-body deadline, so the
        deadline holds to the receive, not to one more ``timeout_s``.
        """
        cfg = self.cfg
        limit = 4 * cfg.timeout_s
        deadline = started + limit
        conn = getattr(raw, "connection", None)
        sock = getattr(conn, "sock", None)
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    res.error, res.detail = "timeout", f"body not complete after {limit:g}s"
                    return None
                _set_timeout(sock, min(cfg.timeout_s, left))
                chunk = raw.read1(64 * 1024, decode_content=True)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    res.error, res.detail = "too-large", f"body exceeds {max_bytes} bytes"
                    return None
                chunks.append(chunk)
        except ReadTimeoutError:
            over = time.monotonic() >= deadline
            res.error = "timeout"
            res.detail = (f"body not complete after {limit:g}s" if over
                          else f"no data for {cfg.timeout_s:g}s in the middle of the body")
            return None
        except ProtocolError as exc:  # the Content-Length not met, a chunked body cut, a reset mid-body
            res.error, res.detail = "truncated", _exc_text(exc)
            return None
        except (Urllib3Error, OSError) as exc:  # TLS errors, a broken content encoding
            res.error, res.detail = "connection-error", _exc_text(exc)
            return None
        _set_timeout(sock, cfg.timeout_s)  # the connection goes back to the pool as it came
        return b"".join(chunks)


def _set_timeout(sock, seconds: float) -> None:
    if sock is None:
        return
    try:
        sock.settimeout(max(seconds, 0.001))
    except OSError:  # closed at the end of the body: nothing left to read from it
        pass


def _exc_text(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:300]


def _cut_short(body: bytes, content_type: str, image: bool) -> str | None:
    """Why a body delimited only by the connection closing looks cut short, or None.

    Without a Content-Length or chunked encoding, HTTP cannot tell a complete body from one whose
    connection broke, so the content must show its own end: an HTML page its ``</html>`` (wikiHow's
    pages always have it; comments and whitespace may follow), an image all its pixel data.
    Anything else (robots.txt, sitemaps, JSON) has no such mark and is taken as it came.
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    if "html" in ctype or (not ctype and body.lstrip()[:14].lower().startswith((b"<!doctype html", b"<html"))):
        if not _HTML_END.search(body[-_HTML_TAIL:]):
            return "the HTML document does not end (no </html>)"
        return None
    if ctype.startswith("image/") or (image and not ctype):
        return _image_cut_short(body)
    return None


def _image_cut_short(body: bytes) -> str | None:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(body)) as im:
            width, height = im.size
            if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
                return None  # not decoded here; the images stage refuses bombs with its own reason
            im.load()  # with Pillow's default LOAD_TRUNCATED_IMAGES=False a short file raises
    except (UnidentifiedImageError, Image.DecompressionBombError):
        return None  # a format we cannot check (or a bomb): the images stage decides
    except (OSError, EOFError, SyntaxError, ValueError) as exc:
        return f"the image does not decode to its end ({_exc_text(exc)})"
    return None
