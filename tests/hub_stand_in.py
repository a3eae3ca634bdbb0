"""A stand-in of the Hugging Face hub on loopback, for the first-run and download tests: huggingface-hub's
own client talks to it over plain HTTP (HF_ENDPOINT), so the real download code runs, retries, resumes
and fails as it would against the hub. The hub cannot be reached from the test machines.

It serves one model repo from a checkpoint folder, and any dataset repos a test adds, with the answers
the hub gives (as of 2025):
- GET  /api/models/{repo}[/revision/{rev}]   the repo's info (JSON: id, sha, siblings)
- GET  /api/models/{repo}/tree/{rev}          the file listing (oid, size; lfs {oid, size} for LFS files)
- HEAD/GET /{repo}/resolve/{rev}/{file}       the file, with X-Repo-Commit, ETag (the git blob id; for LFS
  files X-Linked-Etag and X-Linked-Size, the sha256 and size), Accept-Ranges and Range requests (206)
- errors as the hub words them: a status code with X-Error-Code / X-Error-Message headers.

Dataset repos (`add_dataset(repo_id, {path_in_repo: bytes or Path}, revision="main")`, any number of
revisions each, such as the hub's Parquet conversion `refs/convert/parquet`; each revision is a commit of
its own, named after its files, so changed files are a new commit):
- GET  /api/datasets/{repo}[/revision/{rev}]  the repo's info at that revision (huggingface-hub sends the
  revision URL-encoded: refs%2Fconvert%2Fparquet)
- GET  /api/datasets/{repo}/tree/{rev}[/{folder}][?recursive=true]  the listing, with folders when not recursive
- HEAD/GET /datasets/{repo}/resolve/{rev}/{file}  the file, with the same headers as a model's
- an unknown revision is 404 RevisionNotFound, an unknown file 404 EntryNotFound, an unknown repo
  401 RepoNotFound (what the hub answers a client without a token)

Faults the tests ask for (`HubStandIn` attributes, changed while it runs):
- `answer`: a function of (method, path, headers) returning (status, headers) to answer instead, or None
- `cut`: file name -> bytes of the body sent before the connection is closed (`cut_times` how often)
- `stall`: file name -> bytes sent before the answer stops until the stand-in closes (a download to kill)
- `xet_cas`: file names -> stored in Xet, as the hub stores large files now: the listing and the file's
  answers carry its Xet hash, and the read token names `xet_cas_url` as the storage to fetch it from
  (hf_xet's own client does; the stand-in serves no Xet storage, so point it where nothing listens)

Plain standard library: a ThreadingHTTPServer bound to 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

COMMIT = "5f1c0de5f1c0de5f1c0de5f1c0de5f1c0de5f1c0"
LFS_SUFFIXES = (".safetensors", ".parquet")


class _File:
    def __init__(self, path: Path | str, data: bytes | None = None):
        self.data = Path(path).read_bytes() if data is None else data
        self.git_oid = hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()
        name = Path(path).name
        # The hub's LFS rule (.gitattributes of a new repo: weights, Parquet files; anything over 10 MB)
        self.lfs = name.endswith(LFS_SUFFIXES) or len(self.data) > 10_000_000
        self.sha256 = hashlib.sha256(self.data).hexdigest() if self.lfs else None

    @property
    def xet_hash(self) -> str:  # not Xet's real chunk hash: nothing here reconstructs the file
        return hashlib.sha256(b"xet" + self.data).hexdigest()

    @property
    def etag(self) -> str:  # what huggingface-hub names the blob after
        return self.sha256 or self.git_oid


@dataclass
class _DatasetRevision:
    commit: str
    files: dict[str, _File]  # path in repo -> file


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away (killed, gave up) is normal
            super().handle_error(request, client_address)


class HubStandIn:
    def __init__(self, checkpoint: Path | None = None, repo_id: str = "oopere/Llama-FinSent-S"):
        """`checkpoint`: the folder the model repo serves (None: no model repo, datasets only)."""
        self.repo_id = repo_id
        self.files = {p.name: _File(p) for p in sorted(checkpoint.iterdir())
                      if p.is_file() and not p.name.startswith(".")} if checkpoint is not None else {}
        self.datasets: dict[str, dict[str, _DatasetRevision]] = {}  # repo id -> revision name -> files
        self.answer = None
        self.cut: dict[str, int] = {}
        self.cut_times: int | None = None  # None: every time
        self.stall: dict[str, int] = {}
        self.xet_cas: set[str] = set()
        self.xet_cas_url = "http://127.0.0.1:9"
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def env(self, hf_home: Path, token: str = "") -> dict:
        """The environment a `finsent` subprocess needs to download from the stand-in."""
        return {"HF_ENDPOINT": self.url, "HF_HOME": str(hf_home), "HF_TOKEN": token, "HF_HUB_OFFLINE": "",
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost"}

    def add_dataset(self, repo_id: str, files: dict[str, bytes | Path], revision: str = "main") -> str:
        """Serve a dataset repo's files at `revision` (a branch such as "main" or a ref such as
        "refs/convert/parquet"), replacing what that revision held; returns the commit it resolves to."""
        stored = {path: _File(path, data if isinstance(data, bytes) else Path(data).read_bytes())
                  for path, data in sorted(files.items())}
        commit = hashlib.sha1(json.dumps([repo_id, revision, [(p, f.git_oid) for p, f in stored.items()]])
                              .encode()).hexdigest()
        with self._lock:
            self.datasets.setdefault(repo_id, {})[revision] = _DatasetRevision(commit, stored)
        return commit

    def dataset_revision(self, repo_id: str, revision: str) -> _DatasetRevision | None:
        """A dataset's revision by name or by commit hash; None when there is none."""
        revisions = self.datasets.get(repo_id, {})
        if revision in revisions:
            return revisions[revision]
        return next((r for r in revisions.values() if r.commit == revision), None)

    def dataset_gets(self, repo_id: str) -> list[str]:
        """The paths of the file GETs made of a dataset repo, in order."""
        prefix = f"/datasets/{repo_id}/resolve/"
        return [path for method, path, _ in self.requests if method == "GET" and path.startswith(prefix)]

    def file_gets(self, name: str) -> list[dict]:
        """The headers of each GET of a file, in order."""
        return [headers for method, path, headers in self.requests
                if method == "GET" and path.endswith(f"/resolve/{COMMIT}/{name}")]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- answers --------------------------------------------------------------------------------------
    def repo_info(self) -> dict:
        return {"_id": "0" * 24, "id": self.repo_id, "modelId": self.repo_id, "author": self.repo_id.split("/")[0],
                "sha": COMMIT, "private": False, "gated": False, "disabled": False, "downloads": 0, "likes": 0,
                "tags": [], "library_name": "transformers", "lastModified": "2025-01-01T00:00:00.000Z",
                "createdAt": "2025-01-01T00:00:00.000Z", "siblings": [{"rfilename": n} for n in self.files]}

    def tree(self) -> list[dict]:
        entries = []
        for name, f in self.files.items():
            entry = {"type": "file", "oid": f.git_oid, "size": len(f.data), "path": name}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
            if name in self.xet_cas:
                entry["xetHash"] = f.xet_hash
            entries.append(entry)
        return entries

    def dataset_info(self, repo_id: str, revision: _DatasetRevision) -> dict:
        return {"_id": "1" * 24, "id": repo_id, "author": repo_id.split("/")[0], "sha": revision.commit,
                "private": False, "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                "lastModified": "2025-01-01T00:00:00.000Z", "createdAt": "2025-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": n} for n in revision.files]}

    @staticmethod
    def dataset_tree(revision: _DatasetRevision, folder: str, recursive: bool) -> list[dict]:
        """The hub's tree listing of `folder`: every file below it when recursive, else its files and
        sub-folders."""
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        entries, folders = [], {}
        for path, f in revision.files.items():
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            if "/" in rest and not recursive:
                sub = prefix + rest.split("/", 1)[0]
                folders.setdefault(sub, {"type": "directory", "oid": hashlib.sha1(sub.encode()).hexdigest(),
                                         "size": 0, "path": sub})
                continue
            entry = {"type": "file", "oid": f.git_oid, "size": len(f.data), "path": path}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
            entries.append(entry)
        return list(folders.values()) + entries

    def take_cut(self, name: str) -> int | None:
        with self._lock:
            if name not in self.cut:
                return None
            if self.cut_times is not None:
                if self.cut_times <= 0:
                    return None
                self.cut_times -= 1
            return self.cut[name]


def _handler_for(hub: HubStandIn):
    repo = re.escape(hub.repo_id)
    api_info = re.compile(rf"^/api/models/{repo}(?:/revision/[^/]+)?$")
    api_tree = re.compile(rf"^/api/models/{repo}/tree/[^/]+(?:/.*)?$")
    resolve = re.compile(rf"^/{repo}/resolve/([^/]+)/(.+)$")
    xet_token = re.compile(rf"^/api/models/{repo}/xet-read-token/[^/]+$")
    # Dataset routes: the repo id is two path segments; a revision is one (URL-encoded when it holds "/").
    dataset_info = re.compile(r"^/api/datasets/([^/]+/[^/]+)(?:/revision/([^/]+))?$")
    dataset_tree = re.compile(r"^/api/datasets/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$")
    dataset_file = re.compile(r"^/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_HEAD(self):
            self._serve(body=False)

        def do_GET(self):
            self._serve(body=True)

        def _serve(self, body: bool):
            path = self.path.split("?", 1)[0]
            hub.requests.append((self.command, path, {k.lower(): v for k, v in self.headers.items()}))
            forced = hub.answer(self.command, path, self.headers) if hub.answer else None
            if forced is not None:
                status, headers = forced
                return self._reply(status, headers, b"")
            if path.startswith(("/api/datasets/", "/datasets/")):
                return self._dataset(path, self.path.split("?", 1)[1] if "?" in self.path else "", body)
            if api_info.match(path):
                return self._json(hub.repo_info())
            if api_tree.match(path):
                return self._json(hub.tree())
            if xet_token.match(path):
                return self._reply(200, {"X-Xet-Cas-Url": hub.xet_cas_url, "X-Xet-Access-Token": "xet-stand-in",
                                         "X-Xet-Token-Expiration": "4102444800"}, b"")
            match = resolve.match(path)
            if match and match.group(2) in hub.files:
                return self._file(match.group(2), body)
            if path.startswith(f"/api/models/") or path.startswith("/api/"):
                return self._reply(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                                   b'{"error":"Repository not found"}')
            if match:
                return self._reply(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT,
                                         "X-Error-Message": "Entry not found"}, b'{"error":"Entry not found"}')
            self._reply(404, {}, b"Not Found")

        def _dataset(self, path: str, query: str, body: bool):
            """A dataset repo's info, listing or file; the hub's errors for what is not there."""
            for pattern, kind in ((dataset_info, "info"), (dataset_tree, "tree"), (dataset_file, "file")):
                match = pattern.match(path)
                if match:
                    break
            else:
                return self._reply(404, {}, b"Not Found")
            repo_id = match.group(1)
            if repo_id not in hub.datasets:
                return self._reply(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                                   b'{"error":"Repository not found"}')
            name = unquote(match.group(2) or "main")
            revision = hub.dataset_revision(repo_id, name)
            if revision is None:
                message = f"Invalid rev id: {name}"
                return self._reply(404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": message},
                                   json.dumps({"error": message}).encode())
            if kind == "info":
                return self._json(hub.dataset_info(repo_id, revision))
            if kind == "tree":
                recursive = parse_qs(query).get("recursive", ["false"])[0].lower() in ("1", "true")
                return self._json(hub.dataset_tree(revision, unquote(match.group(3) or ""), recursive))
            file_path = unquote(match.group(3))
            if file_path not in revision.files:
                return self._reply(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": revision.commit,
                                         "X-Error-Message": "Entry not found"}, b'{"error":"Entry not found"}')
            return self._send_file(revision.files[file_path], revision.commit, body)

        def _json(self, data):
            self._reply(200, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(data).encode())

        def _reply(self, status: int, headers: dict, data: bytes):
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _send_file(self, f: _File, commit: str, body: bool):
            """A dataset file: the model's answer without its faults (cut, stall, Xet)."""
            data, status, headers = f.data, 200, {"X-Repo-Commit": commit, "Accept-Ranges": "bytes",
                                                 "Content-Type": "application/octet-stream",
                                                 "ETag": f'"{f.git_oid}"'}
            if f.lfs:
                headers.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(len(f.data))})
            wanted = re.match(r"^bytes=(\d+)-$", self.headers.get("Range", ""))
            if wanted and body:
                start = int(wanted.group(1))
                status, data = 206, f.data[start:]
                headers["Content-Range"] = f"bytes {start}-{len(f.data) - 1}/{len(f.data)}"
            self._reply(status, headers, data)

        def _file(self, name: str, body: bool):
            f = hub.files[name]
            data, status, headers = f.data, 200, {"X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes",
                                                 "Content-Type": "application/octet-stream",
                                                 "ETag": f'"{f.git_oid}"'}
            if f.lfs:
                headers.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(len(f.data))})
            if name in hub.xet_cas:
                headers.update({"X-Xet-Hash": f.xet_hash, "X-Xet-Refresh-Route":
                                f"{hub.url}/api/models/{hub.repo_id}/xet-read-token/{COMMIT}"})
            wanted = re.match(r"^bytes=(\d+)-$", self.headers.get("Range", ""))
            if wanted and body:
                start = int(wanted.group(1))
                status, data = 206, f.data[start:]
                headers["Content-Range"] = f"bytes {start}-{len(f.data) - 1}/{len(f.data)}"
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not body:
                return
            stall = hub.stall.get(name)
            cut = hub.take_cut(name)
            if stall is not None:
                self.wfile.write(data[:stall])
                self.wfile.flush()
                hub._closing.wait()
                self.close_connection = True
            elif cut is not None:
                self.wfile.write(data[:cut])
                self.wfile.flush()
                self.close_connection = True  # the peer closes before the promised Content-Length
            else:
                self.wfile.write(data)

    return Handler
