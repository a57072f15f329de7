"""The built-in simulators a keyless session talks to, started on first use.

Kept apart from the jobs layer so that running jobs does not depend on how the simulator
starts: the session only asks for "a URL for these settings".
"""

from __future__ import annotations

import os
import threading

from . import sim
from .config import Settings


class LocalSimulators:
    """One simulator per (profile, time scale), each on its own loopback port."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[tuple[str, float], sim.SimServer] = {}

    def url(self, settings: Settings) -> str:
        """The URL of a simulator playing these settings' profile and clock."""
        key = (settings.sim_profile, settings.time_scale)
        with self._lock:
            if key not in self._servers:
                self._servers[key] = sim.start(profile=settings.sim_profile,
                                               time_scale=settings.time_scale,
                                               seed=int.from_bytes(os.urandom(4), "big"),
                                               # simulated batches outlive a kernel, as real ones do
                                               state_dir=str(settings.home / "simulator"))
            return self._servers[key].url

    def servers(self) -> list[sim.SimServer]:
        with self._lock:
            return list(self._servers.values())

    def stop(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.stop()
