"""The wire formats as the real services speak them (docs/facts.md), seen from the server.

Pure functions from parsed requests to JSON-able bodies; the server does the sockets.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .. import facts, pricing, sizes
from . import grounding

SIM_TEXT = "SIMULATED image from nbp_jupyter.sim; no real model was called."
OPENAI_TIER = re.compile(r"-(1k|2k|4k)$", re.IGNORECASE)


class WireError(Exception):
    """A request the real service would refuse: status and JSON body to send back."""

    def __init__(self, status: int, body: dict):
        super().__init__(status)
        self.status = status
        self.body = body


# Tokens the simulated model "thinks" before a draft image: an illustrative figure, not a
# published one; it makes thoughtsTokenCount (billed at the text rate) show up in costs.
SIM_THOUGHT_TOKENS = 300


@dataclass(frozen=True)
class SimRequest:
    provider: str  # "gemini" | "openai" | "chat"
    model: str
    prompt: str
    resolution: str
    aspect: str
    response_format: str = "b64_json"
    references: int = 0
    text_only: bool = False  # responseModalities ["TEXT"]: the model answers in words
    turn: int = 1  # the user turns in `contents`: 2 and more continue a conversation
    server_timeout_s: float | None = None  # X-Server-Timeout, in (simulated) seconds
    search: bool = False  # tools: google_search (answered with groundingMetadata)


def _field(obj: object, camel: str) -> object:
    """A field by its camelCase or snake_case name: the real API's JSON parser takes both."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get("".join(f"_{c.lower()}" if c.isupper() else c for c in camel))


def gemini_error(code: int, status: str, message: str, details: list | None = None) -> dict:
    error: dict = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def openai_error(message: str, type_: str, code: str | None = None,
                 param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# The Gemini image models the service serves (the ones we price); any other name is a 404,
# as on the real API (docs/facts.md "Answers on the wire").
GEMINI_MODELS = frozenset(name for name in pricing.PRICES if name.startswith("gemini-"))


def check_gemini_model(model: str, version: str, method: str) -> None:
    """Raise the service's 404 NOT_FOUND for a model it does not serve."""
    if model not in GEMINI_MODELS:
        raise WireError(404, gemini_error(
            404, "NOT_FOUND", f"models/{model} is not found for API version {version}, or is "
            f"not supported for {method}. Call ListModels to see the list of available models "
            "and their supported methods."))


def parse_gemini(model: str, body: dict) -> SimRequest:
    def bad(message: str) -> WireError:
        return WireError(400, gemini_error(400, "INVALID_ARGUMENT", message))

    try:
        contents = body["contents"]
        parts = [p for c in contents for p in c.get("parts", [])]
    except (KeyError, TypeError, AttributeError):
        raise bad("* GenerateContentRequest.contents: contents is not specified") from None
    # The prompt is the last user turn's words; the earlier turns are context.
    users = [c for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"]
    last = users[-1].get("parts") or [] if users else []
    prompt = " ".join(str(p["text"]) for p in last if isinstance(p, dict) and "text" in p)
    references = sum(1 for p in parts
                     if _field(p, "inlineData") is not None and not p.get("thought"))
    if references > facts.MAX_REFERENCES:  # docs/facts.md "Request limits"
        raise bad("Too many input images: at most 14 are supported.")
    generation = _field(body, "generationConfig") or {}
    config = _field(generation, "imageConfig") or {}
    size = _field(config, "imageSize") or "1K"
    aspect = _field(config, "aspectRatio") or "1:1"
    if size not in sizes.RESOLUTIONS:
        raise bad(f"Invalid value for imageSize: {size!r}. Supported values: 1K, 2K, 4K.")
    if aspect not in sizes.PIXELS:
        raise bad(f"Invalid value for aspectRatio: {aspect!r}.")
    modalities = _field(generation, "responseModalities")
    text_only = isinstance(modalities, list) and \
        {str(m).upper() for m in modalities} == {"TEXT"}
    tools = _field(body, "tools")
    search = isinstance(tools, list) and any(_field(t, "googleSearch") is not None
                                             for t in tools)
    return SimRequest("gemini", model, prompt, size, aspect, references=references,
                      text_only=text_only, turn=max(1, len(users)), search=search)


def _invalid(message: str, param: str) -> WireError:
    """A 400 in the OpenAI error shape, naming the parameter at fault (images and chat)."""
    return WireError(400, openai_error(message, "invalid_request_error", None, param))


def parse_chat(body: dict) -> SimRequest:
    """Chat completions with image output, as OpenRouter documents it (docs/facts.md)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("Missing required parameter: 'messages'.", "messages")
    texts, references = [], 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for part in [content] if isinstance(content, str) else content or []:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") == "image_url":
                references += 1
    config = body.get("image_config") if isinstance(body.get("image_config"), dict) else {}
    size = str(config.get("image_size") or "1K").upper()
    aspect = str(config.get("aspect_ratio") or "1:1")
    if size not in sizes.RESOLUTIONS:
        raise _invalid(f"Invalid image_size {size!r}: use 1K, 2K or 4K.", "image_config")
    if aspect not in sizes.PIXELS:
        raise _invalid(f"Invalid aspect_ratio {aspect!r}.", "image_config")
    modalities = body.get("modalities")
    text_only = not (isinstance(modalities, list) and "image" in modalities)
    return SimRequest("chat", str(body.get("model") or "google/gemini-3-pro-image-preview"),
                      " ".join(texts), size, aspect, references=references,
                      text_only=text_only)


def parse_openai(body: dict) -> SimRequest:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise _invalid("Missing required parameter: 'prompt'.", "prompt")
    model = str(body.get("model") or "nano-banana-pro")
    size = str(body.get("size") or "1024x1024")
    fmt = body.get("response_format") or "b64_json"
    if fmt not in ("b64_json", "url"):
        raise _invalid(f"Invalid value: {fmt!r}. Supported values are: 'url' and 'b64_json'.",
                  "response_format")
    if int(body.get("n") or 1) != 1:
        raise _invalid("This model supports n=1 only.", "n")
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    if not match:
        raise _invalid(f"Invalid value: {size!r}. Use WIDTHxHEIGHT, e.g. 4096x4096.", "size")
    width, height = int(match.group(1)), int(match.group(2))
    exact = sizes.classify(width, height)
    if exact:
        resolution, aspect = exact
    else:
        known = {s for row in sizes.PIXELS.values() for s in row.values()}
        raise _invalid(f"Invalid value: {size!r}. Supported sizes: "
                  f"{', '.join(sorted(f'{w}x{h}' for w, h in known))}.", "size")
    tier = OPENAI_TIER.search(model)
    if tier:  # gateways that put the tier in the model name follow only the aspect of size
        resolution = tier.group(1).upper()
    return SimRequest("openai", model, prompt, resolution, aspect, fmt)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def text_tokens(text: str) -> int:
    return max(1, len(text) // 4)  # about four characters a token


def gemini_usage(prompt: str, references: int, image_tokens: int, text: str = "",
                 thoughts: int = 0) -> dict:
    """usageMetadata as the API reports it: per-modality details, thinking apart."""
    text_in = text_tokens(prompt)
    image_in = facts.INPUT_IMAGE_TOKENS * references  # docs/facts.md "Prices and tokens"
    text_out = text_tokens(text) if text else 0
    candidates = image_tokens + text_out
    usage: dict = {
        "promptTokenCount": text_in + image_in,
        "candidatesTokenCount": candidates,
        "totalTokenCount": text_in + image_in + candidates + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": text_in}]
        + ([{"modality": "IMAGE", "tokenCount": image_in}] if image_in else []),
        "candidatesTokensDetails": ([{"modality": "TEXT", "tokenCount": text_out}]
                                    if text_out else [])
        + [{"modality": "IMAGE", "tokenCount": image_tokens}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def gemini_parts(png: bytes | None, thought_png: bytes | None = None,
                 sign: Callable[[dict], str] | None = None) -> list[dict]:
    """The answer's parts in the API's order: a thinking draft, the words, the image; the
    words and the image signed by `sign` (docs/facts.md "Conversations"), drafts never."""
    parts: list[dict] = []
    if thought_png is not None:
        parts.append({"inlineData": {"mimeType": "image/png", "data": _b64(thought_png)},
                      "thought": True})
    answer = [{"text": SIM_TEXT}]
    if png is not None:
        answer.append({"inlineData": {"mimeType": "image/png", "data": _b64(png)}})
    for part in answer:
        if sign is not None:
            part["thoughtSignature"] = sign(part)
    return parts + answer


def gemini_image(req: SimRequest, png: bytes | None, delivered: str,
                 thought_png: bytes | None = None,
                 sign: Callable[[dict], str] | None = None) -> dict:
    """A 200 answer; with `png=None` (TEXT-only modalities) words without an image."""
    thoughts = SIM_THOUGHT_TOKENS if thought_png is not None else 0
    image_tokens = sizes.OUTPUT_TOKENS[delivered] if png is not None else 0
    candidate = {"content": {"role": "model", "parts": gemini_parts(png, thought_png, sign)},
                 "finishReason": "STOP", "index": 0}
    if req.search:
        candidate["groundingMetadata"] = grounding.metadata(req.prompt)
    return {
        "candidates": [candidate],
        "usageMetadata": gemini_usage(req.prompt, req.references, image_tokens, SIM_TEXT,
                                      thoughts),
        "modelVersion": req.model,
        "responseId": uuid.uuid4().hex[:22],
    }


def gemini_stream(answer: dict) -> list[dict]:
    """One answer as streamGenerateContent sends it: a chunk per part, the last one with
    the finishReason and usageMetadata."""
    candidate = (answer.get("candidates") or [{}])[0]
    parts = (candidate.get("content") or {}).get("parts") or []
    if not parts:
        return [answer]
    chunks = [{"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}],
               "modelVersion": answer.get("modelVersion"),
               "responseId": answer.get("responseId")} for part in parts]
    chunks[-1]["candidates"][0]["finishReason"] = candidate.get("finishReason")
    if "groundingMetadata" in candidate:  # sent with the last chunk, as the API does
        chunks[-1]["candidates"][0]["groundingMetadata"] = candidate["groundingMetadata"]
    chunks[-1]["usageMetadata"] = answer.get("usageMetadata")
    return chunks


def chat_image(req: SimRequest, png: bytes | None, delivered: str,
               thought_png: bytes | None = None) -> dict:
    """A chat completion with the image as a data URL, drafts first (as LiteLLM and
    OpenRouter return Gemini's), and the usage split by modality."""
    images = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_b64(p)}"}}
              for p in (thought_png, png) if p is not None]
    image_tokens = sizes.OUTPUT_TOKENS[delivered] if png is not None else 0
    text_out, prompt_tokens = text_tokens(SIM_TEXT), text_tokens(req.prompt) + 560 * req.references
    thoughts = SIM_THOUGHT_TOKENS if thought_png is not None else 0
    return {
        "id": f"gen-{uuid.uuid4().hex[:20]}", "object": "chat.completion",
        "created": int(time.time()), "model": req.model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": SIM_TEXT, "images": images}}],
        "usage": {"prompt_tokens": prompt_tokens,
                  "completion_tokens": image_tokens + text_out + thoughts,
                  "total_tokens": prompt_tokens + image_tokens + text_out + thoughts,
                  "completion_tokens_details": {"image_tokens": image_tokens,
                                                "text_tokens": text_out,
                                                "reasoning_tokens": thoughts}},
    }


def chat_no_image(req: SimRequest, kind: str) -> dict:
    """What a chat gateway answers when Gemini made no image: content_filter for a block."""
    reason = "stop" if kind == "no_image" else "content_filter"
    content = "I was unable to generate an image for this request." if kind == "no_image" \
        else None
    prompt_tokens = text_tokens(req.prompt)
    return {"id": f"gen-{uuid.uuid4().hex[:20]}", "object": "chat.completion",
            "created": int(time.time()), "model": req.model,
            "choices": [{"index": 0, "finish_reason": reason,
                         "message": {"role": "assistant", "content": content, "images": []}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 0,
                      "total_tokens": prompt_tokens}}


def gemini_no_image(req: SimRequest, kind: str) -> dict:
    usage = gemini_usage(req.prompt, req.references, 0)
    if kind == "prompt_blocked":
        return {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                "usageMetadata": usage, "modelVersion": req.model}
    reason = "IMAGE_SAFETY" if kind == "safety" else "NO_IMAGE"
    candidate: dict = {"finishReason": reason, "index": 0}
    if kind == "no_image":
        candidate["content"] = {"role": "model", "parts": [
            {"text": "I was unable to generate an image for this request."}]}
    return {"candidates": [candidate], "usageMetadata": usage,
            "modelVersion": req.model, "responseId": uuid.uuid4().hex[:22]}


def openai_image(req: SimRequest, png: bytes | None, url: str | None, delivered: str) -> dict:
    item: dict = {"revised_prompt": req.prompt}
    if url is not None:
        item["url"] = url
    else:
        item["b64_json"] = _b64(png or b"")
    tokens = sizes.OUTPUT_TOKENS[delivered]
    prompt_tokens = max(1, len(req.prompt) // 4)
    return {"created": int(time.time()), "data": [item],
            "usage": {"input_tokens": prompt_tokens, "output_tokens": tokens,
                      "total_tokens": prompt_tokens + tokens,
                      "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 0}}}


def html_page(status: int) -> bytes:
    title = "502 Bad Gateway" if status == 502 else "Welcome to nginx!"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n").encode()


def error_for(provider: str, kind: str, retry_after_s: float | None) -> tuple[int, dict, dict]:
    """(status, body, extra headers) for the HTTP error outcomes; the chat wire answers
    errors the OpenAI way, as the gateways that serve it do."""
    if provider == "gemini":
        if kind == "overloaded":
            return 503, gemini_error(503, "UNAVAILABLE",
                                     "The model is overloaded. Please try again later."), {}
        if kind == "rate_limited":
            return 429, gemini_error(429, "RESOURCE_EXHAUSTED",
                                     "Resource has been exhausted (e.g. check quota).", [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                 "retryDelay": f"{retry_after_s:g}s"}]), {}
        if kind == "server_error":
            return 500, gemini_error(500, "INTERNAL", "An internal error has occurred. "
                                     "Please retry or report in https://developers.generativeai.google/guide/troubleshooting"), {}
        return 504, gemini_error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation "
                                 "could complete."), {}
    if kind == "overloaded":
        return 503, openai_error("The engine is currently overloaded, please try again later.",
                                 "server_error", "overloaded"), {}
    if kind == "rate_limited":
        seconds = retry_after_s or 1.0
        return 429, openai_error("Rate limit reached for images per minute. Please try again "
                                 f"in {seconds:g}s.", "requests", "rate_limit_exceeded"), {
            "retry-after": str(max(1, round(seconds))),
            "retry-after-ms": str(int(seconds * 1000))}
    if kind == "server_error":
        return 500, openai_error("The server had an error while processing your request. "
                                 "Sorry about that!", "server_error"), {}
    return 504, openai_error("Upstream request timed out.", "server_error", "timeout"), {}


def openai_refusal(kind: str) -> tuple[int, dict]:
    """What an OpenAI-compatible gateway says when the model makes no image."""
    if kind == "no_image":
        return 200, {"created": int(time.time()), "data": []}
    return 400, openai_error("Your request was rejected as a result of our safety system.",
                             "image_generation_user_error", "content_policy_violation")
