"""The simulated Batch API and Files API (docs/facts.md "Batch API").

Serves `models/{m}:batchGenerateContent`, `batches.get/list/cancel/delete`, the Files API's
resumable upload and its download endpoint (both the documented `download/v1beta/...` path
and the SDK's `v1beta/files/...:download`), with a time-scaled turnaround, per-line
failures, scripted 503s on get, a create whose answer is lost, downloads cut or stalled
midway, expiry, and both answer shapes (Operation or bare batch resource).

Files live on disk, never whole in memory: a results file of 150 2K images is over 1 GB.
With `state_dir` the batches and files outlive the simulator, as the real service's outlive
a kernel: a simulator started again on the same folder serves the same batches.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
import uuid
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import facts, sizes
from . import images, wire

# Turnaround in simulated seconds. Google publishes only a 24-hour target ("usually much
# quicker", docs/facts.md "Batch API"); these are our assumptions, not published figures.
PENDING_S = 600.0
PER_LINE_S = 5.0
EXPIRE_AFTER_S = facts.BATCH_EXPIRES_AFTER_S  # docs/facts.md "Batch API"
LINE_FAILURE = 0.02  # share of lines that fail (an assumption; nothing is published)
BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
OUTPUT_TYPE = ("type.googleapis.com/google.ai.generativelanguage.v1main."
               "GenerateContentBatchOutput")
CHUNK = 1 << 20


@dataclass
class SimBatch:
    id: str
    display_name: str
    model: str
    created: float  # wall clock, so that a restarted simulator keeps the schedule
    lines: list[dict]  # {key, prompt, size, aspect}
    inline: bool
    expire: bool = False
    fail: bool = False  # the whole batch fails at the service after its pending time
    cancelled: float | None = None
    results: str | None = None  # file id of the responses file, once written
    inlined: list[dict] | None = field(default=None, repr=False)


@dataclass
class Upload:
    id: str
    display_name: str
    size: int
    received: int = 0


class BatchSim:
    """The batch side of one simulator. Tests steer it through `script()` and attributes."""

    def __init__(self, app, state_dir: str | os.PathLike | None = None):
        self.app = app
        if state_dir is None:
            folder = Path(tempfile.mkdtemp(prefix="nbp-sim-batch-"))
            weakref.finalize(self, shutil.rmtree, folder, True)
        else:
            folder = Path(state_dir)
        self.files = folder / "files"
        self.meta = folder / "batches"
        self.files.mkdir(parents=True, exist_ok=True)
        self.meta.mkdir(parents=True, exist_ok=True)
        self.batches: dict[str, SimBatch] = {}
        self.uploads: dict[str, Upload] = {}
        self.shape = "operation"  # or "resource": the bare batch, as the API reference shows
        self.line_failure = LINE_FAILURE
        self.fail_lines: set[int] = set()  # line numbers (0-based) that always fail
        self.pending_s, self.per_line_s = PENDING_S, PER_LINE_S
        self.stamp_prompts = True  # False: one image per size and aspect, drawn once (benchmarks)
        self.log: list[dict] = []
        self._script: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._building: dict[str, asyncio.Task] = {}
        for path in sorted(self.meta.glob("*.json")):
            batch = SimBatch(**json.loads(path.read_text()))
            self.batches[batch.id] = batch

    # ----- steering (tests) ---------------------------------------------------------------
    def script(self, endpoint: str, items: str | list[str]) -> None:
        """Queue behaviours for an endpoint: create ('503', 'disconnect', 'hang', 'expire',
        'fail'), get ('503', 'disconnect'), download ('503', and 'cut:0.5' or 'stall:0.5':
        cut off, or silent, after half the bytes)."""
        parsed = [s.strip() for s in (items.split(",") if isinstance(items, str) else items)]
        self._script[endpoint].extend(s for s in parsed if s)

    def _next(self, endpoint: str) -> str:
        queue = self._script[endpoint]
        return queue.popleft() if queue else "ok"

    # ----- routing --------------------------------------------------------------------------
    async def route(self, req, peer) -> bool | None:
        """Answer a batch or files request; None when the path is not ours."""
        path, method = _versionless(req.path), req.method
        if method == "POST" and path.endswith(":batchGenerateContent") and "/models/" in path:
            handler = self._create
        elif path.startswith("/v1beta/batches"):
            handler = self._batches
        elif path.startswith("/upload/v1beta/files"):
            handler = self._upload
        elif path.startswith(("/download/v1beta/files/", "/v1beta/files/")):
            handler = self._files
        else:
            return None
        self.log.append({"method": method, "path": path, "time": time.time(),
                         "range": req.headers.get("range")})
        # an upload session's URL is its own credential, as the real one's is: no key on it
        session = handler == self._upload and "upload_id" in req.query
        denied = None if session else self.app._auth_error(req, "gemini")
        if denied:
            return await self._reply(peer, *denied)
        return await handler(req, peer)

    async def _reply(self, peer, status: int, body: dict | bytes,
                     headers: dict | None = None) -> bool:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        peer.start(status, len(data), headers)
        peer.send(data, end=True)
        await peer.writer.drain()
        return True

    async def _error(self, peer, status: int, code: str, message: str) -> bool:
        return await self._reply(peer, status, wire.gemini_error(status, code, message))

    # ----- batches ------------------------------------------------------------------------
    async def _create(self, req, peer) -> bool:
        behaviour = self._next("create")
        if behaviour == "503":
            return await self._error(peer, 503, "UNAVAILABLE", "The service is currently "
                                     "unavailable.")
        try:
            body = json.loads(req.body or b"null")
            spec = body["batch"]
            model = req.path.split("/models/", 1)[1].rsplit(":", 1)[0]
            wire.check_gemini_model(model, req.path.split("/", 2)[1], "batchGenerateContent")
            lines, inline = await asyncio.to_thread(self._read_input, spec)
        except (ValueError, KeyError, TypeError) as exc:
            return await self._error(peer, 400, "INVALID_ARGUMENT", f"Invalid batch: {exc}")
        except wire.WireError as exc:
            return await self._reply(peer, exc.status, exc.body)
        batch = SimBatch(id=uuid.uuid4().hex[:16], model=f"models/{model}", created=time.time(),
                         display_name=str(_field(spec, "displayName") or ""), lines=lines,
                         inline=inline, expire=behaviour == "expire",
                         fail=behaviour == "fail")
        self.batches[batch.id] = batch
        await asyncio.to_thread(self._save, batch)
        if behaviour == "disconnect":  # made, but the answer is lost on the way
            peer.writer.transport.abort()
            return False
        if behaviour == "hang":  # made, and no answer until the client gives up
            await peer.reader.read()
            return False
        return await self._reply(peer, 200, self._view(batch))

    def _read_input(self, spec: dict) -> tuple[list[dict], bool]:
        config = _field(spec, "inputConfig")
        requests = _field(config, "requests")
        file_name = _field(config, "fileName") or (
            _field(requests, "fileName") if isinstance(requests, dict) else None)
        items: list[dict] = []
        if file_name:
            path = self.files / str(file_name).removeprefix("files/")
            if not path.is_file():
                raise ValueError(f"file {file_name} not found")
            with open(path, "rb") as fh:  # line by line: an input file may be large
                for raw in fh:
                    if raw.strip():
                        item = json.loads(raw)
                        items.append({"key": item.get("key"), "request": item["request"]})
        else:
            for item in _field(requests, "requests"):
                items.append({"key": (_field(item, "metadata") or {}).get("key"),
                              "request": item["request"]})
        lines = []
        for number, item in enumerate(items):
            sreq = wire.parse_gemini("batch", item["request"])
            lines.append({"key": item["key"] if item["key"] is not None else str(number),
                          "prompt": sreq.prompt, "size": sreq.resolution,
                          "aspect": sreq.aspect})
        if not lines:
            raise ValueError("no requests")
        return lines, not file_name

    async def _batches(self, req, peer) -> bool:
        rest = _versionless(req.path).removeprefix("/v1beta/batches").lstrip("/")
        if req.method == "GET" and not rest:
            return await self._list(req, peer)
        name, _, verb = rest.partition(":")
        batch = self.batches.get(name)
        if batch is None:
            return await self._error(peer, 404, "NOT_FOUND", f"Batch batches/{name} not found.")
        if req.method == "POST" and verb == "cancel":
            if self._state(batch) in ("PENDING", "RUNNING"):
                batch.cancelled = time.time()
                await asyncio.to_thread(self._save, batch)
            return await self._reply(peer, 200, {})
        if req.method == "DELETE" and not verb:
            del self.batches[name]
            (self.meta / f"{name}.json").unlink(missing_ok=True)
            return await self._reply(peer, 200, {})
        if req.method != "GET" or verb:
            return await self._error(peer, 400, "INVALID_ARGUMENT", "Unknown method.")
        behaviour = self._next("get")
        if behaviour == "503":
            return await self._error(peer, 503, "UNAVAILABLE", "The service is currently "
                                     "unavailable.")
        if behaviour == "disconnect":
            peer.writer.transport.abort()
            return False
        await self._settle(batch)
        return await self._reply(peer, 200, self._view(batch))

    async def _list(self, req, peer) -> bool:
        size = int((req.query.get("pageSize") or ["50"])[0])
        start = int((req.query.get("pageToken") or ["0"])[0] or 0)
        ordered = sorted(self.batches.values(), key=lambda b: -b.created)
        page = ordered[start:start + size]
        for batch in page:
            await self._settle(batch)
        body: dict = {"operations": [self._operation(b) for b in page]}
        if start + size < len(ordered):
            body["nextPageToken"] = str(start + size)
        return await self._reply(peer, 200, body)

    # ----- the schedule -------------------------------------------------------------------
    def _elapsed(self, batch: SimBatch) -> float:
        return (time.time() - batch.created) / self.app.config.time_scale

    def _run_s(self, batch: SimBatch) -> float:
        return self.per_line_s * len(batch.lines)

    def _state(self, batch: SimBatch) -> str:
        if batch.cancelled is not None:
            return "CANCELLED"
        elapsed, end = self._elapsed(batch), self.pending_s + self._run_s(batch)
        if elapsed < self.pending_s:
            return "PENDING"
        if batch.expire or (elapsed >= EXPIRE_AFTER_S and elapsed < end):
            return "EXPIRED"
        if batch.fail:
            return "FAILED"
        if elapsed < end or (batch.results is None and batch.inlined is None):
            return "RUNNING"  # or done, with its results still being written
        return "SUCCEEDED"

    async def _settle(self, batch: SimBatch) -> None:
        """Write the results once the batch's time has come (in a thread: images, disk)."""
        due = self._elapsed(batch) >= self.pending_s + self._run_s(batch)
        if not due or batch.cancelled or batch.expire or batch.fail or batch.results \
                or batch.inlined:
            return
        task = self._building.get(batch.id)
        if task is None:
            task = self._building[batch.id] = asyncio.ensure_future(
                asyncio.to_thread(self._write_results, batch))
        await asyncio.shield(task)

    def _outcome(self, batch: SimBatch, number: int, line: dict) -> str:
        digest = hashlib.sha256(f"{self.app.config.seed}|{batch.id}|{number}".encode()).digest()
        rng = random.Random(digest)
        if number in self.fail_lines or rng.random() < self.line_failure:
            return rng.choice(("internal", "safety"))
        return "ok"

    def _result(self, batch: SimBatch, number: int, line: dict) -> dict:
        outcome = self._outcome(batch, number, line)
        if outcome == "internal":
            return {"error": {"code": 13, "message": "Internal error encountered.",
                              "status": "INTERNAL"}}
        sreq = wire.SimRequest("gemini", batch.model.removeprefix("models/"), line["prompt"],
                               line["size"], line["aspect"])
        if outcome == "safety":
            return {"response": wire.gemini_no_image(sreq, "safety")}
        width, height = sizes.pixels(line["size"], line["aspect"])
        stamp: tuple[str, ...]
        if self.app.config.realistic or not self.stamp_prompts:  # one per size, drawn once
            stamp = ("SIMULATED", "batch body", f"{line['size']} {width}x{height}")
        else:
            stamp = images.stamp_lines(line["prompt"], line["size"], width, height, 1, "batch")
        png = images.render(width, height, stamp, self.app.config.realistic)
        return {"response": wire.gemini_image(sreq, png, line["size"], sign=self.app.sign)}

    def _write_results(self, batch: SimBatch) -> None:
        if batch.inline:
            batch.inlined = [{**self._result(batch, n, line), "metadata": {"key": line["key"]}}
                             for n, line in enumerate(batch.lines)]
        else:
            file_id = f"batch-{batch.id}-responses"
            part = self.files / f".{file_id}.part"
            with open(part, "wb") as fh:
                for number, line in enumerate(batch.lines):
                    item = {"key": line["key"], **self._result(batch, number, line)}
                    fh.write(json.dumps(item).encode() + b"\n")
            os.replace(part, self.files / file_id)
            batch.results = file_id
        self._save(batch)

    def _save(self, batch: SimBatch) -> None:
        data = asdict(batch)
        data["inlined"] = None  # rebuilt from the seed when needed; images are not kept
        if batch.inline and batch.inlined is not None:
            data["results"] = "inline"
        tmp = self.meta / f".{batch.id}.part"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.meta / f"{batch.id}.json")

    # ----- answers --------------------------------------------------------------------------
    def _resource(self, batch: SimBatch) -> dict:
        state = self._state(batch)
        total = len(batch.lines)
        if state == "RUNNING":
            share = (self._elapsed(batch) - self.pending_s) / max(self._run_s(batch), 1e-9)
            done = min(total, int(total * share))
        else:
            done = total if state == "SUCCEEDED" else 0
        failed = sum(1 for n, line in enumerate(batch.lines[:done])
                     if self._outcome(batch, n, line) != "ok")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(batch.created))
        resource: dict = {
            "model": batch.model, "displayName": batch.display_name, "createTime": stamp,
            "updateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "batchStats": {"requestCount": str(total),
                           "successfulRequestCount": str(done - failed),
                           "failedRequestCount": str(failed),
                           "pendingRequestCount": str(total - done)},
            "state": f"BATCH_STATE_{state}", "name": f"batches/{batch.id}"}
        output = self._output(batch) if state == "SUCCEEDED" else None
        if output:
            resource["output"] = output
        return resource

    def _output(self, batch: SimBatch) -> dict | None:
        if batch.inline:
            if batch.inlined is None:  # a restarted simulator: the same seed, the same lines
                self._write_results(batch)
            return {"inlinedResponses": {"inlinedResponses": batch.inlined}}
        return {"responsesFile": f"files/{batch.results}"} if batch.results else None

    def _operation(self, batch: SimBatch) -> dict:
        resource = self._resource(batch)
        body: dict = {"name": resource["name"], "metadata": {"@type": BATCH_TYPE, **resource}}
        final = self._state(batch) not in ("PENDING", "RUNNING")
        if final:
            body["done"] = True
            if batch.fail:
                body["error"] = {"code": 13, "message": "Batch processing failed: an internal "
                                 "error occurred.", "status": "INTERNAL"}
            if "output" in resource:
                body["response"] = {"@type": OUTPUT_TYPE, **resource["output"]}
        return body

    def _view(self, batch: SimBatch) -> dict:
        return self._resource(batch) if self.shape == "resource" else self._operation(batch)

    # ----- files ----------------------------------------------------------------------------
    async def _upload(self, req, peer) -> bool:
        command = req.headers.get("x-goog-upload-command", "").lower()
        if "start" in command:
            size = int(req.headers.get("x-goog-upload-header-content-length") or 0)
            try:
                meta = json.loads(req.body or b"{}").get("file") or {}
            except (ValueError, AttributeError):
                meta = {}
            upload = Upload(uuid.uuid4().hex[:16], str(_field(meta, "displayName") or ""), size)
            self.uploads[upload.id] = upload
            (self.files / f".{upload.id}.part").write_bytes(b"")
            url = f"{self.app.base_url}/upload/v1beta/files?upload_id={upload.id}" \
                  "&upload_protocol=resumable"
            return await self._reply(peer, 200, b"", {"x-goog-upload-url": url,
                                                        "x-goog-upload-status": "active"})
        found = self.uploads.get((req.query.get("upload_id") or [""])[0])
        if found is None:
            return await self._error(peer, 404, "NOT_FOUND", "No such upload session.")
        upload = found
        offset = int(req.headers.get("x-goog-upload-offset") or 0)
        if offset != upload.received:
            return await self._error(peer, 400, "INVALID_ARGUMENT",
                                     f"offset {offset}, expected {upload.received}")
        part = self.files / f".{upload.id}.part"
        await asyncio.to_thread(_append, part, req.body)
        upload.received += len(req.body)
        if "finalize" not in command:
            return await self._reply(peer, 200, b"", {"x-goog-upload-status": "active"})
        os.replace(part, self.files / upload.id)
        del self.uploads[upload.id]
        return await self._reply(peer, 200, {"file": self._file(upload.id, upload.display_name)},
                                 {"x-goog-upload-status": "final"})

    def _file(self, file_id: str, display_name: str = "") -> dict:
        size = (self.files / file_id).stat().st_size
        return {"name": f"files/{file_id}", "displayName": display_name,
                "mimeType": "application/jsonl", "sizeBytes": str(size),
                "state": "ACTIVE", "source": "GENERATED" if file_id.startswith("batch-")
                else "UPLOADED", "uri": f"{self.app.base_url}/v1beta/files/{file_id}",
                "downloadUri": f"{self.app.base_url}/download/v1beta/files/{file_id}"
                               ":download?alt=media"}

    async def _files(self, req, peer) -> bool:
        rest = req.path.split("/files/", 1)[1]
        file_id, _, verb = rest.partition(":")
        path = self.files / file_id
        if file_id.startswith(".") or "/" in file_id or not path.is_file():
            return await self._error(peer, 404, "NOT_FOUND", f"File files/{file_id} not found.")
        if verb != "download":
            return await self._reply(peer, 200, self._file(file_id))
        return await self._download(req, peer, path)

    async def _download(self, req, peer, path: Path) -> bool:
        """Stream from disk, honouring `Range: bytes=N-`; scripted cuts and stalls."""
        size = path.stat().st_size
        start = 0
        wanted = req.headers.get("range", "")
        if wanted.startswith("bytes=") and wanted[6:].split("-")[0].isdigit():
            start = min(int(wanted[6:].split("-")[0]), size)
        behaviour = self._next("download")
        if behaviour == "503":
            return await self._error(peer, 503, "UNAVAILABLE", "The service is currently "
                                     "unavailable.")
        stop_at = size
        if ":" in behaviour:
            kind, fraction = behaviour.split(":", 1)
            stop_at = start + int((size - start) * float(fraction))
        else:
            kind = behaviour
        headers = {"Content-Range": f"bytes {start}-{size - 1}/{size}"} if start else {}
        peer.start(206 if start else 200, size - start, headers, "application/octet-stream")
        sent = start
        with open(path, "rb") as fh:
            fh.seek(start)
            while sent < stop_at:
                chunk = await asyncio.to_thread(fh.read, min(CHUNK, stop_at - sent))
                if not chunk:
                    break
                peer.send(chunk)
                sent += len(chunk)
                await peer.writer.drain()
        if sent < size:
            if kind == "stall":  # silent until the client goes away
                await peer.reader.read()
            peer.writer.transport.abort()
            return False
        peer.send(b"", end=True)
        await peer.writer.drain()
        return True


def _versionless(path: str) -> str:
    """'/v1/batches/x' and '/upload/v1/files' as '/v1beta/...': the SDK may ask for either."""
    for prefix in ("/v1/", "/upload/v1/", "/download/v1/"):
        if path.startswith(prefix):
            return prefix.replace("/v1/", "/v1beta/") + path[len(prefix):]
    return path


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def _field(obj: object, camel: str):
    """A field by its JSON name, or by the snake_case name the REST examples use."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake)
