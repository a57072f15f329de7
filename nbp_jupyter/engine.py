"""Runs one job: asks the policy, sends each attempt, checks the image, records everything.

The only module that does network I/O. Foreign errors (httpx, asyncio timeouts)
become nbp_jupyter errors here, at one border.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from . import __version__, checks
from . import policy as pol
from . import pricing, providers, sizes, turns
from .answer_stream import AnswerStream
from .checks import Delivered
from .config import Settings, proxy_for
from .errors import AttemptError, AttemptTimeout, BadResponse, Cancelled, ConnectionFailed
from .events import AttemptFailed, AttemptStarted, Event, FellBack, Finished, Waiting
from .slots import Slots
from .store import Store
from .types import Attempt, GenerationResult, Request

# Split timeouts (docs/facts.md "The seed articles' client policy"): connect 10 s, write
# 30 s (a request with 14 reference images is up to 20 MB), pool 10 s; read is the
# attempt's own timeout from the policy.
CONNECT_S, WRITE_S, POOL_S = 10.0, 30.0, 10.0
# Learned timeouts and hedge points move slowly: no need to query the ledger per attempt.
LEARN_TTL_S = 2.0
# Real seconds an attempt gets at least when time is simulated (time_scale < 1): at 0.001
# a 1K cut of 150 s is 0.15 s, less than a loaded machine needs to render and send the answer.
SIMULATED_FLOOR_S = 0.3
# Service seconds we listen past our own deadline when the server was told it (Gemini's
# X-Server-Timeout): at that deadline the server ends the call itself with a 504
# DEADLINE_EXCEEDED, which is not billed (docs/facts.md "The Gemini wire as the SDK speaks
# it"); cutting at the same instant would leave the call's cost unknown. One round trip
# and the server's clock starting a little after ours fit well within it.
SERVER_DEADLINE_GRACE_S = 10.0
# The session-wide evidence the policy reads (policy.regime): the last few dozen finished
# attempts per endpoint and model, of every job.
EVIDENCE_KEPT = 64
# Checking an image (header, chunk checksums) holds the GIL for most of its work, so more
# threads buy no speed.
_DECODERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nbp-decode")
# Decoded image bytes are written to their file in batches this large, one batch in flight
# per answer while the next arrives: 20 answers hold at most ~80 MB between them.
WRITE_BATCH = 2 << 20  # a 1K answer's image (~1 MB) is written once, with its check
REFUSED_FOLDER = "refused"  # under images/: paid for, not delivered
USER_AGENT = f"nbp-jupyter/{__version__}"
# TCP keepalive so idle NATs and load balancers (60-100 s idle cut, docs/facts.md
# "Networks") see traffic during a silent 4K call: first probe after 30 s, then every 15 s.
KEEPALIVE = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)] + [
    (socket.IPPROTO_TCP, getattr(socket, name), value)
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4))
    if hasattr(socket, name)]


@dataclass
class Plan:
    """Everything one job needs; `base_url` is resolved (the simulator's when provider=sim)."""

    job_id: str
    request: Request
    settings: Settings
    base_url: str
    policy: pol.RetryPolicy
    rng: random.Random = field(default_factory=random.Random)
    alternate_urls: dict[str, str] = field(default_factory=dict)  # provider -> its base URL
    slots: Slots | None = None  # the concurrency limit a hedge must also respect

    def endpoint(self, provider: str | None) -> tuple[Settings, str]:
        """Settings and base URL for a rung: the job's own, or a fallback provider's."""
        settings = self.settings.for_provider(provider)
        if settings is self.settings:
            return settings, self.base_url
        return settings, self.alternate_urls[settings.provider]


class _Run:
    """One job's attempts so far; shared by the main attempt and its hedge."""

    def __init__(self, plan: Plan, store: Store, emit: Callable[[Event], None], start: float):
        self.plan, self.store, self.emit, self.start = plan, store, emit, start
        self.history: list[pol.Past] = []
        self.attempts: list[Attempt] = []
        self.unknown_cost = 0.0
        self.superseded_by: str | None = None  # the size whose image made the race's loser moot
        self._numbers = 0

    def now(self) -> float:
        """Service seconds since the job started."""
        return (asyncio.get_running_loop().time() - self.start) / self.plan.settings.time_scale

    def next_number(self) -> int:
        self._numbers += 1
        return self._numbers


class _Sending:
    """Whether an attempt's request may have reached the service: not while it is built, waits
    for a connection or connects; from the first byte of its headers on (httpx's "trace"
    request extension, <https://www.python-httpx.org/advanced/extensions/>)."""

    began = False

    async def trace(self, event: str, info: dict) -> None:
        if event.endswith("send_request_headers.started"):
            self.began = True


class Engine:
    def __init__(self, store_for: Callable[[Settings], Store]):
        self._store_for = store_for
        self._clients: dict[tuple[str, int], httpx.AsyncClient] = {}
        self._learned_cache: dict[tuple, tuple[float, dict]] = {}
        self._seen: dict[tuple[str, str], collections.deque[pol.Seen]] = {}

    def client(self, base_url: str, limit: int) -> httpx.AsyncClient:
        """One pooled HTTP/1.1 client per endpoint (docs/facts.md: HTTP/1.1 for long calls).

        The environment is honoured as httpx and the official SDKs honour it: HTTPS_PROXY /
        HTTP_PROXY / ALL_PROXY / NO_PROXY pick the proxy, SSL_CERT_FILE / SSL_CERT_DIR the CAs.
        httpx skips environment proxies when given a transport, so the proxy is resolved here.
        """
        key = (base_url, limit)
        if key not in self._clients:
            transport = httpx.AsyncHTTPTransport(
                http1=True, http2=False, socket_options=KEEPALIVE, retries=0, trust_env=True,
                proxy=proxy_for(base_url),
                limits=httpx.Limits(max_connections=limit * 2, max_keepalive_connections=limit))
            self._clients[key] = httpx.AsyncClient(
                transport=transport, trust_env=True, follow_redirects=False,
                headers={"user-agent": USER_AGENT})
        return self._clients[key]

    async def _learned(self, store: Store, policy: pol.RetryPolicy, model: str,
                       scale: float) -> tuple[dict[str, float], dict[str, float]]:
        """Learned (timeouts, hedge points) per size, re-read from the ledger at most every
        LEARN_TTL_S service seconds."""
        if not (policy.learn_timeouts or (policy.hedge_after and policy.learn_hedge)):
            return {}, {}
        key = (str(store.path), model, tuple(policy.ladder))
        now = asyncio.get_running_loop().time()
        cached = self._learned_cache.get(key)
        if cached is None or now - cached[0] > LEARN_TTL_S * scale:
            cached = (now, await asyncio.to_thread(_learned, store, policy, model))
            self._learned_cache[key] = cached
        return cached[1]

    def _evidence(self, plan: Plan) -> collections.deque[pol.Seen]:
        """Finished attempts of every job at this job's own endpoint and model."""
        key = (plan.base_url, plan.settings.model)
        return self._seen.setdefault(key, collections.deque(maxlen=EVIDENCE_KEPT))

    def _regime(self, plan: Plan) -> pol.Regime:
        now = asyncio.get_running_loop().time() / plan.settings.time_scale
        return pol.regime(self._evidence(plan), now, plan.policy)

    def _saw(self, run: _Run, rung: pol.Rung, outcome: str, took: float, timeout: float) -> None:
        if rung.provider is None and rung.model is None:  # evidence about the job's own endpoint
            now = asyncio.get_running_loop().time() / run.plan.settings.time_scale
            self._evidence(run.plan).append(pol.Seen(rung.resolution, outcome, now, took,
                                                     timeout))

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def run(self, plan: Plan, emit: Callable[[Event], None]) -> GenerationResult:
        loop = asyncio.get_running_loop()
        settings, request, scale = plan.settings, plan.request, plan.settings.time_scale
        store = self._store_for(settings)
        ladder = plan.policy.ladder
        run = _Run(plan, store, emit, loop.time())
        won: tuple[Delivered, Attempt] | None = None
        error: str | None = None
        status = "failed"
        image_path = None
        await asyncio.to_thread(store.begin_job, plan.job_id, request, settings.model)
        try:
            while True:
                now = run.now()
                learned, hedge_points = await self._learned(store, plan.policy, settings.model,
                                                            scale)
                regime = self._regime(plan)
                decision = pol.decide(plan.policy, run.history, now, plan.rng.random(), learned,
                                      regime)
                if isinstance(decision, pol.Stop):
                    last = max(run.attempts, key=lambda a: a.number) if run.attempts else None
                    error = (f"{last.detail} ({decision.reason})" if last and last.outcome != "ok"
                             else decision.reason)
                    break
                previous = run.history[-1].rung if run.history else 0
                if decision.rung != previous:
                    emit(FellBack(plan.job_id, ladder[previous].label(),
                                  ladder[decision.rung].label(), decision.reason))
                if decision.wait_s > 0:
                    emit(Waiting(plan.job_id, decision.wait_s, decision.reason))
                    await asyncio.sleep(decision.wait_s * scale)
                hedge = pol.hedge(plan.policy, replace(decision, wait_s=0.0), run.now(), learned,
                                  hedge_points, regime)
                won = await self._race(run, decision, hedge)
                if won is not None:
                    status = "done"
                    break
        except asyncio.CancelledError:
            status, error = "cancelled", "cancelled by you"
        if won is not None:  # on disk and in the ledger since the thread that checked it
            image_path = won[0].kept
        delivered = won[0] if won else None
        attempts = sorted(run.attempts, key=lambda a: a.number)
        result = GenerationResult(
            success=delivered is not None, requested=request.size,
            resolution=delivered.resolution if delivered else None,
            downgraded=bool(delivered) and sizes.rank(delivered.resolution) < sizes.rank(request.size),
            width=delivered.width if delivered else None,
            height=delivered.height if delivered else None,
            image_path=image_path,
            model=won[1].model if won else attempts[-1].model if attempts else settings.model,
            attempts=attempts,
            elapsed_s=(loop.time() - run.start) / scale,
            cost_usd=round(sum(a.cost_usd for a in attempts), 6),
            cost_unknown_usd=round(run.unknown_cost, 6), error=None if delivered else error,
            simulated=settings.provider == "sim" or bool(delivered and delivered.simulated),
            prompt=request.prompt, job_id=plan.job_id,
            silent_downgrade=bool(delivered and delivered.silent),
            turn=request.turn, refines=request.parent,
            text=delivered.text if delivered else "",
            grounding=delivered.grounding if delivered else None)
        # off the loop (it times other jobs' attempts), and written even if a cancel lands now
        await _finish_anyway(asyncio.to_thread(store.finish_job, result, status))
        emit(Finished(plan.job_id, result))
        return result

    async def _race(self, run: _Run, main: pol.Try,
                    hedge: pol.Try | None) -> tuple[Delivered, Attempt] | None:
        """Fly the main attempt and, if it is still out after `hedge.wait_s`, the hedge beside
        it; the first image wins and the other is cancelled. None when no image came."""
        scale = run.plan.settings.time_scale
        flights = [asyncio.ensure_future(self._fly(run, main))]
        try:
            if hedge is not None:
                done, _ = await asyncio.wait(flights, timeout=hedge.wait_s * scale)
                slots = run.plan.slots
                if not done and await _slot_beside(slots, flights[0]):
                    ladder = run.plan.policy.ladder
                    run.emit(FellBack(run.plan.job_id, ladder[main.rung].label(),
                                      ladder[hedge.rung].label(), hedge.reason, hedge=True))
                    flights.append(asyncio.ensure_future(
                        self._fly(run, replace(hedge, wait_s=0.0))))
                    if slots is not None:  # released however the hedge ends, even unstarted
                        flights[-1].add_done_callback(lambda _: slots.release())
            pending = set(flights)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                first = next((task.result() for task in done if task.result()), None)
                if first is not None:  # the other call is cancelled below, and told why
                    run.superseded_by = first[1].resolution
                    break
        except asyncio.CancelledError as exc:
            cancelled = exc
        else:
            cancelled = None
        finally:  # however the race ends, no attempt outlives it: the slower one is too late
            for task in flights:
                task.cancel()
            ended = await asyncio.gather(*flights, return_exceptions=True)
        # Both may have landed at once: each image was kept on disk as it was checked.
        landed = [got for got in ended if isinstance(got, tuple)]
        if len(landed) > 1 and landed[0][0].turn is not None:
            # each wrote its own turn as it was kept; the conversation goes on from the winner
            await _finish_anyway(asyncio.to_thread(run.store.save_turn, landed[0][0].turn))
        if landed:  # even if a cancel came as it landed: the image is paid for
            return landed[0]
        if cancelled is not None:
            raise cancelled
        run.history.sort(key=lambda past: (past.started_s, past.rung))
        return None

    async def _fly(self, run: _Run, decision: pol.Try) -> tuple[Delivered, Attempt] | None:
        """One attempt, recorded from start to end; returns the image, or None if it failed."""
        plan, store = run.plan, run.store
        scale = plan.settings.time_scale
        rung = plan.policy.ladder[decision.rung]
        endpoint, url = plan.endpoint(rung.provider)
        model = rung.model or endpoint.model
        number = run.next_number()
        tries = sum(1 for p in run.history if p.rung == decision.rung) + 1
        estimate = pricing.image_price(model, rung.resolution)
        started = run.now()
        # written whole even if a cancel comes meanwhile: the cancel's outcome goes after it
        row = asyncio.ensure_future(asyncio.to_thread(
            store.begin_attempt, plan.job_id, number, rung.resolution, model, endpoint.provider,
            decision.wait_s, estimate))
        began = time.monotonic()  # again once the row is written
        common = dict(number=number, resolution=rung.resolution, model=model,
                      provider=endpoint.provider, waited_s=decision.wait_s)

        def keep(got: Delivered) -> tuple[Delivered, Attempt]:
            """In the thread that checked the image: into place and into the ledger."""
            attempt = Attempt(**common, outcome="ok", http_status=200,
                              elapsed_s=(time.monotonic() - began) / scale, billed="yes",
                              cost_usd=got.cost, detail=got.detail, width=got.width,
                              height=got.height, **_token_columns(got.tokens),
                              search_queries=got.grounding.billed_queries
                              if got.grounding is not None else None)
            got.kept = _keep(store, plan.job_id, plan.request, got, attempt)
            return got, attempt

        sending = _Sending()
        try:
            await asyncio.shield(row)
            run.emit(AttemptStarted(plan.job_id, number, rung.resolution, model,
                                    decision.timeout_s, tries,
                                    plan.policy.attempts.get(rung.resolution, 1)))
            began = time.monotonic()  # the loop's clock too; read in keep() by a worker thread
            got, attempt = await self._attempt(plan, store, endpoint, url, rung.resolution,
                                               model, decision.timeout_s, keep, sending)
        except AttemptError as exc:
            took = (time.monotonic() - began) / scale
            exc = _at_our_deadline(exc, took, decision.timeout_s)
            cost = pricing.cost(model, rung.resolution, exc.tokens, exc.gateway_cost,
                                image=False) if exc.billed == "yes" else 0.0
            if exc.billed == "unknown":
                run.unknown_cost += estimate
            attempt = Attempt(**common, outcome=exc.outcome, http_status=exc.http_status,
                              elapsed_s=took, billed=exc.billed, cost_usd=cost,
                              detail=_without_key(exc.one_line(), endpoint.api_key),
                              **_token_columns(exc.tokens))
            run.attempts.append(attempt)
            run.history.append(pol.Past(decision.rung, exc.outcome, started, took,
                                        decision.timeout_s, exc.retry_after_s))
            self._saw(run, rung, exc.outcome, took, decision.timeout_s)
            await asyncio.to_thread(store.end_attempt, plan.job_id, attempt)
            run.emit(AttemptFailed(plan.job_id, attempt, exc.hint, exc.gateway_retried))
            return None
        except asyncio.CancelledError:
            # A request that was out may still be made and billed; one stopped while it was
            # built or connected never reached the service (docs/facts.md "Prices and tokens").
            out = sending.began
            if out:
                run.unknown_cost += estimate
            attempt = Attempt(**common, outcome="cancelled", http_status=None,
                              elapsed_s=(time.monotonic() - began) / scale,
                              billed="unknown" if out else "no", cost_usd=0.0,
                              detail=self._cancelled_detail(run, out))
            run.attempts.append(attempt)

            async def record() -> None:
                await asyncio.gather(row, return_exceptions=True)  # its row, then its outcome
                await asyncio.to_thread(store.end_attempt, plan.job_id, attempt)
            await _finish_anyway(record())
            raise
        run.attempts.append(attempt)  # its ledger row was written with the image (keep)
        run.history.append(pol.Past(decision.rung, "ok", started, attempt.elapsed_s,
                                    decision.timeout_s))
        self._saw(run, rung, "ok", attempt.elapsed_s, decision.timeout_s)
        return got, attempt

    @staticmethod
    def _cancelled_detail(run: _Run, out: bool) -> str:
        if run.superseded_by:
            return (f"stopped: the {run.superseded_by} call beside it delivered first; " + (
                "a request already sent may still be billed" if out else
                "it was stopped before it was sent, so it is not billed"))
        if out:
            return Cancelled("cancelled mid-flight").one_line()
        unsent = Cancelled("cancelled before the request was sent",
                           hint="cancelled by you; nothing went out, so nothing is billed")
        return unsent.one_line()

    async def _attempt(self, plan: Plan, store: Store, settings: Settings, base_url: str,
                       resolution: str, model: str, timeout_s: float,
                       keep: Callable[[Delivered], tuple[Delivered, Attempt]],
                       sending: _Sending) -> tuple[Delivered, Attempt]:
        """Send, stream, check and keep one attempt's image; its typed error otherwise.
        `sending` learns when the request starts to leave."""
        scale = settings.time_scale

        def build() -> tuple[providers.Wire, httpx.Request]:
            # a refine on a wire without conversations goes as an edit of its last image
            sent = providers.sendable(settings.wire, plan.request)
            wire = providers.for_request(settings.wire, sent)
            return wire, wire.build(sent, resolution, model, base_url, settings.api_key or "",
                                    timeout_s=timeout_s)
        # In a thread: a refine's turns are up to 20 MB to base64 and JSON (~0.1 s), which on
        # the loop would stall every other job's attempt clock.
        wire, http_request = await asyncio.to_thread(build)
        http_request.headers["user-agent"] = USER_AGENT  # send() adds no client defaults
        budget = _real_s(timeout_s, scale)
        if "x-server-timeout" in http_request.headers:  # hear its free 504 rather than cut
            budget += SERVER_DEADLINE_GRACE_S * scale
        http_request.extensions["timeout"] = httpx.Timeout(
            budget, connect=min(_real_s(CONNECT_S, scale), budget),
            write=_real_s(WRITE_S, scale), pool=_real_s(POOL_S, scale)).as_dict()
        http_request.extensions["trace"] = sending.trace
        client = self.client(base_url, settings.max_concurrency)
        loop = asyncio.get_running_loop()
        began = loop.time()
        # The wall clock bounds the whole attempt: a slow drip cannot dodge it.
        inbox: list[tuple[int, httpx.Headers, AnswerStream]] = []
        try:
            status, headers, answer = await _bounded(
                _receive(client, http_request, settings.max_response_bytes, store.images,
                         inbox), budget, timeout_s)
        except BaseException as exc:
            streamed = inbox[0][2] if inbox else None
            # the clock, a cancel or the network (not our disk: a write that failed)
            cut = isinstance(exc, (AttemptError, asyncio.CancelledError))
            if streamed is None or not (cut and streamed.complete()):
                if streamed is not None:  # no file stays of an answer cut short
                    await _finish_anyway(asyncio.to_thread(streamed.discard))
                raise
            # The cut came after the answer's last byte (while the transport still owed the
            # body's end, or its last write ran): the answer is whole and paid for.
            status, headers, answer = inbox[0]
        if isinstance(answer, AnswerStream):
            # Once parsed and checked the image is paid for: a cancel now still delivers it
            # (the race keeps it), and its spill files never outlive the check.
            refused = functools.partial(_keep_refused, store, plan.job_id, plan.request.prompt,
                                        resolution)
            parsed = await _finish_anyway(loop.run_in_executor(
                _DECODERS, checks.settle, answer, wire, status, headers, plan.request,
                resolution, model, keep, refused))
        else:  # not a 200: the provider says which error it is
            parsed = await loop.run_in_executor(_DECODERS, wire.parse, status, headers, answer)
        if isinstance(parsed, tuple):
            return parsed
        if parsed.url:  # fetched without our key: the link is the gateway's business
            left = max(budget - (loop.time() - began), 0.001)
            get = client.build_request("GET", parsed.url)
            get.extensions["timeout"] = httpx.Timeout(left).as_dict()
            code, _, data = await _bounded(_fetch(client, get, settings.max_response_bytes), left,
                                           timeout_s)
            if code != 200:
                raise BadResponse(f"image URL answered HTTP {code}", http_status=code,
                                  billed="unknown")
            parsed = type(parsed)(**{**parsed.__dict__, "data": data, "url": None})
        return await _finish_anyway(asyncio.to_thread(
            lambda: keep(checks.check(parsed, plan.request, resolution, model))))


def _without_key(text: str, api_key: str | None) -> str:
    """A service's error text with our key masked: the ledger keeps the text, and a gateway
    that echoes the request's key in its message must not put the key there."""
    return text.replace(api_key, "[your key]") if api_key and len(api_key) >= 4 else text


def _real_s(service_s: float, scale: float) -> float:
    """Real seconds for a limit given in service seconds. In simulated time (scale < 1) at
    least SIMULATED_FLOOR_S: the simulator's own CPU work, and a busy machine's stalls in
    connecting or writing, must not count as the service being slow."""
    real = service_s * scale
    return max(real, SIMULATED_FLOOR_S) if scale < 1 else real


def _at_our_deadline(exc: AttemptError, took: float, timeout_s: float) -> AttemptError:
    """A 504 that came at the deadline we sent the server is our own cut, made by the server
    and not billed: to the policy it is a timeout (the size was not shown to be failing
    sooner than that), to the ledger a call of known cost."""
    if exc.http_status == 504 and exc.outcome == "server_error" and took >= 0.98 * timeout_s:
        return AttemptTimeout(f"the service ended the call at our {timeout_s:.0f} s deadline "
                              "(HTTP 504 DEADLINE_EXCEEDED)", http_status=504, billed="no",
                              hint="not billed; the next attempt is up to the policy")
    return exc


async def _slot_beside(slots: Slots | None, main: asyncio.Future) -> bool:
    """A slot for a hedge under the concurrency limit: the next to come free, ahead of jobs
    that have not started (nbp_jupyter/slots.py), but only while the main attempt still
    flies. Waiting no longer than it cannot deadlock a session whose every slot is held by
    a job waiting to hedge: each main attempt ends by its timeout."""
    if slots is None:
        return True
    wanted = asyncio.ensure_future(slots.acquire(first=True))
    cancelled: asyncio.CancelledError | None = None
    try:
        await asyncio.wait({wanted, main}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError as exc:
        cancelled = exc
    wanted.cancel()  # a no-op once it holds the slot
    await asyncio.gather(wanted, return_exceptions=True)
    got = not wanted.cancelled() and wanted.exception() is None
    if got and (cancelled or main.done()):  # no hedge after all: the slot goes on
        slots.release()
        got = False
    if cancelled is not None:
        raise cancelled
    return got


def _token_columns(tokens: object) -> dict[str, int | None]:
    return pricing.as_tokens(tokens).as_row() if tokens is not None else {}


def _learned(store: Store, policy: pol.RetryPolicy,
             model: str) -> tuple[dict[str, float], dict[str, float]]:
    # Per resolution: the first rung of each size (the job's own model and provider) sets
    # them; fallback providers keep the published figures.
    timeouts: dict[str, float] = {}
    hedges: dict[str, float] = {}
    for rung in policy.ladder:
        if rung.provider is not None or rung.resolution in timeouts or rung.resolution in hedges:
            continue
        latencies = store.latencies(rung.model or model, rung.resolution)
        for out, learn in ((timeouts, pol.learned_timeout), (hedges, pol.learned_hedge)):
            value = learn(rung.resolution, latencies)
            if value is not None:
                out[rung.resolution] = value
    return timeouts, hedges


def _keep(store: Store, job_id: str, request: Request, got: Delivered, attempt: Attempt):
    prompt = request.prompt
    if got.path is not None:  # streamed to disk and checked there: renamed into place
        path = store.adopt_image(job_id, prompt, got.resolution, got.path, got.fmt)
    else:
        path = store.save_image(job_id, prompt, got.resolution, got.data, got.fmt)
    # the conversation's turn goes into the ledger in the same commit as the image
    got.turn = turns.exchange(job_id, request, got.turn_parts, str(path),
                              f"image/{got.fmt.replace('jpg', 'jpeg')}", attempt.provider)
    store.end_attempt(job_id, attempt, image_path=path, turn=got.turn)
    return path


def _keep_refused(store: Store, job_id: str, prompt: str, resolution: str,
                  paths: list[Path]) -> str:
    """Images the service billed but we refused (too large, one too many) stay on disk, in
    images/refused/, apart from the images jobs delivered; returns where, for the ledger."""
    for number, path in enumerate(paths, 1):
        store.adopt_image(job_id, prompt, f"{resolution}-refused{number}", path,
                          checks.extension(path), folder=REFUSED_FOLDER)
    return f"{store.images / REFUSED_FOLDER}"


async def _finish_anyway(coro):
    """Await `coro` to the end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        return await task


async def _bounded(coro, budget: float, timeout_s: float):
    try:
        return await asyncio.wait_for(coro, budget)
    except asyncio.TimeoutError:
        raise AttemptTimeout(f"no complete answer within {timeout_s:.0f} s") from None


async def _fetch(client: httpx.AsyncClient, request: httpx.Request,
                 cap: int) -> tuple[int, httpx.Headers, bytes]:
    """Send and read the whole body, refusing more than `cap` bytes while it streams."""
    return await _exchange(client, request, cap, lambda response: _whole(response, cap))


async def _receive(client: httpx.AsyncClient, request: httpx.Request, cap: int, folder,
                   inbox: list) -> tuple[int, httpx.Headers, bytes | AnswerStream]:
    """Send; a 200's body streams through an AnswerStream that decodes its images into
    files under `folder` as they arrive. Any other answer is read whole (an error's JSON).

    The stream goes into `inbox` (with the status and headers) as it starts: however the
    read ends, the caller settles or discards it, after its last write has returned."""
    async def read(response: httpx.Response) -> bytes | AnswerStream:
        if response.status_code != 200:
            return await _whole(response, cap)
        stream = AnswerStream(folder)
        inbox.append((response.status_code, response.headers, stream))
        loop = asyncio.get_running_loop()
        writing = None
        try:
            async for chunk in _capped(response, cap):
                stream.feed(chunk)
                if stream.pending_bytes() >= WRITE_BATCH:
                    if writing is not None:  # one batch in flight: memory stays bounded
                        await writing
                    writing = loop.run_in_executor(None, stream.write, stream.take())
            if writing is not None:
                await writing
        except BaseException:  # cut off, over the cap, timed out or cancelled
            if writing is not None:  # the stream is left still, for the caller
                await _finish_anyway(asyncio.gather(writing, return_exceptions=True))
            raise
        return stream

    return await _exchange(client, request, cap, read)


async def _whole(response: httpx.Response, cap: int) -> bytearray:
    body = bytearray()  # grown in place: no second copy of a 30 MB body at the end
    async for chunk in _capped(response, cap):
        body += chunk
    return body


async def _capped(response: httpx.Response, cap: int):
    """The body's (decoded) bytes, refused once they pass `cap`."""
    seen = 0
    async for chunk in response.aiter_bytes():
        seen += len(chunk)
        if seen > cap:
            raise BadResponse(f"answer over the {cap}-byte cap",
                              http_status=response.status_code, billed="unknown")
        yield chunk


async def _exchange(client: httpx.AsyncClient, request: httpx.Request, cap: int, read):
    """Send `request`, hand its response to `read`; httpx's errors become ours here."""
    try:
        response = await client.send(request, stream=True)
        try:
            declared = int(response.headers.get("content-length") or 0)
            if declared > cap:
                raise BadResponse(f"answer of {declared} bytes is over the {cap}-byte cap",
                                  http_status=response.status_code, billed="unknown")
            return response.status_code, response.headers, await read(response)
        finally:
            await response.aclose()
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise ConnectionFailed(f"could not connect to {request.url.host}: {_why(exc)}",
                               billed="no", hint="check NBP_BASE_URL and the network") from None
    except httpx.TimeoutException as exc:
        raise AttemptTimeout(f"no data for too long ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise ConnectionFailed(f"connection lost mid-answer: {_why(exc)}", billed="unknown",
                               hint="a proxy or NAT may have cut the idle connection") from None


def _why(exc: Exception) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__
