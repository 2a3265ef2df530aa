"""Versioned push of a built dataset to the Hugging Face Hub.

One release = one commit on ``main`` whose message names the version + the git tag ``vX.Y.Z``
pointing at it. Consumers pin it with ``load_dataset(repo, config, revision="vX.Y.Z")``, so a
tag is never moved or reused: publishing a version whose tag exists is refused before anything
is uploaded.

Order of events, each step safe to re-run:

1. validate the folder (:func:`validate_dataset`); any problem refuses the push, no request made;
2. stamp the repo id and version into the generated card (``README.md``) and the scorer's card
   (``scorer/README.md``); ``dry_run`` stops before writing them and returns the plan: files, sizes, the card;
3. check the token (``whoami``), create the repo if needed, refuse an existing tag;
4. ``upload_folder`` with the dataset allowlist, deleting data files the new version no longer
   has (another shard count must not leave old shards matching the card's globs). It is resumable by re-running: files already
   stored upstream (LFS objects, or Xet chunks on the real Hub) are not sent again;
5. tag the resulting commit.

A version must be greater than the repository's latest ``vX.Y.Z`` tag; a smaller or equal one is refused
with the number to use instead (:func:`next_version`: patch for fixes, minor for new documents, major
for a changed schema).

The token comes from the ``token`` argument, ``HF_TOKEN`` or the standard ``hf auth login`` file
(``huggingface_hub.get_token``). It is never logged, never put into an error message (every
message is scrubbed) and the card and manifest are checked not to contain it.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from wikihow_tiir import layout
from wikihow_tiir.changelog import latest_version, parse_version, suggest_next
from wikihow_tiir.io import atomic_write_text
from wikihow_tiir.layout import DATA_PATTERNS, RELEASE_PATTERNS, SCORER_PATTERNS, release_files
from wikihow_tiir.publish.validate import validate_dataset

log = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class PublishError(RuntimeError):
    """A push was refused or failed; ``problems`` lists what to fix (validation failures)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


def tag_for(version: str) -> str:
    return f"v{version}"


def check_version(version: str) -> str:
    """``"1.2.0"`` (a leading ``v`` is accepted and dropped); anything else is refused."""
    v = version[1:] if version.startswith("v") else version
    if not VERSION_RE.match(v):
        raise PublishError(f"version {version!r} is not of the form X.Y.Z (e.g. 1.0.0)")
    return v


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", text)


def release_card(dataset_dir: Path, repo_id: str, version: str) -> str:
    """The card to upload: the card rendered from the manifest, with the repo id and version stamped in.

    A README.md without the generated-card marker (kept by hand) is uploaded as it is.
    """
    from wikihow_tiir.publish.card import GENERATED_MARKER, render_card

    root = Path(dataset_dir)
    current = layout.card_path(root).read_text(encoding="utf-8")
    manifest = json.loads(layout.manifest_path(root).read_text(encoding="utf-8"))
    if GENERATED_MARKER in current:
        return render_card({**manifest, "repo_id": repo_id, "release": version})
    log.warning("%s/README.md has no generated-card marker: uploading it as it is", root)
    return current


def release_scorer_card(dataset_dir: Path, repo_id: str, version: str) -> str | None:
    """The scorer's model card to upload, with the dataset's repo id and version stamped in (None: no scorer;
    a scorer card whose marker was removed is uploaded as it is)."""
    from wikihow_tiir.mme.scorer import CARD_MARKER, render_scorer_card

    folder = layout.scorer_dir(dataset_dir)
    if not (folder / layout.SCORER_CARD).is_file():
        return None
    current = (folder / layout.SCORER_CARD).read_text(encoding="utf-8")
    return render_scorer_card(folder, repo_id, version) if CARD_MARKER in current else current


def publish_plan(dataset_dir: Path, repo_id: str, version: str) -> dict[str, Any]:
    """What a push would send, computed locally (the ``--dry-run`` output)."""
    root = Path(dataset_dir)
    card = release_card(root, repo_id, version)
    scorer_card = release_scorer_card(root, repo_id, version)
    stamped = {layout.CARD: card, f"{layout.SCORER}/{layout.SCORER_CARD}": scorer_card}
    files = [{"path": p.as_posix(),
              "bytes": len(stamped[p.as_posix()].encode("utf-8")) if stamped.get(p.as_posix()) is not None
              else (root / p).stat().st_size}
             for p in release_files(root)]
    return {
        "repo_id": repo_id,
        "repo_type": "dataset",
        "version": version,
        "tag": tag_for(version),
        "commit_message": f"Release {tag_for(version)}",
        "files": files,
        "total_bytes": sum(f["bytes"] for f in files),
        "card": card,
        "scorer_card": scorer_card,
    }


def _describe_http_error(exc: Exception, token: str | None) -> str:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return ("the Hub rejected the token (HTTP 401): set HF_TOKEN to a token with write access, "
                "or log in with `hf auth login`")
    if status == 403:
        return "the token has no write access to this repository (HTTP 403)"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _scrub(f"{type(exc).__name__}: {first}", token)


def _manifest_at(api: Any, repo_id: str, revision: str) -> dict[str, Any] | None:
    """The manifest of a published version (None when it cannot be read: the suggestion then rests on this
    dataset's own changes)."""
    try:
        path = api.hf_hub_download(repo_id, layout.MANIFEST, repo_type="dataset", revision=revision)
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a suggestion is not worth failing over
        return None


def next_version(repo_id: str, dataset_dir: Path, token: str | None = None) -> tuple[str, str]:
    """The version to publish ``dataset_dir`` as: after the repository's latest tag, by what changed
    (:func:`wikihow_tiir.changelog.suggest_next`); ``1.0.0`` for a first release."""
    from huggingface_hub import HfApi, get_token

    api = HfApi(token=token or get_token())
    manifest = json.loads(layout.manifest_path(Path(dataset_dir)).read_text(encoding="utf-8"))
    try:
        tags = [t.name for t in api.list_repo_refs(repo_id, repo_type="dataset").tags]
    except Exception as exc:  # noqa: BLE001 - a repository that does not exist yet has no versions
        if getattr(getattr(exc, "response", None), "status_code", None) != 404:
            raise PublishError(f"the versions of {repo_id} cannot be listed: {_describe_http_error(exc, token)}") from None
        tags = []
    latest = latest_version(tags)
    if latest is None:
        return "1.0.0", "the first release"
    return suggest_next(latest, _manifest_at(api, repo_id, f"v{latest}"), manifest)


def publish_dataset(dataset_dir: Path, repo_id: str, version: str, dry_run: bool = False,
                    private: bool = False, token: str | None = None) -> dict[str, Any]:
    """Validate, then push ``dataset_dir`` as version ``version`` (tag ``vX.Y.Z``) of ``repo_id``.

    Returns the plan (``dry_run``) or ``{..., "commit": sha, "tag": "vX.Y.Z", "url": ...}``.
    Raises :class:`PublishError` with a clear message (never containing the token).
    """
    root = Path(dataset_dir)
    version = check_version(version)
    if not REPO_ID_RE.match(repo_id or ""):
        raise PublishError(f"repo id {repo_id!r} is not of the form ORG/NAME")
    problems = validate_dataset(root)
    if problems:
        raise PublishError(
            f"{root} is not a valid dataset; nothing was sent. Problems:\n" + "\n".join(f"  - {p}" for p in problems),
            problems)
    plan = publish_plan(root, repo_id, version)
    if dry_run:
        return {**plan, "dry_run": True}

    from huggingface_hub import HfApi, constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise PublishError("HF_HUB_OFFLINE=1 is set (the Makefile sets it for builds): run with HF_HUB_OFFLINE=0 "
                           "to publish, or use --dry-run")
    token = token or get_token()
    if not token:
        raise PublishError("no Hub token: set HF_TOKEN or log in with `hf auth login`")
    for name, text in ((layout.CARD, plan["card"]), (layout.MANIFEST, layout.manifest_path(root).read_text("utf-8"))):
        if token in text:
            raise PublishError(f"{name} contains the Hub token; refusing to publish it")

    tag = tag_for(version)
    api = HfApi(token=token)
    try:
        user = api.whoami().get("name", "?")
        log.info("publishing %s as %s to %s (%s)", root, tag, repo_id, user)
        # private=None (not False) leaves a new repo to the organisation's default visibility
        api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
        refs = api.list_repo_refs(repo_id, repo_type="dataset")
        existing = {t.name: t.target_commit for t in refs.tags}
        latest = latest_version(existing)
        if tag in existing or (latest is not None and parse_version(version) <= parse_version(latest)):
            suggestion, why = suggest_next(latest or version, _manifest_at(api, repo_id, f"v{latest}"),
                                           json.loads(layout.manifest_path(root).read_text(encoding="utf-8")))
            head = (f"{repo_id} already has version {tag} (commit {existing[tag]})" if tag in existing else
                    f"{repo_id}: version {version} is not greater than its latest version v{latest}")
            raise PublishError(f"{head}; a published version is never moved or reused: publish a new version "
                               f"number: {suggestion} ({why}; patch for fixes, minor for new documents, major "
                               "for a changed schema)")
        if layout.card_path(root).read_text(encoding="utf-8") != plan["card"]:
            atomic_write_text(layout.card_path(root), plan["card"])  # the stamped card is what gets uploaded
        scorer_card = layout.scorer_dir(root) / layout.SCORER_CARD
        if plan["scorer_card"] is not None and scorer_card.read_text(encoding="utf-8") != plan["scorer_card"]:
            atomic_write_text(scorer_card, plan["scorer_card"])
        commit = api.upload_folder(
            repo_id=repo_id, repo_type="dataset", folder_path=str(root), revision="main",
            allow_patterns=list(RELEASE_PATTERNS),
            # data files of the previous version that this one no longer has (e.g. another shard
            # count) must go, or the card's globs would load them alongside the new ones
            # (and so must the files of a previous version's scorer, e.g. another backbone's)
            delete_patterns=[*DATA_PATTERNS, *SCORER_PATTERNS],
            commit_message=plan["commit_message"],
            commit_description=f"wikiHow-TIIR dataset version {version} ({len(plan['files'])} files, "
                               f"{plan['total_bytes']:,} bytes).",
        )
        try:
            api.create_tag(repo_id, repo_type="dataset", tag=tag, revision=commit.oid,
                           tag_message=f"wikiHow-TIIR {tag}")
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) == 409:
                raise PublishError(f"{repo_id}: tag {tag} was created by someone else during this upload; "
                                   f"the data is on main at commit {commit.oid} but is not tagged by this run. "
                                   "Check the repository and publish a new version number") from None
            raise
    except PublishError:
        raise
    except Exception as exc:  # HTTP, connection and protocol errors: one clear, token-free line
        raise PublishError(f"publishing {repo_id} {tag} failed: {_describe_http_error(exc, token)}. "
                           "Re-running the same command resumes the upload.") from None
    files = [f["path"] for f in plan["files"]]
    return {
        "repo_id": repo_id, "version": version, "tag": tag, "commit": commit.oid,
        "url": _scrub(str(commit.commit_url), token), "files": files, "total_bytes": plan["total_bytes"],
        "dry_run": False,
        "load": f'load_dataset("{repo_id}", "corpus", revision="{tag}")',
    }
