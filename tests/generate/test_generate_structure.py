"""The layering of generation and the LLM client, its errors, its settings' names, and its resume records."""

from __future__ import annotations

import ast
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from wikihow_tiir.config import GenerateConfig, load_config
from wikihow_tiir.errors import ConfigError, WikihowTiirError, expected_error_message
from wikihow_tiir.generate import generate_queries
from wikihow_tiir.io import sha256_bytes
from wikihow_tiir.llm.errors import GenerationError, Invalid

PACKAGE = Path(__file__).resolve().parents[2] / "wikihow_tiir"


def _imports(folder: Path) -> dict[str, set[str]]:
    """Module file -> every module it imports (at the top or inside a function)."""
    out = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        out[str(path.relative_to(PACKAGE))] = names
    return out


@pytest.mark.parametrize("folder", ["llm", "filter"])
def test_the_llm_client_and_the_filter_do_not_reach_into_generate(folder):
    found = {f: sorted(m for m in mods if m == "wikihow_tiir.generate" or m.startswith("wikihow_tiir.generate."))
             for f, mods in _imports(PACKAGE / folder).items()}
    assert not {f: m for f, m in found.items() if m}


def test_generate_and_the_judge_share_one_client():
    users = {f for f, mods in {**_imports(PACKAGE / "generate"), **_imports(PACKAGE / "filter")}.items()
             if "wikihow_tiir.llm.client" in mods or "openai" in mods}
    assert users == {"generate/runtime.py", "filter/judge.py"}, users


def test_importing_generation_loads_no_model_client():
    code = ("import sys, wikihow_tiir.generate, wikihow_tiir.generate.cli, wikihow_tiir.generate.pipeline; "
            "print(sorted(m for m in ('openai', 'torch', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_generation_errors_are_the_projects_expected_errors_with_reason_and_detail():
    for exc in (GenerationError("rate-limited", "HTTP 429 3 times"), Invalid("text-too-short", "the query has 3 words")):
        assert isinstance(exc, WikihowTiirError)
        assert (exc.reason, exc.detail, str(exc)) == ((exc.reason, exc.detail, exc.detail))
        assert expected_error_message(exc) == exc.detail  # the CLI prints one line, no traceback
    assert GenerationError("x", "Authorization: Bearer abcdef0123456789").detail == "Authorization: Bearer [REDACTED]"


# --------------------------------------------------------------------------- one name per unit


def test_generation_length_limits_count_words_and_the_old_names_still_load_with_a_warning(tmp_path, caplog):
    cfg = tmp_path / "old.yaml"
    cfg.write_text("generate:\n  min_text_tokens: 5\n  max_text_tokens: 50\n")
    with caplog.at_level(logging.WARNING, logger="wikihow_tiir.config"):
        loaded = load_config(cfg)
    assert (loaded.generate.min_text_words, loaded.generate.max_text_words) == (5, 50)
    assert "generate.min_text_tokens is deprecated: it is now called generate.min_text_words" in caplog.text
    assert "generate.max_text_tokens is deprecated" in caplog.text
    dumped = loaded.model_dump(mode="json")
    assert "min_text_tokens" not in dumped["generate"] and dumped["filter"]["min_text_tokens"] == 20  # WordPiece
    with pytest.raises(ConfigError, match="min_text_tokens and min_text_words are both set"):
        load_config(cfg, overrides=["generate.min_text_words=6"])
    with pytest.raises(ConfigError, match="generate: min_text_words \\(60\\) is above max_text_words \\(50\\)"):
        load_config(cfg, overrides=["generate.min_text_tokens=60"])


def test_the_word_limit_is_what_the_generator_enforces(documents, pool, tmp_path):
    result = generate_queries(documents[:2], pool, GenerateConfig(min_text_words=10_000, max_text_words=20_000), seed=13, work_dir=tmp_path,
                              shard_id="s")
    assert not result.queries and {r.reason for r in result.rejects} == {"text-too-short"}
    assert all("words; keep at least 10000" in r.detail for r in result.rejects)


# --------------------------------------------------------------------------- resume records


def test_a_stage_marker_is_the_builds_marker_format(documents, pool, tmp_path):
    generate_queries(documents[:2], pool, GenerateConfig(), seed=13, work_dir=tmp_path, shard_id="s")
    for stage in ("caption", "write", "visualize", "render"):
        marker = json.loads((tmp_path / stage / "s.done").read_text())
        assert sorted(marker) == ["files", "fingerprint", "stats"]
        data = (tmp_path / stage / "s.jsonl").read_bytes()
        assert marker["files"] == {"s.jsonl": {"bytes": len(data), "sha256": sha256_bytes(data)}}
        assert marker["stats"] == {"records": len(data.splitlines())}


def test_records_a_marker_vouches_for_are_still_checked_field_by_field(documents, pool, tmp_path, caplog):
    """A marker rewritten to vouch for a hand-edited record file (right sha256 and count) does not make
    its records trusted: a value of the wrong shape is recomputed, not read into a query."""
    cfg = GenerateConfig()
    first = generate_queries(documents[:2], pool, cfg, seed=13, work_dir=tmp_path, shard_id="s")
    path, marker_path = tmp_path / "visualize" / "s.jsonl", tmp_path / "visualize" / "s.done"
    good = path.read_bytes()
    records = [json.loads(line) for line in good.splitlines()]
    records[0]["value"]["segments"] = "not a list of segments"
    forged = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(forged)
    marker = json.loads(marker_path.read_text())
    marker["files"]["s.jsonl"] = {"bytes": len(forged), "sha256": sha256_bytes(forged)}
    marker_path.write_text(json.dumps(marker))
    with caplog.at_level(logging.WARNING):
        again = generate_queries(documents[:2], pool, cfg, seed=13, work_dir=tmp_path, shard_id="s")
    assert "does not hold stage records" in caplog.text
    assert [q.content.texts for q in again.queries] == [q.content.texts for q in first.queries]
    assert path.read_bytes() == good
