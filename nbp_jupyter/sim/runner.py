"""Runs the simulator's asyncio server in a daemon thread and hands back a handle."""

from __future__ import annotations

import asyncio
import ssl
import threading

from .server import SimApp, SimConfig


class SimServer:
    """A running simulator: `.url`, `.log`, `.stop()`; also a context manager."""

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0,
                 tls: ssl.SSLContext | None = None):
        self.app = SimApp(config)
        self._host, self._port, self._tls = host, port, tls
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        self._thread = threading.Thread(target=self._run, name="nbp-sim", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.app.base_url = self.url

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._accept, self._host, self._port, limit=2**20,
                                     ssl=self._tls))
        except BaseException as exc:  # report a busy port to the caller, not to stderr
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Called as each connection is made: it is known to stop() at once, even if its
        handler task is cancelled before it first runs (and so would never close it)."""
        self.app._writers.add(writer)
        task = self._loop.create_task(self.app.handle(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    @property
    def config(self) -> SimConfig:
        return self.app.config

    @property
    def log(self) -> list[dict]:
        """What the simulator received, oldest first (never the key)."""
        with self.app._lock:
            return [dict(e) for e in self.app.log]

    @property
    def max_in_flight(self) -> int:
        """The most generation requests this simulator answered at the same time."""
        return self.app.max_in_flight

    def set_script(self, script) -> None:
        """Replace the queue of scripted outcomes (e.g. '503, 429:2s, ok')."""
        from .model import parse_script
        parsed = parse_script(script)
        with self.app._lock:
            self.app.script.clear()
            self.app.script.extend(parsed)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            self._server.close()
            # A connection accepted just now is wrapped in its transport by a task of the
            # loop's own: let it run, or cancelling it below leaks the raw socket.
            for _ in range(5):
                await asyncio.sleep(0)
            for writer in list(self.app._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in list(self.app._writers):  # any a cancelled handler did not close
                writer.transport.abort()
            # abort() and close() finish on the loop's next turns: let them, or the loop
            # stops with transports still open (an 'unclosed transport' warning on 3.13).
            for _ in range(3):
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SimServer {self.url} profile={self.app.profile.name}>"


def start(profile: str = "typical", time_scale: float = 1.0, seed: int = 0, script=None,
          api_key: str | None = None, realistic: bool = False, host: str = "127.0.0.1",
          port: int = 0, tls: ssl.SSLContext | None = None,
          state_dir: str | None = None, edits: bool = True) -> SimServer:
    """Start a simulator on loopback in a background thread and return its handle; with
    `tls` (a server-side SSLContext) it speaks HTTPS, like a company's TLS endpoint.
    `state_dir` keeps simulated batches and files there (they outlive the simulator);
    `edits=False` plays a gateway without /v1/images/edits."""
    if time_scale <= 0:
        raise ValueError("time_scale must be > 0 (e.g. 0.001 plays a 4K call in ~0.1 s)")
    config = SimConfig(profile=profile, time_scale=time_scale, seed=seed, script=script,
                       api_key=api_key, realistic=realistic, state_dir=state_dir, edits=edits)
    return SimServer(config, host=host, port=port, tls=tls)
