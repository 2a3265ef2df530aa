"""Object storage: build folders and archives at fsspec URLs (``s3://bucket/prefix``, ``gs://``, ``file://``).

Every stage reads and writes local paths; object storage is added around them, here, in three parts:

* :class:`RemoteFolder`: one folder at a URL. Files are written **atomically** on object storage too:
  to a temporary key beside the final one (``.<name>.<token>.tmp``, matching no dataset glob), then
  moved onto the final key. A step (a build shard, a generation stage of a query shard) is committed
  by its ``.done`` marker (:mod:`wikihow_tiir.resume`), uploaded after every file it vouches for: a
  worker killed half-way leaves files without a marker (or an older marker whose sizes and sha256
  no longer match), never a step that looks done.
* :class:`Mirror`: a local folder kept as a copy of a remote one (a sync record of sizes, mtimes
  and ETags, so unchanged files are never sent or fetched twice). The flow's process builds in a
  local copy of the output (``runner.staging``, default under ``~/.cache/wikihow-tiir/staging``):
  it pulls the remote folder first (resume), pulls each finished shard, and pushes everything at
  the end, deleting what the build deleted. Workers run a shard in a local scratch folder (Dask's
  worker directory, removed with the worker; the flow's own staging for the thread runner), pull
  only what the shard reads and push only the shard's own files.
* :func:`run_remote_shard`: the worker side of a shard whose build folder is a URL.

Credentials come from each filesystem's usual environment and config files (for S3: the AWS
variables, ``~/.aws``, ``AWS_ENDPOINT_URL`` for another endpoint); none is ever put in a URL that
is written or logged (:func:`public_url` drops any user info and query).

**The request cache on object storage** is kept per worker, with a merge step: SQLite needs POSIX
locks and a shared-memory WAL index that no object store gives, and two workers uploading one
cache file would lose each other's answers (the last upload wins). So a worker opens a local copy
(seeded from the build's ``work/generate/cache.sqlite``), uploads a snapshot under a key of its
own (``work/generate/cache-parts/<worker>.sqlite``) after each query shard, and the flow's process,
the only writer of the build's cache, merges the snapshots into it after the query shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wikihow_tiir import layout
from wikihow_tiir.errors import WikihowTiirError
from wikihow_tiir.resume import MARKER_SUFFIX, file_problem

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/+(.*)$", re.S)  # 2+ letters: "C:/x" stays a path
SYNC_RECORD = ".wikihow-tiir-sync.json"
CACHE_PARTS = "work/generate/cache-parts"  # per-worker snapshots of the request cache, merged by the flow
CACHE = "work/generate/cache.sqlite"
# what a query shard reads besides its own steps (the corpus, the writer context, the corpus's identity,
# the image pool's vectors)
QUERY_INPUTS = ("corpus/", "work/corpus/context.parquet", "work/corpus/corpus-id", "work/generate/pool-vectors-")


class RemoteError(WikihowTiirError):
    """Object storage cannot be used as asked (no client library, no access, a read-only protocol)."""

    reason = "remote-error"


# --------------------------------------------------------------------------- locations


def is_remote(value: Any) -> bool:
    """Whether a location is a URL other than ``file://`` (which is the local path it names)."""
    m = _URL.match(str(value)) if value is not None else None
    return bool(m) and m.group(1).lower() != "file"


def location(value: str | os.PathLike) -> str | Path:
    """A build folder or archive: a canonical URL string for object storage (``Path`` folds ``s3://``
    to ``s3:/``; both are read), else a local ``Path`` (``file://`` URLs included)."""
    text = os.fspath(value)
    m = _URL.match(text)
    if not m:
        return Path(text)
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "file":
        return Path("/" + rest.lstrip("/"))
    return f"{scheme}://{rest}"


def public_url(url: str) -> str:
    """The URL as it may be written and logged: no user info (``key:secret@``), no query, no fragment."""
    parts = urlsplit(str(location(url)))
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def describe(value: str | os.PathLike) -> str:
    """A location for manifests and messages: the public URL, or the path as given."""
    return public_url(str(value)) if is_remote(value) else str(value)


def _filesystem(url: str):
    try:
        import fsspec

        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        scheme = url.split(":", 1)[0]
        extra = {"s3": "s3fs (pip install 'wikihow-tiir[s3]')", "gs": "gcsfs", "gcs": "gcsfs",
                 "az": "adlfs", "abfs": "adlfs"}.get(scheme, f"the fsspec filesystem for {scheme}://")
        raise RemoteError(f"{public_url(url)}: reading and writing {scheme}:// needs {extra} ({exc.name or exc})",
                          "remote-client-missing") from None
    except ValueError as exc:  # an unknown protocol
        raise RemoteError(f"{public_url(url)}: {exc}", "remote-unknown-protocol") from None


def _say(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# --------------------------------------------------------------------------- one folder at a URL


class RemoteFolder:
    """A folder at an fsspec URL; paths are relative, ``/``-separated (``work/corpus/shard-00000.done``)."""

    def __init__(self, url: str):
        self.url = str(location(url))
        self.public = public_url(self.url)
        self.fs, root = _filesystem(self.url)
        self.root = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple | list) else (self.fs.protocol,)
        self.read_only = bool({"http", "https"} & set(protocols))

    def key(self, rel: str = "") -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def where(self, rel: str = "") -> str:
        return f"{self.public.rstrip('/')}/{rel}" if rel else self.public

    def _fail(self, what: str, rel: str, exc: BaseException) -> RemoteError:
        return RemoteError(f"{self.where(rel)}: cannot {what} ({_say(exc)})", "remote-io")

    def listing(self, prefixes: Iterable[str] = ("",)) -> dict[str, dict[str, Any]]:
        """``{rel: info}`` of every file under these prefixes (a prefix ending in ``/`` is a folder, any
        other a start of names); fresh: the filesystem's listing cache is dropped first."""
        out: dict[str, dict[str, Any]] = {}
        try:
            self.fs.invalidate_cache()
            for prefix in prefixes:
                base = prefix if prefix.endswith("/") else prefix.rpartition("/")[0]
                found = self.fs.find(self.key(base.rstrip("/")), detail=True, withdirs=False)
                for name, info in found.items():
                    name = name.rstrip("/")
                    if info.get("type") == "directory" or not name.startswith(self.root + "/"):
                        continue
                    rel = name[len(self.root) + 1:]
                    if rel.startswith(prefix):
                        out[rel] = info
        except Exception as exc:  # noqa: BLE001 - botocore, aiohttp, OSError ... as one line
            raise self._fail("list", "", exc) from None
        return out

    def exists(self, rel: str) -> bool:
        try:
            return bool(self.fs.exists(self.key(rel)))
        except Exception as exc:  # noqa: BLE001
            raise self._fail("read", rel, exc) from None

    def read_bytes(self, rel: str) -> bytes:
        """The file's bytes; FileNotFoundError when there is none."""
        try:
            return self.fs.cat_file(self.key(rel))
        except FileNotFoundError:
            raise FileNotFoundError(self.where(rel)) from None
        except Exception as exc:  # noqa: BLE001
            raise self._fail("read", rel, exc) from None

    def info(self, rel: str) -> dict[str, Any]:
        try:
            self.fs.invalidate_cache(self.key(rel))
            return self.fs.info(self.key(rel))
        except FileNotFoundError:
            raise FileNotFoundError(self.where(rel)) from None
        except Exception as exc:  # noqa: BLE001
            raise self._fail("read", rel, exc) from None

    def download(self, rel: str, dest: Path) -> None:
        """Copy one file to a local path, atomically (a cut download is never left under ``dest``)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            self.fs.get_file(self.key(rel), tmp)
            os.replace(tmp, dest)
        except FileNotFoundError:
            raise FileNotFoundError(self.where(rel)) from None
        except Exception as exc:  # noqa: BLE001
            raise self._fail("download", rel, exc) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def upload(self, src: Path | bytes, rel: str) -> dict[str, Any]:
        """Write one file atomically: to a temporary key beside it, then moved onto ``rel``. Returns the
        final object's info (its ETag is what the sync record keeps)."""
        if self.read_only:
            raise RemoteError(f"{self.where()}: {self.fs.protocol} locations are read-only", "remote-read-only")
        folder, _, name = rel.rpartition("/")
        tmp = f"{folder + '/' if folder else ''}.{name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            if isinstance(src, bytes | bytearray):
                self.fs.pipe_file(self.key(tmp), bytes(src))
            else:
                self.fs.put_file(str(src), self.key(tmp))
            self.fs.mv(self.key(tmp), self.key(rel))
            return self.info(rel)
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001
            try:
                self.fs.rm_file(self.key(tmp))
            except Exception:  # noqa: BLE001 - best effort; a leftover temporary key is removed by the next push
                pass
            raise self._fail("write", rel, exc) from None

    def delete(self, rels: Iterable[str]) -> None:
        keys = [self.key(r) for r in rels]
        if not keys:
            return
        try:
            self.fs.rm(keys)
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001
            raise self._fail("delete", keys[0][len(self.root) + 1:], exc) from None


def version_tag(info: dict[str, Any]) -> str:
    """What says an object changed: its ETag (S3), md5 (GCS) or modification time, with its size."""
    for key in ("ETag", "etag", "md5Hash", "generation", "mtime", "LastModified", "last_modified", "created"):
        if info.get(key) is not None:
            return f"{info.get('size')}:{info[key]}"
    return f"{info.get('size')}:"


# --------------------------------------------------------------------------- a local copy


def _ignored(rel: str) -> bool:
    """Never synced: temporary files, SQLite's side files, the sync record itself."""
    name = rel.rsplit("/", 1)[-1]
    return (name == SYNC_RECORD or name.endswith((".tmp", "-wal", "-shm", "-journal"))
            or ".corrupt-" in name)


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(str(path), threading.Lock())


class Mirror:
    """A local folder kept as a copy of a :class:`RemoteFolder` (or of some prefixes of it).

    The sync record (``<local>/.wikihow-tiir-sync.json``) holds, per file, the local size and mtime
    and the remote object's version tag at the last transfer: a file whose both sides are unchanged
    is skipped. Safe for the threads of one process (the thread runner's shards share the flow's copy).
    """

    def __init__(self, remote: RemoteFolder, local: Path, shared: bool = False):
        self.remote = remote
        self.local = Path(local)
        self.shared = shared  # the flow's own copy (thread runner): nothing to fetch for a shard
        self._lock = _lock_for(self.local)
        # a pull deletes local files the remote does not have: never in a folder that is not a copy
        if self.local.is_dir() and any(self.local.iterdir()) and not (self.local / SYNC_RECORD).is_file():
            raise RemoteError(f"{self.local} holds files and is not a local copy made by wikihow-tiir (no "
                              f"{SYNC_RECORD}); choose an empty folder for the copy of {remote.public} "
                              "(runner.staging)", "staging-not-a-copy")
        self.local.mkdir(parents=True, exist_ok=True)
        if not (self.local / SYNC_RECORD).is_file():
            self._save({})

    # -- the record
    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.local / SYNC_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, record: dict[str, dict[str, Any]]) -> None:
        from wikihow_tiir.io import atomic_write_text

        atomic_write_text(self.local / SYNC_RECORD, json.dumps(record, sort_keys=True))

    def _stat(self, rel: str) -> tuple[int, int] | None:
        try:
            st = (self.local / rel).stat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _note(self, record: dict, rel: str, tag: str) -> None:
        st = self._stat(rel)
        if st is not None:
            record[rel] = {"size": st[0], "mtime_ns": st[1], "tag": tag}

    def _local_same(self, record: dict, rel: str) -> bool:
        entry, st = record.get(rel), self._stat(rel)
        return bool(entry) and st is not None and (entry.get("size"), entry.get("mtime_ns")) == st

    def _local_files(self, prefixes: Iterable[str]) -> list[str]:
        out = []
        for path in layout.files_under(self.local):
            rel = path.relative_to(self.local).as_posix()
            if not _ignored(rel) and any(rel.startswith(p) for p in prefixes):
                out.append(rel)
        return out

    # -- whole folders
    def pull(self, prefixes: Iterable[str] = ("",), delete: bool = True) -> int:
        """Make the local copy of these prefixes equal to the remote; returns the files fetched."""
        prefixes = tuple(prefixes)
        remote = {r: i for r, i in self.remote.listing(prefixes).items() if not _ignored(r)}
        fetched = 0
        with self._lock:
            record = self._load()
            for rel, info in sorted(remote.items()):
                tag = version_tag(info)
                if self._local_same(record, rel) and record[rel].get("tag") == tag:
                    continue
                self.remote.download(rel, self.local / rel)
                self._note(record, rel, tag)
                fetched += 1
            if delete:
                for rel in self._local_files(prefixes):
                    if rel not in remote:
                        (self.local / rel).unlink()
                        record.pop(rel, None)
            self._save(record)
        return fetched

    def push(self, prefixes: Iterable[str] = ("",), delete: bool = True) -> int:
        """Upload the files of these prefixes that changed since the last transfer (the dataset's card and
        manifest last), then (``delete``) remove the remote files that are no longer here; returns the
        files sent."""
        prefixes = tuple(prefixes)
        remote = self.remote.listing(prefixes)
        sent = 0
        with self._lock:
            record = self._load()
            files = self._local_files(prefixes)
            last = {layout.MANIFEST: 1, layout.CARD: 2}  # a reader sees the new data files before the card

            def order(rel: str) -> tuple[int, str]:
                return (last.get(rel, 0) or (0.5 if rel.endswith(MARKER_SUFFIX) else 0), rel)

            for rel in sorted(files, key=order):
                info = remote.get(rel)
                if info is not None and self._local_same(record, rel) and record[rel].get("tag") == version_tag(info):
                    continue
                self._note(record, rel, version_tag(self.remote.upload(self.local / rel, rel)))
                sent += 1
            if delete:
                gone = sorted(set(remote) - set(files))
                self.remote.delete(gone)
                for rel in gone:
                    record.pop(rel, None)
            self._save(record)
        return sent

    # -- one step (a shard, a generation stage of a shard): its marker and the files it vouches for
    def pull_step(self, folder: str, name: str) -> bool:
        """Fetch a step's marker and the files it vouches for, where the local copy differs; returns whether
        the remote has the step. The local resume check then trusts the step or redoes it."""
        marker = f"{folder}/{name}{MARKER_SUFFIX}"
        try:
            raw = self.remote.read_bytes(marker)
        except FileNotFoundError:
            return False
        try:
            files = json.loads(raw.decode("utf-8")).get("files") or {}
        except (ValueError, AttributeError):
            files = {}
        fetched = []
        for rel, want in sorted(files.items() if isinstance(files, dict) else ()):
            path, full = self.local / folder / rel, f"{folder}/{rel}"
            if path.is_file() and file_problem(path, want) is None:
                continue
            try:
                self.remote.download(full, path)
                fetched.append((full, version_tag(self.remote.info(full))))
            except FileNotFoundError:
                continue  # the local check finds it missing and redoes the step
        local_marker = self.local / marker
        if not local_marker.is_file() or local_marker.read_bytes() != raw:
            from wikihow_tiir.io import atomic_write_bytes

            atomic_write_bytes(local_marker, raw)
            fetched.append((marker, version_tag(self.remote.info(marker))))
        self._remember(fetched)
        return True

    def push_step(self, folder: str, name: str) -> bool:
        """Commit a step: upload its files that the remote lacks, then its marker. Nothing is sent when the
        remote marker is this one (the step was fetched, found done and not redone). Returns whether
        anything was sent."""
        marker = f"{folder}/{name}{MARKER_SUFFIX}"
        raw = (self.local / marker).read_bytes()
        try:
            if self.remote.read_bytes(marker) == raw:
                return False
        except FileNotFoundError:
            pass
        data = json.loads(raw.decode("utf-8"))
        sent = []
        for rel in [*sorted(data.get("files") or {}), f"{name}{MARKER_SUFFIX}"]:  # the marker last
            full = f"{folder}/{rel}"
            sent.append((full, version_tag(self.remote.upload(self.local / full, full))))
        self._remember(sent)
        return True

    def _remember(self, transferred: list[tuple[str, str]]) -> None:
        with self._lock:
            record = self._load()
            for rel, tag in transferred:
                self._note(record, rel, tag)
            self._save(record)

    def remote_steps(self, folder: str, name: str) -> list[tuple[str, str]]:
        """``(folder, name)`` of the steps named ``name`` one level under ``folder`` on the remote."""
        found = self.remote.listing([folder.rstrip("/") + "/"])
        suffix = f"/{name}{MARKER_SUFFIX}"
        return sorted((rel[: -len(suffix)], name) for rel in found if rel.endswith(suffix)
                      and rel[: -len(suffix)].count("/") == folder.rstrip("/").count("/") + 1)


# --------------------------------------------------------------------------- the build's copies


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wikihow-tiir"


def staging_dir(url: str, staging: Path | None = None) -> Path:
    """The flow's local copy of a remote build folder: ``runner.staging``, else a folder of the user's
    cache named by the URL's hash (the same on every run, so a re-run resumes from it)."""
    if staging is not None:
        return Path(staging)
    digest = hashlib.sha256(str(location(url)).encode("utf-8")).hexdigest()[:16]
    for base in (_cache_home() / "staging", Path(tempfile.gettempdir()) / f"wikihow-tiir-staging-{os.getuid()}"):
        try:
            base.mkdir(parents=True, exist_ok=True)
            return base / digest
        except OSError:
            continue
    raise RemoteError("no writable folder for the local copy of the build: set runner.staging", "no-staging")


def archive_mirror(url: str, staging: Path | None = None) -> Mirror:
    """The local copy a live crawl fills before its archive is uploaded to ``url`` (beside the build's
    copy when ``runner.staging`` is set)."""
    digest = hashlib.sha256(str(location(url)).encode("utf-8")).hexdigest()[:16]
    local = Path(staging).parent / f"archive-{digest}" if staging is not None else staging_dir(url)
    return Mirror(RemoteFolder(url), local)


def _dask_worker_dir() -> Path | None:
    """The directory of the Dask worker running this code (removed with the worker), or None."""
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory)
    except (ImportError, ValueError, AttributeError):
        return None


def shard_mirror(url: str, staging: Path | None) -> Mirror:
    """Where a shard of a remote build runs: in a Dask worker, a scratch folder in the worker's directory;
    in the flow's process (thread runner), the flow's own copy."""
    remote = RemoteFolder(url)
    worker_dir = _dask_worker_dir()
    if worker_dir is None:
        return Mirror(remote, staging_dir(url, staging), shared=True)
    digest = hashlib.sha256(remote.url.encode("utf-8")).hexdigest()[:16]
    return Mirror(remote, worker_dir / "wikihow-tiir" / digest)


_WORKER_TOKEN = uuid.uuid4().hex[:16]  # names this process's request-cache snapshots


def run_remote_shard(stage: str, url: str, staging: Path | None, spec: Any,
                     run: Callable[[Path], dict[str, Any]], with_cache: bool) -> dict[str, Any]:
    """One shard of a build whose folder is at ``url``: fetch what it reads and its earlier state, run it
    in a local folder (``run(folder)``, which skips a finished shard), commit its files, marker last."""
    mirror = shard_mirror(url, staging)
    folder = layout.work_dir("", stage).as_posix()
    steps = [(folder, spec.name)]
    if stage == "queries":
        steps = mirror.remote_steps(layout.work_dir("", "generate").as_posix(), spec.name) + steps
        if not mirror.shared:
            mirror.pull(QUERY_INPUTS)
            if with_cache and not (mirror.local / CACHE).is_file():
                try:
                    mirror.remote.download(CACHE, mirror.local / CACHE)  # the build's answers so far
                except FileNotFoundError:
                    pass
    for f, n in steps:
        mirror.pull_step(f, n)
    stats = run(mirror.local)
    done = [(p.parent.relative_to(mirror.local).as_posix(), spec.name)
            for p in layout.generate_step_markers(mirror.local, spec.name)] if stage == "queries" else []
    for f, n in [*done, (folder, spec.name)]:  # the shard's own marker last
        mirror.push_step(f, n)
    if stage == "queries" and with_cache and not mirror.shared and (mirror.local / CACHE).is_file():
        mirror.remote.upload(sqlite_snapshot(mirror.local / CACHE), f"{CACHE_PARTS}/{_WORKER_TOKEN}.sqlite")
    return stats


# --------------------------------------------------------------------------- the request cache


def sqlite_snapshot(path: Path) -> bytes:
    """A consistent copy of a SQLite file (its WAL included) as bytes (SQLite's backup API)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "snapshot.sqlite"
        src = sqlite3.connect(path)
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return copy.read_bytes()


def merge_cache_parts(mirror: Mirror) -> int:
    """Merge the workers' request-cache snapshots into the build's cache (the flow's copy), then delete
    them; returns the answers added."""
    parts = sorted(r for r in mirror.remote.listing([CACHE_PARTS + "/"]) if r.endswith(".sqlite"))
    if not parts:
        return 0
    target = mirror.local / CACHE
    target.parent.mkdir(parents=True, exist_ok=True)
    from wikihow_tiir.llm.cache import RequestCache

    RequestCache(target).close()  # the table exists, in the cache's own format
    added = 0
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(target, timeout=30.0)
        try:
            for i, rel in enumerate(parts):
                local = Path(tmp) / f"part-{i}.sqlite"
                mirror.remote.download(rel, local)
                before = db.total_changes
                db.execute("ATTACH DATABASE ? AS part", (str(local),))
                try:
                    db.execute("INSERT OR IGNORE INTO responses (key, stage, model, response, sha256) "
                               "SELECT key, stage, model, response, sha256 FROM part.responses")
                    db.commit()
                except sqlite3.DatabaseError:
                    db.rollback()  # a damaged snapshot costs model calls later, never the build
                finally:
                    db.execute("DETACH DATABASE part")
                added += db.total_changes - before
        finally:
            db.close()
    mirror.remote.delete(parts)
    return added


# --------------------------------------------------------------------------- the flow's side of a remote build


class BuildSync:
    """The flow's local copy of a build folder at a URL: fetched first (a re-run resumes from what the
    bucket holds), each stage's shards fetched after they ran, the inputs of the query shards sent before
    them, and everything sent at the end (the files the build deleted are deleted there too)."""

    def __init__(self, url: str, staging: Path | None = None):
        self.mirror = Mirror(RemoteFolder(url), staging_dir(url, staging), shared=True)

    def start(self) -> int:
        return self.mirror.pull()

    def after_shards(self, stage: str, specs: list[Any]) -> None:
        names = {s.name for s in specs}
        if stage == "queries":
            generate = layout.work_dir("", "generate").as_posix()
            for rel in sorted(self.mirror.remote.listing([generate + "/"])):
                folder, _, file = rel.rpartition("/")
                if file.endswith(MARKER_SUFFIX) and file[: -len(MARKER_SUFFIX)] in names \
                        and folder.count("/") == generate.count("/") + 1:
                    self.mirror.pull_step(folder, file[: -len(MARKER_SUFFIX)])
            merge_cache_parts(self.mirror)
        for spec in specs:
            self.mirror.pull_step(layout.work_dir("", stage).as_posix(), spec.name)

    def before_queries(self) -> None:
        self.mirror.push(delete=False)  # the corpus, its context and identity, the pool's vectors

    def finish(self) -> int:
        return self.mirror.push(delete=True)
