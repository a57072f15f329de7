"""The Gemini Batch API and Files API on the wire: pure build and parse, no sockets.

Everything here follows docs/facts.md "Batch API". A batch is created with
`POST v1beta/models/{model}:batchGenerateContent`, either with the requests inline or with
the name of a JSONL file uploaded through the Files API's resumable upload. Its state is read
with `GET v1beta/batches/{id}`, which answers in one of two documented shapes: a long-running
Operation (`{name, metadata: <batch>, done, response: <output>}`, what the google-genai SDK
reads) or the batch resource itself (`{name, displayName, state, batchStats, output}`). States
come spelt `BATCH_STATE_*` (REST) or `JOB_STATE_*` (SDK, docs); both map to one word here.
Results come inline (`inlinedResponses`) or as a responses file, one JSON object per line.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from . import facts, sizes
from .pricing import Tokens
from .providers.gemini import usage_tokens

BATCH_PRICE_FACTOR = facts.BATCH_PRICE_FACTOR  # docs/facts.md "Batch API"
# docs/facts.md "Batch API": inline requests are for batches whose create request stays
# under 20 MB; anything larger goes through an uploaded JSONL file.
MAX_INLINE_BYTES = facts.MAX_INLINE_REQUEST_BYTES
# The Files API's resumable upload takes the file in pieces; the SDK sends 8 MB ones.
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024

# What a batch is, in our words. "unknown" is a state word we could not read.
RemoteState = Literal["pending", "running", "succeeded", "failed", "cancelled", "expired",
                      "unknown"]
FINAL_REMOTE: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "expired"})
_STATE_WORDS = {"PENDING": "pending", "RUNNING": "running", "SUCCEEDED": "succeeded",
                "FAILED": "failed", "CANCELLED": "cancelled", "EXPIRED": "expired",
                "CANCELLING": "running", "QUEUED": "pending", "UNSPECIFIED": "unknown"}


class BatchWireError(ValueError):
    """An answer we cannot read as a batch (the caller decides whether to ask again)."""


def remote_state(word: object) -> RemoteState:
    """'BATCH_STATE_SUCCEEDED' or 'JOB_STATE_SUCCEEDED' -> 'succeeded'."""
    text = str(word or "").upper()
    for prefix in ("BATCH_STATE_", "JOB_STATE_"):
        text = text.removeprefix(prefix)
    return _STATE_WORDS.get(text, "unknown")  # type: ignore[return-value]


# ----- requests ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One prompt of a batch: its key (unique in the batch) and what to ask."""

    key: str
    prompt: str
    size: str
    aspect: str


def generate_request(line: Line) -> dict:
    """The GenerateContentRequest for one line (the interactive wire's body)."""
    return {"contents": [{"role": "user", "parts": [{"text": line.prompt}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                 "imageConfig": {"aspectRatio": line.aspect,
                                                 "imageSize": line.size}}}


def inline_body(display_name: str, lines: list[Line]) -> bytes:
    """A create request carrying every line inline, each keyed through its metadata."""
    requests = [{"request": generate_request(line), "metadata": {"key": line.key}}
                for line in lines]
    return json.dumps({"batch": {"displayName": display_name,
                                 "inputConfig": {"requests": {"requests": requests}}}}).encode()


def file_body(display_name: str, file_name: str) -> bytes:
    """A create request naming an uploaded JSONL file ('files/abc')."""
    return json.dumps({"batch": {"displayName": display_name,
                                 "inputConfig": {"fileName": file_name}}}).encode()


def jsonl_line(line: Line) -> bytes:
    """One line of the input file: `{"key", "request"}` and a newline."""
    return json.dumps({"key": line.key, "request": generate_request(line)}).encode() + b"\n"


def create_path(model: str) -> str:
    return f"/v1beta/models/{model.removeprefix('models/')}:batchGenerateContent"


def upload_start_headers(size: int, display_name: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of the resumable upload's first request (`upload/v1beta/files`)."""
    headers = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
               "X-Goog-Upload-Header-Content-Length": str(size),
               "X-Goog-Upload-Header-Content-Type": "application/jsonl",
               "Content-Type": "application/json"}
    return headers, json.dumps({"file": {"displayName": display_name}}).encode()


def upload_chunk_headers(offset: int, length: int, last: bool) -> dict[str, str]:
    return {"X-Goog-Upload-Command": "upload, finalize" if last else "upload",
            "X-Goog-Upload-Offset": str(offset), "Content-Length": str(length)}


def download_path(file_name: str) -> str:
    """The documented download endpoint of a responses file ('files/abc')."""
    return f"/download/v1beta/{file_name}:download?alt=media"


def uploaded_file_name(body: bytes) -> str:
    """'files/abc' from the upload's final answer `{"file": {"name": ...}}`."""
    try:
        name = json.loads(body)["file"]["name"]
    except (ValueError, KeyError, TypeError):
        raise BatchWireError("the upload's answer names no file") from None
    if not isinstance(name, str) or not name.startswith("files/"):
        raise BatchWireError(f"the upload's answer names no file ({name!r})")
    return name


# ----- answers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchStatus:
    """What one GET (or the create's answer) says about a batch, whichever shape it came in."""

    name: str
    display_name: str
    state: RemoteState
    total: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    pending: int | None = None
    responses_file: str | None = None
    inlined: list[dict] | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_REMOTE


def _int(value: object) -> int | None:
    if not isinstance(value, (int, str)):  # int64 fields come as strings in JSON
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse_batch(data: Any) -> BatchStatus:
    """A BatchStatus from an Operation or a bare batch resource."""
    if not isinstance(data, dict):
        raise BatchWireError(f"a batch answer is a JSON object, not {type(data).__name__}")
    batch: dict = data["metadata"] if isinstance(data.get("metadata"), dict) else data
    name = data.get("name") or batch.get("name")
    if not isinstance(name, str) or not name.startswith("batches/"):
        raise BatchWireError(f"the answer names no batch ({name!r})")
    output: dict = {}
    for candidate in (data.get("response"), batch.get("output")):
        if isinstance(candidate, dict) and candidate:
            output = candidate
            break
    inlined = output.get("inlinedResponses")
    if isinstance(inlined, dict):  # {"inlinedResponses": {"inlinedResponses": [...]}}
        inlined = inlined.get("inlinedResponses")
    stats: dict = batch["batchStats"] if isinstance(batch.get("batchStats"), dict) else {}
    error = data.get("error") if isinstance(data.get("error"), dict) else None
    return BatchStatus(
        name=name, display_name=str(batch.get("displayName") or ""),
        state=remote_state(batch.get("state")),
        total=_int(stats.get("requestCount")),
        succeeded=_int(stats.get("successfulRequestCount")),
        failed=_int(stats.get("failedRequestCount")),
        pending=_int(stats.get("pendingRequestCount")),
        responses_file=output.get("responsesFile") if isinstance(
            output.get("responsesFile"), str) else None,
        inlined=inlined if isinstance(inlined, list) else None,
        error=_one_line(error.get("message")) if error else None)


def parse_list(data: Any) -> tuple[list[BatchStatus], str | None]:
    """The batches of one `GET v1beta/batches` page and the next page's token."""
    if not isinstance(data, dict):
        raise BatchWireError("a list answer is a JSON object")
    items = data.get("operations") or data.get("batches") or []
    found = []
    for item in items if isinstance(items, list) else []:
        try:
            found.append(parse_batch(item))
        except BatchWireError:
            continue  # someone else's odd entry must not hide ours
    token = data.get("nextPageToken")
    return found, token if isinstance(token, str) and token else None


@dataclass(frozen=True)
class LineResult:
    """One line of the results: an image (with its tokens) or why there is none."""

    key: str | None
    image: bytes | None = field(default=None, repr=False)
    mime: str = "image/png"
    tokens: Tokens | None = None
    error: str | None = None
    billed: bool = False  # tokens were produced (a blocked image may still be billed)

    @property
    def output_tokens(self) -> int | None:
        return self.tokens.output_image if self.tokens else None


def parse_line(raw: bytes | str | dict) -> LineResult:
    """One responses-file line or one inlined response: `{key|metadata.key, response|error}`."""
    try:
        data = raw if isinstance(raw, dict) else json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return LineResult(None, error="a results line is not valid JSON")
    if not isinstance(data, dict):
        return LineResult(None, error="a results line is not a JSON object")
    meta: dict = data["metadata"] if isinstance(data.get("metadata"), dict) else {}
    key = data.get("key", meta.get("key"))
    key = str(key) if key is not None else None
    status = data.get("error") or data.get("status")
    if isinstance(status, dict):
        code = status.get("status") or status.get("code") or "error"
        return LineResult(key, error=f"{code}: {_one_line(status.get('message') or '')}")
    response = data.get("response")
    if not isinstance(response, dict):
        return LineResult(key, error="the line holds neither a response nor an error")
    tokens = usage_tokens(response.get("usageMetadata"))  # the interactive wire's reading
    produced = bool(tokens and (tokens.output_image or tokens.output_text or tokens.thoughts))
    feedback = response.get("promptFeedback") or {}
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        return LineResult(key, error=f"prompt blocked ({feedback['blockReason']})",
                          tokens=tokens)
    candidates = response.get("candidates")
    candidate = candidates[0] if isinstance(candidates, list) and candidates else {}
    parts = ((candidate.get("content") or {}).get("parts") if isinstance(candidate, dict)
             else None) or []
    for part in parts if isinstance(parts, list) else []:
        inline = part.get("inlineData") if isinstance(part, dict) else None
        if isinstance(inline, dict) and not part.get("thought"):
            try:
                image = base64.b64decode(inline.get("data") or "", validate=True)
            except (binascii.Error, ValueError):
                return LineResult(key, error="the image is not valid base64", tokens=tokens,
                                  billed=produced)
            if not image:
                break
            return LineResult(key, image=image, mime=str(inline.get("mimeType") or "image/png"),
                              tokens=tokens, billed=True)
    reason = candidate.get("finishReason") if isinstance(candidate, dict) else None
    return LineResult(key, error=f"no image (finishReason {reason or 'missing'})",
                      tokens=tokens, billed=produced)


def expected_answer_bytes(lines: list[Line]) -> int:
    """A high guess at the base64 images an inline answer would carry (one JSON body)."""
    per = {"4K": facts.LARGEST_IMAGE_BYTES, "2K": facts.LARGEST_IMAGE_BYTES // 4,
           "1K": facts.LARGEST_IMAGE_BYTES // 16}
    return sum(per.get(sizes.normalize_resolution(line.size), per["4K"]) * 4 // 3
               for line in lines)


def _one_line(text: object, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
