"""Grounding with Google Search: the request's tool, the answer's `groundingMetadata`, its
price, and how it is shown (docs/facts.md "References, edits and search grounding").

The answer's `searchEntryPoint.renderedContent` is HTML and CSS from the service: untrusted.
Google's terms want it shown unmodified beside the grounded result, so it goes, whole, into an
`<iframe srcdoc>` whose sandbox allows neither scripts nor same-origin access: it looks as
Google drew it, and nothing in it can run or reach the notebook.

JupyterLab drops that frame from a notebook the user has not run (an untrusted one: its
sanitizer allows no iframe), so the queries also go out as plain escaped links to Google's
results, which the sanitizer keeps; a `<style>` (which the sanitizer drops) hides them beside
the frame, so a trusted view shows the suggestion once (docs/facts.md, grounding).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from urllib.parse import quote_plus, urlsplit

from .facts import SEARCH_QUERY_USD

TOOL = {"google_search": {}}
# Popups only: a chip's link opens Google's results in a new tab, as the terms ask; no
# allow-scripts, no allow-same-origin, no top navigation.
SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
ENTRY_HEIGHT_PX = 64  # Google's chip row; without scripts the frame cannot size itself
# Only where our frame survived does it hide the links after it: a rule from another, trusted
# output on the same page cannot hide the links of an untrusted one, which has no frame.
HIDE_LINKS_BESIDE_FRAME = "iframe.nbp-search-entry+.nbp-search-links{display:none}"
CHIP_STYLE = ("border:1px solid #dadce0;border-radius:16px;padding:2px 12px;margin:2px 4px;"
              "display:inline-block;text-decoration:none")


@dataclass(frozen=True)
class Source:
    uri: str
    title: str


@dataclass(frozen=True)
class Grounding:
    """What a grounded answer said about its search."""

    queries: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    entry_point: str = ""  # searchEntryPoint.renderedContent: untrusted HTML

    @property
    def billed_queries(self) -> int:
        """Queries that are billed: empty strings in webSearchQueries are not."""
        return sum(1 for q in self.queries if q.strip())

    def cost(self) -> float:
        return round(self.billed_queries * SEARCH_QUERY_USD, 6)

    def to_json(self) -> str:
        return json.dumps({"queries": list(self.queries), "entry_point": self.entry_point,
                           "sources": [[s.uri, s.title] for s in self.sources]})

    @classmethod
    def from_json(cls, text: str | None) -> Grounding | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(tuple(map(str, data.get("queries") or ())),
                       tuple(Source(str(u), str(t)) for u, t in data.get("sources") or ()),
                       str(data.get("entry_point") or ""))
        except (ValueError, TypeError, AttributeError):
            return None  # a damaged ledger cell: the image is still shown


def _field(obj: object, camel: str) -> object:
    """camelCase or snake_case, as the API writes either."""
    if not isinstance(obj, dict):
        return None
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(camel, obj.get(snake))


def read(candidate: object) -> Grounding | None:
    """The Grounding in a Gemini candidate, or None when it has no groundingMetadata."""
    meta = _field(candidate, "groundingMetadata")
    if not isinstance(meta, dict):
        return None
    queries = tuple(str(q) for q in _field(meta, "webSearchQueries") or () if isinstance(q, str))
    sources = []
    for chunk in _field(meta, "groundingChunks") or ():
        web = _field(chunk, "web")
        if isinstance(web, dict) and isinstance(web.get("uri"), str):
            sources.append(Source(web["uri"], str(web.get("title") or "")))
    entry = _field(_field(meta, "searchEntryPoint"), "renderedContent")
    return Grounding(queries, tuple(sources), entry if isinstance(entry, str) else "")


def safe_url(uri: str) -> str | None:
    """The link if it is http(s) with a host; None for javascript:, data: and the like."""
    try:
        parts = urlsplit(uri.strip())
    except ValueError:
        return None
    return uri.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def search_links_html(found: Grounding) -> str:
    """The queries as escaped links to Google's results: the suggestion as JupyterLab's
    sanitizer lets an untrusted notebook show it."""
    chips = "".join(
        f'<a href="https://www.google.com/search?q={html.escape(quote_plus(q), quote=True)}" '
        f'target="_blank" rel="noopener noreferrer" style="{CHIP_STYLE}">{html.escape(q)}</a>'
        for q in found.queries if q.strip())
    return f'<div class="nbp-search-links">Google Search: {chips}</div>' if chips else ""


def grounding_html(found: Grounding) -> str:
    """The search suggestion in a sandboxed frame and, for untrusted views, as plain links;
    then the sources as escaped links."""
    out = []
    if found.entry_point:
        # <base target=_blank>: a chip opens Google in a new tab instead of inside the frame.
        doc = '<base target="_blank">' + found.entry_point
        out.append(f'<style>{HIDE_LINKS_BESIDE_FRAME}</style>'
                   f'<iframe class="nbp-search-entry" sandbox="{SANDBOX}" '
                   f'referrerpolicy="no-referrer" srcdoc="{html.escape(doc, quote=True)}" '
                   f'style="border:0;width:100%;height:{ENTRY_HEIGHT_PX}px"></iframe>'
                   + search_links_html(found))
    links = []
    for source in found.sources:
        url = safe_url(source.uri)
        label = html.escape(source.title or (urlsplit(url).netloc if url else source.uri))
        links.append(f'<li><a href="{html.escape(url, quote=True)}" target="_blank" '
                     f'rel="noopener noreferrer nofollow">{label}</a></li>' if url
                     else f"<li>{label}</li>")
    if links:
        out.append(f'<div class="nbp-sources">Sources:<ul>{"".join(links)}</ul></div>')
    return "".join(out)


def grounding_text(found: Grounding) -> str:
    """The same for text-only front ends: the queries and the source links."""
    lines = [f"searched: {', '.join(q for q in found.queries if q.strip())}"] \
        if found.billed_queries else []
    lines += [f"  {s.title or 'source'}: {s.uri}" for s in found.sources if safe_url(s.uri)]
    return "\n".join(lines)
