"""Plausible `groundingMetadata` for a request with the google_search tool, in the shape the
API answers (docs/facts.md "References, edits and search grounding").

The entry point carries a <script>, as a reminder that it is someone else's HTML: the client
must show it without ever running it (tests check that it does not).
"""

from __future__ import annotations

import html
from urllib.parse import quote_plus

ENTRY_CSS = (".container{align-items:center;border-radius:8px;display:flex;font-family:"
             "Google Sans,Roboto,sans-serif;font-size:14px;padding:8px 12px}"
             ".chip{border:1px solid #dadce0;border-radius:16px;color:#5e5e5e;"
             "margin-left:8px;padding:5px 16px;text-decoration:none}"
             "@media (prefers-color-scheme: dark){.container{background:#1f1f1f}"
             ".chip{background:#2c2c2c;border-color:#3c4043;color:#fff}}")
SCRIPT = "<script>document.title='SIMULATED entry point script ran';</script>"


def queries(prompt: str) -> list[str]:
    """What the simulated model searched for: the prompt's first words, and an empty query
    as the real service sometimes lists (not billed)."""
    words = " ".join(prompt.split()[:8]) or "image"
    return [words, "", f"{words} reference photos"]


def metadata(prompt: str) -> dict:
    asked = queries(prompt)
    chips = "".join(f'<a class="chip" href="https://www.google.com/search?q={quote_plus(q)}">'
                    f"{html.escape(q)}</a>" for q in asked if q)
    rendered = (f"<style>{ENTRY_CSS}</style><div class=\"container\">"
                f"<span>SIMULATED search</span>{chips}</div>{SCRIPT}")
    return {
        "webSearchQueries": asked,
        "searchEntryPoint": {"renderedContent": rendered},
        "groundingChunks": [
            {"web": {"uri": "https://example.com/sim/source-1", "title": "example.com"}},
            {"web": {"uri": "https://example.org/sim/source-2?a=1&b=<2>",
                     "title": "A <b>simulated</b> source"}},
            {"web": {"uri": "javascript:alert('simulated')", "title": "not a web link"}},
        ],
        "groundingSupports": [{"segment": {"startIndex": 0, "endIndex": 9},
                               "groundingChunkIndices": [0, 1]}],
    }
