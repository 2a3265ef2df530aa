"""Discovery: sitemap index (with lastmod), MediaWiki category crawl, URL list file."""

from __future__ import annotations

import pytest

from tests.servers.wikihow_mirror import Category, Fault
from wikihow_tiir.sources.discovery import (
    DiscoveryError,
    article_url_problem,
    from_categories,
    from_sitemap,
    from_url_file,
    title_to_url,
)
from wikihow_tiir.sources.http import PoliteClient


def test_sitemap_index_lists_every_article_with_lastmod(crawl_cfg, mirror):
    cfg = crawl_cfg()
    found = from_sitemap(PoliteClient(cfg), cfg)
    expected = {mirror.url(p) for p in mirror.pages if mirror.original_url[p].startswith(mirror.public)}
    assert {d.url for d in found} == expected and len(found) == len(expected) == 11
    assert all(d.lastmod == "2020-08-21" and d.via.startswith("sitemap:") for d in found)
    paths = [h.path for h in mirror.hits]
    assert paths.count("/sitemap_index.xml") == 1 and "/sitemap-pages-1.xml" in paths and "/sitemap-pages-2.xml" in paths


def test_sitemap_changed_since_keeps_only_newer_articles(crawl_cfg, mirror):
    mirror.lastmod["/Grill-Fish"] = "2024-03-01T10:00:00+00:00"
    mirror.lastmod["/Marinate-Pork"] = "2023-12-31"
    cfg = crawl_cfg(changed_since="2023-06-01")
    found = from_sitemap(PoliteClient(cfg), cfg)
    assert sorted(d.url for d in found) == [mirror.url("/Grill-Fish"), mirror.url("/Marinate-Pork")]
    cfg = crawl_cfg(max_articles=3)
    assert len(from_sitemap(PoliteClient(cfg), cfg)) == 3


def test_sitemap_failure_fails_closed(crawl_cfg, mirror):
    mirror.faults["/sitemap-pages-2.xml"] = Fault("status", status=500, times=None)
    cfg = crawl_cfg(max_retries=1)
    with pytest.raises(DiscoveryError, match="sitemap-pages-2.xml: server-error"):
        from_sitemap(PoliteClient(cfg), cfg)


def test_category_crawl_recurses_to_the_depth_limit_with_paging(crawl_cfg, mirror):
    mirror.categories = {
        "Food and Entertaining": Category(pages=["Grill Zucchini"], subcats=["Cooking"]),
        "Cooking": Category(pages=["Grill Fish", "Cook Lamb Steaks"], subcats=["Meat"]),
        "Meat": Category(pages=["Marinate Pork"], subcats=["Food and Entertaining"]),  # a cycle
    }
    mirror.api_limit = 1  # every answer one member long: cmcontinue must be followed
    cfg = crawl_cfg(discovery="category", categories=["Food and Entertaining"], category_depth=1)
    found = from_categories(PoliteClient(cfg), cfg)
    assert [d.url for d in found] == [mirror.url("/Grill-Zucchini"), mirror.url("/Grill-Fish"),
                                      mirror.url("/Cook-Lamb-Steaks")]
    assert found[1].via == "category:Cooking"
    cfg = crawl_cfg(discovery="category", categories=["Food and Entertaining"], category_depth=5)
    found = from_categories(PoliteClient(cfg), cfg)
    assert len(found) == 4  # the cycle back to the root is visited once
    cfg = crawl_cfg(discovery="category", categories=["Food and Entertaining"], category_depth=5, max_articles=2)
    assert len(from_categories(PoliteClient(cfg), cfg)) == 2
    api_hits = [h for h in mirror.hits if h.path.startswith("/api.php")]
    assert api_hits and all("list=categorymembers" in h.path for h in api_hits)


def test_category_crawl_needs_a_category(crawl_cfg):
    cfg = crawl_cfg(discovery="category")
    with pytest.raises(DiscoveryError, match="at least one category"):
        from_categories(PoliteClient(cfg), cfg)


def test_url_file_refuses_non_articles_and_dedups(tmp_path, crawl_cfg):
    f = tmp_path / "urls.txt"
    f.write_text("# my picks\nhttps://www.wikihow.com/Grill-Zucchini\n\nhttps://www.wikihow.com/Grill-Zucchini\n"
                 "https://www.wikihow.com/Special:Randomizer\nhttps://www.wikihow.com/index.php?title=X\n"
                 "not a url\nhttps://www.wikihow.com/Grill-Fish  # trailing comment\n", encoding="utf-8")
    kept, refused = from_url_file(f, crawl_cfg())
    assert [d.url for d in kept] == ["https://www.wikihow.com/Grill-Zucchini", "https://www.wikihow.com/Grill-Fish"]
    assert refused == [("https://www.wikihow.com/Special:Randomizer", "not-an-article"),
                       ("https://www.wikihow.com/index.php?title=X", "not-an-article"),
                       ("not a url", "bad-url")]
    with pytest.raises(DiscoveryError, match="does not exist"):
        from_url_file(tmp_path / "missing.txt", crawl_cfg())


def test_title_to_url_and_article_checks(crawl_cfg):
    assert title_to_url("https://www.wikihow.com", "Cope with the Stress of Homeschooling (for Parents)") == \
        "https://www.wikihow.com/Cope-with-the-Stress-of-Homeschooling-(for-Parents)"
    cfg = crawl_cfg()
    assert article_url_problem("https://www.wikihow.com/Category:Cooking", cfg) == "not-an-article"
    assert article_url_problem("https://www.wikihow.com/Kiss?variant=zh", cfg) == "not-an-article"
    assert article_url_problem("https://www.wikihow.com/Kiss", cfg) is None


def test_gzipped_sitemap_and_plain_urlset_are_read(crawl_cfg, mirror):
    import gzip

    urlset = mirror.sitemap(1)
    mirror.extra_routes["/sitemap-gz.xml.gz"] = (200, {"Content-Type": "application/gzip"}, gzip.compress(urlset))
    cfg = crawl_cfg(sitemap_url=mirror.url("/sitemap-gz.xml.gz"))
    found = from_sitemap(PoliteClient(cfg), cfg)
    assert len(found) == urlset.count(b"<url>") > 0
    mirror.extra_routes["/evil.xml"] = (200, {}, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
    cfg = crawl_cfg(sitemap_url=mirror.url("/evil.xml"))
    with pytest.raises(DiscoveryError, match="DTD"):
        from_sitemap(PoliteClient(cfg), cfg)
