"""The simulated Batch and Files APIs, driven by the official google-genai SDK unchanged."""

from __future__ import annotations

import io
import json
import time

import httpx
from PIL import Image

from nbp_jupyter import batch_wire, sizes

MODEL = "gemini-3-pro-image-preview"


def _sim(make_sim):
    """A fast simulator whose lines fail only where a test says so."""
    server = make_sim(profile="ideal", time_scale=0.0001)
    server.app.batches.line_failure = 0.0
    return server


def _client(server):
    from google import genai
    from google.genai import types

    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=server.url))


def _wait_done(client, name: str):
    for _ in range(400):
        job = client.batches.get(name=name)
        if job.state.name in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
                              "JOB_STATE_EXPIRED"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"{name} never finished: {job.state}")


def _image_request(prompt: str, size: str, aspect: str) -> dict:
    return {"contents": [{"parts": [{"text": prompt}], "role": "user"}],
            "config": {"response_modalities": ["TEXT", "IMAGE"],
                       "image_config": {"image_size": size, "aspect_ratio": aspect}}}


def test_sdk_inline_batch_create_get_and_results(make_sim):
    """A google-genai user's inline batch runs on the simulator and returns real images."""
    server = _sim(make_sim)
    client = _client(server)
    job = client.batches.create(
        model="gemini-3-pro-image-preview",
        src=[_image_request("a red fox", "1K", "1:1"), _image_request("a blue jay", "2K", "16:9")],
        config={"display_name": "sdk-inline"})
    assert job.name.startswith("batches/") and job.display_name == "sdk-inline"
    assert job.state.name == "JOB_STATE_PENDING"
    done = _wait_done(client, job.name)
    assert done.state.name == "JOB_STATE_SUCCEEDED"
    responses = done.dest.inlined_responses
    assert len(responses) == 2
    got = [Image.open(io.BytesIO(next(p.inline_data.data for p in r.response.candidates[0]
                                      .content.parts if p.inline_data))).size for r in responses]
    assert got == [sizes.pixels("1K", "1:1"), sizes.pixels("2K", "16:9")]


def test_sdk_file_batch_upload_create_download(make_sim, tmp_path):
    """The JSONL route: upload through the Files API, create from the file, download results."""
    server = _sim(make_sim)
    client = _client(server)
    source = tmp_path / "in.jsonl"
    lines = [batch_wire.Line(f"k{i}", f"prompt {i}", "1K", "3:2") for i in range(3)]
    source.write_bytes(b"".join(batch_wire.jsonl_line(line) for line in lines))
    uploaded = client.files.upload(file=source, config={"mime_type": "application/jsonl",
                                                        "display_name": "in"})
    assert uploaded.name.startswith("files/")
    job = client.batches.create(model="gemini-3-pro-image-preview", src=uploaded.name,
                                config={"display_name": "sdk-file"})
    done = _wait_done(client, job.name)
    assert done.state.name == "JOB_STATE_SUCCEEDED" and done.dest.file_name
    # the documented download endpoint, which the REST examples use
    body = httpx.get(server.url + batch_wire.download_path(done.dest.file_name),
                     headers={"x-goog-api-key": "k"}).content
    results = [batch_wire.parse_line(raw) for raw in body.splitlines()]
    assert [r.key for r in results] == ["k0", "k1", "k2"]
    assert all(Image.open(io.BytesIO(r.image)).size == sizes.pixels("1K", "3:2") for r in results)
    names = [b.name for b in client.batches.list(config={"page_size": 1})]
    assert job.name in names


def test_sdk_cancel_and_failed_lines(make_sim):
    """Cancelling a pending batch ends it; a failed line carries its error, not an image."""
    server = _sim(make_sim)
    app = server.app.batches
    client = _client(server)
    app.pending_s = 1e6
    job = client.batches.create(model=MODEL, src=[_image_request("x", "1K", "1:1")])
    client.batches.cancel(name=job.name)
    assert client.batches.get(name=job.name).state.name == "JOB_STATE_CANCELLED"
    app.pending_s, app.fail_lines = 1.0, {1}
    job = client.batches.create(model=MODEL, src=[_image_request(p, "1K", "1:1") for p in "ab"])
    done = _wait_done(client, job.name)
    first, second = done.dest.inlined_responses
    assert first.response is not None and first.error is None
    if second.error is None:  # the other kind of failed line: a blocked image
        assert second.response.candidates[0].finish_reason.name == "IMAGE_SAFETY"
        assert second.response.candidates[0].content is None


def test_a_batch_for_an_unknown_model_is_refused_as_the_service_does(make_sim):
    """A mistyped model in a batch was accepted and drawn; the service answers 404."""
    from google.genai import errors

    server = _sim(make_sim)
    client = _client(server)
    try:
        client.batches.create(model="gemini-3-pro-imag", src=[_image_request("x", "1K", "1:1")])
    except errors.ClientError as exc:
        assert exc.code == 404 and exc.status == "NOT_FOUND"
        assert "models/gemini-3-pro-imag is not found" in exc.message
    else:
        raise AssertionError("the batch for an unknown model was accepted")
    assert server.app.batches.batches == {}


def test_both_answer_shapes_parse_alike(make_sim):
    """Our parser reads the Operation and the bare batch resource the same way."""
    server = _sim(make_sim)
    lines = [batch_wire.Line("a", "a cat", "1K", "1:1")]
    created = httpx.post(server.url + batch_wire.create_path(MODEL),
                         content=batch_wire.inline_body("shapes", lines),
                         headers={"x-goog-api-key": "k"})
    name = batch_wire.parse_batch(created.json()).name
    time.sleep(0.2)
    seen = []
    for shape in ("operation", "resource"):
        server.app.batches.shape = shape
        data = httpx.get(f"{server.url}/v1beta/{name}", headers={"x-goog-api-key": "k"}).json()
        assert ("metadata" in data) == (shape == "operation")
        status = batch_wire.parse_batch(data)
        seen.append((status.name, status.state, status.total, status.succeeded,
                     len(status.inlined or [])))
    assert seen[0] == seen[1] == (name, "succeeded", 1, 1, 1)


def test_get_answers_503_when_scripted_and_a_range_download_resumes(make_sim, tmp_path):
    """A scripted 503 on get, then the same batch; a download resumes from a byte offset."""
    server = _sim(make_sim)
    app = server.app.batches
    lines = [batch_wire.Line(str(i), f"p{i}", "1K", "1:1") for i in range(4)]
    headers = {"x-goog-api-key": "k"}
    start_headers, start_body = batch_wire.upload_start_headers(
        sum(len(batch_wire.jsonl_line(x)) for x in lines), "in")
    start = httpx.post(server.url + "/upload/v1beta/files", headers={**headers, **start_headers},
                       content=start_body)
    data = b"".join(batch_wire.jsonl_line(x) for x in lines)
    final = httpx.post(start.headers["x-goog-upload-url"], content=data,
                       headers={**headers, **batch_wire.upload_chunk_headers(0, len(data), True)})
    file_name = batch_wire.uploaded_file_name(final.content)
    made = httpx.post(server.url + batch_wire.create_path(MODEL), headers=headers,
                      content=batch_wire.file_body("ranged", file_name))
    name = batch_wire.parse_batch(made.json()).name
    time.sleep(0.2)
    app.script("get", "503")
    assert httpx.get(f"{server.url}/v1beta/{name}", headers=headers).status_code == 503
    got = httpx.get(f"{server.url}/v1beta/{name}", headers=headers)
    status = batch_wire.parse_batch(got.json())
    whole = httpx.get(server.url + batch_wire.download_path(status.responses_file),
                      headers=headers).content
    tail = httpx.get(server.url + batch_wire.download_path(status.responses_file),
                     headers={**headers, "range": "bytes=100-"})
    assert tail.status_code == 206 and tail.content == whole[100:]
    assert json.loads(whole.splitlines()[0])["key"] == "0"
