"""bench.load.Client, the load generator's plain-socket HTTP/1.1 client, against a real
HTTP server (the standard library's, threaded): bodies by length and chunked, keep-alive
reuse, `Connection: close`, and a reconnect when the server dropped an idle connection."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.load import Client


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: set = set()

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        Handler.connections.add(self.client_address)
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            self._send(b"bye", close=True)
        else:
            self._send(self.path.encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._send(b"%d:%s" % (len(body), body[:5]), status=201)

    def _send(self, body: bytes, status: int = 200, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Thing", "value")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.connections = set()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    httpd.shutdown()
    httpd.server_close()


def test_lengths_chunks_keep_alive_and_close(server):
    url, _ = server
    client = Client(url, timeout=10)
    status, headers, body = client.request("GET", "/first")
    assert (status, body, headers["x-thing"]) == (200, b"/first", "value")
    status, headers, body = client.request("GET", "/chunked")
    assert (status, body) == (200, b"hello chunked world")
    status, headers, body = client.request("POST", "/upload", b"x" * 200_000, {"Content-Type": "image/jpeg"})
    assert (status, body) == (201, b"200000:xxxxx")
    assert len(Handler.connections) == 1   # all of it on one keep-alive connection
    status, headers, body = client.request("GET", "/close")
    assert (status, body, headers["connection"].lower()) == (200, b"bye", "close")
    assert client.sock is None
    assert client.request("GET", "/again")[2] == b"/again"   # a new connection
    assert len(Handler.connections) == 2


def test_a_connection_the_server_dropped_is_replaced(server):
    url, _ = server
    client = Client(url, timeout=10)
    assert client.request("GET", "/one")[2] == b"/one"
    client.sock.shutdown(2)   # as a server's keep-alive timeout would leave it: unusable
    assert client.request("GET", "/two")[2] == b"/two"
    assert len(Handler.connections) == 2
