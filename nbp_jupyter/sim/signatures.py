"""Thought signatures as the simulator issues and checks them (docs/facts.md
"Conversations").

A signature is an HMAC of the part it rides on (its text, or its image's bytes) under the
server's secret, so the server tells a signature it issued for that very part from a
missing one or one it never issued, and refuses both as the real service does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from .wire import WireError, gemini_error


# The simulated service's one key, the same for every simulator whatever its seed: a
# kernel restarted against a new simulator (the keyless one starts with a random seed)
# still has its earlier turns accepted, as the real service accepts them.
SECRET = hashlib.sha256(b"nbp-sim thought signatures").digest()


def sign(key: bytes, part: dict) -> str:
    payload = _payload(part)
    return base64.b64encode(hmac.new(key, payload or b"", hashlib.sha256).digest()).decode()


def _decode(text: object) -> bytes | None:
    """Base64 in either alphabet (the SDK sends bytes URL-safe), or None."""
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4),
                                validate=True)
    except (binascii.Error, ValueError):
        return None


def _inline(part: dict) -> dict | None:
    found = part.get("inlineData", part.get("inline_data"))
    return found if isinstance(found, dict) else None


def _payload(part: dict) -> bytes | None:
    inline = _inline(part)
    if inline is not None:
        data = _decode(inline.get("data"))
        return None if data is None else b"image:" + data
    text = part.get("text")
    return b"text:" + text.encode() if isinstance(text, str) else None


def check(contents: list, key: bytes) -> None:
    """Refuse a request whose earlier model turns lack a signature where the service puts
    one (each image, and the first text before the image), or carry one it never issued."""
    for content_at, content in enumerate(contents, 1):
        if not isinstance(content, dict) or content.get("role") != "model":
            continue
        seen_image = seen_text = False
        for part_at, part in enumerate(content.get("parts") or [], 1):
            if not isinstance(part, dict) or part.get("thought"):
                continue  # the drafts carry none
            is_image = _inline(part) is not None
            needed = is_image or (not seen_image and not seen_text)
            seen_image, seen_text = seen_image or is_image, seen_text or not is_image
            given = part.get("thoughtSignature", part.get("thought_signature"))
            if given is None:
                if needed:
                    kind = "Image" if is_image else "Text"
                    raise _invalid(f"{kind} part is missing a thought_signature in content "
                                   f"position {content_at}, part position {part_at}.")
                continue
            expected = base64.b64decode(sign(key, part))
            if not hmac.compare_digest(_decode(given) or b"", expected):
                raise _invalid("Corrupted thought signature.")


def _invalid(message: str) -> WireError:
    return WireError(400, gemini_error(400, "INVALID_ARGUMENT", message))
