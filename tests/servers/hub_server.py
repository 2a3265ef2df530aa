"""A small Hugging Face Hub-compatible server on 127.0.0.1, for tests.

It implements the routes that `huggingface_hub` (with ``HF_HUB_DISABLE_XET=1``) and `datasets`
use to create a repo, upload a folder (pre-upload, LFS batch + PUT, NDJSON commit), tag and list
refs, read repo info, list trees, ask for paths-info and download files by revision (HEAD + GET,
with Range). Storage is in memory: git-like commits with ids, branches and tags -> commit ids, and
a content-addressed LFS store. Faults can be switched on to test resumable uploads:
``server.drop_lfs_puts_after = n`` accepts n LFS uploads and then drops the connection of every
further upload mid-body.

Usage::

    with HubServer(token="hf_test") as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_test"}
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
_LFS_SUFFIXES = (".parquet", ".arrow", ".png", ".jpg", ".jpeg", ".bin", ".safetensors", ".zip", ".gz")


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Entry:
    size: int
    oid: str  # git blob id (of the pointer for LFS files, as on the Hub)
    sha256: str  # content address in the blob store
    lfs: bool


@dataclass
class Commit:
    id: str
    parent: str | None
    message: str
    files: dict[str, Entry]


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class HubState:
    def __init__(self, token: str, user: str = "tester") -> None:
        self.token = token
        self.user = user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []
        self.lfs_puts: list[str] = []  # sha256 of every accepted LFS upload, in order
        self.dropped = 0
        self.drop_lfs_puts_after: int | None = None
        self._put_slots = 0  # uploads admitted so far (counted on arrival: uploads run concurrently)

    def put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha] = data
        return sha

    def commit(self, repo: Repo, branch: str, message: str, files: dict[str, Entry]) -> Commit:
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(json.dumps(
            [parent, message, sorted((p, e.sha256) for p, e in files.items())]).encode()).hexdigest()
        c = Commit(id=digest, parent=parent, message=message, files=files)
        repo.commits[c.id] = c
        repo.branches[branch] = c.id
        return c

    def resolve(self, repo: Repo, revision: str) -> Commit | None:
        if revision in repo.branches:
            return repo.commits[repo.branches[revision]]
        if revision.startswith("refs/heads/") and revision[11:] in repo.branches:
            return repo.commits[repo.branches[revision[11:]]]
        if revision.startswith("refs/tags/"):
            revision = revision[10:]
        if revision in repo.tags:
            return repo.commits[repo.tags[revision]]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            hits = [c for cid, c in repo.commits.items() if cid.startswith(revision)]
            if len(hits) == 1:
                return hits[0]
        return None


class _Error(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+?)(?:/(revision|refs|preupload|commit|tag|tree|"
                  r"paths-info)(?:/([^/]*))?(/.*)?)?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_LFS_BATCH = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # ------------------------------------------------------------------ plumbing
    @property
    def state(self) -> HubState:
        return self.server.state

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, err: _Error) -> None:
        headers = {"X-Error-Message": err.message}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._json({"error": err.message}, err.status, headers)

    def _auth(self, required: bool) -> str | None:
        value = self.headers.get("Authorization", "")
        if not value:
            if required:
                raise _Error(401, "Invalid credentials in Authorization header")
            return None
        if value != f"Bearer {self.state.token}":
            raise _Error(401, "Invalid credentials in Authorization header")
        return self.state.user

    def _repo(self, kind: str, repo_id: str) -> Repo:
        repo = self.state.repos.get((kind, repo_id))
        if repo is None:
            raise _Error(404, "Repository not found", "RepoNotFound")
        if repo.private and self._auth(False) is None:
            raise _Error(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit_for(self, repo: Repo, revision: str) -> Commit:
        c = self.state.resolve(repo, unquote(revision))
        if c is None:
            raise _Error(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return c

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.state.requests.append((self.command, url.path))
        try:
            if url.path == "/api/whoami-v2":
                user = self._auth(True)
                return self._json({"type": "user", "name": user, "orgs": [],
                                   "auth": {"type": "access_token",
                                            "accessToken": {"displayName": "test", "role": "write"}}})
            if url.path == "/api/validate-yaml" and self.command == "POST":
                return self._validate_yaml()
            if url.path == "/api/repos/create" and self.command == "POST":
                return self._create_repo()
            if url.path.startswith("/lfs-upload/") and self.command == "PUT":
                return self._lfs_put(url.path.rsplit("/", 1)[1])
            m = _LFS_BATCH.match(url.path)
            if m and self.command == "POST":
                return self._lfs_batch((m.group(1) or "models"), m.group(2))
            m = _RESOLVE.match(url.path)
            if m and self.command in ("GET", "HEAD"):
                return self._resolve(m.group(1) or "models", m.group(2), m.group(3), unquote(m.group(4)))
            m = _API.match(url.path)
            if m:
                kind, repo_id, action, rev, rest = m.groups()
                query = parse_qs(url.query)
                if action is None and self.command == "GET":
                    return self._info(kind, repo_id, "main")
                if action == "revision" and self.command == "GET":
                    return self._info(kind, repo_id, rev or "main")
                if action == "refs" and self.command == "GET":
                    return self._refs(kind, repo_id)
                if action == "preupload" and self.command == "POST":
                    return self._preupload(kind, repo_id, rev)
                if action == "commit" and self.command == "POST":
                    return self._commit(kind, repo_id, rev)
                if action == "tag" and self.command == "POST":
                    return self._tag(kind, repo_id, rev)
                if action == "tree" and self.command == "GET":
                    recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                    return self._tree(kind, repo_id, rev, unquote((rest or "").strip("/")), recursive)
                if action == "paths-info" and self.command == "POST":
                    return self._paths_info(kind, repo_id, rev)
            raise _Error(404, f"no route for {self.command} {url.path}")
        except _Error as err:
            self._error(err)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _dispatch

    # ------------------------------------------------------------------ repos and refs
    def _create_repo(self) -> None:
        user = self._auth(True)
        payload = json.loads(self._body() or b"{}")
        kind = (payload.get("type") or "model") + "s"
        namespace = payload.get("organization") or user
        repo_id = f"{namespace}/{payload['name']}"
        prefix = "" if kind == "models" else f"{kind}/"
        with self.state.lock:
            if (kind, repo_id) in self.state.repos:  # the Hub answers the URL with its 409
                return self._json({"error": "You already created this repo",
                                   "url": f"{self.server.url}/{prefix}{repo_id}"}, 409)
            private = bool(payload.get("private")) or payload.get("visibility") in ("private", "protected")
            repo = Repo(repo_id, kind, private)
            sha = self.state.put_blob(GITATTRIBUTES)
            self.state.commit(repo, "main", "initial commit", {
                ".gitattributes": Entry(len(GITATTRIBUTES), git_blob_oid(GITATTRIBUTES), sha, False)})
            self.state.repos[(kind, repo_id)] = repo
        self._json({"url": f"{self.server.url}/{prefix}{repo_id}", "name": repo_id})

    def _validate_yaml(self) -> None:
        import yaml

        content = json.loads(self._body() or b"{}").get("content", "")
        errors = []
        if content.startswith("---\n"):
            end = content.find("\n---\n", 4)
            try:
                meta = yaml.safe_load(content[4:end + 1]) if end > 0 else None
                if end < 0 or not isinstance(meta, dict):
                    errors.append({"message": "metadata is not a YAML mapping closed by ---"})
            except yaml.YAMLError as exc:
                errors.append({"message": f"invalid YAML: {exc}"})
        if errors:
            return self._json({"errors": errors, "warnings": []}, 400, {"X-Error-Code": "BadRequest"})
        self._json({"errors": [], "warnings": []})

    def _info(self, kind: str, repo_id: str, revision: str) -> None:
        repo = self._repo(kind, repo_id)
        c = self._commit_for(repo, revision)
        self._json({
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo_id.split("/")[0],
            "sha": c.id, "private": repo.private, "disabled": False, "gated": False, "downloads": 0, "likes": 0,
            "tags": [], "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
            "siblings": [{"rfilename": p} for p in sorted(c.files)], "cardData": {},
        })

    def _refs(self, kind: str, repo_id: str) -> None:
        repo = self._repo(kind, repo_id)
        self._json({
            "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in sorted(repo.branches.items())],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": c} for n, c in sorted(repo.tags.items())],
            "converts": [],
        })

    def _tag(self, kind: str, repo_id: str, revision: str) -> None:
        self._auth(True)
        payload = json.loads(self._body() or b"{}")
        with self.state.lock:
            repo = self._repo(kind, repo_id)
            c = self._commit_for(repo, revision)
            tag = payload["tag"]
            if tag in repo.tags or tag in repo.branches:
                raise _Error(409, f"Tag {tag} already exists")
            repo.tags[tag] = c.id
        self._json({"name": tag, "ref": f"refs/tags/{tag}", "targetCommit": c.id})

    # ------------------------------------------------------------------ upload
    def _preupload(self, kind: str, repo_id: str, revision: str) -> None:
        self._auth(True)
        payload = json.loads(self._body() or b"{}")
        repo = self._repo(kind, repo_id)
        c = self.state.resolve(repo, unquote(revision))
        files = []
        for f in payload.get("files", []):
            sample = base64.b64decode(f.get("sample", ""))
            lfs = (f["path"].lower().endswith(_LFS_SUFFIXES) or f["size"] > LFS_SIZE_THRESHOLD
                   or b"\0" in sample)
            existing = c.files.get(f["path"]) if c else None
            # the Hub answers the sha256 for LFS files and the git blob id for regular ones
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                          "shouldIgnore": False, "oid": oid})
        self._json({"files": files, "commitOid": c.id if c else None})

    def _lfs_batch(self, kind: str, repo_id: str) -> None:
        self._auth(True)
        payload = json.loads(self._body() or b"{}")
        self._repo(kind, repo_id)
        objects = []
        for obj in payload.get("objects", []):
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.state.blobs:  # already stored objects get no actions: not re-sent
                item["actions"] = {"upload": {"href": f"{self.server.url}/lfs-upload/{obj['oid']}",
                                              "header": {}}}
            objects.append(item)
        self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                   headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, oid: str) -> None:
        with self.state.lock:
            limit = self.state.drop_lfs_puts_after
            drop = limit is not None and self.state._put_slots >= limit
            if drop:
                self.state.dropped += 1
            else:
                self.state._put_slots += 1
        if drop:
            # read part of the body, then drop the connection without any response
            self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 512))
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise _Error(400, "sha256 mismatch")
        with self.state.lock:
            self.state.put_blob(data)
            self.state.lfs_puts.append(oid)
        self._send(200, b"", content_type="text/plain")

    def _commit(self, kind: str, repo_id: str, revision: str) -> None:
        self._auth(True)
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        with self.state.lock:
            repo = self._repo(kind, repo_id)
            branch = unquote(revision)
            if branch not in repo.branches:
                raise _Error(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            files = dict(repo.commits[repo.branches[branch]].files)
            header: dict[str, Any] = {}
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "header":
                    header = value
                    parent = header.get("parentCommit")
                    if parent and not repo.branches[branch].startswith(parent):
                        raise _Error(412, "A commit has happened since. Please refresh and try again.")
                elif key == "file":
                    data = base64.b64decode(value["content"])
                    files[value["path"]] = Entry(len(data), git_blob_oid(data), self.state.put_blob(data), False)
                elif key == "lfsFile":
                    sha = value["oid"]
                    if sha not in self.state.blobs:
                        raise _Error(422, f"LFS object {sha} of {value['path']} was never uploaded")
                    size = len(self.state.blobs[sha])
                    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n".encode()
                    files[value["path"]] = Entry(size, git_blob_oid(pointer), sha, True)
                elif key in ("deletedFile", "deletedFolder"):
                    path = value["path"].rstrip("/")
                    for p in [p for p in files if p == path or p.startswith(path + "/")]:
                        del files[p]
                else:
                    raise _Error(400, f"unsupported commit operation {key}")
            summary = header.get("summary", "")
            c = self.state.commit(repo, branch, summary, files)
        prefix = "" if kind == "models" else f"{kind}/"
        self._json({"success": True, "commitOid": c.id, "commitMessage": summary,
                    "commitUrl": f"{self.server.url}/{prefix}{repo_id}/commit/{c.id}", "hookOutput": ""})

    # ------------------------------------------------------------------ read
    def _entry_json(self, path: str, e: Entry) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "file", "oid": e.oid, "size": e.size, "path": path}
        if e.lfs:
            out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": 130}
        return out

    def _listing(self, c: Commit, path: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{path}/" if path else ""
        out: list[dict[str, Any]] = []
        dirs: set[str] = set()
        for p in sorted(c.files):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            parts = rest.split("/")
            for i in range(1, len(parts) if recursive else min(2, len(parts))):
                dirs.add(prefix + "/".join(parts[:i]))
            if recursive or len(parts) == 1:
                out.append(self._entry_json(p, c.files[p]))
        folders = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                   for d in sorted(dirs)]
        return folders + out

    def _tree(self, kind: str, repo_id: str, revision: str, path: str, recursive: bool) -> None:
        repo = self._repo(kind, repo_id)
        c = self._commit_for(repo, revision)
        if path and path not in c.files and not any(p.startswith(path + "/") for p in c.files):
            raise _Error(404, f"{path} does not exist", "EntryNotFound")
        self._json(self._listing(c, path, recursive))

    def _paths_info(self, kind: str, repo_id: str, revision: str) -> None:
        repo = self._repo(kind, repo_id)
        c = self._commit_for(repo, revision)
        body = self._body().decode()
        if "json" in (self.headers.get("Content-Type") or ""):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body).get("paths", [])
        out = []
        for p in paths:
            p = p.strip("/")
            if p in c.files:
                out.append(self._entry_json(p, c.files[p]))
            elif any(f.startswith(p + "/") for f in c.files):
                out.append({"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "size": 0, "path": p})
        self._json(out)

    def _resolve(self, kind: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(kind, repo_id)
        c = self._commit_for(repo, revision)
        entry = c.files.get(path)
        if entry is None:
            raise _Error(404, "Entry not found", "EntryNotFound")
        data = self.state.blobs[entry.sha256]
        etag = f'"{entry.sha256 if entry.lfs else entry.oid}"'
        headers = {"X-Repo-Commit": c.id, "ETag": etag, "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(entry.size)})
        status, body = 200, data
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng or "")
        if m and data:
            start = int(m.group(1)) if m.group(1) else max(0, len(data) - int(m.group(2)))
            end = int(m.group(2)) if (m.group(1) and m.group(2)) else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            status, body = 206, data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(status, body, headers, content_type="application/octet-stream")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state: HubState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class HubServer:
    """Start/stop wrapper; ``.url``, ``.state`` (repos, lfs_puts, dropped, requests)."""

    def __init__(self, token: str = "hf_test_token") -> None:
        self.state = HubState(token)
        self._server = _Server(self.state)
        self.url = self._server.url
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def repo(self, repo_id: str, kind: str = "datasets") -> Repo:
        return self.state.repos[(kind, repo_id)]
