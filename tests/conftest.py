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


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private NBP_HOME, no keys in the environment, and a fresh session afterwards."""
    from nbp_jupyter import jobs

    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "NBP_API_KEY",
                 "NBP_PROVIDER", "NBP_BASE_URL", "NBP_MODEL", "NBP_TIME_SCALE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "nbp-home"))
    yield tmp_path / "nbp-home"
    jobs.reset_session()


@pytest.fixture(autouse=True)
def _collect_garbage_per_test():
    """Collect cycles after every test, so a leaked socket or file fails the test that leaked
    it (ResourceWarnings are errors here) instead of the end of the run."""
    yield
    import gc
    gc.collect()


@pytest.fixture(scope="session")
def litellm_gateway(tmp_path_factory):
    """A LiteLLM proxy (docs-style config, no drop_params) in front of a session simulator."""
    from tests import gateway

    server = sim.start(profile="ideal", time_scale=0.02, seed=11)
    try:
        proxy, stop = gateway.start(server, tmp_path_factory.mktemp("litellm"))
    except BaseException:
        server.stop()
        raise
    try:
        yield proxy
    finally:
        # The simulator first: a call still hanging behind the gateway ends, and the proxy
        # then shuts down at once instead of waiting for it.
        server.stop()
        stop()
