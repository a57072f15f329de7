"""Request bodies with images: the JSON document the services read, built without one long
GIL-holding call (providers/json_body.py)."""

from __future__ import annotations

import base64
import json
import os

from nbp_jupyter.providers import chat, gemini, json_body
from nbp_jupyter.turns import Part, Turn
from nbp_jupyter.types import ReferenceImage, Request

PROMPT = 'make it "bluer" \\ ☂ – and keep the kite'  # quotes, a backslash, non-ASCII


def _refine(*sizes: int) -> tuple[Request, list[bytes]]:
    """A refine whose earlier turn holds an image, with references of these sizes."""
    earlier = os.urandom(json_body.PIECE * 2 + 1)  # pieces, then a tail that needs padding
    refs = [os.urandom(n) for n in sizes]
    history = (Turn("user", (Part(text="a kite"),)),
               Turn("model", (Part(text="here", signature="c2ln"),
                              Part(mime="image/png", signature="c2lnMg==", data=earlier))))
    request = Request(prompt=PROMPT, size="4K", provider="gemini", history=history,
                      images=tuple(ReferenceImage(data=d, mime="image/jpeg", name=f"r{i}",
                                                  path=f"/r{i}")
                                   for i, d in enumerate(refs)))
    return request, [earlier, *refs]


def test_a_refine_body_is_the_json_document_json_dumps_makes():
    """The service would refuse or misread a refine (a stray quote, a cut image, a
    different document than before)."""
    request, images = _refine(json_body.PIECE, 1, 2, 0)
    body = gemini.build(request, "4K", "m", "http://127.0.0.1:1", "k").content
    document = json.loads(body)
    assert json.dumps(document).encode() == body  # byte for byte what json.dumps writes
    sent = [part["inlineData"] for turn in document["contents"] for part in turn["parts"]
            if "inlineData" in part]
    assert [base64.b64decode(p["data"], validate=True) for p in sent] == images
    assert document["contents"][1]["parts"][1]["thoughtSignature"] == "c2lnMg=="
    assert document["contents"][-1]["parts"][0] == {"text": PROMPT}
    assert int(gemini.build(request, "4K", "m", "http://127.0.0.1:1", "k")
               .headers["content-length"]) == len(body)


def test_a_chat_reference_is_a_data_url():
    """A gateway's chat route would get a broken data URL and refuse the reference."""
    data = os.urandom(json_body.PIECE + 5)
    request = Request(prompt=PROMPT, provider="openai", images=(ReferenceImage(
        data=data, mime="image/png", name="r", path="/r"),))
    body = chat.build(request, "1K", "m", "http://127.0.0.1:1", "k").content
    document = json.loads(body)
    assert json.dumps(document).encode() == body
    url = document["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.removeprefix("data:image/png;base64,")) == data


def test_no_single_call_encodes_a_whole_image(monkeypatch):
    """Building an 18 MB refine would hold the GIL in one call for tens of milliseconds,
    and every other job's attempt clock on the engine's loop would stall for as long."""
    largest = {"base64 in": 0, "json out": 0}
    real_b64, real_dumps = base64.b64encode, json.dumps

    def b64encode(data, *args):
        largest["base64 in"] = max(largest["base64 in"], len(memoryview(data).cast("B")))
        return real_b64(data, *args)

    def dumps(value, *args, **kwargs):
        out = real_dumps(value, *args, **kwargs)
        largest["json out"] = max(largest["json out"], len(out))
        return out

    monkeypatch.setattr(base64, "b64encode", b64encode)
    monkeypatch.setattr(json, "dumps", dumps)
    request, images = _refine(6 * 2**20, 6 * 2**20)
    body = gemini.build(request, "4K", "m", "http://127.0.0.1:1", "k").content
    assert len(body) > 4 * sum(map(len, images)) // 3  # the case under test: ~18 MB
    assert largest["base64 in"] <= json_body.PIECE  # ~1 MB of base64 per call
    assert largest["json out"] < 2**16  # the document around the images, nothing more
