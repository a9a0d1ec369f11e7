"""The stand-in internet: a threaded server on 127.0.0.1 that answers as a forward proxy (plain
`GET http://…`, and `CONNECT host:443` tunnels it terminates with a certificate of a test CA) and
as a Hugging Face mirror (`/<repo>/resolve/<revision>/<file>`, for HF_ENDPOINT). It counts every
request, and can cut a file's download halfway or serve other bytes under its name."""

from __future__ import annotations

import hashlib
import re
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HUB_FILE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/[^/]+/(?P<file>.+)")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_url(repo: str, filename: str) -> str:
    """The key a Hugging Face file is served under (any revision)."""
    return f"hub:{repo}/{filename}"


class StandIn:
    def __init__(self, files: dict[str, Path], folder: Path):
        import trustme

        self.folder = folder
        self.files = files  # URL (or hub_url) → the file served
        self.requests: list[tuple[str, str]] = []  # (method, URL) in arrival order
        self.cut: set[str] = set()  # URLs whose body stops halfway, the connection closed
        self.swapped: dict[str, Path] = {}  # URLs served with another file's bytes
        ca = trustme.CA()
        self.ca_file = folder / "stand-in-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        hosts = sorted({url.split("/")[2] for url in files if url.startswith("https://")})
        ca.issue_cert(*hosts).configure_cert(self.tls)
        self._etags: dict[Path, str] = {}
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.stand_in = self
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """What a user behind a proxy with its own CA, using a Hugging Face mirror, would set."""
        return {
            "http_proxy": self.url,
            "https_proxy": self.url,
            "HTTP_PROXY": self.url,
            "HTTPS_PROXY": self.url,
            "no_proxy": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
            "HF_ENDPOINT": self.url,
            "SSL_CERT_FILE": str(self.ca_file),
            "REQUESTS_CA_BUNDLE": str(self.ca_file),
        }

    def etag(self, path: Path) -> str:
        if path not in self._etags:
            self._etags[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._etags[path]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that hangs up on a cut download is the point, not an error worth printing."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    tunnel_host: str | None = None

    def log_message(self, *args) -> None:
        pass

    def do_CONNECT(self) -> None:
        self.send_response(200, "Connection established")
        self.end_headers()
        try:
            tunnel = self.server.stand_in.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.close_connection = True
            return
        self.connection = tunnel
        self.rfile = tunnel.makefile("rb", self.rbufsize)
        self.wfile = socketserver._SocketWriter(tunnel)
        self.tunnel_host = self.path.split(":")[0]
        self.close_connection = False  # urllib asks CONNECT in HTTP/1.0: the tunnel's requests follow

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _url(self) -> str:
        if self.path.startswith(("http://", "https://")):
            return self.path
        if self.tunnel_host:
            return f"https://{self.tunnel_host}{self.path}"
        hub = HUB_FILE.fullmatch(self.path.split("?")[0])
        return hub_url(hub["repo"], hub["file"]) if hub else f"local:{self.path}"

    def _serve(self, body: bool) -> None:
        stand_in: StandIn = self.server.stand_in
        url = self._url()
        stand_in.requests.append((self.command, url))
        path = stand_in.swapped.get(url) or stand_in.files.get(url)
        if path is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = path.stat().st_size
        start = int(m[1]) if (m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))) else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        if url.startswith("hub:"):
            self.send_header("ETag", f'"{stand_in.etag(stand_in.files[url])}"')
            self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        if not body:
            return
        stop = size // 2 if url in stand_in.cut else size  # a cut file never gets past its middle
        with open(path, "rb") as handle:
            handle.seek(start)
            while handle.tell() < stop:
                self.wfile.write(handle.read(min(1 << 20, stop - handle.tell())))
        if url in stand_in.cut:  # shutdown, not close: rfile and wfile still hold the socket open
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
