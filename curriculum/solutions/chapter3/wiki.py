"""Where the WikiGame (section 3.3) reads Wikipedia from: the live site online, a shipped graph offline.

A `WikiSource` answers one question: given a page title, what does the page say and which pages does
it link to? `LiveWiki` asks the MediaWiki API of en.wikipedia.org; `OfflineWiki` reads the 73
hand-written pages in data/chapter3/wiki/pages.json (real Wikipedia titles, so the same games work
on both). `load_wiki()` picks one through `curriculum.utils.offline.resource_choice("web")`.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import httpx

from curriculum.utils.offline import Loaded, resource_choice

OFFLINE_GRAPH = Path(__file__).resolve().parents[3] / "data" / "chapter3" / "wiki" / "pages.json"
SUMMARY_CHARS = 300


class PageNotFound(KeyError):
    """The source has no page with this title."""


@dataclass(frozen=True)
class WikiPage:
    title: str
    content: str  # plain text, no markup
    links: tuple[str, ...]  # titles of the pages this one links to (main namespace only)

    @property
    def summary(self) -> str:
        """The first sentence or two: what a reader sees in a link preview."""
        first_para = self.content.strip().split("\n\n")[0]
        sentences = re.split(r"(?<=[.!?])\s+", first_para)
        out = sentences[0]
        for s in sentences[1:]:
            if len(out) + len(s) > SUMMARY_CHARS:
                break
            out += " " + s
        return out[: SUMMARY_CHARS * 2]


def normalise_title(title: str) -> str:
    """Wikipedia treats `albert_einstein` and `Albert Einstein` as the same page."""
    title = " ".join(title.replace("_", " ").split())
    return title[:1].upper() + title[1:]


class WikiSource(ABC):
    description: str

    @abstractmethod
    def get_page(self, title: str) -> WikiPage:
        """The page called `title` (redirects followed); raises PageNotFound."""

    def summary(self, title: str) -> str:
        return self.get_page(title).summary


class OfflineWiki(WikiSource):
    """The shipped graph: small, deterministic, and every page reaches every other page."""

    def __init__(self, path: Path = OFFLINE_GRAPH):
        data = json.loads(Path(path).read_text())
        self.pages = {p["title"]: WikiPage(p["title"], p["content"], tuple(p["links"])) for p in data["pages"]}
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
                if nxt not in parent:
                    parent[nxt] = title
                    queue.append(nxt)
        raise PageNotFound(f"{target!r} cannot be reached from {start!r}")


class LiveWiki(WikiSource):
    """English Wikipedia through the MediaWiki action API (one request per page, plus link continuation)."""

    API = os.environ.get("CURRICULUM_MEDIAWIKI_API", "https://en.wikipedia.org/w/api.php")  # the rehearsal moves it
    # Wikipedia asks API clients to identify themselves.
    USER_AGENT = "open-alignment-curriculum/0.1 (educational WikiGame; https://github.com/open-alignment-curriculum)"

    def __init__(self, client: httpx.Client | None = None, max_chars: int = 6000, timeout: float = 20.0):
        self.client = client or httpx.Client(headers={"User-Agent": self.USER_AGENT}, timeout=timeout)
        self.max_chars = max_chars  # long articles would flood the agent's context
        self.description = "live English Wikipedia (MediaWiki API)"
        self._cache: dict[str, WikiPage] = {}

    def get_page(self, title: str) -> WikiPage:
        key = normalise_title(title)
        if key in self._cache:
            return self._cache[key]
        params = {
            "action": "query", "format": "json", "formatversion": "2", "redirects": "1", "titles": key,
            "prop": "extracts|links", "explaintext": "1", "plnamespace": "0", "pllimit": "max",
        }
        content, links, resolved = None, [], key
        while True:
            response = self.client.get(self.API, params=params)
            response.raise_for_status()
            data = response.json()
            page = data["query"]["pages"][0]
            if page.get("missing") or page.get("invalid"):
                raise PageNotFound(f"Wikipedia has no page titled {title!r}")
            resolved = page["title"]
            if content is None and "extract" in page:
                content = page["extract"]
            links += [link["title"] for link in page.get("links", [])]
            if "continue" not in data:
                break
            # Link lists longer than one batch come back in pages; the extract arrives only once.
            params = {**params, **data["continue"]}
        page = WikiPage(resolved, (content or "")[: self.max_chars], tuple(dict.fromkeys(links)))
        self._cache[key] = self._cache[normalise_title(resolved)] = page
        return page


def load_wiki() -> Loaded:
    """Live Wikipedia when en.wikipedia.org is reachable, the shipped graph otherwise; the description says why."""
    real, why = resource_choice("web")
    if real:
        live = LiveWiki()
        return Loaded(live, True, f"{live.description} ({why})")
    offline = OfflineWiki()
    return Loaded(offline, False, f"{offline.description} ({why})")
