"""A batch's life on the session's background loop: create it at most once, poll it with
backoff, and collect its results line by line into the ledger (see batching.py for the
handle users hold, batch_wire.py for the wire, batch_store.py for the ledger).

Every blocking step (SQLite, building the JSONL, parsing and checking a result line, writing
its image, splitting the download into lines) runs in the `nbp-batch` pool, one call at a
time per batch; the loop only waits on sockets and timers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from . import batch_wire as bw
from . import checks, config, facts, pricing
from .batch_store import BatchLedger, BatchState, LineRow
from .errors import BadResponse
from .jobs import session
from .providers.base import ParsedImage
from .types import Attempt, GenerationResult, Request

if TYPE_CHECKING:
    from .batching import BatchJob

log = logging.getLogger("nbp_jupyter")

# Polling backoff in service seconds (times the time scale): a batch takes minutes to hours
# (docs/facts.md "Batch API": a 24-hour target), so asking every few seconds buys nothing.
POLL_FIRST_S, POLL_MAX_S, POLL_FACTOR = 30.0, 300.0, 1.5
CALL_TIMEOUT_S = 60.0  # one create, get, list or upload call
# A download that sends nothing for this long (real seconds, whatever the time scale) is
# cut and resumed from its last whole line.
DOWNLOAD_IDLE_S = 30.0
CREATE_TRIES = 6  # creates refused or lost in a row before the batch is given up
DOWNLOAD_TRIES = 6  # downloads cut off in a row before collecting is given up
LOOKUP_PAGES = 20  # pages of the batch list searched for our display name
_REMOTE_TO_OURS: dict[str, BatchState] = {
    "pending": "pending", "running": "running", "succeeded": "collecting",
    "failed": "failed", "cancelled": "cancelled", "expired": "expired", "unknown": "running"}
# Blocking work of batches (SQLite, JSON of a results line, image checks and writes): off the
# loop, two at a time at most, and never two for one batch (each runner awaits its own).
_WORKERS = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="nbp-batch")


class _Uncertain(Exception):
    """A call whose fate we do not know: timed out, or the connection was cut."""


class Runner:
    """One batch's life on the loop: create (once), poll with backoff, collect."""

    def __init__(self, job: BatchJob, settings: config.Settings, base_url: str,
                 ledger: BatchLedger):
        self.job, self.settings, self.base_url, self.ledger = job, settings, base_url, ledger
        self.scale = settings.time_scale
        self.headers = {"x-goog-api-key": settings.api_key or ""}
        self.client: httpx.AsyncClient | None = None
        self._inlined: list[dict] | None = None  # results that came inside the answer
        self._busy: concurrent.futures.Future | None = None  # the worker call under way

    async def _thread(self, fn, *args, **kwargs):
        """Run blocking work in the batch pool; remembered so that the ledger is closed only
        after it, even when this task is cancelled while it runs."""
        self._busy = _WORKERS.submit(functools.partial(fn, *args, **kwargs))
        return await asyncio.wrap_future(self._busy)

    async def run(self) -> None:
        self.job._task = asyncio.current_task()
        try:
            timeout = httpx.Timeout(max(CALL_TIMEOUT_S * self.scale, 1.0))
            async with httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                         trust_env=False, follow_redirects=False) as client:
                self.client = client
                if self.job.state == "creating":
                    await self._create()
                if self.job.state in ("pending", "running"):
                    await self._poll()
                if self.job.state == "collecting":
                    await self._collect()
        except asyncio.CancelledError:
            pass  # the session is closing: the batch goes on at the service; resume() later
        except Exception as exc:  # a bug must still end the handle, with a message
            log.exception("batch %s stopped", self.job.id)
            await self._finish("failed", f"internal error: {type(exc).__name__}: {exc}", None)
        finally:
            busy = self._busy
            if busy is not None and not busy.done():  # a worker still holds the ledger
                busy.add_done_callback(lambda _: self.ledger.close())
            else:
                self.ledger.close()
            if not self.job.done():  # paused, not ended: wake waiters without lying
                self.job._changed()

    # ----- HTTP -----------------------------------------------------------------------------
    async def _call(self, method: str, path: str, *, content: bytes | None = None,
                    headers: dict | None = None, absolute: str | None = None) -> httpx.Response:
        assert self.client is not None
        sent = {**self.headers, **(headers or {})}
        if absolute is not None and not _same_origin(absolute, self.base_url):
            sent.pop("x-goog-api-key")  # an upload URL elsewhere is its own credential
        request = self.client.build_request(method, absolute or path, content=content,
                                            headers=sent)
        try:
            response = await self.client.send(request, stream=True)
            try:
                cap = self.settings.max_response_bytes
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise BadResponse(f"answer over the {cap}-byte cap", http_status=200)
                response._content = bytes(body)
            finally:
                await response.aclose()
            return response
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise _Uncertain(f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}") \
                from None

    async def _json(self, response: httpx.Response) -> Any:
        try:
            return await self._thread(json.loads, response.content)
        except ValueError:
            raise bw.BatchWireError(f"HTTP {response.status_code}: not JSON") from None

    async def _update(self, **fields: Any) -> None:
        await self._thread(self.ledger.update, self.job.id, **fields)

    async def _finish(self, state: BatchState, error: str | None, line_status: str | None) -> None:
        await self._thread(self.ledger.finish, self.job.id, state, error, line_status)
        self.job._changed(state=state, error=error, next_poll=None)

    async def _sleep(self, service_s: float) -> None:
        self.job._changed(next_poll=time.monotonic() + service_s * self.scale)
        await asyncio.sleep(service_s * self.scale)

    # ----- create, at most once --------------------------------------------------------------
    async def _create(self) -> None:
        row = await self._thread(self.ledger.batch, self.job.id)
        lines = await self._thread(self.ledger.lines, self.job.id)
        wire_lines = [bw.Line(x.key, x.prompt, x.size, x.aspect) for x in lines]
        body = await self._thread(bw.inline_body, self.job.display_name, wire_lines)
        if len(body) > bw.MAX_INLINE_BYTES or bw.expected_answer_bytes(wire_lines) > \
                self.settings.max_response_bytes // 2:
            # too big for one request, or its inline answer too big for one body: a file
            file_name = row["input_file"] or await self._upload(wire_lines)
            body = bw.file_body(self.job.display_name, file_name)
        sent_before = bool(row["create_sent"])
        wait = POLL_FIRST_S / 10
        for _ in range(CREATE_TRIES):
            if sent_before:  # a create may have reached the service: never make a second
                found = await self._lookup()
                if found is not None:
                    return await self._adopt(found)
            await self._update(create_sent=1)
            sent_before = True
            try:
                response = await self._call("POST", bw.create_path(self.settings.model),
                                            content=body,
                                            headers={"content-type": "application/json"})
            except _Uncertain as exc:
                log.info("batch %s: create uncertain (%s); looking it up", self.job.id, exc)
                await self._sleep(wait)
                wait *= 2
                continue
            if response.status_code == 200:
                return await self._adopt(bw.parse_batch(await self._json(response)))
            if response.status_code in (408, 429) or response.status_code >= 500:
                await self._sleep(wait)
                wait *= 2
                continue
            return await self._finish("failed", _http_error("create", response), "not sent")
        await self._finish("failed", f"the service did not take the batch after {CREATE_TRIES}"
                           " tries; nothing was billed — try again later", "not sent")

    async def _lookup(self) -> bw.BatchStatus | None:
        """Our batch in the service's list, by its unique display name; None if absent.
        A list that cannot be read is asked again: 'absent' must be known, not guessed."""
        wait = POLL_FIRST_S / 10
        while True:
            token, pages, found = None, 0, None
            try:
                while pages < LOOKUP_PAGES:
                    path = "/v1beta/batches?pageSize=100" + (f"&pageToken={token}" if token else "")
                    response = await self._call("GET", path)
                    if response.status_code != 200:
                        raise _Uncertain(f"list answered HTTP {response.status_code}")
                    items, token = bw.parse_list(await self._json(response))
                    found = next((b for b in items if b.display_name == self.job.display_name),
                                 None)
                    pages += 1
                    if found is not None or token is None:
                        return found
                return None
            except (_Uncertain, bw.BatchWireError) as exc:
                log.info("batch %s: lookup failed (%s); asking again", self.job.id, exc)
                await self._sleep(wait)
                wait = min(wait * 2, POLL_MAX_S)

    async def _adopt(self, status: bw.BatchStatus) -> None:
        state = _REMOTE_TO_OURS[status.state]
        await self._update(name=status.name, state=state, remote_state=status.state)
        self.job._changed(name=status.name, state=state)
        if self.job._cancel_requested:
            await send_cancel(self.job)

    async def _upload(self, lines: list[bw.Line]) -> str:
        """The JSONL input through the Files API's resumable upload, in chunks from disk."""
        path = self.settings.home / "batches" / f"{self.job.id}.input.jsonl"
        size = await self._thread(_write_jsonl, path, lines)
        headers, body = bw.upload_start_headers(size, self.job.display_name)
        response = await self._call("POST", "/upload/v1beta/files", content=body, headers=headers)
        url = response.headers.get("x-goog-upload-url")
        if response.status_code != 200 or not url:
            raise bw.BatchWireError(_http_error("upload", response))
        offset = 0
        with open(path, "rb") as fh:
            while True:
                chunk = await self._thread(fh.read, bw.UPLOAD_CHUNK_BYTES)
                last = offset + len(chunk) >= size
                response = await self._call(
                    "POST", "", absolute=url, content=chunk,
                    headers=bw.upload_chunk_headers(offset, len(chunk), last))
                if response.status_code != 200:
                    raise bw.BatchWireError(_http_error("upload", response))
                offset += len(chunk)
                if last:
                    break
        name = bw.uploaded_file_name(response.content)
        await self._update(input_file=name)
        path.unlink(missing_ok=True)
        return name

    # ----- poll -------------------------------------------------------------------------------
    async def _poll(self) -> None:
        wait = POLL_FIRST_S
        while True:
            await self._sleep(wait)
            wait = min(wait * POLL_FACTOR, POLL_MAX_S)
            try:
                response = await self._call("GET", f"/v1beta/{self.job.name}")
            except _Uncertain as exc:
                log.info("batch %s: poll failed (%s); polling on", self.job.id, exc)
                continue
            if response.status_code in (408, 429) or response.status_code >= 500:
                continue  # the service is busy; the batch is not
            if response.status_code != 200:
                return await self._finish("failed", _http_error("poll", response), "unknown")
            try:
                status = bw.parse_batch(await self._json(response))
            except bw.BatchWireError as exc:
                log.info("batch %s: unreadable poll answer (%s)", self.job.id, exc)
                continue
            done = (status.succeeded or 0) + (status.failed or 0)
            self.job._changed(remote_done=done)
            if not status.final:
                state = _REMOTE_TO_OURS[status.state]
                if state != self.job.state:
                    await self._update(state=state, remote_state=status.state)
                    self.job._changed(state=state)
                continue
            return await self._ended(status)

    async def _ended(self, status: bw.BatchStatus) -> None:
        await self._update(remote_state=status.state, responses_file=status.responses_file)
        if status.state == "succeeded":
            await self._update(state="collecting")
            self.job._changed(state="collecting")
            if status.inlined is not None:
                self._inlined = status.inlined
            return
        words = {
            "expired": f"the service did not finish it within "
                       f"{facts.BATCH_EXPIRES_AFTER_S / 3600:.0f} hours; nothing is billed for "
                       "lines without a result — send them again, perhaps in smaller batches",
            "cancelled": "cancelled; lines without a result are not billed",
            "failed": f"the service reports the batch failed: {status.error or 'no reason given'}"
                      "; lines without a result are not billed"}
        await self._finish(_REMOTE_TO_OURS[status.state], words[status.state], status.state)

    # ----- collect ----------------------------------------------------------------------------
    async def _collect(self) -> None:
        row = await self._thread(self.ledger.batch, self.job.id)
        taker = await self._thread(_LineTaker, self.job, self.ledger, self.settings, row)
        if self._inlined is None and not row["responses_file"]:
            # resumed after a restart: ask again for where the results are
            status = await self._status_now()
            if status is None:
                return
            self._inlined = status.inlined
            if status.responses_file:
                await self._update(responses_file=status.responses_file)
                row["responses_file"] = status.responses_file
        if self._inlined is not None:
            for item in self._inlined:
                await self._thread(taker.take, item, None)
        elif not await self._download(row["responses_file"], taker):
            return
        missing = sum(1 for line in await self._thread(self.ledger.lines, self.job.id)
                      if line.job_id is None)
        error = (f"{missing} line(s) had no result in the answer; not billed" if missing
                 else None)
        await self._finish("done", error, "missing" if missing else None)

    async def _status_now(self) -> bw.BatchStatus | None:
        """The batch's status, asked until the service answers; None if it refused (the
        batch has then been ended with the reason)."""
        wait = POLL_FIRST_S / 10
        while True:
            try:
                response = await self._call("GET", f"/v1beta/{self.job.name}")
            except _Uncertain:
                response = None
            if response is not None and response.status_code == 200:
                return bw.parse_batch(await self._json(response))
            if response is not None and response.status_code not in (408, 429) \
                    and response.status_code < 500:
                await self._finish("failed", _http_error("poll", response), "unknown")
                return None
            await self._sleep(wait)
            wait = min(wait * 2, POLL_MAX_S)

    async def _download(self, file_name: str, taker: _LineTaker) -> bool:
        """Stream the responses file, resuming a cut download from the last whole line;
        False if the service refused it (the batch has then been ended with the reason)."""
        assert self.client is not None
        for attempt in range(DOWNLOAD_TRIES):
            offset = (await self._thread(self.ledger.batch, self.job.id))["download_offset"]
            headers = {**self.headers, "accept-encoding": "identity"}
            if offset:
                headers["range"] = f"bytes={offset}-"
            splitter = _Splitter(taker)
            try:
                idle = httpx.Timeout(max(CALL_TIMEOUT_S * self.scale, 1.0),
                                     read=max(CALL_TIMEOUT_S * self.scale, DOWNLOAD_IDLE_S))
                async with self.client.stream("GET", bw.download_path(file_name),
                                              headers=headers, timeout=idle) as response:
                    if response.status_code in (408, 429) or response.status_code >= 500:
                        raise httpx.RemoteProtocolError(f"HTTP {response.status_code}")
                    if response.status_code not in (200, 206):
                        await response.aread()
                        await self._finish("failed", _http_error("download", response) +
                                           "; the lines collected so far are kept", "missing")
                        return False
                    # 206: from our offset; 200: the server ignored the range, skip to it
                    splitter.start(offset, skip=offset if response.status_code == 200 else 0)
                    async for chunk in response.aiter_bytes():  # as it arrives
                        await self._thread(splitter.feed, chunk)
                await self._thread(splitter.close)
                return True
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                log.info("batch %s: download cut (%s); resuming", self.job.id, exc)
                await self._sleep(POLL_FIRST_S / 10 * 2 ** attempt)
        raise bw.BatchWireError(f"the results download was cut {DOWNLOAD_TRIES} times")


async def send_cancel(job: BatchJob) -> None:
    settings = job.settings
    base = settings.base_url or session().sim_url(settings)
    async with httpx.AsyncClient(base_url=base, trust_env=False,
                                 timeout=max(CALL_TIMEOUT_S * settings.time_scale, 1.0)) as c:
        try:
            await c.post(f"/v1beta/{job.name}:cancel",
                         headers={"x-goog-api-key": settings.api_key or ""})
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            log.warning("batch %s: cancel not sent (%s)", job.id, exc)


class _Splitter:
    """Bytes in, whole lines out, with the file offset after each (worker threads only)."""

    def __init__(self, taker: _LineTaker):
        self.taker = taker
        self.buffer = bytearray()
        self.scanned = 0
        self.position = 0
        self.skip = 0

    def start(self, offset: int, skip: int) -> None:
        self.position, self.skip = offset - skip, skip

    def feed(self, chunk: bytes) -> None:
        if self.skip:
            dropped = min(self.skip, len(chunk))
            chunk, self.skip = chunk[dropped:], self.skip - dropped
            self.position += dropped
        self.buffer += chunk
        while True:
            end = self.buffer.find(b"\n", self.scanned)
            if end < 0:
                self.scanned = len(self.buffer)  # never scan the same bytes twice
                return
            line = bytes(self.buffer[:end])
            del self.buffer[:end + 1]
            self.scanned = 0
            self.position += end + 1
            if line.strip():
                self.taker.take(line, self.position)

    def close(self) -> None:
        if self.buffer.strip():
            self.position += len(self.buffer)
            self.taker.take(bytes(self.buffer), self.position)
        self.buffer.clear()


class _LineTaker:
    """Turns one result line into a checked image on disk and a job in the ledger."""

    def __init__(self, job: BatchJob, ledger: BatchLedger, settings: config.Settings, row: dict):
        self.job, self.ledger, self.settings, self.row = job, ledger, settings, row
        self.session = session().store(settings).session
        self.by_key = {line.key: line for line in ledger.lines(job.id)}

    def take(self, raw: bytes | dict, offset: int | None) -> None:
        parsed = bw.parse_line(raw)
        line = self.by_key.get(parsed.key) if parsed.key is not None else None
        if line is None:
            log.warning("batch %s: a result line for unknown key %r", self.job.id, parsed.key)
            if offset is not None:
                self.ledger.update(self.job.id, download_offset=offset)
            return
        if line.job_id is not None:  # recorded before a restart: only move the offset on
            if offset is not None:
                self.ledger.update(self.job.id, download_offset=offset)
            return
        result, attempt = self._result(line, parsed)
        if self.ledger.record_line(self.job.id, self.session, line, result, attempt, offset,
                                   self.settings.provider):
            self.by_key[line.key] = LineRow(**{**line.__dict__, "job_id": result.job_id})
            if result.success:
                self.job._changed(done_count=self.job.done_count + 1,
                                  cost_usd=round(self.job.cost_usd + result.cost_usd, 6))
            else:
                self.job._changed(failed_count=self.job.failed_count + 1,
                                  cost_usd=round(self.job.cost_usd + result.cost_usd, 6))

    def _result(self, line: LineRow, parsed: bw.LineResult) -> tuple[GenerationResult, Attempt]:
        model = self.settings.model
        turnaround = (time.time() - self.row["created"]) / self.settings.time_scale
        detail = f"batch {self.job.name} line {line.key}"
        request = Request(prompt=line.prompt, size=line.size, aspect=line.aspect, model=model,
                          provider=self.settings.provider)
        delivered, error, path = None, parsed.error, None
        counted = parsed.tokens.as_row() if parsed.tokens else {}  # the ledger's token columns
        if parsed.image is not None:
            try:
                delivered = checks.check(
                    ParsedImage(data=parsed.image, mime=parsed.mime, tokens=parsed.tokens,
                                simulated=self.job.simulated),
                    request, line.size, model)
            except BadResponse as exc:
                error = exc.one_line()
        if delivered is not None:
            cost = round(delivered.cost * bw.BATCH_PRICE_FACTOR, 6)
            path = self.ledger.save_image(
                self.ledger.image_path(self.job.id, line, delivered.resolution, delivered.fmt),
                delivered.data)
            attempt = Attempt(number=1, resolution=line.size, model=model,
                              provider=self.settings.provider, outcome="ok", http_status=200,
                              waited_s=0.0, elapsed_s=turnaround, billed="yes", cost_usd=cost,
                              detail=f"{detail}: {delivered.detail}", width=delivered.width,
                              height=delivered.height, **counted)
        else:
            billed = parsed.billed and parsed.tokens is not None
            cost = round(pricing.cost(model, line.size, parsed.tokens, image=False)
                         * bw.BATCH_PRICE_FACTOR, 6) if billed else 0.0
            blocked = "blocked" in (error or "") or "SAFETY" in (error or "")
            attempt = Attempt(number=1, resolution=line.size, model=model,
                              provider=self.settings.provider,
                              outcome="blocked" if blocked else "server_error", http_status=200,
                              waited_s=0.0, elapsed_s=turnaround, billed="yes" if billed else "no",
                              cost_usd=cost, detail=f"{detail}: {error}", **counted)
        result = GenerationResult(
            success=delivered is not None, requested=line.size,
            resolution=delivered.resolution if delivered else None,
            downgraded=bool(delivered and delivered.silent),
            width=delivered.width if delivered else None,
            height=delivered.height if delivered else None, image_path=path, model=model,
            attempts=[attempt], elapsed_s=turnaround, cost_usd=attempt.cost_usd,
            cost_unknown_usd=0.0, error=None if delivered else error,
            simulated=self.job.simulated, prompt=line.prompt,
            job_id=f"{self.job.id}-{line.number:05d}",
            silent_downgrade=bool(delivered and delivered.silent))
        return result, attempt


def _same_origin(url: str, base: str) -> bool:
    a, b = httpx.URL(url), httpx.URL(base)
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _write_jsonl(path: Path, lines: list[bw.Line]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(bw.jsonl_line(line))
    return path.stat().st_size


def _http_error(what: str, response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.reason_phrase
    return f"{what} answered HTTP {response.status_code}: {bw._one_line(message, 160)}"
