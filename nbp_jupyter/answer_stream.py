"""Reads a JSON answer as it arrives: each large base64 string is decoded straight to a file.

A 4K answer is ~23 MB of JSON around one base64 string. Parsed whole, the body, the decoded
string and the image sit in memory at once (2.4x the image, benchmarks/README.md). Here the
bytes are scanned as they come. Everything outside a large base64 string is kept as JSON text
(the "skeleton", a few KB); each image value (`SPILL_KEYS`) whose first `spill_at` bytes are
base64 (or a `data:...;base64,` URL) is decoded quad by quad into its own spill file; the skeleton
holds a marker string in its place. Providers parse the skeleton as ordinary JSON and look a
marker up in `blobs` (providers/base.py `image_payload`); they pick the image, and the engine
renames that file into place and deletes the others.

The scanner does no I/O itself: decoded bytes wait in memory until `take()` hands them to
`write()`, which the engine runs in a worker thread so its loop never touches a file.
"""

from __future__ import annotations

import binascii
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from .errors import BadResponse

SPILL_AT = 4096  # a string this long that is still all base64 is an image, not text
# Keys whose values hold images: Gemini `inlineData.data`, OpenAI `b64_json`, a chat wire's
# `image_url.url` (docs/facts.md "Streamed answers and image checks"). Other long base64
# strings (a `thoughtSignature`) stay in the skeleton, to be sent back as they came.
SPILL_KEYS = frozenset({b"data", b"b64_json", b"url"})
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SPECIAL = re.compile(rb'["\\]')
_STRUCTURE = re.compile(rb"[][{},:]")
_ESCAPE = re.compile(rb'\\(u[0-9a-fA-F]{4}|["\\/bfnrt]|)')  # empty: a broken escape
_SIMPLE = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n",
           b"r": b"\r", b"t": b"\t"}
_DATA_URL = re.compile(rb"data:([^;,]{0,100})((?:;[^;,]{0,100}){0,4});base64,")
_OUT, _SMALL, _BIG = range(3)


@dataclass(frozen=True)
class Blob:
    """A large base64 string of an answer, decoded into `path` (or why it would not decode)."""

    path: Path
    size: int  # decoded bytes
    mime: str = ""  # from a data: URL
    error: str | None = None  # not valid base64: the provider raises it if it picks this one


class _Spill:
    """One large string on its way to its file."""

    def __init__(self, path: Path, mime: str):
        self.path, self.mime = path, mime
        self.pending = bytearray()  # decoded, not yet written
        self.written = 0
        self.file = None
        self.quad = b""  # base64 characters short of a whole quad
        self.escape = b""  # the start of a JSON escape cut by a chunk boundary
        self.data_chars = 0
        self.pad = 0
        self.error: str | None = None

    def text(self, raw: bytes) -> None:
        """Take more of the string as it stands in the JSON (escapes and all)."""
        if self.escape:
            raw = self.escape + raw
            self.escape = b""
        if b"\\" in raw:
            raw = self._unescape(raw)
        if self.error is None:
            self._base64(raw)

    def _unescape(self, raw: bytes) -> bytes:
        cut = raw.rfind(b"\\")
        # an escape cut off at the end of this piece waits for the next one
        starts_escape = (len(raw[:cut + 1]) - len(raw[:cut + 1].rstrip(b"\\"))) % 2 == 1
        if starts_escape and (cut == len(raw) - 1
                              or (raw[cut + 1:cut + 2] == b"u" and len(raw) - cut < 6)):
            raw, self.escape = raw[:cut], raw[cut:]
        return _ESCAPE.sub(self._unescaped, raw)

    def _unescaped(self, match: re.Match) -> bytes:
        code = match.group(1)
        if not code:
            self.error = self.error or "a broken JSON escape"
            return b""
        if code[:1] == b"u":
            return chr(int(code[1:], 16)).encode("utf-8", "surrogatepass")
        return _SIMPLE[code]

    def _base64(self, text: bytes) -> None:
        if self.pad:  # after '=' only more '=' may come
            if text.strip(b"="):
                self.error = "characters after its '=' padding"
                return
            self.pad += len(text)
        else:
            equals = text.find(b"=")
            if equals >= 0:
                text, tail = text[:equals], text[equals:]
                if tail.strip(b"="):
                    self.error = "characters after its '=' padding"
                    return
                self.pad = len(tail)
            if text.translate(None, _ALPHABET):
                self.error = "characters outside the base64 alphabet"
                return
            self.data_chars += len(text)
            if self.quad:
                text = self.quad + text
            whole = len(text) // 4 * 4
            if whole:
                self.pending += binascii.a2b_base64(text[:whole])
            self.quad = text[whole:]
        if self.pad > 2:
            self.error = "more than two '=' of padding"

    def end(self) -> None:
        """The string closed: decode its last quad."""
        if self.escape:
            self.error = self.error or "a broken JSON escape"
        if self.error is None:
            if self.pad and not self.data_chars:
                self.error = "padding with no data"
            elif self.quad or self.pad:
                try:
                    self.pending += binascii.a2b_base64(self.quad + b"=" * self.pad)
                except binascii.Error as exc:
                    self.error = str(exc)
        self.quad = b""

    def blob(self) -> Blob:
        return Blob(self.path, self.written, self.mime, self.error)

    def take(self) -> bytearray:
        """What is decoded so far, handed over for writing (the loop keeps feeding)."""
        data, self.pending = self.pending, bytearray()
        self.written += len(data)
        return data

    def write(self, data: bytearray) -> None:
        """File I/O: worker threads only, one write at a time per spill."""
        if self.file is None:
            self.file = open(self.path, "xb")
        self.file.write(data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class AnswerStream:
    """Feed it a 200 answer's bytes in any pieces; `finish()` gives (skeleton, blobs)."""

    def __init__(self, folder: Path, spill_at: int = SPILL_AT):
        self.folder, self.spill_at = Path(folder), spill_at
        self.skeleton = bytearray()
        self._closed: dict[str, _Spill] = {}  # by the marker that stands in the skeleton
        self._spills: list[_Spill] = []
        self._token = secrets.token_hex(8)  # markers an answer cannot forge
        self._json: bool | None = None  # None until the first byte that is not blank
        self._state = _OUT
        self._raw = bytearray()  # a string so far, while it may still be text
        self._skip = False  # the byte after a backslash, in a small string
        self._text = False  # this string is text, not base64: never spill it
        self._spill: _Spill | None = None
        self._nesting = bytearray()  # b"{" or b"[" per open container: a key is never spilled
        self._last = b""  # the last structural character outside strings
        self._key: bytes | None = None  # the last object key, as it stands in the JSON
        self._is_key = False
        self.received = 0

    # ----- scanning (pure, no I/O) ------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self._json is None:
            start = chunk.lstrip()[:1]
            if not start:
                self.skeleton += chunk
                return
            self._json = start in b"{["
        if not self._json:  # an HTML page or garbage: kept whole for the provider's message
            self.skeleton += chunk
            return
        pos, end = 0, len(chunk)
        while pos < end:
            if self._state == _OUT:
                quote = chunk.find(b'"', pos)
                self._structure(chunk[pos:end if quote < 0 else quote])
                if quote < 0:
                    self.skeleton += chunk[pos:]
                    return
                self.skeleton += chunk[pos:quote + 1]
                pos = quote + 1
                key = self._last == b"{" or (self._last == b"," and self._nesting[-1:] == b"{")
                text = key or self._last != b":" or self._key not in SPILL_KEYS
                self._state, self._raw, self._text, self._skip = _SMALL, bytearray(), text, False
                self._is_key = key
            elif self._state == _SMALL:
                pos = self._small(chunk, pos, end)
            else:
                pos = self._big(chunk, pos, end)

    def _structure(self, outside: bytes) -> None:
        """Follow the JSON between strings, to know whether the next string is a key."""
        tail = outside
        for found in _STRUCTURE.finditer(outside):
            mark = found.group()
            if mark in b"{[":
                self._nesting += mark
            elif mark in b"]}":
                del self._nesting[-1:]
            self._last, tail = mark, outside[found.end():]
        if tail.strip():
            self._last = b"v"  # a number, true, false or null after the last mark

    def _small(self, chunk: bytes, pos: int, end: int) -> int:
        if self._skip:
            self._raw += chunk[pos:pos + 1]
            self._skip = False
            return pos + 1
        found = _SPECIAL.search(chunk, pos)
        if found is None:
            self._raw += chunk[pos:end]
            pos = end
        elif found.group() == b'"':
            self._raw += chunk[pos:found.start()]
            if not self._text and len(self._raw) >= self.spill_at:
                # the whole string came in one piece (a busy reader gets bigger ones): it is
                # spilled all the same, or what becomes a file would hang on chunk sizes
                self._start_spill()
                if self._state == _BIG:
                    return self._big(chunk, found.start(), end)
            if self._is_key:
                self._key = bytes(self._raw)
            self.skeleton += self._raw
            self.skeleton += b'"'
            self._state, self._raw = _OUT, bytearray()
            return found.end()
        else:
            self._raw += chunk[pos:found.end()]
            self._skip = True
            pos = found.end()
        if not self._text and len(self._raw) >= self.spill_at:
            self._start_spill()
        return pos

    def _start_spill(self) -> None:
        raw = bytes(self._raw)
        mime, head = "", 0
        if raw.startswith(b"data:"):
            head = raw.find(b",") + 1
            url = _DATA_URL.fullmatch(raw[:head].replace(b"\\/", b"/"))
            if url is None:
                self._text = True
                return
            mime = url.group(1).decode("ascii", "replace")
        probe = raw[head:].replace(b"\\/", b"").rstrip(b"\\=")
        if probe.translate(None, _ALPHABET):
            self._text = True  # prose, not an image: it stays in the skeleton
            return
        spill = _Spill(self.folder / f".incoming-{self._token}-{len(self._spills)}.part", mime)
        self._spills.append(spill)
        spill.text(raw[head:])
        self._spill, self._state, self._raw, self._skip = spill, _BIG, bytearray(), False

    def _big(self, chunk: bytes, pos: int, end: int) -> int:
        spill = self._spill
        quote = chunk.find(b'"', pos)
        while quote >= 0:  # a quote right after an odd run of backslashes is escaped
            before = spill.escape + chunk[pos:quote]
            if (len(before) - len(before.rstrip(b"\\"))) % 2 == 0:
                break
            quote = chunk.find(b'"', quote + 1)
        if quote < 0:
            spill.text(chunk[pos:end])
            return end
        spill.text(chunk[pos:quote])
        spill.end()
        self._closed[f"\0nbp-blob-{self._token}-{len(self._closed)}"] = spill
        self.skeleton += b'\\u0000nbp-blob-%s-%d"' % (self._token.encode(), len(self._closed) - 1)
        self._state, self._spill = _OUT, None
        return quote + 1

    def complete(self) -> bool:
        """The JSON document has closed: every byte of the answer is in, whatever the
        transport still owes (the end of a chunked body, the connection's close)."""
        return bool(self._json) and self._state == _OUT and not self._nesting \
            and self._last in (b"}", b"]")

    def pending_bytes(self) -> int:
        return sum(len(s.pending) for s in self._spills)

    def take(self) -> list[tuple[_Spill, bytearray]]:
        """Decoded bytes waiting in memory, handed to `write()` (on the loop: no I/O here)."""
        return [(spill, spill.take()) for spill in self._spills if spill.pending]

    # ----- files (worker threads only) -------------------------------------------------
    @staticmethod
    def write(taken: list[tuple[_Spill, bytearray]]) -> None:
        """Write what `take()` handed over; one call at a time per stream."""
        for spill, data in taken:
            spill.write(data)

    def finish(self) -> tuple[bytes, dict[str, Blob]]:
        """Write the rest and close every file; the skeleton and its blobs, or a typed error.

        Call once the answer is complete and any `write()` has returned."""
        self.write(self.take())
        for spill in self._spills:
            if spill.file is None:
                spill.write(bytearray())  # an empty image still gets its file
            spill.close()
        if self._state != _OUT:
            raise BadResponse(f"the answer broke off inside a string, {self.received} bytes in",
                              http_status=200, billed="unknown",
                              hint="the answer was cut short on the way; another try may work")
        return bytes(self.skeleton), {key: spill.blob() for key, spill in self._closed.items()}

    def discard(self, keep: Path | None = None) -> None:
        """Delete every spill file but `keep` (file I/O: worker threads only)."""
        for spill in self._spills:
            spill.close()
            if spill.path != keep:
                try:
                    os.unlink(spill.path)
                except FileNotFoundError:
                    pass
