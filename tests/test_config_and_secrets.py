"""Settings, input checks and key handling: clear one-line errors, and the key stays secret."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

import nbp_jupyter as nbp
from nbp_jupyter import config
from nbp_jupyter.errors import ConfigError, InsecureTransport

FAKE_KEY = "fake-key-NBP-CONFIG-TEST-41b7"


@pytest.mark.parametrize("kwargs,words", [
    ({"prompt": "  "}, "prompt is empty"),
    ({"size": "8K"}, "unknown size '8K'"),
    ({"aspect": "7:5"}, "unsupported aspect '7:5'"),
    ({"images": ["/no/such/file.png"]}, "not found"),
    ({"timeout": -3}, "timeout must be a positive"),
    ({"retries": 1.5}, "retries must be a whole number"),
    ({"fallback": "2K, 9K"}, "unknown size '9K'"),
    ({"provider": "dalle"}, "unknown provider"),
    ({"sim_profile": "busy"}, "unknown simulator profile 'busy'"),  # was a traceback wall
    ({"max_concurrency": -2}, "max_concurrency must be a whole number above 0"),  # hung
    ({"max_concurrency": 0}, "max_concurrency must be"),  # was silently 8
])
def test_bad_input_is_one_clear_line_before_any_network_call(home, kwargs, words):
    """Each mistake is a ConfigError whose single line says what is wrong."""
    kwargs = {"prompt": "a cat", **kwargs}
    with pytest.raises(ConfigError) as info:
        nbp.submit(kwargs.pop("prompt"), provider=kwargs.pop("provider", "sim"), **kwargs)
    assert words in info.value.one_line() and "\n" not in info.value.one_line()


@pytest.mark.parametrize("var,value", [("NBP_TIME_SCALE", "fast"), ("NBP_MAX_CONCURRENCY", "lots"),
                                       ("NBP_MAX_RESPONSE_MB", "-1"), ("NBP_SIM_PROFILE", "busy")])
def test_a_bad_environment_variable_is_named_in_one_line(home, monkeypatch, var, value):
    """NBP_TIME_SCALE=fast ended every cell in a ValueError traceback that never named it."""
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        config.resolve()
    line = info.value.one_line()
    assert repr(value) in line and "\n" not in line
    assert var in line


def test_no_key_for_a_real_provider_names_the_variables(home):
    """Asking for Gemini without a key says which env vars to set, and about the simulator."""
    with pytest.raises(ConfigError) as info:
        config.resolve(provider="gemini")
    line = info.value.one_line()
    assert "GEMINI_API_KEY" in line and "provider='sim'" in line


def test_no_key_anywhere_means_the_simulator(home):
    """With no key in the environment the default provider is the simulator."""
    assert config.resolve().provider == "sim"


def test_key_in_env_picks_the_provider(home, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)
    settings = config.resolve()
    assert settings.provider == "gemini" and settings.api_key == FAKE_KEY
    assert FAKE_KEY not in repr(settings) and FAKE_KEY not in str(settings.describe())


@pytest.mark.parametrize("url", ["http://example.com", "http://10.1.2.3:8080/v1"])
def test_key_over_plain_http_to_another_host_is_refused(home, url):
    """A key never goes over plain http off this machine unless the user opts in."""
    with pytest.raises(InsecureTransport) as info:
        config.resolve(provider="openai", base_url=url, api_key=FAKE_KEY)
    assert "allow_insecure_http" in info.value.one_line()
    assert FAKE_KEY not in info.value.one_line()
    assert config.resolve(provider="openai", base_url=url, api_key=FAKE_KEY,
                          allow_insecure_http=True).base_url.startswith("http://")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:9"])
def test_loopback_http_is_fine(home, url):
    assert config.resolve(provider="gemini", base_url=url, api_key=FAKE_KEY).base_url == url


def test_key_never_reaches_results_ledger_or_files(home, make_sim):
    """A recognisable key appears nowhere we write or show."""
    server = make_sim(profile="ideal", time_scale=0.01, script="503, ok")
    result = nbp.generate("a fox", provider="gemini", base_url=server.url, api_key=FAKE_KEY,
                          time_scale=0.01)
    job = nbp.submit("a fox", provider="gemini", base_url=server.url, api_key=FAKE_KEY,
                     time_scale=0.01)
    job.result(5)
    assert FAKE_KEY not in repr(result) + repr(job) + result.caption() + str(nbp.history())
    for path in home.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path
    assert FAKE_KEY not in str(server.log)


def test_ledger_is_private_to_its_owner(home):
    """The ledger (prompts and spending) is created readable by its owner only."""
    nbp.generate("a fox", provider="sim", time_scale=0.001, sim_profile="ideal")
    ledger = home / "ledger.sqlite"
    assert oct(ledger.stat().st_mode & 0o777) == "0o600"
    with closing(sqlite3.connect(ledger)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_prompt_names_cannot_escape_home(home):
    """A prompt full of path tricks still lands inside NBP_HOME/images."""
    result = nbp.generate("../../etc/passwd /tmp/x \\..\\", provider="sim", time_scale=0.001,
                          sim_profile="ideal")
    assert result.image_path.resolve().parent == (home / "images").resolve()


def test_a_gateway_that_echoes_the_key_in_its_error_does_not_put_it_in_the_ledger(home):
    """Some gateways quote the request back in a 400; the key would sit in the ledger."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    key = "sk-echoed-0123456789abcdef"

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            body = json.dumps({"error": {"message": "invalid key: Bearer "
                                         + self.headers["authorization"].split()[-1]}})
            self.send_response(400)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Echo) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        result = nbp.generate("a fox", provider="openai", api_key=key, fallback=False,
                              base_url=f"http://127.0.0.1:{server.server_port}", retries=0)
        server.shutdown()
    assert not result.success and "[your key]" in result.attempts[0].detail
    assert key not in result.caption() and key not in result.attempts[0].detail
    with closing(sqlite3.connect(home / "ledger.sqlite")) as db:
        assert key not in " ".join(map(str, db.execute("SELECT * FROM attempts").fetchall()))
        assert key not in " ".join(map(str, db.execute("SELECT * FROM jobs").fetchall()))
