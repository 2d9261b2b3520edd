"""A loopback stand-in for the Hugging Face Hub's file-download protocol, as ``huggingface_hub`` 2.x speaks it.

What ``hf_hub_download`` does (huggingface_hub/file_download.py, ``get_hf_file_metadata`` and
``_hf_hub_download_to_cache_dir``): a HEAD on ``{endpoint}/{repo}/resolve/{revision}/{filename}``
(``/spaces/{repo}/...`` for Spaces, ``/datasets/{repo}/...`` for datasets) without following redirects to
other hosts; it needs ``X-Repo-Commit`` (the commit the revision points at), an ETag (``X-Linked-Etag`` is
preferred: for LFS files it is the content's SHA-256) and a size (``X-Linked-Size``, else Content-Length).
The Hub answers LFS files with a 302 whose ``Location`` is a CDN on another host; the client then GETs that
address, resuming with a ``Range`` header if the body breaks off. Errors carry ``X-Error-Code``:
``RepoNotFound`` (401), ``RevisionNotFound`` (404) and ``EntryNotFound`` (404, with ``X-Repo-Commit``).

Here the "Hub" and its "CDN" are two ``ThreadingHTTPServer`` on 127.0.0.1 (free ports, so the CDN is another
origin, as on the real Hub). Every request is recorded. A watchdog stops both servers after ``lifetime``
seconds whatever happens, so a test can never leave them running.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RESOLVE = re.compile(r"^/(?:(spaces|datasets)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_BLOB = re.compile(r"^/blobs/([0-9a-f]{64})$")


@dataclass
class HubFile:
    content: bytes
    name: str = "file"
    #: serve only this many bytes of the body (and refuse the resume): a broken-off transfer
    truncate_at: int | None = None
    #: serve the right length with one byte changed: a corrupted transfer
    corrupt: bool = False
    #: break off the first full-body GET after this many bytes, then serve ranges: a dropped connection
    drop_once_at: int | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class HubRepo:
    repo_type: str
    #: revision (branch or tag) -> commit hash; commit hashes resolve to themselves
    refs: dict[str, str] = field(default_factory=dict)
    #: commit -> filename -> file
    trees: dict[str, dict[str, HubFile]] = field(default_factory=dict)


class FakeHub:
    """The Hub's ``resolve`` endpoint and a CDN for the file bodies, on loopback.

    Use as a context manager; ``url`` is what ``HF_ENDPOINT`` must be; ``requests`` lists ``(server, method,
    path)`` of everything that reached either server.
    """

    def __init__(self, lifetime: float = 120.0) -> None:
        self.repos: dict[tuple[str, str], HubRepo] = {}
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._lifetime = lifetime
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._watchdog: threading.Timer | None = None

    # ---- content

    def add_file(
        self, repo: str, filename: str, content: bytes, repo_type: str = "model", revision: str = "main"
    ) -> HubFile:
        entry = self.repos.setdefault((repo_type, repo), HubRepo(repo_type))
        commit = entry.refs.get(revision) or hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
        entry.refs[revision] = commit
        hub_file = HubFile(content, filename.rsplit("/", 1)[-1])
        entry.trees.setdefault(commit, {})[filename] = hub_file
        return hub_file

    def blob_sha(self, filename: str) -> str:
        for repo in self.repos.values():
            for tree in repo.trees.values():
                if filename in tree:
                    return tree[filename].sha256
        raise KeyError(filename)

    def commit_of(self, repo: str, revision: str = "main", repo_type: str = "model") -> str:
        return self.repos[(repo_type, repo)].refs[revision]

    def blob(self, sha: str) -> HubFile | None:
        for repo in self.repos.values():
            for tree in repo.trees.values():
                for hub_file in tree.values():
                    if hub_file.sha256 == sha:
                        return hub_file
        return None

    # ---- servers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def requests_to(self, server: str) -> list[tuple[str, str]]:
        with self._lock:
            return [(method, path) for name, method, path in self.requests if name == server]

    def __enter__(self) -> FakeHub:
        for name in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, name))
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self._watchdog = threading.Timer(self._lifetime, self.stop)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    # ---- protocol

    def resolve(self, handler: BaseHTTPRequestHandler, send_body: bool) -> None:
        match = _RESOLVE.match(handler.path.split("?", 1)[0])
        if match is None:
            return _error(handler, 404, None, "not a resolve URL")
        kind, repo_id, revision, filename = match.groups()
        repo_type = {"spaces": "space", "datasets": "dataset"}.get(kind or "", "model")
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            return _error(handler, 401, "RepoNotFound", "Repository not found")
        commit = repo.refs.get(revision) or (revision if revision in repo.trees else None)
        if commit is None:
            return _error(handler, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        hub_file = repo.trees[commit].get(filename)
        if hub_file is None:
            return _error(handler, 404, "EntryNotFound", f"{filename} does not exist", commit=commit)
        handler.send_response(302)
        handler.send_header("X-Repo-Commit", commit)
        handler.send_header("X-Linked-Etag", f'"{hub_file.sha256}"')
        handler.send_header("X-Linked-Size", str(len(hub_file.content)))
        handler.send_header("ETag", f'"{hashlib.sha1(hub_file.content).hexdigest()}"')
        handler.send_header("Location", f"{self.cdn_url}/blobs/{hub_file.sha256}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def serve_blob(self, handler: BaseHTTPRequestHandler, send_body: bool) -> None:
        match = _BLOB.match(handler.path.split("?", 1)[0])
        hub_file = self.blob(match.group(1)) if match else None
        if hub_file is None:
            return _error(handler, 404, None, "no such blob")
        body = hub_file.content
        if hub_file.corrupt:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        start = 0
        ranged = handler.headers.get("Range")
        if ranged:
            if hub_file.truncate_at is not None:  # the stored object is short: the rest cannot be served
                return _error(handler, 416, None, "Range Not Satisfiable")
            start = int(re.match(r"bytes=(\d+)-", ranged).group(1))
        handler.send_response(206 if ranged else 200)
        handler.send_header("Content-Length", str(len(body) - start))
        handler.send_header("ETag", f'"{hub_file.sha256}"')
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Disposition", f'attachment; filename="{hub_file.name}";')
        handler.end_headers()
        if not send_body:
            return
        end = len(body) if hub_file.truncate_at is None else hub_file.truncate_at
        if hub_file.drop_once_at is not None and not ranged:
            end, hub_file.drop_once_at = hub_file.drop_once_at, None
        handler.wfile.write(body[start:end])
        handler.wfile.flush()
        if end < len(body):
            handler.close_connection = True


def _error(handler: BaseHTTPRequestHandler, status: int, code: str | None, message: str, commit: str | None = None) -> None:
    handler.send_response(status)
    if code:
        handler.send_header("X-Error-Code", code)
    handler.send_header("X-Error-Message", message)
    if commit:
        handler.send_header("X-Repo-Commit", commit)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def _handler(hub: FakeHub, name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, send_body: bool) -> None:
            with hub._lock:
                hub.requests.append((name, self.command, self.path))
            if name == "hub":
                hub.resolve(self, send_body)
            else:
                hub.serve_blob(self, send_body)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(send_body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(send_body=True)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler
