"""A small HTTP/1.1 server on asyncio that plays the image services, failures included.

asyncio rather than http.server because a simulated hang must cost nothing while it waits:
hundreds of idle requests are the normal load of a 4K client.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, replace
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import h11

from .. import facts, sizes
from . import edits, images, model, signatures, wire
from .batch import BatchSim

MAX_REQUEST_BYTES = facts.MAX_INLINE_REQUEST_BYTES  # docs/facts.md "Request limits"
MAX_HEAD_BYTES = 64 * 1024  # request line and headers
DRIP_INTERVAL_S = 5.0  # a byte every 5 simulated seconds: no read timeout ever fires
DRIP_TOTAL_S = 1800.0  # then the real body, after half an hour of simulated time
SIM_HEADER = ("x-nbp-simulated", "true")


@dataclass
class SimConfig:
    profile: str = "typical"
    time_scale: float = 1.0
    seed: int = 0
    script: str | list[str] | tuple[str, ...] | None = None
    api_key: str | None = None  # None: any non-empty key is accepted
    realistic: bool = False
    state_dir: str | None = None  # where simulated batches and files persist (sim/batch.py)
    edits: bool = True  # serve /v1/images/edits; False plays a gateway without that route


class _Request:
    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes):
        self.method, self.headers, self.body = method, headers, body
        split = urlsplit(target)
        self.path, self.query = split.path, parse_qs(split.query)


class SimApp:
    """Routing and behaviour; runs on one asyncio loop."""

    def __init__(self, config: SimConfig):
        if config.profile not in model.PROFILES:
            raise ValueError(f"unknown profile {config.profile!r}: use one of "
                             f"{', '.join(model.PROFILES)}")
        self.config = config
        self.profile = model.PROFILES[config.profile]
        self.script = collections.deque(model.parse_script(config.script))
        self.log: list[dict] = []
        self.base_url = ""
        self._seen: collections.Counter[str] = collections.Counter()
        self._files: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._writers: set[asyncio.StreamWriter] = set()
        self._lock = threading.Lock()  # script and log are touched from the caller's thread
        self.in_flight = 0  # generation requests being answered now
        self.max_in_flight = 0
        self.started = time.monotonic()  # a profile's spells (waves, outages) count from here
        self.batches = BatchSim(self, config.state_dir)
        self.signing_key = signatures.SECRET

    def sign(self, part: dict) -> str:
        """A thought signature for one part of an answer (sim/signatures.py)."""
        return signatures.sign(self.signing_key, part)

    # ----- connection handling -------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        peer = _Peer(reader, writer)
        try:
            while True:
                request = await self._read_request(peer)
                if request is None:
                    break
                keep = await self._respond(request, peer)
                if not keep or not peer.next_cycle():
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # server shutdown: the connection just ends
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read_request(self, peer: _Peer) -> _Request | None:
        """The next request, parsed by h11; None when the client is gone or sent garbage
        (then it got a 400 first)."""
        head: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                event = peer.conn.next_event()
                if event is h11.NEED_DATA:
                    peer.conn.receive_data(await peer.reader.read(2**16))
                elif isinstance(event, h11.Request):
                    head = event
                    length = int(dict(event.headers).get(b"content-length", b"0") or 0)
                    if length > MAX_REQUEST_BYTES:
                        await self._refuse_too_large(peer)
                        return None
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_REQUEST_BYTES:  # chunked past the cap
                        await self._refuse_too_large(peer)
                        return None
                elif isinstance(event, h11.EndOfMessage) and head is not None:
                    headers = {k.decode("latin-1"): v.decode("latin-1")
                               for k, v in head.headers}
                    return _Request(head.method.decode("ascii"), head.target.decode("latin-1"),
                                    headers, bytes(body))
                else:  # ConnectionClosed, PAUSED
                    return None
        except h11.RemoteProtocolError as exc:
            # A malformed request: answer 400 as a front end would, then hang up.
            data = json.dumps(wire.gemini_error(400, "INVALID_ARGUMENT",
                                                f"Malformed HTTP request: {exc}")).encode()
            peer.writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                              b"Content-Length: " + str(len(data)).encode()
                              + b"\r\nConnection: close\r\n\r\n" + data)
            await peer.writer.drain()
            return None

    async def _refuse_too_large(self, peer: _Peer) -> None:
        await self._send(peer, 400, wire.gemini_error(
            400, "INVALID_ARGUMENT",
            f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."), close=True)

    async def _send(self, peer: _Peer, status: int, body: bytes | dict, *,
                    headers: dict | None = None,
                    content_type: str = "application/json; charset=UTF-8",
                    close: bool = False) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        peer.start(status, len(data), headers, content_type, close)
        peer.send(data, end=True)
        await peer.writer.drain()

    # ----- routing -------------------------------------------------------------------
    async def _respond(self, req: _Request, peer: _Peer) -> bool:
        path = req.path
        handled = await self.batches.route(req, peer)
        if handled is not None:
            return handled
        if req.method == "GET" and path.startswith("/files/"):
            data = self._files.get(path.rsplit("/", 1)[-1].removesuffix(".png"))
            if data is None:
                await self._send(peer, 404, wire.openai_error("No such file.", "not_found"))
            else:
                await self._send(peer, 200, data, content_type="image/png")
            return True
        if req.method == "GET" and path in ("/", "/healthz"):
            await self._send(peer, 200, {"simulator": "nbp_jupyter.sim",
                                           "profile": self.profile.name})
            return True
        if req.method == "POST" and path.startswith(("/v1beta/models/", "/v1/models/")) \
                and path.endswith((":generateContent", ":streamGenerateContent")):
            model_name, method = path.split("/models/", 1)[1].rsplit(":", 1)
            # streamGenerateContent: server-sent events with ?alt=sse, else a JSON array
            stream = None if method == "generateContent" else (
                "sse" if req.query.get("alt") == ["sse"] else "json")
            return await self._generate(req, peer, "gemini", model_name, stream)
        if req.method == "POST" and path == "/v1/images/generations":
            return await self._generate(req, peer, "openai", "")
        if req.method == "POST" and path == "/v1/images/edits" and self.config.edits:
            return await self._generate(req, peer, "openai_edits", "")
        if req.method == "POST" and path == "/v1/chat/completions":
            return await self._generate(req, peer, "chat", "")
        await self._send(peer, 404, {"error": {"code": 404, "message": f"{req.method} "
                                                 f"{path} is not served here", "status": "NOT_FOUND"}})
        return True

    def _auth_error(self, req: _Request, provider: str) -> tuple[int, dict] | None:
        """The real services' answer to a missing or wrong key, or None when it is fine."""
        if provider == "gemini":
            key = req.headers.get("x-goog-api-key") or (req.query.get("key") or [""])[0]
            if not key:
                return 403, wire.gemini_error(
                    403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers "
                    "(callers without established identity). Please use API Key or other form "
                    "of API consumer identity to call this API.")
            if self.config.api_key is not None and key != self.config.api_key:
                return 400, wire.gemini_error(
                    400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                    [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                      "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                      "metadata": {"service": "generativelanguage.googleapis.com"}}])
            return None
        auth = req.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key:
            return 401, wire.openai_error(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error")
        if self.config.api_key is not None and key != self.config.api_key:
            return 401, wire.openai_error("Incorrect API key provided.",
                                          "invalid_request_error", "invalid_api_key")
        return None

    def _next_outcome(self, sreq: wire.SimRequest) -> tuple[model.Outcome, int]:
        """The outcome for this request and how many times its identity was seen."""
        identity = f"{sreq.provider}|{sreq.model}|{sreq.resolution}|{sreq.aspect}|{sreq.prompt}"
        with self._lock:
            self._seen[identity] += 1
            nth = self._seen[identity]
            item = self.script.popleft() if self.script else None
        digest = hashlib.sha256(f"{self.config.seed}|{identity}|{nth}".encode()).digest()
        rng = random.Random(digest)
        if item is not None:
            return model.scripted(item[0], item[1], sreq.resolution, rng, self.profile), nth
        since = (time.monotonic() - self.started) / self.config.time_scale
        return model.draw(self.profile, sreq.resolution, rng, since), nth

    def _parse(self, req: _Request, provider: str, model_name: str) -> wire.SimRequest:
        """The request as the real service reads it; raises WireError or JSONDecodeError."""
        if provider == "openai_edits":  # a multipart form, not JSON
            return edits.parse(req.headers.get("content-type", ""), req.body)
        body = json.loads(req.body or b"null")
        if not isinstance(body, dict):
            raise wire.WireError(400, wire.gemini_error(
                400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
        if provider == "gemini":  # earlier turns must carry what this server signed
            version = req.path.split("/", 2)[1]
            wire.check_gemini_model(model_name, version, req.path.rsplit(":", 1)[1])
            sreq = wire.parse_gemini(model_name, body)
            signatures.check(body.get("contents") or [], self.signing_key)
            return sreq
        return wire.parse_chat(body) if provider == "chat" else wire.parse_openai(body)

    async def _generate(self, req: _Request, peer: _Peer, provider: str, model_name: str,
                        stream: str | None = None) -> bool:
        entry = {"path": req.path, "provider": provider, "model": model_name, "size": None,
                 "aspect": None, "outcome": None, "status": None, "time": time.time(),
                 "stream": stream, "user_agent": req.headers.get("user-agent"),
                 "server_timeout": req.headers.get("x-server-timeout")}
        self.log.append(entry)
        denied = self._auth_error(req, provider)
        if denied:
            entry.update(outcome="auth", status=denied[0])
            await self._send(peer, denied[0], denied[1])
            return True
        try:
            sreq = self._parse(req, provider, model_name)
            sreq = replace(sreq, server_timeout_s=_whole_seconds(
                req.headers.get("x-server-timeout")))
        except json.JSONDecodeError:
            sreq = None
            error = wire.WireError(400, wire.gemini_error(400, "INVALID_ARGUMENT",
                                                          "Invalid JSON payload received."))
        except wire.WireError as exc:
            sreq, error = None, exc
        if sreq is None:
            entry.update(outcome="bad_request", status=error.status)
            await self._send(peer, error.status, error.body)
            return True
        outcome, nth = self._next_outcome(sreq)
        entry.update(model=sreq.model, size=sreq.resolution, aspect=sreq.aspect,
                     outcome=outcome.label(), prompt=sreq.prompt[:60], turn=sreq.turn,
                     references=sreq.references)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await _Behaviour(self, sreq, outcome, nth, entry, peer, stream).play()
        finally:
            self.in_flight -= 1


def _whole_seconds(value: str | None) -> float | None:
    """X-Server-Timeout's whole seconds, or None when absent or not a positive number."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds and seconds > 0 else None


class _Behaviour:
    """Plays one outcome on the wire: waits, then answers, fails, hangs or drips."""

    def __init__(self, app: SimApp, sreq: wire.SimRequest, outcome: model.Outcome,
                 attempt: int, entry: dict, peer: _Peer, stream: str | None = None):
        self.app, self.sreq, self.outcome, self.entry = app, sreq, outcome, entry
        self.peer = peer
        self.reader, self.writer = peer.reader, peer.writer  # raw, for hangs and cut-offs
        self.scale = app.config.time_scale
        self.attempt = attempt
        self.stream = stream

    async def play(self) -> bool:
        kind = self.outcome.kind
        if kind == "hang":  # a dead path (a proxy that swallowed the call): no deadline helps
            self.entry["status"] = None
            await self.reader.read()  # until the client gives up and closes
            return False
        # The server gives up at the caller's X-Server-Timeout, else at its published limit
        # (docs/facts.md "Gemini wire"), and answers 504 DEADLINE_EXCEEDED.
        deadline = min(self.sreq.server_timeout_s or facts.SERVER_LIMIT_S, facts.SERVER_LIMIT_S)
        if self.outcome.delay_s > deadline and kind != "drip":
            kind = "deadline"
        await asyncio.sleep(min(self.outcome.delay_s, deadline) * self.scale)
        if kind in ("overloaded", "rate_limited", "server_error", "deadline"):
            status, body, headers = wire.error_for(
                "gemini" if self.sreq.provider == "gemini" else "openai", kind,
                self.outcome.retry_after_s)
            return await self._answer(status, json.dumps(body).encode(), headers)
        if kind in ("html200", "html502"):
            status = 200 if kind == "html200" else 502
            return await self._answer(status, wire.html_page(status),
                                      content_type="text/html")
        if kind in ("safety", "no_image", "prompt_blocked"):
            if self.sreq.provider == "gemini":
                return await self._ok(wire.gemini_no_image(self.sreq, kind))
            if self.sreq.provider == "chat":
                return await self._ok(wire.chat_no_image(self.sreq, kind))
            status, body = wire.openai_refusal(kind)
            return await self._answer(status, json.dumps(body).encode())
        answer = self._image_body(kind)
        if kind not in ("truncated", "disconnect", "drip"):
            return await self._ok(answer)
        data = json.dumps(answer).encode()
        if kind == "truncated":
            return await self._answer(200, data[: len(data) // 2])
        if kind == "disconnect":
            self.entry["status"] = 200
            self.peer.start(200, len(data))
            self.peer.send(data[: len(data) // 2])
            await self.writer.drain()
            self.writer.transport.abort()  # mid-body: the client sees a cut connection
            return False
        if kind == "drip":
            return await self._drip(data)
        return await self._answer(200, data)

    def _image_body(self, kind: str) -> dict:
        sreq = self.sreq
        delivered = "2K" if kind == "downgrade" and sreq.resolution == "4K" else sreq.resolution
        width, height = sizes.pixels(delivered, sreq.aspect)
        if self.app.config.realistic:  # one heavy body per size, drawn once: benchmarks time the client
            lines = ("SIMULATED", "realistic body", f"{delivered} {width}x{height}")
        else:
            lines = images.stamp_lines(sreq.prompt, delivered, width, height, self.attempt,
                                       f"turn {sreq.turn}" if sreq.turn > 1 else "")
        if sreq.text_only:  # asked for words only: no image is drawn or sent
            if sreq.provider == "chat":
                return wire.chat_image(sreq, None, delivered)
            return wire.gemini_image(sreq, None, delivered, sign=self.app.sign)
        png = images.render(width, height, lines, self.app.config.realistic)
        if sreq.provider in ("gemini", "chat"):
            thought = None
            if kind == "thought":
                thought = images.render(256, 256, ("SIMULATED", "thought draft"))
            if sreq.provider == "gemini":
                return wire.gemini_image(sreq, png, delivered, thought, self.app.sign)
            return wire.chat_image(sreq, png, delivered, thought)
        if sreq.response_format == "url":
            file_id = uuid.uuid4().hex
            files = self.app._files
            files[file_id] = png
            while len(files) > 64:
                files.popitem(last=False)
            return wire.openai_image(sreq, None, f"{self.app.base_url}/files/{file_id}.png",
                                     delivered)
        return wire.openai_image(sreq, png, None, delivered)

    async def _ok(self, answer: dict) -> bool:
        """A 200 answer: one JSON body, or streamGenerateContent's chunks."""
        if self.stream is None:
            return await self._answer(200, json.dumps(answer).encode())
        chunks = wire.gemini_stream(answer)
        if self.stream == "json":
            return await self._answer(200, json.dumps(chunks).encode())
        data = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
        return await self._answer(200, data, content_type="text/event-stream")

    async def _answer(self, status: int, data: bytes, headers: dict | None = None,
                      content_type: str = "application/json; charset=UTF-8") -> bool:
        self.entry["status"] = status
        await self.app._send(self.peer, status, data, headers=headers, content_type=content_type)
        return True

    async def _drip(self, data: bytes) -> bool:
        """Headers at once, then one space every few seconds, then the body."""
        self.entry["status"] = 200
        drips = int(DRIP_TOTAL_S / DRIP_INTERVAL_S)
        self.peer.start(200, drips + len(data))
        await self.writer.drain()
        for _ in range(drips):
            await asyncio.sleep(DRIP_INTERVAL_S * self.scale)
            if self.writer.is_closing():
                return False
            self.peer.send(b" ")
            await self.writer.drain()
        self.peer.send(data, end=True)
        await self.writer.drain()
        return True


class _Peer:
    """One client connection: h11 parses its requests and frames our answers; the raw
    asyncio streams stay at hand for faults that break HTTP on purpose (cut-offs, drips)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)

    def start(self, status: int, length: int, headers: dict | None = None,
              content_type: str = "application/json; charset=UTF-8",
              close: bool = False) -> None:
        """Send the status line and headers of an answer of `length` bytes."""
        fields = [("Content-Type", content_type), ("Content-Length", str(length)),
                  ("Server", "nbp-sim"), SIM_HEADER]
        fields += [(k, str(v)) for k, v in (headers or {}).items()]
        if close:
            fields.append(("Connection", "close"))
        self.writer.write(self.conn.send(h11.Response(
            status_code=status, headers=fields, reason=HTTPStatus(status).phrase.encode())))

    def send(self, data: bytes, end: bool = False) -> None:
        if data:
            self.writer.write(self.conn.send(h11.Data(data=data)))
        if end:
            self.writer.write(self.conn.send(h11.EndOfMessage()))

    def next_cycle(self) -> bool:
        """Ready for the next request on this connection (keep-alive), or False to close."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
            return True
        return False
