"""The polite client against the loopback mirror: robots, rate limits, retries, refusals, caps."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest

from tests.servers.wikihow_mirror import Fault, RecordingServer
from wikihow_tiir.retry_after import retry_after_s as _retry_after_s
from wikihow_tiir.sources.http import CrawlSetupError, PoliteClient

PAGE = "/Grill-Zucchini"
IMAGE = "/images/thumb/0/0f/Grill-Zucchini-Step-1-Version-2.jpg/aid4346099-v4-728px-Grill-Zucchini-Step-1-Version-2.jpg"


def gaps(hits) -> list[float]:
    times = sorted(h.t for h in hits)
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_refuses_to_start_without_contact_or_with_the_limit_off(crawl_cfg, mirror):
    with pytest.raises(CrawlSetupError, match="contact"):
        PoliteClient(crawl_cfg(contact=None))
    with pytest.raises(CrawlSetupError, match="contact"):
        PoliteClient(crawl_cfg(contact="   "))
    with pytest.raises(CrawlSetupError, match="rate limit off"):
        PoliteClient(crawl_cfg(requests_per_second=0, allow_private_addresses=False))
    assert mirror.hits == []


def test_user_agent_carries_contact_and_robots_is_fetched_once(crawl_cfg, mirror):
    client = PoliteClient(crawl_cfg())
    for path in (PAGE, "/Grill-Fish", PAGE):
        res = client.fetch(mirror.url(path))
        assert res.ok and res.status == 200 and res.body == mirror.pages[path]
    robots = mirror.hits_for("/robots.txt")
    assert len(robots) == 1
    assert all("tests@example.org" in h.user_agent and h.user_agent.startswith("wikihow-tiir/")
               for h in mirror.hits)
    assert {h.host for h in mirror.hits} == {"www.wikihow.com"}  # the mirror is reached as wikiHow


def test_robots_disallow_is_honoured_before_any_request(crawl_cfg, mirror):
    client = PoliteClient(crawl_cfg())
    for path in ("/Special:Randomizer", "/private-area/Secret", "/Grill-Zucchini?action=history"):
        res = client.fetch(mirror.url(path))
        assert res.error == "robots-disallowed" and res.status == 0, path
    assert [h.path for h in mirror.hits] == ["/robots.txt"]


def test_crawl_delay_from_robots_is_honoured(crawl_cfg, mirror):
    mirror.robots_txt = "User-agent: *\nCrawl-delay: 0.3\n"
    client = PoliteClient(crawl_cfg(requests_per_second=50.0))
    for _ in range(3):
        assert client.fetch(mirror.url(PAGE)).ok
    assert min(gaps(mirror.hits)) >= 0.3


def test_gap_between_requests_to_one_host_at_5_per_second(crawl_cfg, mirror):
    """Eight threads at once; the server must still see starts at least 1/5 s apart."""
    client = PoliteClient(crawl_cfg(requests_per_second=5.0, max_concurrency=8))
    client.robots_for(mirror.url(PAGE))
    threads = [threading.Thread(target=client.fetch, args=(mirror.url(IMAGE),), kwargs={"image": True})
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hits = mirror.hits
    assert len(hits) == 9
    assert min(gaps(hits)) >= 1 / 5.0


def test_429_pauses_the_whole_host_for_retry_after(crawl_cfg, mirror):
    mirror.faults[PAGE] = Fault("429", times=1, retry_after="1")
    client = PoliteClient(crawl_cfg(requests_per_second=50.0))
    client.robots_for(mirror.url(PAGE))
    other: dict = {}

    def fetch_other():
        time.sleep(0.2)  # starts while the host is paused
        other["res"] = client.fetch(mirror.url("/Grill-Fish"))

    t = threading.Thread(target=fetch_other)
    t.start()
    res = client.fetch(mirror.url(PAGE))
    t.join()
    assert res.ok and res.attempts == 2
    assert other["res"].ok
    first_429 = mirror.hits_for(PAGE)[0].t
    after = [h.t for h in mirror.hits if h.t > first_429]
    assert len(after) == 2 and min(after) - first_429 >= 1.0  # nobody touched the host during the pause
    assert client.stats["pauses-429"] == 1


def test_429_longer_than_we_may_wait_gives_up_with_reason(crawl_cfg, mirror):
    mirror.faults[PAGE] = Fault("429", times=None, retry_after="3600")
    res = PoliteClient(crawl_cfg(max_backoff_s=5.0)).fetch(mirror.url(PAGE))
    assert res.error == "rate-limited" and res.status == 429 and "Retry-After" in res.detail


def test_flapping_503_is_retried_with_growing_backoff(crawl_cfg, mirror):
    mirror.faults[PAGE] = Fault("status", status=503, times=2)
    res = PoliteClient(crawl_cfg(backoff_base_s=0.1, max_retries=3)).fetch(mirror.url(PAGE))
    assert res.ok and res.attempts == 3
    g = gaps(mirror.hits_for(PAGE))
    assert g[0] >= 0.1 and g[1] >= 0.2  # base * 2**n


def test_permanent_5xx_fails_after_max_retries(crawl_cfg, mirror):
    mirror.faults[PAGE] = Fault("status", status=502, times=None)
    res = PoliteClient(crawl_cfg(max_retries=2)).fetch(mirror.url(PAGE))
    assert res.error == "server-error" and res.status == 502 and res.attempts == 3
    assert len(mirror.hits_for(PAGE)) == 3


@pytest.mark.parametrize("status", [404, 410, 403])
def test_4xx_is_final_without_retry(crawl_cfg, mirror, status):
    mirror.faults[PAGE] = Fault("status", status=status, times=None)
    res = PoliteClient(crawl_cfg()).fetch(mirror.url(PAGE))
    assert res.error == f"http-{status}" and res.attempts == 1 and len(mirror.hits_for(PAGE)) == 1


def test_slow_answer_times_out_then_retry_succeeds(crawl_cfg, mirror):
    mirror.faults[PAGE] = Fault("slow", delay=0.8, times=1)
    res = PoliteClient(crawl_cfg(timeout_s=0.3)).fetch(mirror.url(PAGE))
    assert res.ok and res.attempts == 2
    mirror.faults[PAGE] = Fault("slow", delay=0.8, times=None)
    res = PoliteClient(crawl_cfg(timeout_s=0.3, max_retries=1)).fetch(mirror.url(PAGE))
    assert res.error == "timeout" and res.attempts == 2


def test_body_cut_mid_transfer_and_connection_reset(crawl_cfg, mirror):
    mirror.faults[PAGE] = Fault("truncate", times=None)
    res = PoliteClient(crawl_cfg(max_retries=1)).fetch(mirror.url(PAGE))
    assert res.error == "truncated" and res.body is None and res.attempts == 2
    mirror.faults[PAGE] = Fault("truncate", times=1)
    res = PoliteClient(crawl_cfg()).fetch(mirror.url(PAGE))
    assert res.ok and res.body == mirror.pages[PAGE]  # the retry got the whole page
    mirror.faults["/Grill-Fish"] = Fault("reset", times=None)
    res = PoliteClient(crawl_cfg(max_retries=1)).fetch(mirror.url("/Grill-Fish"))
    assert res.error == "connection-error" and res.attempts == 2


def test_redirect_to_foreign_host_or_private_address_is_refused_before_connecting(crawl_cfg, mirror):
    with RecordingServer("127.0.0.2") as foreign:
        mirror.faults["/Foreign"] = Fault("redirect", times=None, location=foreign.origin + "/steal")
        mirror.faults["/Metadata"] = Fault("redirect", times=None, location="http://169.254.169.254/latest/")
        # 169.254.169.254 is allowlisted on purpose: the address check, not the allowlist, must stop it
        client = PoliteClient(crawl_cfg(allowed_hosts=["www.wikihow.com", "169.254.169.254"]))
        res = client.fetch(mirror.url("/Foreign"))
        assert res.error == "host-not-allowed" and res.final_url.startswith(foreign.origin)
        res = client.fetch(mirror.url("/Metadata"))
        assert res.error == "private-address" and "169.254.169.254" in res.detail
        assert foreign.hits == []
    direct = PoliteClient(crawl_cfg(allowed_hosts=["www.wikihow.com"])).fetch("http://127.0.0.2:9/x")
    assert direct.error == "host-not-allowed"


def test_loopback_is_refused_unless_allowed(crawl_cfg, mirror):
    res = PoliteClient(crawl_cfg(allow_private_addresses=False)).fetch(mirror.url(PAGE))
    assert res.error == "private-address" and "127.0.0.1" in res.detail
    assert mirror.hits == []


def test_dns_rebinding_to_a_private_address_is_refused_at_connect(crawl_cfg, mirror):
    """The name answered with a public address when it was checked, then points at 127.0.0.1 when
    the connection is made: the connected peer is checked too, and nothing is sent to it."""
    port = urlsplit(mirror.origin).port
    client = PoliteClient(crawl_cfg(allow_private_addresses=False, max_retries=3,
                                    origin_map={"https://www.wikihow.com": f"http://localhost:{port}"}))
    client._dns["localhost"] = (time.monotonic(), ["93.184.216.34"])  # the attacker's first, public answer
    res = client.fetch("https://www.wikihow.com" + PAGE, check_robots=False)
    assert res.error == "private-address", res.detail
    assert "connected peer" in res.detail and res.attempts == 1
    assert client.fetch("https://www.wikihow.com" + PAGE).error == "robots-unreachable"  # robots.txt too
    assert mirror.hits == []


def test_redirects_inside_the_allowlist_are_followed_and_loops_end(crawl_cfg, mirror):
    mirror.faults["/Old-Name"] = Fault("redirect", times=None, location="/Grill-Zucchini")
    res = PoliteClient(crawl_cfg()).fetch(mirror.url("/Old-Name"))
    assert res.ok and res.final_url == mirror.url(PAGE) and res.body == mirror.pages[PAGE]
    mirror.faults["/Loop"] = Fault("redirect", times=None, location="/Loop")
    res = PoliteClient(crawl_cfg(max_redirects=3)).fetch(mirror.url("/Loop"))
    assert res.error == "too-many-redirects" and len(mirror.hits_for("/Loop")) == 4


def test_oversized_responses_are_cut(crawl_cfg, mirror):
    client = PoliteClient(crawl_cfg(max_page_bytes=100_000))
    mirror.faults["/Huge-Declared"] = Fault("huge", times=None, declared=True, size=50 * 1024 * 1024)
    res = client.fetch(mirror.url("/Huge-Declared"))
    assert res.error == "too-large" and "Content-Length" in res.detail
    mirror.faults["/Huge-Streamed"] = Fault("huge", times=None, declared=False, size=2 * 1024 * 1024)
    res = client.fetch(mirror.url("/Huge-Streamed"))
    assert res.error == "too-large" and res.body is None


def test_noai_opt_out_skips_images_only_and_is_configurable(crawl_cfg, mirror):
    mirror.faults[IMAGE] = Fault("noai", times=None, header="noai, noimageai")
    res = PoliteClient(crawl_cfg()).fetch(mirror.url(IMAGE), image=True)
    assert res.error == "x-robots-tag-opt-out" and res.body is None and res.attempts == 1
    assert PoliteClient(crawl_cfg(skip_noai_images=False)).fetch(mirror.url(IMAGE), image=True).ok
    mirror.faults[PAGE] = Fault("noai", times=None)
    assert PoliteClient(crawl_cfg()).fetch(mirror.url(PAGE)).ok  # pages are not images


def test_retry_after_parsing():
    assert _retry_after_s("120") == 120.0
    assert _retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert _retry_after_s("soon") is None and _retry_after_s(None) is None
    # the crawler and the LLM client share one parser: no infinite or garbled pause from either
    assert _retry_after_s("inf") is None and _retry_after_s("nan") is None and _retry_after_s("1_0") is None


@pytest.mark.parametrize("header", ["inf", "nan"])
def test_a_retry_after_that_is_not_a_number_pauses_pause_on_429_s(crawl_cfg, mirror, header):
    """Not "an infinite pause, give up" (inf) nor "no pause at all" (nan): a malformed header."""
    mirror.faults[PAGE] = Fault("429", times=1, retry_after=header)
    client = PoliteClient(crawl_cfg(pause_on_429_s=0.5, requests_per_second=50.0))
    res = client.fetch(mirror.url(PAGE))
    assert res.ok and res.attempts == 2, res.detail
    assert mirror.hits_for(PAGE)[1].t - mirror.hits_for(PAGE)[0].t >= 0.5


def test_missing_robots_allows_all_unreachable_robots_allows_nothing(crawl_cfg, mirror):
    mirror.faults["/robots.txt"] = Fault("status", status=404, times=None)
    assert PoliteClient(crawl_cfg()).fetch(mirror.url("/Special:Randomizer")).status == 404  # fetched: no rules
    mirror.faults["/robots.txt"] = Fault("status", status=503, times=None)
    mirror.reset_log()
    client = PoliteClient(crawl_cfg(max_retries=1))
    assert client.fetch(mirror.url(PAGE)).error == "robots-unreachable"
    assert client.fetch(mirror.url("/Grill-Fish")).error == "robots-unreachable"
    assert {h.path for h in mirror.hits} == {"/robots.txt"}  # RFC 9309: assume full disallow


def test_429_on_the_last_attempt_still_pauses_the_host(crawl_cfg, mirror):
    mirror.faults[PAGE] = Fault("429", times=1, retry_after="1")
    client = PoliteClient(crawl_cfg(max_retries=0, requests_per_second=50.0))
    assert client.fetch(mirror.url(PAGE)).error == "rate-limited"
    assert client.fetch(mirror.url("/Grill-Fish")).ok
    assert mirror.hits_for("/Grill-Fish")[0].t - mirror.hits_for(PAGE)[0].t >= 1.0


def fetch_in_thread(client: PoliteClient, url: str, **kwargs) -> tuple[threading.Thread, dict]:
    """Start ``client.fetch`` in a thread; the dict gets ``res`` and ``end`` (monotonic) when it returns."""
    out: dict = {}

    def run():
        out["res"] = client.fetch(url, **kwargs)
        out["end"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def join_or_cancel(client: PoliteClient, t: threading.Thread, bound: float) -> bool:
    """True when ``t`` ended within ``bound`` seconds; else the client is cancelled (so no thread is left
    waiting on a paused host after the test) and False."""
    t.join(bound)
    if t.is_alive():
        client.cancel()
        t.join(30)
        return False
    return True


def test_huge_retry_after_pauses_the_host_at_most_max_backoff_s(crawl_cfg, mirror):
    mirror.faults[PAGE] = Fault("429", times=1, retry_after="100000")
    client = PoliteClient(crawl_cfg(max_backoff_s=1.0, requests_per_second=50.0))
    started = time.monotonic()
    res = client.fetch(mirror.url(PAGE))
    assert res.error == "rate-limited" and res.attempts == 1  # not retried: we may not wait that long
    assert "100000s pause (Retry-After)" in res.detail and "paused 1s instead" in res.detail
    t, other = fetch_in_thread(client, mirror.url("/Grill-Fish"))
    assert join_or_cancel(client, t, 15.0), "the host stayed paused for the server's 100000 s"
    assert other["res"].ok
    assert other["end"] - started < 15.0
    pause = mirror.hits_for("/Grill-Fish")[0].t - mirror.hits_for(PAGE)[0].t
    assert pause >= 1.0  # the capped pause was still honoured


def test_persistent_429_ends_after_max_retries(crawl_cfg, mirror):
    mirror.faults[PAGE] = Fault("429", times=None, retry_after="1")
    client = PoliteClient(crawl_cfg(max_backoff_s=2.0, max_retries=2, requests_per_second=50.0))
    t, out = fetch_in_thread(client, mirror.url(PAGE))
    assert join_or_cancel(client, t, 30.0)
    assert out["res"].error == "rate-limited" and out["res"].attempts == 3
    assert len(mirror.hits_for(PAGE)) == 3
    assert min(gaps(mirror.hits_for(PAGE))) >= 1.0  # each pause honoured
    # without Retry-After the pause is pause_on_429_s, capped the same way
    mirror.faults["/Grill-Fish"] = Fault("429", times=None, retry_after=None)
    client = PoliteClient(crawl_cfg(max_backoff_s=1.0, pause_on_429_s=3600.0, requests_per_second=50.0))
    res = client.fetch(mirror.url("/Grill-Fish"))
    assert res.error == "rate-limited" and "(pause_on_429_s)" in res.detail and res.attempts == 1
    t, other = fetch_in_thread(client, mirror.url("/Marinate-Pork"))
    assert join_or_cancel(client, t, 15.0) and other["res"].ok


def test_a_host_refusing_twice_for_longer_than_max_backoff_is_closed_for_the_run(crawl_cfg, mirror):
    """Every page answers 429 "come back in a day": after the capped pause the host says it again, and
    then no more requests go to it - each URL ends rate-limited at once instead of a pause per URL."""
    pages = ["/Grill-Zucchini", "/Grill-Fish", "/Marinate-Pork", "/Cook-Lamb-Steaks", "/Make-Ube-Halaya"]
    for path in pages:
        mirror.faults[path] = Fault("429", times=None, retry_after="86400")
    # a long backoff: the URLs of a closed host must end at once, not after retries that cannot succeed
    client = PoliteClient(crawl_cfg(max_backoff_s=1.0, requests_per_second=50.0, backoff_base_s=5.0, max_retries=3))
    started = time.monotonic()
    results = []
    for path in pages:
        t, out = fetch_in_thread(client, mirror.url(path))
        assert join_or_cancel(client, t, 15.0), path
        results.append(out["res"])
    assert time.monotonic() - started < 15.0  # one capped pause, not one per URL
    assert [r.error for r in results] == ["rate-limited"] * len(pages)
    assert len([h for h in mirror.hits if h.path in pages]) == 2
    assert "not contacted again in this run" in results[-1].detail and results[-1].status == 0
    assert [r.attempts for r in results] == [1] * len(pages)
    assert client.stats["hosts-closed-429"] == 1


def test_a_429_asking_for_a_longer_pause_once_does_not_close_the_host(crawl_cfg, mirror):
    mirror.faults[PAGE] = Fault("429", times=None, retry_after="86400")
    client = PoliteClient(crawl_cfg(max_backoff_s=0.5, requests_per_second=50.0))
    for _ in range(2):  # refused, then a good answer in between resets the count
        assert client.fetch(mirror.url(PAGE)).error == "rate-limited"
        t, other = fetch_in_thread(client, mirror.url("/Grill-Fish"))
        assert join_or_cancel(client, t, 15.0) and other["res"].ok
    assert client.stats["hosts-closed-429"] == 0


def test_dripping_body_ends_at_the_whole_body_deadline_and_frees_the_host(crawl_cfg, mirror):
    """A byte every 50 ms never trips the 0.5 s read timeout; the 2 s whole-body deadline must end it."""
    mirror.faults[PAGE] = Fault("drip", times=None, interval=0.05, give_up_after=30.0)
    client = PoliteClient(crawl_cfg(timeout_s=0.5, max_retries=1, requests_per_second=50.0))
    client.robots_for(mirror.url(PAGE))
    started = time.monotonic()
    t, out = fetch_in_thread(client, mirror.url(PAGE))
    time.sleep(0.3)  # the drip holds the host now; this one waits for it
    t2, other = fetch_in_thread(client, mirror.url("/Grill-Fish"))
    t.join(60)
    t2.join(60)
    res = out["res"]
    assert res.error == "timeout" and "body not complete after 2s" in res.detail and res.body is None
    assert res.attempts == 2
    assert out["end"] - started < 15.0  # two tries of 2 s each, not the server's 30 s each
    assert other["res"].ok and other["end"] - started < 15.0  # the host's slot was given back


@pytest.mark.parametrize("mid_chunk", [True, False])
def test_chunked_body_cut_short_is_truncated(crawl_cfg, mirror, mid_chunk):
    mirror.faults[PAGE] = Fault("truncate", times=None, framing="chunked", mid_chunk=mid_chunk)
    res = PoliteClient(crawl_cfg(max_retries=1)).fetch(mirror.url(PAGE))
    assert res.error == "truncated" and res.body is None and res.attempts == 2


@pytest.mark.parametrize("path,image", [(PAGE, False), (IMAGE, True)])
def test_body_cut_short_without_content_length_is_truncated_and_retried(crawl_cfg, mirror, path, image):
    """No Content-Length, no chunked encoding: only the content can show that its end is missing."""
    mirror.faults[path] = Fault("truncate", times=None, framing="close")
    res = PoliteClient(crawl_cfg(max_retries=1)).fetch(mirror.url(path), image=image)
    assert res.error == "truncated" and res.body is None and res.attempts == 2
    assert "no Content-Length" in res.detail
    mirror.faults[path] = Fault("truncate", times=1, framing="close")
    res = PoliteClient(crawl_cfg()).fetch(mirror.url(path), image=image)
    whole = mirror.pages[path] if not image else mirror.image_bytes(path)
    assert res.ok and res.attempts == 2 and res.body == whole


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_whole_bodies_without_content_length_are_accepted(crawl_cfg, mirror, framing):
    client = PoliteClient(crawl_cfg())
    for path, image in ((PAGE, False), ("/Grill-Fish", False), (IMAGE, True)):
        mirror.faults[path] = Fault("reframe", times=None, framing=framing)
        res = client.fetch(mirror.url(path), image=image)
        whole = mirror.pages[path] if not image else mirror.image_bytes(path)
        assert res.ok and res.attempts == 1 and res.body == whole, (path, res.error, res.detail)
