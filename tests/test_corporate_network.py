"""Behind a company proxy with its own CA: HTTPS_PROXY / NO_PROXY and SSL_CERT_FILE are
honoured as httpx and the official SDKs honour them. A real CONNECT proxy (proxy.py) and a
TLS simulator whose certificate comes from a throwaway CA (trustme), both on loopback."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trustme

import nbp_jupyter as nbp
from nbp_jupyter import config, jobs, sim
from tests.gateway import free_port, stop_process

PROXY_USER, PROXY_PASSWORD = "alice", "proxy-secret"


@pytest.fixture
def company_ca(tmp_path):
    """A throwaway CA, its bundle on disk, and a TLS simulator with a certificate from it."""
    ca = trustme.CA()
    bundle = tmp_path / "company-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = sim.start(profile="ideal", time_scale=0.01, tls=context)
    yield server, bundle
    server.stop()


@pytest.fixture
def connect_proxy(tmp_path):
    """proxy.py on loopback, asking for a user and password; its access log as a Path."""
    cli = Path(sys.executable).with_name("proxy")
    if not cli.exists():
        message = "needs proxy.py (in the [test] extra)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    port, log = free_port(), tmp_path / "proxy.log"
    process = subprocess.Popen(
        [str(cli), "--hostname", "127.0.0.1", "--port", str(port), "--num-workers", "1",
         "--num-acceptors", "1", "--basic-auth", f"{PROXY_USER}:{PROXY_PASSWORD}",
         "--log-level", "INFO", "--log-file", str(log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:  # up when it answers, even if only to say "authenticate"
        try:
            with httpx.Client(trust_env=False) as client:
                client.get(f"http://127.0.0.1:{port}/", timeout=2)
            break
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                pytest.fail("proxy.py did not start")
            time.sleep(0.2)
    yield f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}", log
    stop_process(process)


@pytest.fixture
def clean_network_env(monkeypatch):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE",
                 "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    yield monkeypatch
    jobs.reset_session()  # clients are kept per session: the next test builds its own


def proxy_saw(log: Path, needle: str) -> bool:
    """Whether the proxy's access log names `needle` once our connections are closed (it
    writes a line when a tunnel ends)."""
    jobs.reset_session()
    deadline = time.monotonic() + 10
    while needle not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return needle in log.read_text()


def generate(server):
    return nbp.generate("a lighthouse behind the firewall", provider="gemini",
                        base_url=server.url, api_key="k", retries=0, fallback=False,
                        time_scale=0.01)


def test_through_a_connect_proxy_trusting_the_company_ca(home, company_ca, connect_proxy,
                                                        clean_network_env):
    """HTTPS_PROXY with a password and SSL_CERT_FILE: the image comes, through the proxy."""
    server, bundle = company_ca
    proxy, log = connect_proxy
    clean_network_env.setenv("HTTPS_PROXY", proxy)
    clean_network_env.setenv("SSL_CERT_FILE", str(bundle))
    result = generate(server)
    assert result.success, result.error
    assert proxy_saw(log, f"CONNECT 127.0.0.1:{server.port}")


def test_no_proxy_goes_direct(home, company_ca, connect_proxy, clean_network_env, make_sim):
    """NO_PROXY naming the host: the call does not touch the proxy."""
    server, bundle = company_ca
    proxy, log = connect_proxy
    clean_network_env.setenv("HTTPS_PROXY", proxy)
    clean_network_env.setenv("NO_PROXY", "127.0.0.1")
    clean_network_env.setenv("SSL_CERT_FILE", str(bundle))
    assert generate(server).success
    # A request we do send through the proxy afterwards shows its log is written up to here.
    marker = make_sim(profile="ideal")
    with httpx.Client(proxy=proxy, trust_env=False) as client:
        client.get(f"{marker.url}/healthz")
    assert proxy_saw(log, f"127.0.0.1:{marker.port}")
    assert f"127.0.0.1:{server.port}" not in log.read_text()


def test_unknown_ca_fails_with_a_clear_line(home, company_ca, clean_network_env):
    """Without SSL_CERT_FILE the company certificate is refused, and the attempt says why."""
    server, _ = company_ca
    result = generate(server)
    assert not result.success
    assert result.attempts[0].outcome == "connection"
    assert "CERTIFICATE_VERIFY_FAILED" in result.attempts[0].detail


def test_config_shows_the_proxy_without_its_password(home, connect_proxy, clean_network_env):
    """%nbp_config names the proxy in use and masks the credentials in its URL."""
    proxy, _ = connect_proxy
    clean_network_env.setenv("HTTPS_PROXY", proxy)
    settings = config.resolve(provider="gemini", api_key="k",
                              base_url="https://generativelanguage.googleapis.com")
    shown = settings.describe()["proxy"]
    assert shown.startswith("http://***@127.0.0.1:")
    assert PROXY_PASSWORD not in str(settings.describe()) and PROXY_USER not in shown


def test_a_proxy_does_not_loosen_the_plain_http_key_guard(home, clean_network_env):
    """With a proxy configured, a key is still refused over plain http to another host."""
    clean_network_env.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    with pytest.raises(nbp.ConfigError, match="plain http"):
        config.resolve(provider="gemini", api_key="k", base_url="http://gateway.example")
