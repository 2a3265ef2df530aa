"""The polite client against the loopback mirror: robots, rate limits, retries, refusals, caps."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest

from tests.servers.wikihow_mirror import Fault, RecordingServer
from wikihow_tiir.sources.http import CrawlSetupError, PoliteClient, _retry_after_s

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
