"""robots.txt rules (RFC 9309), with the ``*`` / ``$`` wildcards wikiHow's own file uses.

The standard library's ``urllib.robotparser`` matches plain prefixes only, so a rule such as
wikiHow's ``Disallow: /*action=history`` would silently allow everything; hence this small parser.
Precedence follows RFC 9309: the longest matching rule wins, Allow wins a tie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit


@dataclass(slots=True)
class _Group:
    agents: list[str] = field(default_factory=list)
    rules: list[tuple[bool, str]] = field(default_factory=list)  # (allow, pattern)
    crawl_delay: float | None = None


def _normalise_path(path: str) -> str:
    # compare percent-encoded forms so "/Special:Randomizer" and "/Special%3ARandomizer" agree
    return quote(unquote(path), safe="/?=&*$:@!,;+~-._()'")


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    anchored = pattern.endswith("$")
    body = pattern[:-1] if anchored else pattern
    regex = ".*".join(re.escape(part) for part in _normalise_path(body).split("*"))
    return re.compile(regex + ("$" if anchored else ""))


@dataclass(slots=True)
class RobotsRules:
    """The rules of one host's robots.txt for our user-agent token."""

    rules: list[tuple[bool, str]] = field(default_factory=list)
    crawl_delay: float | None = None
    disallow_all: bool = False  # robots.txt unreachable (5xx / network): RFC 9309 says assume full disallow
    source: str = ""  # "fetched", "missing" (4xx: allow all), "unreachable"
    _compiled: list[tuple[bool, int, re.Pattern[str]]] | None = None

    @classmethod
    def parse(cls, text: str, agent_token: str) -> RobotsRules:
        groups: list[_Group] = []
        current: _Group | None = None
        last_was_agent = False
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if ":" not in line:
                continue
            key, value = (s.strip() for s in line.split(":", 1))
            key = key.lower()
            if key == "user-agent":
                if current is None or not last_was_agent:
                    current = _Group()
                    groups.append(current)
                current.agents.append(value.lower())
                last_was_agent = True
                continue
            last_was_agent = False
            if current is None:
                continue
            if key in ("allow", "disallow"):
                if value:  # an empty Disallow allows everything: no rule
                    current.rules.append((key == "allow", value))
            elif key == "crawl-delay":
                try:
                    current.crawl_delay = float(value)
                except ValueError:
                    pass
        token = agent_token.lower()
        mine = [g for g in groups if any(a != "*" and a in token for a in g.agents)]
        chosen = mine or [g for g in groups if "*" in g.agents]
        rules = cls(source="fetched")
        for g in chosen:  # RFC 9309: several groups for the same agent are merged
            rules.rules.extend(g.rules)
            if g.crawl_delay is not None:
                rules.crawl_delay = max(rules.crawl_delay or 0.0, g.crawl_delay)
        return rules

    def allowed(self, url: str) -> bool:
        if self.disallow_all:
            return False
        parts = urlsplit(url)
        path = _normalise_path((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        if path == "/robots.txt":
            return True
        if self._compiled is None:
            self._compiled = [(allow, len(p), _pattern_regex(p)) for allow, p in self.rules]
        best: tuple[int, bool] | None = None
        for allow, length, regex in self._compiled:
            if regex.match(path):
                key = (length, allow)  # longer wins; on a tie True (allow) sorts higher
                if best is None or key > best:
                    best = key
        return True if best is None else best[1]
