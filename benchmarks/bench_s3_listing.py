"""What listing costs: LIST requests to page through an S3 corpus with ``getCommunicationIDs``.

One rclone ``serve s3`` (or moto), ``-n`` tiny objects under ``s3://BUCKET/corpus/`` in
concrete-python's key layout, then, counted by a wrapper around the real
(default, obstore) client's ``list_objects_v2``:

- one full listing (``container.ids()``);
- ``getCommunicationIDs(offset, --page)`` for every page in order, through the
  fetch handler, with the listing cache (``--s3-list-ttl`` 5, the default);
- the same without it (``list_ttl=0``: every call lists from the first key,
  as concrete-python does), up to ``--uncached-pages`` pages.

    python -m benchmarks.bench_s3_listing [-n 20000] [--page 100]

writes ``benchmarks/results/s3-listing-<date>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import tempfile
import time
from typing import Any

from benchmarks.bench_fetch import stop
from benchmarks.bench_s3_fetch import CREDENTIALS, start_s3_endpoint
from benchmarks.bench_s3_store import environment, save_report

__all__ = ["main"]

HERE = os.path.dirname(os.path.abspath(__file__))


class CountingLists:
    """A real S3 client with its LIST requests counted."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.lists = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def list_objects_v2(self, **kwargs: Any) -> Any:
        self.lists += 1
        return await self.client.list_objects_v2(**kwargs)


async def measure(endpoint: str, n: int, page: int, uncached_pages: int) -> dict[str, Any]:
    from aioaccess.backends.s3 import S3BackedCommunicationContainer, make_s3_client, prefix_s3_key
    from aioaccess.handlers import CommunicationContainerFetchHandler

    async with make_s3_client(endpoint) as client:
        bucket = f"bench-listing-{os.getpid()}"
        await client.create_bucket(Bucket=bucket)
        limit = asyncio.Semaphore(64)

        async def put(i: int) -> None:
            async with limit:
                await client.put_object(Bucket=bucket, Key="corpus/" + prefix_s3_key(f"doc-{i:06d}", 4), Body=b"\0")

        t0 = time.monotonic()
        await asyncio.gather(*(put(i) for i in range(n)))
        put_s = time.monotonic() - t0
        counting = CountingLists(client)
        results: dict[str, Any] = {"objects": n, "page": page, "put_seconds": round(put_s, 1)}
        for name, ttl, pages in (("full listing", 0.0, None), ("pages, cached (ttl 5 s)", 5.0, n // page + 1),
                                 ("pages, uncached (ttl 0)", 0.0, uncached_pages)):
            container = S3BackedCommunicationContainer(counting, bucket, prefix_len=4, key_prefix="corpus/",
                                                       list_ttl=ttl)
            handler = CommunicationContainerFetchHandler(container)
            counting.lists = 0
            t0 = time.monotonic()
            if pages is None:
                got = len(await container.ids())
            else:
                got = 0
                for k in range(pages):
                    got += len(await handler.getCommunicationIDs(k * page, page))
            results[name] = {"ids": got, "pages": pages, "list_requests": counting.lists,
                             "seconds": round(time.monotonic() - t0, 2)}
            print(f"{name:>26}: {got} ids, {pages or 1} calls, {counting.lists} LIST requests, "
                  f"{results[name]['seconds']} s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="objects (default: 20000)")
    parser.add_argument("--page", type=int, default=100, help="ids per getCommunicationIDs call (default: 100)")
    parser.add_argument("--uncached-pages", type=int, default=50,
                        help="pages to time without the cache (default: 50)")
    parser.add_argument("--endpoint", choices=("rclone", "moto"), default="rclone")
    parser.add_argument("--out", help="JSON report (default: benchmarks/results/s3-listing-<date>.json)")
    args = parser.parse_args(argv)
    for name, value in CREDENTIALS.items():
        os.environ.setdefault(name, value)
    s3, endpoint = start_s3_endpoint(args.endpoint, tempfile.mkdtemp(prefix="bench-s3-listing-"))
    try:
        results = asyncio.run(measure(endpoint, args.n, args.page, args.uncached_pages))
    finally:
        stop(s3)
    report = {"benchmark": "bench_s3_listing", "endpoint": args.endpoint,
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "load_average": os.getloadavg(), "environment": environment(), **results}
    out = args.out or os.path.join(HERE, "results", f"s3-listing-{datetime.date.today().isoformat()}.json")
    save_report(report, out)
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
