"""Shared fixtures: simulators on loopback and a private NBP_HOME per test."""

from __future__ import annotations

import pytest

from nbp_jupyter import sim


@pytest.fixture
def simulator():
    """A fast, failure-free simulator; tests set a script when they need failures."""
    with sim.start(profile="ideal", time_scale=0.001, seed=1) as server:
        yield server


@pytest.fixture
def make_sim():
    """Factory for simulators with any profile/script; all stopped at teardown."""
    servers = []

    def make(**kwargs):
        kwargs.setdefault("time_scale", 0.001)
        server = sim.start(**kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
