"""S3 listings that cost the page, not the bucket.

S3 lists keys in order, 1,000 per LIST request, and can start after any
key (``StartAfter``), but has no "start at offset N".  ``ListingCache``
remembers, for each listed page, the offset it started at and its last key
(a cursor), so ``ids(offset, count)`` resumes from the nearest cursor
instead of listing from the first key; it keeps the ids of the most recently
used pages too, so paging through a corpus 100 ids at a time costs one LIST
per 1,000 ids, as one full listing does.

Staleness is bounded by ``ttl`` seconds: a page's ids and the count are
reused for at most ``ttl`` seconds after the LIST that read them.  Cursors
outlive that (the ids listed after one are fresh; only which offset a key
sits at is as of the listing that made it); ``ttl = 0`` turns all caching
off, so every call lists from the first key.  Memory: at most ``max_pages``
pages of ids and ``max_cursors`` cursors.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_LIST_TTL", "ListPage", "ListingCache"]

#: Seconds a listed page or count is reused.
DEFAULT_LIST_TTL = 5.0

#: ``list_page(start_after) -> (ids, last_key, more)``: one LIST request after key ``start_after``.
ListPage = Callable[[str | None], Awaitable[tuple[list[str], str | None, bool]]]


@dataclass(slots=True)
class _Page:
    start: int             # offset of the page's first id
    end: int               # offset after its last id
    last_key: str | None   # StartAfter of the next page
    more: bool             # whether a next page exists
    born: float            # when it was listed
    ids: list[str] | None  # None once dropped from the ids LRU (the cursor stays)


class ListingCache:
    """Offset-addressed pages of one listing, with cursors and a bounded-staleness count."""

    def __init__(self, list_page: ListPage, ttl: float = DEFAULT_LIST_TTL, *, max_pages: int = 32,
                 max_cursors: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.list_page = list_page
        self.ttl = ttl
        self.max_pages = max_pages
        self.max_cursors = max_cursors
        self.clock = clock
        self._pages: OrderedDict[int, _Page] = OrderedDict()  # by start offset; LRU order of cursors
        self._with_ids: OrderedDict[int, None] = OrderedDict()  # LRU of pages still holding ids
        self._count: tuple[int, float] | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Forget every page, cursor and count."""
        self._pages.clear()
        self._with_ids.clear()
        self._count = None

    async def ids(self, offset: int, count: int | None) -> list[str]:
        """``list(all ids)[offset:][:count]`` for ``offset >= 0``."""
        out: list[str] = []
        if count == 0:
            return out
        async with self._lock:
            page = await self._page_at(offset)
            while page is not None:
                assert page.ids is not None
                take = page.ids[max(offset - page.start, 0):]
                out.extend(take if count is None else take[:count - len(out)])
                if not page.more or count is not None and len(out) >= count:
                    break
                page = await self._page_at(page.end, page)
        return out

    async def count(self) -> int:
        """Number of ids, listed at most ``ttl`` seconds ago."""
        now = self.clock()
        if self._count is not None and now - self._count[1] <= self.ttl:
            return self._count[0]
        async with self._lock:
            page, n = await self._page_at(0), 0
            while page is not None:
                n = page.end
                if not page.more:
                    break
                page = await self._page_at(page.end, page)
            self._count = (n, self.clock())
        return n

    async def _page_at(self, offset: int, previous: _Page | None = None) -> _Page | None:
        """The page holding ``offset`` with its ids (listing what is needed); None past the end.

        ``previous``: the page just before ``offset`` (``offset == previous.end``), to continue from.
        """
        now = self.clock()
        start, after = (previous.end, previous.last_key) if previous is not None else (0, None)
        # Jump along remembered cursors to the last page starting at or before offset.
        while True:
            page = self._pages.get(start) if self.ttl > 0 else None
            if page is None:
                break
            if offset < page.end:
                if page.ids is not None and now - page.born <= self.ttl:
                    self._touch(page)
                    return page
                break
            if not page.more:
                if now - page.born <= self.ttl:
                    return None
                break
            self._pages.move_to_end(start)
            start, after = page.end, page.last_key
        # List forward from there.
        while True:
            ids, last_key, more = await self.list_page(after)
            page = _Page(start, start + len(ids), last_key, more and bool(ids), self.clock(), ids)
            self._remember(page)
            if offset < page.end:
                return page
            if not page.more:
                self._count = (page.end, page.born)
                return None
            start, after = page.end, page.last_key

    def _touch(self, page: _Page) -> None:
        self._pages.move_to_end(page.start)
        self._with_ids.move_to_end(page.start)

    def _remember(self, page: _Page) -> None:
        if self.ttl <= 0:
            return
        old = self._pages.get(page.start)
        if old is not None and (old.end, old.last_key) != (page.end, page.last_key):
            for start in [s for s in self._pages if s > page.start]:  # their offsets are out of date
                del self._pages[start]
                self._with_ids.pop(start, None)
        self._pages[page.start] = page
        self._with_ids[page.start] = None
        self._touch(page)
        while len(self._with_ids) > self.max_pages:
            start, _ = self._with_ids.popitem(last=False)
            if start in self._pages:
                self._pages[start].ids = None
        while len(self._pages) > self.max_cursors:
            start, _ = self._pages.popitem(last=False)
            self._with_ids.pop(start, None)
