"""Answers streamed to disk: images decoded into files as they arrive, checked from disk
before they are renamed into place, and nothing half-written left behind on any error."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import struct
import time
import zlib

import httpx
import pytest
from PIL import Image

import nbp_jupyter as nbp
from nbp_jupyter import checks
from nbp_jupyter.answer_stream import AnswerStream
from nbp_jupyter.errors import BadResponse
from nbp_jupyter.providers import gemini, openai
from nbp_jupyter.types import Request

from .pillow_memory import pixel_megabytes

H = httpx.Headers({"content-type": "application/json"})


def png(width: int, height: int, color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def noise_png(width: int, height: int) -> bytes:
    """A PNG that compresses badly, so its base64 is large like a real answer's."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, "PNG")
    return out.getvalue()


def huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of any size, built row by row: small on the wire, huge decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\0" * (1 + (width + 7) // 8)
    squeeze = zlib.compressobj(9)
    data = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def gemini_body(*images: bytes, thoughts: tuple[bytes, ...] = (), tokens: int = 1120) -> bytes:
    parts = [{"text": "here you go"}]
    parts += [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(t).decode()},
               "thought": True} for t in thoughts]
    parts += [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(i).decode()}}
              for i in images]
    return json.dumps({"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}],
                       "usageMetadata": {"candidatesTokenCount": tokens}}).encode()


def streamed(body: bytes, folder, piece: int = 1000) -> AnswerStream:
    stream = AnswerStream(folder)
    for at in range(0, len(body), piece):
        stream.feed(body[at:at + piece])
        stream.write(stream.take())
    return stream


def settle(body: bytes, folder, wire=gemini, size="1K"):
    return checks.settle(streamed(body, folder), wire, 200, H, Request(prompt="p", size=size),
                         size, "gemini-3-pro-image-preview")


@pytest.mark.parametrize("piece", [1000, 1 << 20])
def test_an_image_is_spilled_however_its_bytes_are_cut(tmp_path, piece):
    """An image whose base64 arrives in one read (a busy machine reads bigger pieces) goes to
    a file all the same, not into memory."""
    image = noise_png(64, 64)
    skeleton, blobs = streamed(gemini_body(image), tmp_path, piece=piece).finish()
    assert len(skeleton) < 600 and [b.path.read_bytes() for b in blobs.values()] == [image]


def test_a_refused_image_that_came_in_one_read_is_kept(tmp_path):
    """A billed image refused as too large is handed over to be kept even when its whole
    base64 came in one read (a loaded machine lost it: it was never spilled to a file)."""
    huge, kept = huge_png(12000, 12000), []

    def keep(paths):
        kept.extend(path.read_bytes() for path in paths)
        return "the refused folder"
    with pytest.raises(BadResponse, match="kept in the refused folder"):
        checks.settle(streamed(gemini_body(huge), tmp_path, piece=1 << 20), gemini, 200, H,
                      Request(prompt="p", size="1K"), "1K", "m", refused=keep)
    assert kept == [huge]


def test_image_lands_in_a_file_and_the_json_left_in_memory_is_small(tmp_path):
    """A streamed answer keeps only a few hundred bytes of JSON, not the image, in memory."""
    image = noise_png(512, 512)
    stream = streamed(gemini_body(image, thoughts=(noise_png(128, 128),)), tmp_path)
    skeleton, blobs = stream.finish()
    assert len(skeleton) < 600 and len(blobs) == 2
    parsed = gemini.parse(200, H, skeleton, blobs)
    assert parsed.blob.path.read_bytes() == image and parsed.skipped_thoughts == 1


def test_delivered_image_is_checked_and_the_drafts_are_deleted(tmp_path):
    """Only the final image's file stays; the model's draft images leave no files."""
    got = settle(gemini_body(png(1024, 1024), thoughts=(noise_png(64, 64), noise_png(80, 80))),
                 tmp_path)
    assert (got.width, got.height, got.fmt) == (1024, 1024, "png")
    assert [p.name for p in tmp_path.iterdir()] == [got.path.name]


def test_escaped_slashes_and_data_urls_decode(tmp_path):
    """Servers that escape '/' as '\\/', and data: URLs, give the same image bytes."""
    image = png(640, 480, (1, 2, 3)) + bytes(range(256)) * 40  # plenty of '/' in its base64
    text = base64.b64encode(image).decode()
    body = json.dumps({"data": text, "url": f"data:image/webp;base64,{text}"}).replace("/", "\\/")
    skeleton, blobs = streamed(body.encode(), tmp_path, piece=7).finish()
    doc = json.loads(skeleton)
    assert blobs[doc["data"]].path.read_bytes() == image
    assert blobs[doc["url"]].mime == "image/webp" and blobs[doc["url"]].path.read_bytes() == image


def test_an_answer_cut_off_mid_image_is_a_typed_error_and_leaves_no_file(tmp_path):
    """A body that ends inside the base64 string fails cleanly; no partial image stays."""
    body = gemini_body(png(1024, 1024))
    with pytest.raises(BadResponse, match="broke off inside a string"):
        settle(body[: len(body) // 2], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_invalid_base64_is_a_typed_error_and_leaves_no_file(tmp_path):
    """A corrupted image string fails with 'not valid base64'; nothing is left on disk."""
    text = base64.b64encode(png(1024, 1024)).decode()
    broken = text[:5000] + "*" + text[5001:]
    body = gemini_body(b"").replace(b'"data": ""', b'"data": "' + broken.encode() + b'"')
    with pytest.raises(BadResponse, match="not valid base64"):
        settle(body, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_two_images_where_one_was_asked_is_a_typed_error_and_leaves_no_file(tmp_path):
    """Two final images for one ask are refused (which is the answer?), billed as said."""
    with pytest.raises(BadResponse, match="2 images where one was asked") as caught:
        settle(gemini_body(png(1024, 1024), png(1024, 1024, (0, 0, 255))), tmp_path)
    assert caught.value.billed == "yes" and caught.value.tokens.output_image == 1120
    assert list(tmp_path.iterdir()) == []


def test_openai_b64_json_streams_too(tmp_path):
    """The OpenAI images wire's b64_json goes to a file the same way."""
    image = png(1024, 1024)
    body = json.dumps({"data": [{"b64_json": base64.b64encode(image).decode()}]}).encode()
    got = settle(body, tmp_path, wire=openai)
    assert got.path.read_bytes() == image and [p for p in tmp_path.iterdir()] == [got.path]


def test_a_far_too_large_image_is_refused_from_its_header(tmp_path):
    """A 1K ask answered with 12000x12000 is refused without decoding its 144 MP."""
    with pixel_megabytes() as allocated:
        with pytest.raises(BadResponse, match="12000x12000") as caught:
            settle(gemini_body(huge_png(12000, 12000)), tmp_path)
        assert allocated() == 0  # decoded, even at 1 bit per pixel it is 137 MB
    assert caught.value.billed == "yes" and caught.value.tokens.output_image == 1120
    assert list(tmp_path.iterdir()) == []


def test_a_bigger_size_than_asked_is_refused(tmp_path):
    """A 1K ask answered at 2K size is not taken for a 1K image."""
    with pytest.raises(BadResponse, match="asked 1K; the answer is a 2048x2048"):
        settle(gemini_body(png(2048, 2048)), tmp_path)


def test_a_bomb_sized_image_is_the_same_typed_error(tmp_path):
    """A 20000x20000 image (past Pillow's bomb guard) is refused with the same one line."""
    with pytest.raises(BadResponse, match="20000x20000"):
        settle(gemini_body(huge_png(20000, 20000)), tmp_path, size="4K")


async def _serve_once(body: bytes, pieces: int = 50, length: bool = True, gzip: bool = False,
                      chunked: bool = False, end: str = "sent"):
    """A loopback server that answers every request with `body` in `pieces` writes; without
    `length`, the body ends when the connection closes (no size declared up front), or, if
    `chunked`, with the empty last chunk. `end` "held": every byte is sent but the body's
    end never comes (the server waits for the client to go); "dropped": the connection
    closes where a chunked body's last chunk should be."""
    if gzip:
        import gzip as gz
        body = gz.compress(body)
    framing = (b"content-length: %d\r\n" % len(body) if length else
               b"transfer-encoding: chunked\r\n" if chunked else b"connection: close\r\n")

    async def answer(reader, writer):
        request = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        sent = request.split("content-length:")[1].split()[0]
        await reader.readexactly(int(sent))  # unread, closing would reset the connection
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + (
            b"content-encoding: gzip\r\n" if gzip else b"") + framing + b"\r\n")
        step = max(1, len(body) // pieces)
        try:
            for at in range(0, len(body), step):
                piece = body[at:at + step]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await writer.drain()
            if end == "held":
                await reader.read()  # until the client closes the connection
            elif chunked and end == "sent":
                writer.write(b"0\r\n\r\n")
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


def _run_against(body: bytes, length: bool = True, gzip: bool = False, chunked: bool = False,
                 end: str = "sent", pieces: int = 50, **options):
    async def main():
        server = await _serve_once(body, pieces, length=length, gzip=gzip, chunked=chunked,
                                   end=end)
        port = server.sockets[0].getsockname()[1]
        try:
            return await nbp.agenerate("a kite", provider="gemini", api_key="k", retries=0,
                                       base_url=f"http://127.0.0.1:{port}", time_scale=0.01,
                                       fallback=False, **options)
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


@pytest.mark.parametrize("pieces", [50, 1])  # 1: its base64 comes in one read, as under load
def test_engine_refuses_a_huge_image_billed_and_keeps_it_apart(home, pieces):
    """Over HTTP: the 12000x12000 answer is a failed, billed attempt; the paid file is kept
    in images/refused/, never delivered, previewed or taken for the job's image."""
    huge = huge_png(12000, 12000)
    result = _run_against(gemini_body(huge), size="1K", pieces=pieces)
    [attempt] = result.attempts
    assert (attempt.outcome, attempt.billed) == ("bad_response", "yes") and attempt.cost_usd > 0
    assert "12000x12000" in attempt.detail and "kept in" in attempt.detail
    assert not result.success and result.image_path is None
    images = home / "images"
    assert [p.name for p in images.iterdir()] == ["refused"]
    [kept] = (images / "refused").iterdir()
    assert kept.suffix == ".png" and kept.read_bytes() == huge


def test_a_whole_answer_whose_end_is_lost_is_still_delivered(home):
    """The image's last byte came, the chunked body's end did not (the connection closed
    first): the paid image is delivered, not lost as a broken connection of unknown cost."""
    image = png(1024, 1024)
    result = _run_against(gemini_body(image), length=False, chunked=True, end="dropped",
                          size="1K")
    assert [(a.outcome, a.billed) for a in result.attempts] == [("ok", "yes")], result.error
    assert result.success and result.image_path.read_bytes() == image
    assert [p.name for p in (home / "images").iterdir()] == [result.image_path.name]


def test_a_refused_answer_whose_end_is_lost_is_kept_apart(home):
    """The same lost end on a refused (billed) answer: its image is still kept."""
    huge = huge_png(12000, 12000)
    result = _run_against(gemini_body(huge), length=False, chunked=True, end="dropped",
                          size="1K")
    [attempt] = result.attempts
    assert (attempt.outcome, attempt.billed) == ("bad_response", "yes"), attempt.detail
    assert "kept in" in attempt.detail
    [kept] = (home / "images" / "refused").iterdir()
    assert kept.read_bytes() == huge


def test_a_whole_answer_whose_end_never_comes_beats_the_clock(home):
    """Every byte came but the body's end never does (a proxy holding the connection): when
    the clock runs out the paid image is delivered, not lost as a timeout."""
    image = png(1024, 1024)
    result = _run_against(gemini_body(image), length=False, end="held", size="1K")
    assert [(a.outcome, a.billed) for a in result.attempts] == [("ok", "yes")], result.error
    assert result.success and result.image_path.read_bytes() == image


def test_an_answer_cut_short_by_the_clock_leaves_no_file(home):
    """A held answer that is not whole when the clock runs out is a timeout, and no part of
    its image stays on disk."""
    body = gemini_body(noise_png(1024, 1024))
    result = _run_against(body[: len(body) * 3 // 4], length=False, end="held", size="1K",
                          timeout=30)  # 0.3 s here
    assert [a.outcome for a in result.attempts] == ["timeout"]
    assert list((home / "images").iterdir()) == []


def test_engine_keeps_both_images_of_a_two_image_answer_apart(home):
    """Two images for one ask: refused, billed, and both kept in images/refused/."""
    first, second = noise_png(200, 200), noise_png(300, 300)
    result = _run_against(gemini_body(first, second), size="1K")
    assert [a.outcome for a in result.attempts] == ["bad_response"]
    assert "2 images where one was asked" in result.error
    kept = sorted(p.read_bytes() for p in (home / "images" / "refused").iterdir())
    assert kept == sorted([first, second])
    assert [p.name for p in (home / "images").iterdir()] == ["refused"]


def test_engine_streams_a_good_answer_into_place(home):
    """Over HTTP: the image arrives in many pieces and lands on disk whole, nothing else."""
    image = png(1024, 1024)
    result = _run_against(gemini_body(image, thoughts=(png(256, 256),)), size="1K")
    assert result.success, result.error
    assert [p.name for p in (home / "images").iterdir()] == [result.image_path.name]
    assert result.image_path.read_bytes() == image


def test_cap_holds_while_an_image_streams(home):
    """An image string past the size cap stops the read, and leaves no partial file."""
    body = gemini_body(b"\0" * 6 * 2**20)  # 8 MB of JSON against a 3 MB cap: 2 MB are
    result = _run_against(body, size="1K", max_response_mb=3,  # on disk when it hits the cap
                          length=False)
    assert [a.outcome for a in result.attempts] == ["bad_response"] and "cap" in result.error
    assert [p.name for p in (home / "images").iterdir()] == []


def test_small_and_large_data_urls_give_the_same_image(tmp_path):
    """A chat wire's data: URL yields the image whether it streamed to a file or not."""
    from nbp_jupyter.providers.base import image_payload

    small, large = png(16, 16), noise_png(64, 64)
    body = json.dumps([{"url": "data:image/png;base64," + base64.b64encode(small).decode()},
                       {"url": "data:image/png;base64," + base64.b64encode(large).decode()}])
    skeleton, blobs = streamed(body.encode(), tmp_path).finish()
    doc = json.loads(skeleton)
    assert image_payload(doc[0]["url"], "url", blobs) == {"data": small}
    assert image_payload(doc[1]["url"], "url", blobs)["blob"].path.read_bytes() == large
    with pytest.raises(BadResponse, match="without base64"):
        image_payload("data:image/png,abc", "url", blobs)


def test_cancel_mid_image_leaves_no_partial_file(home):
    """Cancelling while an image streams in leaves no '.part' file in the images folder."""
    import threading

    body = gemini_body(noise_png(2048, 2048))  # half of it is past the first write batch
    half_sent = threading.Event()
    writers = []

    async def answer(reader, writer):
        writers.append(writer)
        request = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        await reader.readexactly(int(request.split("content-length:")[1].split()[0]))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n" % len(body) + body[: len(body) // 2])
        await writer.drain()
        half_sent.set()  # the rest never comes in this test

    async def shutdown(server):
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(answer, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        port = server.sockets[0].getsockname()[1]
        job = nbp.submit("a kite", provider="gemini", api_key="k", retries=0, fallback=False,
                         base_url=f"http://127.0.0.1:{port}", time_scale=1.0)
        assert half_sent.wait(10)
        images = home / "images"
        for _ in range(200):  # until the first MBs reach their file
            if any(images.iterdir()):
                break
            threading.Event().wait(0.05)
        assert any(images.iterdir())
        job.cancel()
        result = job.result()
        assert [a.outcome for a in result.attempts] == ["cancelled"]
        assert list(images.iterdir()) == []
    finally:
        asyncio.run_coroutine_threadsafe(shutdown(server), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_parts_left_by_a_killed_kernel_are_swept_at_the_next_start(home):
    """An image cut off by a crash does not leave its MBs in a hidden file for ever."""
    from nbp_jupyter.store import PART_STALE_S, Store

    images = home / "images"
    images.mkdir(parents=True)
    stale, fresh = images / ".incoming-dead-0.part", images / ".incoming-live-0.part"
    kept = images / "20260101-000000-001abc-kite-1K.png"
    for path in (stale, fresh, kept):
        path.write_bytes(b"x" * 1000)
    old = time.time() - PART_STALE_S - 60
    os.utime(stale, (old, old))
    os.utime(kept, (old, old))
    Store(home).close()
    assert sorted(p.name for p in images.iterdir()) == sorted([fresh.name, kept.name])


def test_keys_after_numbers_are_never_spilled(tmp_path):
    """A long base64-looking key after a number stays a key (the skeleton stays the JSON)."""
    key = "A" * 40
    body = json.dumps({"n": 12, key: 1, "l": [1, {key: 2, "data": "B" * 40}]}).encode()
    stream = AnswerStream(tmp_path, spill_at=8)
    for at in range(0, len(body), 5):
        stream.feed(body[at:at + 5])
    skeleton, blobs = stream.finish()
    doc = json.loads(skeleton)
    assert doc[key] == 1 and list(doc["l"][1]) == [key, "data"] and len(blobs) == 1
    stream.discard()


def test_a_long_thought_signature_stays_in_the_answer(tmp_path):
    """Base64 that is not an image (a signature to send back later) is kept as it came."""
    signature = base64.b64encode(os.urandom(6000)).decode()
    body = json.dumps({"parts": [{"thoughtSignature": signature,
                                  "inlineData": {"data": base64.b64encode(noise_png(64, 64)).decode()}}]})
    skeleton, blobs = streamed(body.encode(), tmp_path).finish()
    assert json.loads(skeleton)["parts"][0]["thoughtSignature"] == signature and len(blobs) == 1


def test_a_gzipped_answer_streams_and_the_cap_counts_what_it_unpacks_to(home):
    """A compressed answer is unpacked as it streams; a tiny one that unpacks past the cap
    (a zip bomb) is refused like any oversized answer."""
    image = noise_png(256, 256)
    result = _run_against(gemini_body(image), gzip=True, size="1K")
    assert result.success and result.image_path.read_bytes() == image
    bomb = gemini_body(b"\0" * 6 * 2**20)  # 8 MB of JSON, ~10 KB gzipped
    result = _run_against(bomb, gzip=True, size="1K", max_response_mb=3)
    assert "cap" in result.error
    assert len(list((home / "images").iterdir())) == 1  # the first image only, no '.part'
