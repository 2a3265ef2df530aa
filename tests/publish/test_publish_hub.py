"""Versioned push against a real Hub-compatible server on 127.0.0.1.

The client (huggingface_hub / datasets) runs in a subprocess: both libraries read HF_ENDPOINT,
HF_HUB_OFFLINE and HF_HUB_DISABLE_XET when they are imported, and the test session is offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from publish_helpers import make_dataset
from typer.testing import CliRunner

from wikihow_tiir.publish.card import render_card
from wikihow_tiir.publish.cli import register
from wikihow_tiir.publish.hub import PublishError, publish_dataset

GOOD = "hf_goodtoken123456"
REPO = "org/wikihow-tiir"
CLI = "import typer, sys\nfrom wikihow_tiir.publish.cli import register\napp = typer.Typer()\nregister(app)\napp()\n"
EXPECTED_FILES = {".gitattributes", "README.md", "manifest.json", "corpus/corpus-00000-of-00002.parquet",
                  "corpus/corpus-00001-of-00002.parquet", "queries/train-00000-of-00001.parquet",
                  "queries/test-00000-of-00001.parquet", "qrels/train-00000-of-00001.parquet",
                  "qrels/test-00000-of-00001.parquet"}


def client_env(hub, tmp_path: Path, token: str = GOOD) -> dict[str, str]:
    return {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": token, "HF_HOME": str(tmp_path / "client-hf-home"),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1"}


def cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def publish_args(dataset: Path, version: str) -> list[str]:
    return ["publish", str(dataset), "--repo-id", REPO, "--version", version]


LOAD = """
import datasets, json, sys
def load(path, revision):
    out = {}
    for config, split in (("corpus", "corpus"), ("queries", "test"), ("qrels", "test")):
        ds = datasets.load_dataset(path, config, split=split, revision=revision)
        cols = [c for c in ds.column_names if c != "images"]
        out[config] = ds.select_columns(cols).to_list()
        if config == "corpus":
            out["image_type"] = type(ds[0]["images"][3]).__name__
    return out
# argv: pairs of (path or repo id, revision)
print(json.dumps([load(p, r) for p, r in zip(sys.argv[1::2], sys.argv[2::2])]))
"""


def load_all(env: dict[str, str], *pairs: tuple[str, str | None]) -> list[dict]:
    """`load_dataset` of each (path or repo, revision) in one client process."""
    args = [x for p, r in pairs for x in (p, r or "main")]
    r = subprocess.run([sys.executable, "-c", LOAD, *args], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_round_trip_two_versions_then_load_pinned(hub, tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a", variant="a", n_docs=4)
    b = make_dataset(tmp_path / "b", variant="b", n_docs=7)  # 3 corpus shards instead of 2
    env = client_env(hub, tmp_path)
    r1 = cli(publish_args(a, "1.0.0"), env)
    assert r1.returncode == 0, r1.stderr
    assert "published org/wikihow-tiir v1.0.0" in r1.stdout
    assert 'revision="v1.0.0"' in r1.stdout
    r2 = cli(publish_args(b, "1.1.0"), env)
    assert r2.returncode == 0, r2.stderr

    repo = hub.repo(REPO)
    assert set(repo.tags) == {"v1.0.0", "v1.1.0"}
    c1, c2 = repo.commits[repo.tags["v1.0.0"]], repo.commits[repo.tags["v1.1.0"]]
    assert c1.id != c2.id and repo.branches["main"] == c2.id
    assert "v1.0.0" in c1.message and "v1.1.0" in c2.message
    card = hub.state.blobs[c1.files["README.md"].sha256].decode()
    assert f'load_dataset("{REPO}", "corpus", split="corpus", revision="v1.0.0")' in card
    # the allowlist: rejects/, report/, work/, eval/ never leave the machine
    assert set(c1.files) == EXPECTED_FILES
    assert not any(p.startswith(("rejects/", "report/", "work/", "eval/")) for p in c2.files)
    # v1.1.0 has 3 corpus shards; the 2 shards of v1.0.0 were deleted, not left to match the globs
    assert sorted(p for p in c2.files if p.startswith("corpus/")) == [
        f"corpus/corpus-0000{i}-of-00003.parquet" for i in range(3)]

    v1, v11, local_a = load_all(env, (REPO, "v1.0.0"), (REPO, "v1.1.0"), (str(a), None))
    assert v1 == local_a  # exactly the v1.0.0 rows, not the newer ones
    assert [r["goal"] for r in v1["corpus"]] == [f"How to Do Thing {i}" for i in range(4)]
    assert all("(a)" in r["texts"][0] for r in v1["corpus"])
    assert v1["image_type"].endswith("ImageFile")  # images decode as PIL images through the Hub
    assert len(v11["corpus"]) == 7 and all("(b)" in r["texts"][0] for r in v11["corpus"])


def test_existing_version_is_refused(hub, tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a", variant="a")
    b = make_dataset(tmp_path / "b", variant="b")
    env = client_env(hub, tmp_path)
    assert cli([*publish_args(a, "1.0.0"), "--private"], env).returncode == 0
    repo = hub.repo(REPO)
    assert repo.private is True
    head, puts, seen = repo.branches["main"], len(hub.state.lfs_puts), len(hub.state.requests)
    r = cli(publish_args(b, "1.0.0"), env)
    assert r.returncode == 1
    assert "already has version v1.0.0" in r.stderr and "never moved or reused" in r.stderr
    assert repo.branches["main"] == head and repo.tags["v1.0.0"] == head  # nothing moved
    assert len(hub.state.lfs_puts) == puts  # and nothing uploaded
    assert not any(m == "POST" and "/commit/" in p for m, p in hub.state.requests[seen:])


def test_a_version_not_above_the_latest_is_refused_with_the_next_number(hub, tmp_path: Path) -> None:
    env = client_env(hub, tmp_path)
    assert cli(publish_args(make_dataset(tmp_path / "a", variant="a", n_docs=4), "1.1.0"), env).returncode == 0
    repo = hub.repo(REPO)
    head, puts = repo.branches["main"], len(hub.state.lfs_puts)
    more = make_dataset(tmp_path / "b", variant="b", n_docs=6)  # two more documents: a minor release
    r = cli(publish_args(more, "1.0.5"), env)
    assert r.returncode == 1
    assert "version 1.0.5 is not greater than its latest version v1.1.0" in r.stderr
    assert "publish a new version number: 1.2.0 (2 new document(s);" in r.stderr
    fix = make_dataset(tmp_path / "c", variant="c", n_docs=4)  # same documents, fixed texts: a patch
    r = cli(publish_args(fix, "1.1.0"), env)
    assert "already has version v1.1.0" in r.stderr and "1.1.1 (no new documents (fixes)" in r.stderr
    manifest = json.loads((fix / "manifest.json").read_text())
    manifest["schema_version"] = "2.0"  # a changed schema: a major release
    (fix / "manifest.json").write_text(json.dumps(manifest))
    (fix / "README.md").write_text(render_card(manifest))
    r = cli(publish_args(fix, "1.1.0"), env)
    assert "2.0.0 (the schema changed;" in r.stderr, r.stderr
    assert repo.branches["main"] == head and set(repo.tags) == {"v1.1.0"}  # nothing moved
    assert len(hub.state.lfs_puts) == puts  # and nothing uploaded
    assert cli(publish_args(more, "1.2.0"), env).returncode == 0


def test_invalid_dataset_is_refused_before_any_request(hub, tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a")
    manifest = json.loads((a / "manifest.json").read_text())
    manifest["files"]["corpus/corpus-00000-of-00002.parquet"]["sha256"] = "0" * 64
    (a / "manifest.json").write_text(json.dumps(manifest))
    r = cli(publish_args(a, "1.0.0"), client_env(hub, tmp_path))
    assert r.returncode == 1
    assert "nothing was sent" in r.stderr
    assert "corpus/corpus-00000-of-00002.parquet: sha256 differs from manifest.json" in r.stderr
    assert hub.state.requests == []


def test_bad_token_gives_clear_error_without_echoing_it(hub, tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a")
    bad = "hf_BadSecretToken987654321"
    r = cli(publish_args(a, "1.0.0"), client_env(hub, tmp_path, token=bad))
    assert r.returncode == 1
    assert "rejected the token" in r.stderr and "HF_TOKEN" in r.stderr
    assert bad not in r.stdout + r.stderr
    assert hub.state.repos == {}


def test_interrupted_upload_resumes_without_resending(hub, tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a")
    env = client_env(hub, tmp_path)
    hub.state.drop_lfs_puts_after = 1  # accept one LFS object, then drop every upload connection
    proc = subprocess.Popen([sys.executable, "-c", CLI, *publish_args(a, "1.0.0")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while (hub.state.dropped == 0 or not hub.state.lfs_puts) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.state.dropped >= 1
    proc.kill()  # the interruption: the client never gets to finish
    proc.communicate(timeout=30)
    repo = hub.repo(REPO)
    assert repo.tags == {} and set(repo.commits[repo.branches["main"]].files) == {".gitattributes"}
    assert len(hub.state.lfs_puts) == 1
    first = hub.state.lfs_puts[0]

    hub.state.drop_lfs_puts_after = None
    r = cli(publish_args(a, "1.0.0"), env)
    assert r.returncode == 0, r.stderr
    assert hub.state.lfs_puts.count(first) == 1  # what was there was not sent again
    assert len(hub.state.lfs_puts) == 6  # 6 Parquet files in all, each sent once
    assert set(repo.commits[repo.tags["v1.0.0"]].files) == EXPECTED_FILES


def test_dry_run_prints_plan_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = make_dataset(tmp_path / "a")
    # an endpoint nobody listens on: any request would fail the command
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["publish", str(a), "--repo-id", REPO, "--version", "0.1.0", "--dry-run"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "DRY RUN: nothing sent" in out and "v0.1.0" in out
    assert "corpus/corpus-00000-of-00002.parquet" in out and "manifest.json" in out
    assert "rejects/" not in out and "work/" not in out
    assert "license: cc-by-nc-sa-3.0" in out  # the card is shown
    card_before = (a / "README.md").read_text()
    plan = publish_dataset(a, REPO, "0.1.0", dry_run=True)
    assert plan["dry_run"] is True and plan["tag"] == "v0.1.0"
    assert [f["path"] for f in plan["files"]][:2] == ["README.md", "manifest.json"]
    # the card to upload has the repo and version stamped in; the dry run writes nothing
    assert f'load_dataset("{REPO}", "corpus", split="corpus", revision="v0.1.0")' in plan["card"]
    assert (a / "README.md").read_text() == card_before and 'revision="vX.Y.Z"' in card_before
    assert plan["files"][0]["bytes"] == len(plan["card"].encode())
    assert plan["total_bytes"] == len(plan["card"].encode()) + sum(
        (a / f["path"]).stat().st_size for f in plan["files"][1:])


@pytest.mark.parametrize("version", ["1.0", "v1.0.0.0", "latest", "01.2.3", ""])
def test_bad_version_refused(tmp_path: Path, version: str) -> None:
    with pytest.raises(PublishError, match="X.Y.Z"):
        publish_dataset(tmp_path, REPO, version, dry_run=True)


def test_bad_repo_id_refused(tiny_dataset: Path) -> None:
    with pytest.raises(PublishError, match="ORG/NAME"):
        publish_dataset(tiny_dataset, "no-namespace", "1.0.0", dry_run=True)


def test_offline_mode_is_a_clear_error(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as under `make`, which exports HF_HUB_OFFLINE=1
    with pytest.raises(PublishError, match="HF_HUB_OFFLINE"):
        publish_dataset(tiny_dataset, REPO, "1.0.0", token=GOOD)


def test_release_card_stamps_generated_cards_only(tiny_dataset: Path) -> None:
    from wikihow_tiir.publish.card import GENERATED_MARKER
    from wikihow_tiir.publish.hub import release_card

    stamped = release_card(tiny_dataset, REPO, "2.0.0")
    assert "**Version v2.0.0** of `org/wikihow-tiir`." in stamped
    assert release_card(tiny_dataset, "other/name", "2.0.0") != stamped  # deterministic per repo + version
    assert release_card(tiny_dataset, REPO, "2.0.0") == stamped
    # a generated card is re-rendered from the manifest (an older toolkit's card is refreshed) ...
    (tiny_dataset / "README.md").write_text((tiny_dataset / "README.md").read_text().replace("## Citation", "## X"))
    assert release_card(tiny_dataset, REPO, "2.0.0") == stamped
    # ... a card whose marker was removed is kept by hand and uploaded as it is
    edited = (tiny_dataset / "README.md").read_text().replace(GENERATED_MARKER, "A note written by hand.")
    (tiny_dataset / "README.md").write_text(edited)
    assert release_card(tiny_dataset, REPO, "2.0.0") == edited


def test_dry_run_sends_nothing_even_when_online(hub, tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a")
    r = cli([*publish_args(a, "1.0.0"), "--dry-run"], client_env(hub, tmp_path))
    assert r.returncode == 0, r.stderr
    assert "DRY RUN: nothing sent" in r.stdout and 'revision="v1.0.0"' in r.stdout
    assert hub.state.requests == [] and hub.state.repos == {}
