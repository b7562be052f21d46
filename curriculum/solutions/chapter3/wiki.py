"""Where the WikiGame (section 3.3) reads Wikipedia from: the live site online, a shipped graph offline.

A `WikiSource` answers one question: given a page title, what does the page say, with its links in
place? Both sources start from *wikitext*, the markup editors write, and keep only the article's main
content (`main_content`): prose paragraphs, with every link to another article marked inline as
`<link>Title</link>`. Infoboxes, navigation boxes, references, "See also" lists, categories and
File:/Help:/Special: links are dropped: a player clicking through Wikipedia reads the article, and
the links around it would make the game easier than it is (a "See also" list is a shortcut).

`LiveWiki` fetches wikitext from the MediaWiki action API of en.wikipedia.org (`action=parse`,
`prop=wikitext`); `OfflineWiki` reads the 73 hand-written pages in data/chapter3/wiki/pages.json (real
Wikipedia titles with wikitext-style navigation around them, so the same parser and the same games work
on both). `load_wiki()` picks one through `curriculum.utils.offline.resource_choice("web")`.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from curriculum.utils.offline import Loaded, resource_choice

OFFLINE_GRAPH = Path(__file__).resolve().parents[3] / "data" / "chapter3" / "wiki" / "pages.json"
SUMMARY_CHARS = 300

# Sections that list links around the article rather than telling it; everything from the first of them on is cut.
END_SECTIONS = ("see also", "references", "notes", "external links", "further reading", "bibliography",
                "sources", "citations", "footnotes", "works cited")
# Link prefixes that leave the article namespace: images, categories, help and special pages, other wikis.
OTHER_NAMESPACES = ("file", "image", "media", "category", "help", "special", "wikipedia", "wp", "template",
                    "portal", "talk", "user", "draft", "module", "mediawiki", "wikt", "wiktionary", "commons")
WIKILINK = re.compile(r"\[\[([^\[\]|]*)(?:\|([^\[\]]*))?\]\]")  # [[Title]] or [[Title|shown text]], innermost
LINK_TAG = re.compile(r"<link>(.*?)</link>")


class PageNotFound(KeyError):
    """The source has no page with this title."""


def normalise_title(title: str) -> str:
    """Wikipedia treats `albert_einstein` and `Albert Einstein` as the same page."""
    title = " ".join(title.replace("_", " ").split())
    return title[:1].upper() + title[1:]


def remove_spans(text: str, open_: str, close_: str, where: Callable[[str], bool] | None = None) -> str:
    """Remove every outermost `open_ ... close_` span, nesting allowed (`{{a {{b}} c}}` is one span).

    With `where`, remove only the spans whose inside (the text between the delimiters) it accepts and keep
    the others verbatim. An unclosed span runs to the end of the text and is removed.
    """
    out, i, depth, start = [], 0, 0, 0
    while i < len(text):
        if text.startswith(open_, i):
            if depth == 0:
                out.append(text[start:i])
                start = i
            depth += 1
            i += len(open_)
        elif depth and text.startswith(close_, i):
            depth -= 1
            i += len(close_)
            if depth == 0:
                inner = text[start + len(open_): i - len(close_)]
                if where is not None and not where(inner):
                    out.append(text[start:i])
                start = i
        else:
            i += 1
    if depth == 0:
        out.append(text[start:])
    return "".join(out)


def is_other_namespace(target: str) -> bool:
    """True for link targets outside the article namespace: `File:Pizza.jpg`, `:Category:Foods`, `Help:IPA`."""
    prefix, colon, _ = target.strip().lstrip(":").partition(":")
    return bool(colon) and prefix.strip().lower() in OTHER_NAMESPACES


def main_content(wikitext: str) -> str:
    """The article's prose with each link to another article written inline as `<link>Title</link>`.

    Dropped: comments, <ref> footnotes, templates `{{...}}` (infoboxes, navboxes, citations), tables `{|...|}`,
    links outside the article namespace (with their captions, which may hold links), and everything from the
    first END_SECTIONS heading on. Kept: paragraphs, separated by blank lines, with the whitespace inside each
    collapsed to single spaces; a section heading `== History ==` becomes a paragraph `History`. A link `[[Title#Section|shown]]` becomes `<link>Title</link>` (normalised title, no anchor); a link
    to a section of the same page (`[[#History|...]]`) keeps only its shown text. Bold/italic quotes go.
    """
    # EXERCISE: strip comments, refs, templates and tables; cut at the first END_SECTIONS heading; drop other-namespace links; rewrite [[...]] as <link>Title</link>
    text = re.sub(r"<!--.*?-->", "", wikitext, flags=re.DOTALL)
    text = re.sub(r"<ref[^>]*/>", "", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>", "", text, flags=re.DOTALL)
    text = remove_spans(text, "{{", "}}")
    text = remove_spans(text, "{|", "|}")
    end = re.search(r"^=+\s*(" + "|".join(END_SECTIONS) + r")\s*=+\s*$", text, flags=re.IGNORECASE | re.MULTILINE)
    if end:
        text = text[: end.start()]
    text = remove_spans(text, "[[", "]]", where=is_other_namespace)

    def link(m: re.Match) -> str:
        target, shown = m[1], m[2]
        title = normalise_title(target.split("#")[0])
        return f"<link>{title}</link>" if title else (shown or target.lstrip("#"))

    text = re.sub(r"<[^>]+>", "", text)  # leftover HTML tags (<small>, <br/>), before we add our own
    text = WIKILINK.sub(link, text)
    text = re.sub(r"'{2,}", "", text)
    text = re.sub(r"^=+\s*(.*?)\s*=+\s*$", r"\n\1\n", text, flags=re.MULTILINE)  # a heading is a paragraph of its own
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)
    # END EXERCISE


def page_links(text: str) -> tuple[str, ...]:
    """The titles marked `<link>...</link>` in a page's main content, first occurrence first."""
    return tuple(dict.fromkeys(LINK_TAG.findall(text)))


def plain_text(text: str) -> str:
    """The main content with the link markers removed (what a reader sees)."""
    return LINK_TAG.sub(r"\1", text)


@dataclass(frozen=True)
class WikiPage:
    title: str
    text: str  # main content: paragraphs separated by blank lines, links inline as <link>Title</link>

    @property
    def links(self) -> tuple[str, ...]:
        return page_links(self.text)

    @property
    def summary(self) -> str:
        """The first sentence or two, without link markers: what a reader sees in a link preview."""
        first_para = plain_text(self.text).strip().split("\n\n")[0]
        sentences = re.split(r"(?<=[.!?])\s+", first_para)
        out = sentences[0]
        for s in sentences[1:]:
            if len(out) + len(s) > SUMMARY_CHARS:
                break
            out += " " + s
        return out[: SUMMARY_CHARS * 2]


class WikiSource(ABC):
    description: str

    @abstractmethod
    def get_page(self, title: str) -> WikiPage:
        """The page called `title` (redirects followed); raises PageNotFound."""

    def summary(self, title: str) -> str:
        return self.get_page(title).summary


class OfflineWiki(WikiSource):
    """The shipped graph: small, deterministic, and every page reaches every other page along main-content links."""

    def __init__(self, path: Path = OFFLINE_GRAPH):
        data = json.loads(Path(path).read_text())
        self.wikitext = {p["title"]: p["wikitext"] for p in data["pages"]}
        self.pages = {t: WikiPage(t, main_content(w)) for t, w in self.wikitext.items()}
        self._by_lower = {t.lower(): t for t in self.pages}
        self.description = f"offline Wikipedia stand-in: {len(self.pages)} hand-written pages ({Path(path).name})"

    @property
    def titles(self) -> list[str]:
        return list(self.pages)

    def get_page(self, title: str) -> WikiPage:
        key = normalise_title(title).lower()
        if key not in self._by_lower:
            raise PageNotFound(f"no page titled {title!r} in the offline graph")
        return self.pages[self._by_lower[key]]

    def shortest_path(self, start: str, target: str) -> list[str]:
        """Breadth-first search: the fewest moves from start to target (the par for a game)."""
        start, target = self.get_page(start).title, self.get_page(target).title
        parent: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            title = queue.popleft()
            if title == target:
                path = [title]
                while (prev := parent[path[-1]]) is not None:
                    path.append(prev)
                return path[::-1]
            for nxt in self.pages[title].links:
                if nxt in self.pages and nxt not in parent:
                    parent[nxt] = title
                    queue.append(nxt)
        raise PageNotFound(f"{target!r} cannot be reached from {start!r}")


class LiveWiki(WikiSource):
    """English Wikipedia through the MediaWiki action API: one `action=parse` request per page for its wikitext.

    The request is `GET {api}?action=parse&format=json&formatversion=2&redirects=1&prop=wikitext&page=<title>`;
    the reply is `{"parse": {"title": ..., "wikitext": ...}}` (the title after redirects), or
    `{"error": {"code": "missingtitle", ...}}` for a page that does not exist.
    """

    API = "https://en.wikipedia.org/w/api.php"  # CURRICULUM_MEDIAWIKI_API moves it (the rehearsal does)
    # Wikipedia asks API clients to identify themselves.
    USER_AGENT = "open-alignment-curriculum/0.1 (educational WikiGame; https://github.com/open-alignment-curriculum)"

    def __init__(self, client: httpx.Client | None = None, api: str | None = None, timeout: float = 20.0):
        self.client = client or httpx.Client(headers={"User-Agent": self.USER_AGENT}, timeout=timeout)
        self.api = api or os.environ.get("CURRICULUM_MEDIAWIKI_API") or self.API
        self.description = f"live English Wikipedia (MediaWiki API at {self.api})"
        self._cache: dict[str, WikiPage] = {}

    def get_page(self, title: str) -> WikiPage:
        key = normalise_title(title)
        if key in self._cache:
            return self._cache[key]
        params = {"action": "parse", "format": "json", "formatversion": "2", "redirects": "1",
                  "prop": "wikitext", "page": key}
        response = self.client.get(self.api, params=params)
        response.raise_for_status()
        data = response.json()
        if "error" in data:
            if data["error"].get("code") in ("missingtitle", "invalidtitle"):
                raise PageNotFound(f"Wikipedia has no page titled {title!r}")
            raise RuntimeError(f"MediaWiki API error for {title!r}: {data['error']}")
        wikitext = data["parse"]["wikitext"]
        if isinstance(wikitext, dict):  # formatversion=1 shape, should a server ignore formatversion=2
            wikitext = wikitext["*"]
        page = WikiPage(data["parse"]["title"], main_content(wikitext))
        self._cache[key] = self._cache[normalise_title(page.title)] = page
        return page


def load_wiki() -> Loaded:
    """Live Wikipedia when en.wikipedia.org is reachable, the shipped graph otherwise; the description says why."""
    real, why = resource_choice("web")
    if real:
        live = LiveWiki()
        return Loaded(live, True, f"{live.description} ({why})")
    offline = OfflineWiki()
    return Loaded(offline, False, f"{offline.description} ({why})")
