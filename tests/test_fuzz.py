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


# ----- the streaming answer parser (answer_stream.py) ------------------------------------
def _whole_outcome(wire, body: bytes):
    try:
        parsed = wire.parse(200, httpx.Headers({}), body)
    except AttemptError as exc:
        return type(exc)
    return parsed.data


def _streamed_outcome(wire, body: bytes, cuts: list[int], spill_at: int, folder):
    from nbp_jupyter.answer_stream import AnswerStream

    stream = AnswerStream(folder, spill_at=spill_at)
    try:
        for start, end in zip([0, *cuts], [*cuts, len(body)]):
            stream.feed(body[start:end])
            stream.write(stream.take())
        skeleton, blobs = stream.finish()
        parsed = wire.parse(200, httpx.Headers({}), skeleton, blobs)
        return parsed.blob.path.read_bytes() if parsed.blob else parsed.data
    except AttemptError as exc:
        return type(exc)
    finally:
        stream.discard()


def _escaped(body: bytes, how: int) -> bytes:
    """The same JSON written as other encoders write it: '\\/' for '/', or all \\u escapes."""
    if how == 1:
        return body.replace(b"/", b"\\/")  # '/' only ever occurs inside strings in JSON
    if how == 2:
        return json.dumps(json.loads(body), ensure_ascii=True, indent=1).encode()
    return body


@pytest.mark.parametrize("wire,shaped", [(gemini, gemini_like), (openai, openai_like)],
                         ids=["gemini", "openai"])
def test_streamed_parse_matches_whole_parse(tmp_path, wire, shaped):
    """Cut anywhere — inside an escape, a base64 quad, a key — a streamed answer gives the
    same image bytes, or the same kind of error, as the whole body parsed at once."""
    # Spilling from 21 characters on: images (up to 88 here) spill, the generated text
    # (20 at most, like a real answer's prose against the real 4096) never does.
    @settings(max_examples=300, deadline=None)
    @given(doc=shaped, how=st.integers(0, 2), spill_at=st.sampled_from([21, 24, 33, 4096]),
           data=st.data())
    def check(doc, how, spill_at, data):
        body = _escaped(json.dumps(doc).encode(), how)
        if data.draw(st.booleans()):
            body = body[:data.draw(st.integers(0, len(body)))]  # cut short
        cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
        assert _streamed_outcome(wire, body, cuts, spill_at, tmp_path) == \
            _whole_outcome(wire, body)
        assert list(tmp_path.iterdir()) == []  # nothing left behind

    check()


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(min_size=1, max_size=300), spill_at=st.sampled_from([1, 4, 5, 16]),
       damage=st.one_of(st.none(), st.tuples(st.integers(0, 400),
                                             st.sampled_from("=*-_ \\n\u00e9A\"/"))),
       step=st.integers(1, 9))
def test_base64_decoded_in_pieces_matches_b64decode(tmp_path_factory, payload, spill_at, damage,
                                                     step):
    """Base64 fed a few bytes at a time decodes, or is refused, exactly as b64decode does."""
    from nbp_jupyter.answer_stream import AnswerStream

    text = base64.b64encode(payload).decode()
    if damage:
        at, char = damage
        at %= len(text)
        text = text[:at] + char + text[at + 1:]
    body = json.dumps({"data": [{"b64_json": text}]}).encode()
    folder = tmp_path_factory.mktemp("spill")
    stream = AnswerStream(folder, spill_at=spill_at)
    for at in range(0, len(body), step):
        stream.feed(body[at:at + step])
        stream.write(stream.take())
    skeleton, blobs = stream.finish()
    value = json.loads(skeleton)["data"][0]["b64_json"]
    try:
        expected = base64.b64decode(text, validate=True)
    except ValueError:
        expected = None
    if value in blobs:
        blob = blobs[value]
        assert (blob.path.read_bytes() if blob.error is None else None) == expected
    else:  # left as text (it did not look like base64 early on): the provider decodes it
        assert value == text
    stream.discard()


def test_every_single_cut_of_an_escaped_answer_gives_the_same_image(tmp_path):
    """Cut at each byte in turn (inside '\\/', '\\u00e9', a quad, the data: header): same image."""
    image = bytes(range(256)) * 3  # every base64 character, '/' and '+' included
    text = base64.b64encode(image).decode()
    body = json.dumps({"choices": [{"message": {"content": "voilà \"ok\"", "images": [
        {"image_url": {"url": f"data:image/png;base64,{text}"}}]}}],
        "data": [{"b64_json": text, "revised_prompt": "a \\ b"}]}).replace("/", "\\/").encode()
    from nbp_jupyter.answer_stream import AnswerStream
    from nbp_jupyter.providers.base import image_payload

    for cut in range(len(body) + 1):
        stream = AnswerStream(tmp_path, spill_at=64)
        stream.feed(body[:cut])
        stream.feed(body[cut:])
        skeleton, blobs = stream.finish()
        doc = json.loads(skeleton)
        url = doc["choices"][0]["message"]["images"][0]["image_url"]["url"]
        for value in (url, doc["data"][0]["b64_json"]):
            assert image_payload(value, "image", blobs)["blob"].path.read_bytes() == image, cut
        assert doc["choices"][0]["message"]["content"] == 'voilà "ok"'
        assert doc["data"][0]["revised_prompt"] == "a \\ b"
        stream.discard()
        assert list(tmp_path.iterdir()) == []
