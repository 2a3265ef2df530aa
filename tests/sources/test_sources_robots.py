"""robots.txt rules: wildcards, longest match, agent groups, Crawl-delay (RFC 9309)."""

from __future__ import annotations

from wikihow_tiir.sources.robots import RobotsRules

# the rules of wikiHow's own robots.txt (2020) that matter to us
WIKIHOW_2020 = """
User-agent: archive.org_bot
Disallow: /api.php

User-agent: *
Disallow: /index.php
Disallow: /Special:
Allow: /Special:Sitemap
Allow: /Special:CategoryListing
Disallow: /*action=history
Disallow: /*feed=rss
Disallow: /*platform=
Disallow: /*variant=
"""


def test_wikihow_rules_block_randomizer_and_dynamic_pages_but_not_articles():
    rules = RobotsRules.parse(WIKIHOW_2020, "wikihow-tiir")
    assert rules.allowed("https://www.wikihow.com/Grill-Zucchini")
    assert rules.allowed("https://www.wikihow.com/api.php?action=query&list=categorymembers")
    assert not rules.allowed("https://www.wikihow.com/Special:Randomizer")
    assert not rules.allowed("https://www.wikihow.com/Special%3ARandomizer")  # encoded form, same path
    assert rules.allowed("https://www.wikihow.com/Special:Sitemap")  # longer Allow beats Disallow
    assert not rules.allowed("https://www.wikihow.com/Grill-Zucchini?action=history")  # wildcard rule
    assert not rules.allowed("https://www.wikihow.com/index.php?title=Grill-Zucchini")
    assert rules.allowed("https://www.wikihow.com/robots.txt")


def test_specific_agent_group_replaces_the_star_group():
    rules = RobotsRules.parse(WIKIHOW_2020, "archive.org_bot")
    assert not rules.allowed("https://www.wikihow.com/api.php?action=query")
    assert rules.allowed("https://www.wikihow.com/Special:Randomizer")  # only its own group applies


def test_dollar_anchor_tie_goes_to_allow_and_crawl_delay():
    text = "User-agent: *\nDisallow: /*.jpg$\nAllow: /a\nDisallow: /a\nCrawl-delay: 2.5\n"
    rules = RobotsRules.parse(text, "wikihow-tiir")
    assert not rules.allowed("https://x/img/a.jpg")
    assert rules.allowed("https://x/img/a.jpg?w=1")  # `$` anchors at the end
    assert rules.allowed("https://x/a")  # equal length: Allow wins
    assert rules.crawl_delay == 2.5


def test_empty_disallow_allows_all_and_unreachable_disallows_all():
    assert RobotsRules.parse("User-agent: *\nDisallow:\n", "bot").allowed("https://x/anything")
    assert not RobotsRules(disallow_all=True, source="unreachable").allowed("https://x/anything")
