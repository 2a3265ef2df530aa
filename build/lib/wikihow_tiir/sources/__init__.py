"""Where articles come from: the bundled/crawled archive, a live crawl, or wikiHow-VGSI."""
