"""Versioned prompt templates from ``prompts/`` and the manifest of their hashes.

A template is a YAML file ``prompts/<name>.v<version>.yaml``. Its sha256 (of the file bytes)
goes into every query's provenance and into the manifest, and into the request-cache key, so an
edited prompt never re-uses answers to the old one.

Document text is data: it is only ever inserted between delimiter tags (``<document>`` ...), and
any copy of those tags inside the data is defused first, so a page cannot close the data block
and speak as the instructions.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wikihow_tiir.config import REPO_ROOT
from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.io import sha256_bytes


def _prompts_dir() -> Path:
    """The checkout's ``prompts/`` (editable installs, the repository), else the copy a wheel
    installs under ``<prefix>/share/wikihow-tiir/prompts``."""
    for cand in (REPO_ROOT / "prompts", Path(sys.prefix) / "share" / "wikihow-tiir" / "prompts"):
        if cand.is_dir():
            return cand
    return REPO_ROOT / "prompts"


PROMPTS_DIR = _prompts_dir()
# the template each stage uses (name -> version); bump the version for a new file, keep the old
VERSIONS = {"caption": 1, "write": 2, "visualize": 1, "repair": 1, "render": 1, "offline_extractive": 2,
            "judge_answerability": 1}

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_TAGS = re.compile(r"</?\s*(document|step|query|sentences)\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    sha256: str
    data: dict[str, Any]

    @property
    def ref(self) -> dict[str, Any]:
        """What provenance records about this prompt."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def render(self, part: str, **values: Any) -> str:
        """Fill ``{placeholders}`` of one part (``system`` / ``user``); other braces stay as they are
        (the JSON examples in the templates)."""
        template = self.data.get(part, "")

        def fill(m: re.Match[str]) -> str:
            key = m.group(1)
            return str(values[key]) if key in values else m.group(0)

        return _PLACEHOLDER.sub(fill, template).strip()


def as_data(text: str) -> str:
    """Text from a document, safe to put between our delimiter tags."""
    return _TAGS.sub(lambda m: m.group(0).replace("<", "‹").replace(">", "›"), text)


class PromptError(WikihowTiirError, ValueError):
    """A template that is missing or not one (an edited prompt with a YAML mistake, say)."""

    reason = "bad-prompt"


@functools.cache
def load_prompt(name: str, version: int | None = None, directory: Path | None = None) -> Prompt:
    """Template ``name`` (at its version in :data:`VERSIONS`), or a :class:`PromptError` saying what is wrong."""
    version = VERSIONS[name] if version is None else version
    path = (directory or PROMPTS_DIR) / f"{name}.v{version}.yaml"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PromptError(f"prompt template {path} not found: prompts/ ships with the repository "
                          "and in the wheel (<prefix>/share/wikihow-tiir/prompts)", "missing-prompt") from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"not valid YAML: {exc.problem}{at}"
        raise PromptError(f"prompt template {path}: {what}") from None
    if not isinstance(data, dict) or data.get("name") != name or data.get("version") != version:
        raise PromptError(f"{path}: name/version inside the file do not match its file name")
    return Prompt(name=name, version=version, sha256=sha256_bytes(raw), data=data)


def prompt_manifest() -> dict[str, dict[str, Any]]:
    """``{name: {"version", "sha256", "file"}}`` of every template in use (for ``manifest.json``)."""
    out = {}
    for name in sorted(VERSIONS):
        p = load_prompt(name)
        out[name] = {"version": p.version, "sha256": p.sha256, "file": f"prompts/{name}.v{p.version}.yaml"}
    return out
