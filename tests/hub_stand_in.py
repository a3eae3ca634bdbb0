"""A stand-in of the Hugging Face hub on loopback, for the first-run and download tests: huggingface-hub's
own client talks to it over plain HTTP (HF_ENDPOINT), so the real download code runs, retries, resumes
and fails as it would against the hub. The hub cannot be reached from the test machines.

It serves one model repo from a checkpoint folder with the answers the hub gives (as of 2025):
- GET  /api/models/{repo}[/revision/{rev}]   the repo's info (JSON: id, sha, siblings)
- GET  /api/models/{repo}/tree/{rev}          the file listing (oid, size; lfs {oid, size} for LFS files)
- HEAD/GET /{repo}/resolve/{rev}/{file}       the file, with X-Repo-Commit, ETag (the git blob id; for LFS
  files X-Linked-Etag and X-Linked-Size, the sha256 and size), Accept-Ranges and Range requests (206)
- errors as the hub words them: a status code with X-Error-Code / X-Error-Message headers.

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "5f1c0de5f1c0de5f1c0de5f1c0de5f1c0de5f1c0"
LFS_SUFFIXES = (".safetensors",)


class _File:
    def __init__(self, path: Path):
        self.data = path.read_bytes()
        self.git_oid = hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()
        self.lfs = path.name.endswith(LFS_SUFFIXES) or len(self.data) > 10_000_000  # the hub's LFS rule
        self.sha256 = hashlib.sha256(self.data).hexdigest() if self.lfs else None

    @property
    def xet_hash(self) -> str:  # not Xet's real chunk hash: nothing here reconstructs the file
        return hashlib.sha256(b"xet" + self.data).hexdigest()

    @property
    def etag(self) -> str:  # what huggingface-hub names the blob after
        return self.sha256 or self.git_oid


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away (killed, gave up) is normal
            super().handle_error(request, client_address)


class HubStandIn:
    def __init__(self, checkpoint: Path, repo_id: str = "oopere/Llama-FinSent-S"):
        self.repo_id = repo_id
        self.files = {p.name: _File(p) for p in sorted(checkpoint.iterdir())
                      if p.is_file() and not p.name.startswith(".")}
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
