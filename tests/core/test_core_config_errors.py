"""Configuration problems are one-line ConfigErrors, found before any work; YAML aliases are bounded."""

from __future__ import annotations

import time

import pytest

from tests.build.cli_helpers import bomb_yaml
from wikihow_tiir.build import BuildError
from wikihow_tiir.config import MAX_CONFIG_VALUES, load_config
from wikihow_tiir.errors import ConfigError, WikihowTiirError, expected_error_message


@pytest.mark.parametrize("overrides, setting", [
    (["output.rows_per_file=0"], "output.rows_per_file"),
    (["output.rows_per_file=-5"], "output.rows_per_file"),
    (["runner.workers=0"], "runner.workers"),
    (["source.pages_per_shard=0"], "source.pages_per_shard"),
    (["generate.documents_per_shard=0"], "generate.documents_per_shard"),
    (["segment.min_images=5", "segment.max_images=3"], "segment: min_images (5) is above max_images (3)"),
    (["generate.min_query_images=5"], "generate: min_query_images (5) is above max_query_images (4)"),
    (["filter.min_query_images=3", "filter.max_query_images=2"],
     "filter: min_query_images (3) is above max_query_images (2)"),
    (["filter.min_text_tokens=500"], "filter: min_text_tokens (500) is above max_text_tokens (400)"),
])
def test_impossible_settings_are_one_line_errors(overrides, setting):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    message = str(info.value)
    assert setting in message and "\n" not in message
    assert info.value.reason == "bad-config" and expected_error_message(info.value) == message
    assert isinstance(info.value, ValueError)  # the area CLIs that catch ValueError keep working


def test_equal_bounds_and_ordinary_values_are_fine():
    cfg = load_config(overrides=["segment.min_images=3", "segment.max_images=3", "runner.workers=1",
                                 "output.rows_per_file=1"])
    assert cfg.segment.min_images == cfg.segment.max_images == 3


@pytest.mark.parametrize("text, expected", [
    ("segment:\n  min_images: [1, 2\n", "not valid YAML: while parsing a flow sequence"),
    ("segment:\n\tmin_images: 2\n", "found character '\\t' that cannot start any token (line 2, column 1)"),
    ("- just\n- a list\n", "the configuration must be a mapping"),
    ("loop: &a [*a]\n", "a recursive alias"),
])
def test_yaml_problems_are_one_line_errors_naming_the_file(tmp_path, text, expected):
    f = tmp_path / "build.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(info.value).startswith(f"{f}: ") and expected in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_or_broken_json_config_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.json: no such config file"):
        load_config(tmp_path / "nope.json")
    (tmp_path / "c.json").write_text('{"segment": {"min_images": 2,}}')
    with pytest.raises(ConfigError, match=r"c.json: not valid JSON: Expecting property name .* \(line 1, column 30\)"):
        load_config(tmp_path / "c.json")


def test_an_alias_bomb_is_refused_in_bounded_time(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(bomb_yaml())
    started = time.monotonic()
    with pytest.raises(ConfigError, match="alias bomb") as info:
        load_config(f)
    assert time.monotonic() - started < 10  # counted on the shared node graph: milliseconds
    assert info.value.reason == "config-too-large"


def test_ordinary_anchors_and_aliases_still_work(tmp_path):
    f = tmp_path / "anchors.yaml"
    f.write_text("generate:\n  write: &llm {kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
                 "  visualize: *llm\n")
    cfg = load_config(f)
    assert cfg.generate.visualize.model == cfg.generate.write.model == "m"
    # just below the bound is accepted, one level more is not
    small = tmp_path / "small.yaml"
    small.write_text(bomb_yaml(levels=4, fan_out=9))  # 9**4 strings + the lists: under 100,000
    assert len(load_config(small).generate.caption.extra["l3"]) == 9
    big = tmp_path / "big.yaml"
    big.write_text(bomb_yaml(levels=6, fan_out=9))
    assert 9 ** 6 > MAX_CONFIG_VALUES
    with pytest.raises(ConfigError, match="alias bomb"):
        load_config(big)


def test_build_error_is_an_expected_failure_and_a_bug_is_not():
    err = BuildError("the archive holds no pages")
    assert isinstance(err, WikihowTiirError) and isinstance(err, RuntimeError)
    assert expected_error_message(err) == "the archive holds no pages" and err.reason == "build-error"
    assert expected_error_message(BuildError("x", "my-reason")) == "x"
    assert expected_error_message(ZeroDivisionError("division by zero")) is None
    assert expected_error_message(KeyError("id")) is None
