"""Fuzzing: odd bodies and odd input only ever give our typed errors, and never hang."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nbp_jupyter as nbp
from nbp_jupyter.api import prepare
from nbp_jupyter.errors import AttemptError, ConfigError
from nbp_jupyter.providers import gemini, openai

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)

b64 = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
part = st.fixed_dictionaries({}, optional={
    "text": st.text(max_size=20) | json_values, "thought": st.booleans() | json_values,
    "inlineData": st.fixed_dictionaries({}, optional={"data": b64 | json_values,
                                                      "mimeType": st.text(max_size=10)})})
gemini_like = st.fixed_dictionaries({}, optional={
    "candidates": st.lists(st.fixed_dictionaries({}, optional={
        "content": st.fixed_dictionaries({}, optional={"parts": st.lists(part, max_size=3) | json_values}),
        "finishReason": st.sampled_from(["STOP", "SAFETY", "NO_IMAGE", "IMAGE_SAFETY", ""]) | json_values,
    }) | json_values, max_size=2) | json_values,
    "promptFeedback": st.fixed_dictionaries({}, optional={"blockReason": st.text(max_size=8) | json_values}) | json_values,
    "usageMetadata": st.fixed_dictionaries({}, optional={"candidatesTokenCount": st.integers() | json_values}) | json_values,
    "error": json_values,
})
openai_like = st.fixed_dictionaries({}, optional={
    "data": st.lists(st.fixed_dictionaries({}, optional={
        "b64_json": b64 | json_values, "url": st.text(max_size=30) | json_values}) | json_values,
        max_size=2) | json_values,
    "usage": json_values, "error": json_values,
})


def bodies(shaped):
    valid = shaped.map(lambda d: json.dumps(d).encode())
    return st.one_of(
        valid,
        valid.flatmap(lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda n: b[:n])),  # truncated
        st.binary(max_size=200),  # garbage
        st.text(max_size=200).map(lambda t: f"<html><body>{t}</body></html>".encode()),  # proxies
        st.just(b""),
        json_values.map(lambda v: json.dumps(v).encode()),  # wrong top-level types
    )


STATUSES = st.sampled_from([200, 200, 200, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504, 418])
HEADERS = st.sampled_from([{"content-type": "application/json"}, {"content-type": "text/html"},
                           {"retry-after": "x"}, {"retry-after": "3", "retry-after-ms": "-5"},
                           {"retry-after-ms": "nan"}, {}])


@pytest.mark.parametrize("wire,shaped", [(gemini, gemini_like), (openai, openai_like)],
                         ids=["gemini", "openai"])
def test_parsers_only_raise_typed_errors(wire, shaped):
    """Whatever comes back, a parser returns an image or raises one of our one-line errors."""
    @settings(max_examples=400, deadline=None)
    @given(status=STATUSES, headers=HEADERS, body=bodies(shaped))
    def check(status, headers, body):
        try:
            wire.parse(status, httpx.Headers(headers), body)
        except AttemptError as exc:
            assert "\n" not in exc.one_line()

    check()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.text(max_size=300), size=st.text(max_size=4) | st.sampled_from(["1K", "2k", "4K"]),
       aspect=st.text(max_size=6) | st.sampled_from(["16:9", "1:1", "9x16"]),
       images=st.lists(st.text(max_size=30), max_size=2),
       timeout=st.none() | st.floats() | st.integers(-5, 5))
def test_user_input_is_refused_or_accepted_cleanly(home, prompt, size, aspect, images, timeout):
    """prepare() accepts any input or refuses it with one line; it never sends anything."""
    try:
        request, _, _ = prepare(prompt, size=size, aspect=aspect, images=images,
                                        timeout=timeout, provider="sim")
    except ConfigError as exc:
        assert "\n" not in exc.one_line()
    else:
        assert request.prompt == prompt  # taken literally: braces, $ and all


@pytest.fixture
def shell(home):
    import IPython
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython() or IPython.get_ipython()
    ip.run_line_magic("load_ext", "nbp_jupyter")
    ip.run_line_magic("config", "Nbp.provider = 'sim'")
    ip.run_line_magic("config", "Nbp.time_scale = 0.001")
    ip.run_line_magic("config", "Nbp.sim_profile = 'ideal'")
    ip.run_line_magic("config", "Nbp.size = '1K'")
    ip.run_line_magic("config", f"Nbp.home = {str(home)!r}")
    yield ip
    nbp.unload_ipython_extension(ip)
    ip.extension_manager.loaded.discard("nbp_jupyter")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.lists(st.sampled_from(["--size", "4K", "9K", "--aspect", "7:3", "-n", "0", "3", "--out",
                                      "1x", "ok_name", "--retries", "-1", "--timeout", "abc",
                                      "--fallback", "2K,8K", "--no-fallback", "--image", "/no",
                                      "--deadline", "5", "--interpolate", "'", '"', "{x}"]),
                     max_size=6).map(" ".join),
       prompt=st.text(max_size=80))
def test_magic_gives_usage_errors_not_tracebacks(shell, line, prompt):
    """Any option line and prompt: the magic runs, or raises a one-line UsageError."""
    from IPython.core.error import UsageError
    try:
        shell.run_cell_magic("nbp", line, prompt)
    except UsageError as exc:
        assert "\n" not in str(exc).strip()


def test_oversized_response_is_refused_while_it_streams(home):
    """A body past the cap is cut off early: the client stops reading, the server sees it."""
    sent = {"bytes": 0, "closed": False}

    async def endless(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        length = int(1 * 2**30)  # claims nothing: chunked, never ends
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        try:
            while sent["bytes"] < length:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                sent["bytes"] += len(chunk)
        except (ConnectionError, OSError):
            sent["closed"] = True
        finally:
            writer.close()  # our side of the socket, or it leaks past the test's loop

    async def main():
        server = await asyncio.start_server(endless, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        result = await nbp.agenerate("x", provider="gemini", base_url=f"http://127.0.0.1:{port}",
                                     api_key="k", retries=0, time_scale=0.01,
                                     max_response_mb=1)
        await asyncio.sleep(0.2)
        server.close()
        await server.wait_closed()
        return result

    result = asyncio.run(main())
    assert [a.outcome for a in result.attempts] == ["bad_response"]
    assert "cap" in result.error
    assert sent["bytes"] < 16 * 2**20  # stopped near the 1 MB cap, not at the server's 1 GB
