"""An independent stand-in for the Gemini image service, built from published figures only.

Issue 13 asks that our retry policy be measured against something that does not share the
simulator's assumptions, so this file is written from docs/facts.md alone and imports
nothing from nbp_jupyter (stdlib and Pillow only). It speaks the Gemini wire:
`POST /v1beta/models/{model}:generateContent` (and `/v1/`, which google-genai may use),
key in `x-goog-api-key` (any non-empty value).

Each call's fate is drawn on its own (docs/facts.md "Latency and success"; the failure mix
and the lognormal shape are issue 13's):

- success per call: 1K 95 % ("above 95 %"), 2K 85 % ("about 85 %"), 4K 50 % (issue 13);
- a failure is a fast 503 UNAVAILABLE (45 %), a hang (35 %: the connection stays open and
  silent until the client hangs up, or until the deadline, then 504 DEADLINE_EXCEEDED),
  a 500 INTERNAL (10 %) or a 429 RESOURCE_EXHAUSTED (10 %) with a `RetryInfo` retryDelay
  of 5-60 s in the body; fast failures take 1-5 s;
- a success takes a lognormal time through the published P50/P95: 1K 45/90 s, 2K 65/120 s,
  4K 120/170 s, and answers a PNG of exactly the documented pixel size with
  `usageMetadata.candidatesTokensDetails` IMAGE 1120 tokens (1K, 2K) or 2000 (4K);
- the deadline is the service's 600 s limit, or `x-server-timeout` (seconds of service
  time, as our engine sends its timeout) when it is shorter: 504 at that deadline.

Service seconds x `time_scale` = real seconds. A draw is keyed on (seed, size, prompt, how
often this prompt was asked at this size), so two policies that ask the same things meet
the same fates whatever the interleaving of their calls. The handle counts calls by outcome
and size and the most calls in flight at once; `GET /standin/stats` serves the same as JSON.

    python benchmarks/standin.py --port 8765 --seed 1 --time-scale 0.01
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import math
import random
import re
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from statistics import NormalDist

from PIL import Image

SUCCESS = {"1K": 0.95, "2K": 0.85, "4K": 0.50}
LATENCY_P50_P95 = {"1K": (45.0, 90.0), "2K": (65.0, 120.0), "4K": (120.0, 170.0)}
FAILURE_MIX = (("503", 0.45), ("hang", 0.35), ("500", 0.10), ("429", 0.10))
FAST_FAILURE_S = (1.0, 5.0)
RETRY_DELAY_S = (5, 60)
SERVICE_LIMIT_S = 600.0
IMAGE_TOKENS = {"1K": 1120, "2K": 1120, "4K": 2000}
# (width, height) per aspect for 1K; 2K and 4K are exactly 2x and 4x (docs/facts.md "Pixel sizes").
PIXELS_1K = {"1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200),
             "4:3": (1200, 896), "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376),
             "16:9": (1376, 768), "21:9": (1584, 672)}
_Z95 = NormalDist().inv_cdf(0.95)
_POLL_S = 0.05  # how often a waiting call looks for a hung-up client or a stop
_PATH = re.compile(r"^/v1(?:beta)?/models/([^/:?]+):generateContent(?:\?.*)?$")
_ERRORS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
           504: "DEADLINE_EXCEEDED"}
_MESSAGES = {429: "Resource has been exhausted (e.g. check quota).",
             500: "An internal error has occurred. Please retry or report in "
                  "https://developers.generativeai.google/guide/troubleshooting",
             503: "The model is overloaded. Please try again later.",
             504: "Deadline expired before operation could complete."}


@dataclass(frozen=True)
class Fate:
    """What one call will do: `kind` is ok, 503, 500, 429 or hang; times in service seconds."""
    kind: str
    service_s: float  # time to the answer; for a hang, unused (it lasts until cut or deadline)
    retry_delay_s: int = 0


def pixels(size: str, aspect: str) -> tuple[int, int]:
    width, height = PIXELS_1K[aspect]
    factor = {"1K": 1, "2K": 2, "4K": 4}[size]
    return width * factor, height * factor


def fate(seed: int, size: str, prompt: str, nth: int) -> Fate:
    """The nth call for this prompt at this size (pure: the same key gives the same fate)."""
    key = hashlib.sha256(f"{seed}\0{size}\0{nth}\0{prompt}".encode()).digest()
    rng = random.Random(int.from_bytes(key[:8], "big"))
    if rng.random() < SUCCESS[size]:
        p50, p95 = LATENCY_P50_P95[size]
        sigma = math.log(p95 / p50) / _Z95
        return Fate("ok", rng.lognormvariate(math.log(p50), sigma))
    pick, kind = rng.random(), FAILURE_MIX[-1][0]
    for name, share in FAILURE_MIX:
        if pick < share:
            kind = name
            break
        pick -= share
    delay = rng.randint(*RETRY_DELAY_S) if kind == "429" else 0
    return Fate(kind, rng.uniform(*FAST_FAILURE_S), delay)


@lru_cache(maxsize=64)
def png(width: int, height: int) -> bytes:
    """A 1-bit PNG of the asked size: valid, tiny, cheap to send."""
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@dataclass
class Stats:
    """What the stand-in did; `log` holds one row per call (fate, drawn time, outcome)."""
    calls: Counter = field(default_factory=Counter)  # (outcome, size) -> calls
    in_flight: int = 0
    max_in_flight: int = 0
    log: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def as_json(self) -> dict:
        with self.lock:
            return {"calls": [{"outcome": o, "size": s, "n": n}
                              for (o, s), n in sorted(self.calls.items()) if n],
                    "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                    "log": list(self.log)}


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # stop() joins every handler, so no socket outlives the stand-in
    block_on_close = True

    def __init__(self, address, seed: int, time_scale: float):
        super().__init__(address, _Handler)
        self.seed, self.time_scale = seed, time_scale
        self.stats = Stats()
        self.stopping = threading.Event()
        self.asked: Counter = Counter()  # (size, prompt) -> times asked
        self.connections: set[socket.socket] = set()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self):
        super().setup()
        with self.server.stats.lock:
            self.server.connections.add(self.connection)
            if self.server.stopping.is_set():  # accepted just before stop(): wake at once
                self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self):
        with self.server.stats.lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def do_GET(self):
        if self.path == "/standin/stats":
            self._json(200, self.server.stats.as_json())
        else:
            self._error(404, f"no such path: {self.path}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        match = _PATH.match(self.path)
        if not match:
            return self._error(404, f"no such path: {self.path}")
        if not self.headers.get("x-goog-api-key"):
            return self._error(403, "Method doesn't allow unregistered callers (callers "
                                    "without established identity). Please use API Key.")
        try:
            size, aspect, prompt = _read(json.loads(body or b"{}"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return self._error(400, f"Invalid request: {exc}")
        deadline = SERVICE_LIMIT_S
        try:
            deadline = min(deadline, float(self.headers.get("x-server-timeout") or deadline))
        except ValueError:
            pass
        self._serve(match.group(1), size, aspect, prompt, deadline)

    def _serve(self, model: str, size: str, aspect: str, prompt: str, deadline: float):
        server, stats = self.server, self.server.stats
        with stats.lock:
            nth = server.asked[(size, prompt)]
            server.asked[(size, prompt)] += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        drawn = fate(server.seed, size, prompt, nth)
        wait = deadline if drawn.kind == "hang" else min(drawn.service_s, deadline)
        outcome = drawn.kind if drawn.service_s <= deadline and drawn.kind != "hang" else "504"
        if not self._wait(wait * server.time_scale):
            outcome = "cut"  # the client hung up (a success here may still be billed)
        row = {"size": size, "prompt": prompt, "nth": nth, "fate": drawn.kind,
               "service_s": drawn.service_s, "outcome": outcome}
        with stats.lock:  # counted before the answer leaves: whoever got one sees it counted
            stats.in_flight -= 1
            stats.calls[(outcome, size)] += 1
            stats.log.append(row)
        try:
            if outcome == "ok":
                self._json(200, _answer(model, size, aspect, prompt))
            elif outcome == "429":
                self._error(429, _MESSAGES[429], [{
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{drawn.retry_delay_s}s"}])
            elif outcome != "cut":
                self._error(int(outcome), _MESSAGES[int(outcome)])
        except OSError:  # the client hung up as the answer went out
            with stats.lock:
                stats.calls[(outcome, size)] -= 1
                stats.calls[("cut", size)] += 1
                row["outcome"] = "cut"

    def _wait(self, seconds: float) -> bool:
        """Sit silent for `seconds`; False as soon as the client hangs up or the stand-in stops."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.server.stopping.is_set():
                return False
            readable, _, _ = select.select([self.connection], [], [], min(left, _POLL_S))
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return False
                except OSError:
                    return False
                time.sleep(min(left, _POLL_S))  # bytes waiting (a pipelined request): keep on
        return True

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=UTF-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, message: str, details: list | None = None) -> None:
        error = {"code": code, "message": message, "status": _ERRORS[code]}
        if details:
            error["details"] = details
        self._json(code, {"error": error})


def _read(request: dict) -> tuple[str, str, str]:
    """(imageSize, aspectRatio, prompt text); the API accepts camelCase and snake_case."""
    config = request.get("generationConfig") or request.get("generation_config") or {}
    image = config.get("imageConfig") or config.get("image_config") or {}
    size = image.get("imageSize") or image.get("image_size") or "1K"
    aspect = image.get("aspectRatio") or image.get("aspect_ratio") or "1:1"
    if size not in SUCCESS:
        raise ValueError(f"imageSize must be 1K, 2K or 4K, got {size!r}")
    if aspect not in PIXELS_1K:
        raise ValueError(f"unsupported aspectRatio {aspect!r}")
    prompt = " ".join(part.get("text", "") for content in request.get("contents") or []
                      for part in content.get("parts") or [] if isinstance(part, dict))
    return size, aspect, prompt


def _answer(model: str, size: str, aspect: str, prompt: str) -> dict:
    data = base64.b64encode(png(*pixels(size, aspect))).decode("ascii")
    prompt_tokens = max(1, len(prompt) // 4)
    image_tokens = IMAGE_TOKENS[size]
    return {"candidates": [{"content": {"role": "model", "parts": [
                {"inlineData": {"mimeType": "image/png", "data": data}}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens, "candidatesTokenCount": image_tokens,
                "totalTokenCount": prompt_tokens + image_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
                "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": image_tokens}]},
            "modelVersion": model,
            "responseId": f"standin-{time.monotonic_ns():x}"}


class StandIn:
    """A running stand-in: `base_url`, `stats`, `stop()`; a context manager."""

    def __init__(self, server: _Server):
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="standin",
                                         kwargs={"poll_interval": _POLL_S}, daemon=True)
        self._thread.start()
        host, port = server.server_address[:2]
        self.base_url = f"http://{host}:{port}"

    @property
    def stats(self) -> Stats:
        return self._server.stats

    def stop(self) -> None:
        """Stop serving, wake and close every open call, and join their threads."""
        server = self._server
        server.stopping.set()
        server.shutdown()
        with server.stats.lock:
            open_connections = list(server.connections)
        for connection in open_connections:  # idle keep-alive readers wake on this
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        self._thread.join()

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start(seed: int = 1, time_scale: float = 0.01, port: int = 0) -> StandIn:
    """A stand-in on 127.0.0.1 (port 0: any free port), serving in a background thread."""
    if not time_scale > 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
    return StandIn(_Server(("127.0.0.1", port), seed, time_scale))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=0.01,
                        help="real seconds per service second")
    args = parser.parse_args()
    handle = start(args.seed, args.time_scale, args.port)
    print(f"listening on {handle.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()


if __name__ == "__main__":
    main()
