"""The simulator's HTTP layer (h11): odd requests get an HTTP answer, never a crash."""

from __future__ import annotations

import socket

import httpx
import pytest


def raw(server, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("request_line", [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n",
                                          b"GET / HTTP/1.1 extra\r\nHost x\r\n\r\n"])
def test_malformed_request_gets_a_400_and_the_server_lives_on(simulator, request_line):
    """A broken request line is answered 400 and closed; the next client is served."""
    answer = raw(simulator, request_line)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert httpx.get(simulator.url + "/healthz").status_code == 200


def test_chunked_request_body_is_read(simulator):
    """A chunked upload (as some proxies re-send bodies) is parsed like a sized one."""
    def body():
        yield b'{"contents": [{"parts": [{"text": "a fox"}]}],'
        yield b' "generationConfig": {"imageConfig": {"imageSize": "2K"}}}'

    answer = httpx.post(simulator.url + "/v1beta/models/gemini-3-pro-image-preview:generateContent", content=body(),
                        headers={"x-goog-api-key": "k"}, timeout=10)
    assert answer.status_code == 200 and simulator.log[-1]["size"] == "2K"


def test_keep_alive_serves_several_requests_on_one_connection(simulator):
    """One pooled connection carries request after request."""
    with httpx.Client(limits=httpx.Limits(max_connections=1)) as client:
        codes = [client.get(simulator.url + "/healthz").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
