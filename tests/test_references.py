"""Reference images: checked, typed from their bytes and made sendable before the wire."""

from __future__ import annotations

import base64
import io
import json
import os
import tracemalloc

import pytest
from PIL import Image

import nbp_jupyter as nbp
from nbp_jupyter import references
from nbp_jupyter.errors import ConfigError
from nbp_jupyter.facts import MAX_REFERENCE_BYTES, MAX_REFERENCE_SIDE
from nbp_jupyter.providers import gemini


def _png(path, size=(16, 16), colour=(200, 30, 30)):
    Image.new("RGB", size, colour).save(path, "PNG")
    return path


def test_fifteen_references_are_refused_before_anything_is_sent(home, simulator, tmp_path):
    """A 15-image request would be sent, paid for in input and refused by the service."""
    paths = [_png(tmp_path / f"r{i}.png") for i in range(15)]
    with pytest.raises(ConfigError) as caught:
        nbp.submit("a collage", provider="gemini", base_url=simulator.url, api_key="k",
                   images=paths)
    message = caught.value.one_line()
    assert "15 reference images" in message and "at most 14" in message
    assert "6 object images" in message and "5 character" in message  # why 14 is a ceiling
    assert "\n" not in message
    assert simulator.app.log == []  # nothing reached the service


def test_more_than_six_references_are_sent_with_a_warning_naming_the_fidelity_counts(
        home, tmp_path):
    """Seven references would silently lose fidelity; the user is told the documented counts."""
    paths = [_png(tmp_path / f"r{i}.png") for i in range(7)]
    with pytest.warns(references.ReferenceWarning, match="6 object images.*5 character"):
        refs = references.load(paths)
    assert len(refs) == 7


def test_type_comes_from_the_bytes_not_the_name(tmp_path):
    """A PNG named .jpg would be sent as image/jpeg and refused or misread by the service."""
    path = _png(tmp_path / "logo.jpg")
    ref = references.read(path)
    assert ref.mime == "image/png"
    assert ref.data == path.read_bytes()  # small enough: sent as it is


def test_an_oversized_reference_is_downscaled_not_sent_raw(tmp_path):
    """A 6000 px photo would be sent raw, over the service's per-image limit and slow."""
    path = tmp_path / "big.png"
    Image.effect_noise((6000, 3000), 80).convert("RGB").save(path, "PNG", compress_level=1)
    assert path.stat().st_size > MAX_REFERENCE_BYTES  # the case under test
    ref = references.read(path)
    assert len(ref.data) <= MAX_REFERENCE_BYTES
    with Image.open(io.BytesIO(ref.data)) as sent:
        assert max(sent.size) <= MAX_REFERENCE_SIDE
        assert sent.format == "JPEG" and ref.mime == "image/jpeg"
        assert sent.size[0] == 2 * sent.size[1]  # aspect kept
    assert path.stat().st_size > MAX_REFERENCE_BYTES  # the user's file is untouched


def test_a_transparent_reference_stays_png_when_downscaled(tmp_path):
    """A logo's transparency would turn black in a JPEG."""
    path = tmp_path / "logo.png"
    Image.new("RGBA", (MAX_REFERENCE_SIDE + 500, 100), (0, 0, 0, 0)).save(path)
    ref = references.read(path)
    with Image.open(io.BytesIO(ref.data)) as sent:
        assert ref.mime == "image/png" and sent.mode == "RGBA"
        assert max(sent.size) == MAX_REFERENCE_SIDE


@pytest.mark.parametrize("make, words", [
    (lambda p: None, "not found"),
    (lambda p: p.write_bytes(b"not an image at all"), "not an image"),
    (lambda p: p.write_bytes(_png_bytes()[:60]), "not an image"),  # cut short
    (lambda p: Image.new("RGB", (4, 4)).save(p, "BMP"), "is BMP"),
])
def test_unreadable_references_are_one_line_errors_before_sending(home, simulator, tmp_path,
                                                                  make, words):
    """A broken file would surface as a service 400 or a traceback after the call was paid."""
    path = tmp_path / "ref.png"
    make(path)
    good = _png(tmp_path / "good.png")
    with pytest.raises(ConfigError, match=words) as caught:
        nbp.submit("a fox", provider="gemini", base_url=simulator.url, api_key="k",
                   images=[good, path])
    assert "\n" not in caught.value.one_line()
    assert simulator.app.log == []


def _png_bytes() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((64, 64), 50).save(out, "PNG")
    return out.getvalue()


def test_references_reach_the_gemini_wire_as_inline_data(home, tmp_path):
    """The references would not be sent at all, or with the wrong type."""
    path = _png(tmp_path / "ref.webp.png")
    request, settings, _ = nbp.api.prepare("a fox", images=[path])
    body = json.loads(gemini.build(request, "1K", "m", "http://127.0.0.1:1", "k").content)
    parts = body["contents"][0]["parts"]
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == path.read_bytes()


def test_a_path_with_a_nul_byte_is_a_one_line_error(tmp_path):
    """A pasted path with a NUL in it would raise ValueError from deep in pathlib."""
    with pytest.raises(ConfigError, match="cannot be read"):
        references.read(str(tmp_path / "a\x00b.png"))


def test_a_huge_file_is_refused_from_its_size_without_being_read(home, simulator, tmp_path):
    """A 2 GB file passed by mistake would be read whole into the kernel's memory first."""
    path = tmp_path / "disk.png"
    with open(path, "wb") as out:  # a PNG's signature, then a sparse hole: costs no disk
        out.write(_png_bytes()[:64])
        out.truncate(2 * 2**30)
    with pytest.raises(ConfigError, match="2,048 MB file; references over 512 MB") as caught:
        nbp.submit("a fox", provider="gemini", base_url=simulator.url, api_key="k",
                   images=[path])
    assert "\n" not in caught.value.one_line()
    assert simulator.app.log == []


def test_a_large_reference_is_downscaled_without_holding_its_file_in_memory(tmp_path):
    """A 36 MB photo would sit in memory whole beside its pixels while it is downscaled."""
    path = tmp_path / "photo.png"
    width, height = 4000, 3000
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        path, "PNG", compress_level=0)
    size = path.stat().st_size
    assert size > 4 * MAX_REFERENCE_BYTES  # the case under test: well over what is sent
    tracemalloc.start()  # sees Python's objects (file bytes, encoded output), not Pillow's pixels
    try:
        ref = references.read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(ref.data) <= MAX_REFERENCE_BYTES and ref.mime == "image/jpeg"
    assert peak < size / 2, f"{peak:,} bytes held while reading a {size:,}-byte file"
