"""The build's output folder: a foreign non-empty folder is refused unless --force, foreign data files are
always refused, and the build never deletes what it did not write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import assert_one_error_line, run

from wikihow_tiir import build
from wikihow_tiir.build_folder import OWNER_FILE, is_build_folder
from wikihow_tiir.config import load_config


def _cfg(sample_archive, *extra):
    return load_config(overrides=[f'source.archive="{sample_archive}"', "generate.enabled=false",
                                  "source.pages_per_shard=7", *extra])


def _users_folder(root: Path) -> dict[str, bytes]:
    """A folder of the user's: their README, notes, and a JSON-lines file of their own under rejects/."""
    files = {"README.md": b"# My notes\n\nDo not lose these.\n", "notes.txt": b"todo\n",
             "rejects/my-list.jsonl": b'{"mine": true}\n', "rejects/notes.md": b"why\n"}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, sample_archive):
    out = tmp_path_factory.mktemp("built") / "build"
    build.run_build(_cfg(sample_archive), out)
    return out


def test_a_folder_that_is_not_a_build_is_refused_and_left_as_it_was(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    _users_folder(folder)
    before = _tree(folder)
    proc = run("build", "--output", str(folder), "--no-queries", timeout=300)
    assert_one_error_line(proc, f"the output folder {folder} is not empty and is not a wikihow-tiir build",
                          "README.md, notes.txt, rejects/", "--force")
    assert _tree(folder) == before


def test_force_builds_there_and_touches_only_the_builds_files(tmp_path, sample_archive):
    folder = tmp_path / "mine"
    folder.mkdir()
    users = _users_folder(folder)
    proc = run("build", "--output", str(folder), "--no-queries", "--force", "--archive", str(sample_archive),
               "--pages-per-shard", "7", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = _tree(folder)
    for name in ("notes.txt", "rejects/my-list.jsonl", "rejects/notes.md"):  # the old build deleted the .jsonl
        assert after[name] == users[name]
    assert after["README.md"].startswith(b"---")  # the card, as --force's help says
    assert json.loads(after["manifest.json"])["name"] == "wikiHow-TIIR"
    assert is_build_folder(folder)  # so the next run needs no --force


def test_stale_reject_files_of_the_build_go_and_the_users_stay(finished, tmp_path, sample_archive):
    out = tmp_path / "again"
    shutil.copytree(finished, out)
    stale = {"rejects/generate.caption.jsonl": b'{"stage": "generate.caption"}\n',  # a stage name: ours
             "rejects/filter.jsonl": b'{"stage": "filter"}\n'}
    mine = {"rejects/my-list.jsonl": b'{"mine": true}\n', "rejects/parse-notes.jsonl": b"{}\n"}
    for name, data in {**stale, **mine}.items():
        (out / name).write_bytes(data)
    build.run_build(_cfg(sample_archive), out)  # our folder: no --force needed
    for name in stale:
        assert not (out / name).exists()
    for name, data in mine.items():
        assert (out / name).read_bytes() == data
    assert sorted(p.name for p in (finished / "rejects").iterdir()) == sorted(
        p.name for p in (out / "rejects").iterdir() if p.name not in {"my-list.jsonl", "parse-notes.jsonl"})


@pytest.mark.parametrize("name", ["notes.parquet", "corpus-extra.parquet", "corpus-00000-of-00001.parquet.bak"])
def test_a_foreign_data_file_is_refused_before_any_work_even_with_force(finished, tmp_path, sample_archive, name):
    out = tmp_path / "again"
    shutil.copytree(finished, out)
    stray = out / "corpus" / name
    pq.write_table(pa.table({"a": [1]}), stray)
    before = _tree(out)
    should_refuse = name.endswith(".parquet")
    if not should_refuse:  # not a Parquet file name: not published, not ours to judge
        build.run_build(_cfg(sample_archive), out)
        assert stray.read_bytes() == before[f"corpus/{name}"]
        return
    for force in (False, True):
        with pytest.raises(build.BuildError, match=f"corpus/{name} was not written by the build") as info:
            build.run_build(_cfg(sample_archive), out, force=force)
        assert info.value.reason == "foreign-data-file"
    assert _tree(out) == before


def test_the_cli_refuses_a_foreign_data_file_with_one_line(finished, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(finished, out)
    (out / "queries").mkdir(exist_ok=True)
    (out / "queries" / "train-mine.parquet").write_bytes(b"PAR1 not really")
    proc = run("build", "--output", str(out), "--no-queries", timeout=300)
    assert_one_error_line(proc, "queries/train-mine.parquet was not written by the build", "move it out")


def test_an_interrupted_build_of_ours_resumes_without_force(tmp_path, sample_archive):
    out = tmp_path / "b"

    class Killed(Exception):
        pass

    def dies_after_one(fn, specs):
        fn(specs[0])
        raise Killed

    with pytest.raises(Killed):
        build.run_build(_cfg(sample_archive), out, map_shards=dies_after_one)
    assert (out / OWNER_FILE).is_file() and not (out / "manifest.json").exists()
    build.run_build(_cfg(sample_archive), out)
    assert (out / "manifest.json").is_file()
    # a folder from before the owner file existed is recognised by its finished shards
    (out / OWNER_FILE).unlink()
    (out / "manifest.json").unlink()
    assert is_build_folder(out)


def test_empty_missing_and_file_outputs(tmp_path, sample_archive):
    from wikihow_tiir.build_folder import check_output_folder

    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty")
    check_output_folder(tmp_path / "not-yet")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(build.BuildError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "a-file", force=True)
