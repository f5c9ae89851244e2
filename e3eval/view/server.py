"""The `e3eval view` web server: a read-only, GET-only HTTP server on the standard library over a set of runs.

It owns the routes, the response headers and the request checks; it does not read runs (the payloads come from
`e3eval.view.payload`, built over a `Views`) and it does not render anything (the page is the static files in
`e3eval/view/assets`, which fetch the JSON routes). Safety comes from the design rather than from cleaning paths:
no part of a URL is ever joined onto a filesystem path. Assets are looked up by name in the fixed `ASSETS` dict and
read from package data; API parameters are run indices and (problem, sample) keys looked up in the data layer, which
raises `LookupError` for unknown ones (answered 404). A Host header other than the bound host, 127.0.0.1 or
localhost is refused (DNS rebinding), and every response carries a Content-Security-Policy that forbids inline
scripts and styles and any request off this origin, so untrusted text that slipped through would still not run.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from e3eval.errors import UserError

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# Every file the page may load, by the name in its URL; nothing else under assets/ (or anywhere) is ever served.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "pages.js": "text/javascript; charset=utf-8",
    "sample.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def asset_bytes(name: str) -> bytes:
    """The content of one asset named in `ASSETS` (package data, so an installed wheel serves the same files)."""
    if name not in ASSETS:
        raise LookupError(name)
    return resources.files("e3eval.view").joinpath("assets", name).read_bytes()


class ViewServer(ThreadingHTTPServer):
    """The HTTP server of one `e3eval view`: holds the payload builders and the names the Host header may carry."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, views: Any, host: str, port: int) -> None:
        if ":" in host:  # an IPv6 address (::1)
            self.address_family = socket.AF_INET6
        super().__init__((host, port), ViewHandler)
        self.views = views
        self.bound_host = host
        # The data layer keeps an index it refreshes on requests: one request at a time keeps that simple and costs
        # little, since one person reads one page at a time.
        self.lock = threading.Lock()
        self._preloading: threading.Thread | None = None

    def preload_after_first_page(self) -> None:
        """Start loading the runs' tokenizers once the first page is answered: loading one imports transformers
        (seconds of CPU), which would otherwise slow that first page down; a sample opened before it is done waits."""
        if self._preloading is None and hasattr(self.views, "preload"):
            self._preloading = self.views.preload()

    def preloaded(self) -> threading.Thread | None:
        return self._preloading

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = self.bound_host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def allowed_hosts(self) -> set[str]:
        """Host header values this server answers (compared lowercased: host names are case-insensitive)."""
        host = self.bound_host.lower()
        names = {"127.0.0.1", "localhost", host, f"[{host}]"}
        return {f"{name}:{self.port}" for name in names} | ({*names} if self.port == 80 else set())


def _route(path: str) -> tuple[str, list[str]] | None:
    """(route name, decoded parameters) for a URL path, or None: the path is split on "/" before any decoding, so
    an encoded "%2F" or ".." stays inside one parameter and is looked up as a key, never walked as a path."""
    parts = [unquote(part) for part in path.split("/")]
    if parts[0] != "":
        return None
    parts = parts[1:]
    if parts == [""]:
        return "index", []
    if parts == ["favicon.ico"]:
        return "asset", ["favicon.svg"]
    if len(parts) == 2 and parts[0] == "assets":
        return "asset", [parts[1]]
    if len(parts) == 2 and parts[:2] == ["api", "runs"]:
        return "runs", []
    if len(parts) == 4 and parts[:2] == ["api", "runs"] and parts[3] == "problems":
        return "problems", [parts[2]]
    if len(parts) == 6 and parts[:2] == ["api", "runs"] and parts[3] == "samples":
        return "sample", [parts[2], parts[4], parts[5]]
    if len(parts) == 3 and parts[:2] == ["api", "compare"]:
        return "compare", [parts[2]]
    return None


def _index(text: str) -> int:
    """A run or sample index from the URL: plain decimal digits only (no sign, no spaces); anything else is 404."""
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise LookupError(f"not an index: {text!r}")
    return int(text)


class ViewHandler(BaseHTTPRequestHandler):
    """One request: GET only, Host checked, routed to an asset or a payload; every answer carries `HEADERS`."""

    server: ViewServer
    server_version = "e3eval-view"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the URL the command printed; errors are reported as they happen

    def _send(self, status: int, body: bytes, content_type: str, head: bool = False) -> None:
        self.send_response(status)
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload: dict, head: bool = False) -> None:
        body = json.dumps(payload, allow_nan=False, ensure_ascii=True).encode()
        self._send(status, body, "application/json; charset=utf-8", head)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a bad request line, an unknown method, a URL too long) as JSON with the safety
        headers, like every other answer; the connection is closed after them."""
        self.close_connection = True
        try:
            self.send_response(code, message)
            for name, value in HEADERS.items():
                self.send_header(name, value)
            body = json.dumps({"error": message or "bad request"}).encode()
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass  # the client has gone

    def _refuse_method(self) -> None:
        # The request's body is never read, so the connection is closed rather than read on as a next request.
        self.close_connection = True
        self.send_response(405)
        self.send_header("Connection", "close")
        self.send_header("Allow", "GET, HEAD")
        for name, value in HEADERS.items():
            self.send_header(name, value)
        body = b'{"error": "read-only: GET only"}'
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        if self.headers.get("Host", "").lower() not in self.server.allowed_hosts():
            self._json(421, {"error": "unexpected Host header"}, head)
            return
        url = urlsplit(self.path)
        route = _route(url.path)
        if route is None:
            self._json(404, {"error": "not found"}, head)
            return
        name, params = route
        try:
            if name == "index":
                self._send(200, asset_bytes("index.html"), ASSETS["index.html"], head)
            elif name == "asset":
                self._send(200, asset_bytes(params[0]), ASSETS[params[0]], head)
            else:
                self._json(200, self._payload(name, params, parse_qs(url.query)), head)
                if name in ("runs", "problems"):
                    self.server.preload_after_first_page()
        except LookupError as exc:
            self._json(404, {"error": f"not found: {exc}"}, head)
        except UserError as exc:
            # A run being rescored or otherwise unreadable for now: the page says so and a reload retries.
            self._json(503, {"error": str(exc)}, head)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self._json(500, {"error": "internal error (see the terminal running e3eval view)"}, head)

    def _payload(self, name: str, params: list[str], query: dict[str, list[str]]) -> dict:
        from e3eval.view import payload

        builders: dict[str, Callable[[], dict]] = {
            "runs": lambda: payload.runs_payload(self.server.views),
            "problems": lambda: payload.problems_payload(self.server.views, _index(params[0])),
            "sample": lambda: payload.sample_payload(
                self.server.views, _index(params[0]), params[1], _index(params[2]), (query.get("preset") or [None])[0]
            ),
            "compare": lambda: payload.compare_payload(self.server.views, params[0]),
        }
        with self.server.lock:
            return builders[name]()


def make_server(views: Any, host: str = "127.0.0.1", port: int = 0) -> ViewServer:
    """A server bound to (`host`, `port`) over `views` (port 0: a free one; read it from `.port` / `.url`)."""
    if host in ("", "0.0.0.0", "::"):
        raise UserError(
            f"--host {host or repr(host)}: give one address of this machine (e.g. its LAN address), not a wildcard: "
            "the server answers only requests addressed to the host it was given, 127.0.0.1 or localhost"
        )
    try:
        return ViewServer(views, host, port)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
