"""The S3 layer on moto and rclone: both clients, key prefixes, listing cost and staleness."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aioaccess import codec
from aioaccess.backends.s3 import S3BackedCommunicationContainer, make_s3_client, prefix_s3_key
from aioaccess.backends.s3_url import S3Location, parse_s3_url
from aioaccess.handlers.s3_store import S3BackedStoreHandler
from benchmarks.bench_s3_listing import CountingLists  # the real client, its LIST requests counted
from benchmarks.synthetic import make_communication

pytestmark = pytest.mark.s3


@pytest.mark.parametrize("client_kind", ["obstore", "aiobotocore"])
async def test_client_interface_on_both_servers(any_s3_server: str, client_kind: str) -> None:
    """Both clients behind the container and store handler, under a key prefix, on moto and rclone."""
    async with make_s3_client(any_s3_server, client=client_kind) as client:
        bucket = f"layer-{uuid.uuid4().hex}"
        await client.create_bucket(Bucket=bucket)
        await client.head_bucket(Bucket=bucket)
        handler = S3BackedStoreHandler(client, bucket, prefix_len=4, key_prefix="a/b/")
        comms = [make_communication(f"comm {i}/ü", size=3000, seed=i) for i in range(5)]
        for comm in comms:
            await handler.store(comm)
        container = S3BackedCommunicationContainer(client, bucket, prefix_len=4, key_prefix="a/b/")
        assert await container.count() == 5
        assert sorted([i async for i in container]) == sorted(c.id for c in comms)
        got = await container.get_raw_many([c.id for c in comms] + ["missing"])
        assert got == {c.id: codec.write_communication_to_buffer(c) for c in comms}
        key = "a/b/" + prefix_s3_key(comms[0].id, 4)
        assert (await client.head_object(Bucket=bucket, Key=key))["ContentLength"] == len(got[comms[0].id])
        pages = [p async for p in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 2})]
        assert len(pages) == 3 and sum(len(p.get("Contents", ())) for p in pages) == 5
        with pytest.raises(ClientError) as info:
            await client.get_object(Bucket=bucket, Key="nope")
        assert info.value.response["Error"]["Code"] == "NoSuchKey"
        await client.delete_object(Bucket=bucket, Key=key)
        assert not await container.contains(comms[0].id)
        rest = [{"Key": "a/b/" + prefix_s3_key(c.id, 4)} for c in comms[1:]]
        deleted = await client.delete_objects(Bucket=bucket, Delete={"Objects": rest})
        assert len(deleted.get("Deleted", ())) == 4 and not deleted.get("Errors")
        assert [i async for i in container] == []


async def test_paging_costs_the_page_not_the_bucket(any_s3_client: Any, any_s3_bucket: str) -> None:
    """Pages of 3 through 120 ids (LIST pages of 10) cost about one full listing, not one per page."""
    n, page_size, step = 120, 10, 3
    limit = asyncio.Semaphore(32)

    async def put(i: int) -> None:
        async with limit:
            await any_s3_client.put_object(Bucket=any_s3_bucket, Key="c/" + prefix_s3_key(f"doc-{i:04d}", 2),
                                           Body=b"\x00")

    await asyncio.gather(*(put(i) for i in range(n)))
    counting = CountingLists(any_s3_client)
    full = S3BackedCommunicationContainer(counting, any_s3_bucket, prefix_len=2, key_prefix="c/",
                                          list_page_size=page_size, list_ttl=0)
    everything = await full.ids()
    assert len(everything) == n and counting.lists == n // page_size + 1

    counting.lists = 0
    paged = S3BackedCommunicationContainer(counting, any_s3_bucket, prefix_len=2, key_prefix="c/",
                                           list_page_size=page_size, list_ttl=600)
    pages = [await paged.ids(offset, step) for offset in range(0, n + step, step)]
    assert [i for p in pages for i in p] == everything
    assert counting.lists <= 2 * (n // page_size + 1)
    assert await paged.count() == n  # learnt while paging
    lists = counting.lists
    assert await paged.ids(57, 5) == everything[57:62]  # a jump back: from a remembered cursor
    assert counting.lists <= lists + 1

    counting.lists = 0
    assert await full.ids(0, n + 5) == everything  # ttl 0, one long page: one pass
    assert counting.lists <= n // page_size + 1

    counting.lists = 0
    uncached = [await full.ids(offset, step) for offset in range(0, 60, step)]
    assert [i for p in uncached for i in p] == everything[:60]
    assert counting.lists > 2 * (60 // page_size)  # ttl 0: every call lists from the first key


async def test_count_and_pages_are_at_most_ttl_old(s3_client: Any, s3_bucket: str) -> None:
    now = [0.0]
    container = S3BackedCommunicationContainer(s3_client, s3_bucket, prefix_len=1, list_ttl=5)
    container.listing.clock = lambda: now[0]
    for i in range(3):
        await s3_client.put_object(Bucket=s3_bucket, Key=prefix_s3_key(f"id-{i}", 1), Body=b"\x00")
    assert await container.count() == 3
    first = await container.ids(0, 10)
    await s3_client.put_object(Bucket=s3_bucket, Key=prefix_s3_key("id-new", 1), Body=b"\x00")
    now[0] = 4.9
    assert await container.count() == 3 and await container.ids(0, 10) == first  # within the bound
    now[0] = 5.1
    assert await container.count() == 4
    assert sorted(await container.ids(0, 10)) == sorted([*first, "id-new"])
    fresh = S3BackedCommunicationContainer(s3_client, s3_bucket, prefix_len=1, list_ttl=0)
    await s3_client.put_object(Bucket=s3_bucket, Key=prefix_s3_key("id-newer", 1), Body=b"\x00")
    assert await fresh.count() == 5


@pytest.mark.parametrize(("url", "where"), [
    ("s3://bucket", S3Location("bucket", "")),
    ("s3://bucket/", S3Location("bucket", "")),
    ("s3://bucket/corpus", S3Location("bucket", "corpus/")),
    ("s3://bucket/a/b/", S3Location("bucket", "a/b/")),
])
def test_parse_s3_url(url: str, where: S3Location) -> None:
    assert parse_s3_url(url) == where


@pytest.mark.parametrize("url", ["s3://", "s3:///x", "http://bucket", "s3://b/a//c", "s3://b/./c", "s3://b/a/../c",
                                 "s3://b/x?y=1", "s3://user@b/", "bucket"])
def test_bad_s3_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="s3://|prefix|query|bucket"):
        parse_s3_url(url)


async def test_unknown_client_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown S3 client 'fast'.*obstore or aiobotocore"):
        async with make_s3_client(None, client="fast"):
            pass


@pytest.mark.parametrize("comm_id", ["a//b", "dir/./x", "ends/", "../up"])
async def test_keys_obstore_cannot_address_are_refused_clearly(s3_server: str, comm_id: str) -> None:
    """object_store refuses or rewrites some keys; such ids get a clear error, never a different key."""
    from aioaccess import BackendUnavailable, InvalidCommId

    raw = codec.write_communication_to_buffer(make_communication(comm_id, size=500, seed=1))
    async with make_s3_client(s3_server, client="aiobotocore") as boto, make_s3_client(s3_server) as obs:
        bucket = f"keys-{uuid.uuid4().hex}"
        await boto.create_bucket(Bucket=bucket)
        with pytest.raises(InvalidCommId, match="aiobotocore"):
            await S3BackedStoreHandler(obs, bucket, prefix_len=0).store_raw(comm_id, raw)
        await S3BackedStoreHandler(boto, bucket, prefix_len=0).store_raw(comm_id, raw)  # S3 itself takes it
        assert await S3BackedCommunicationContainer(boto, bucket, prefix_len=0).get_raw(comm_id) == raw
        with pytest.raises(BackendUnavailable, match="cannot read key"):
            await S3BackedCommunicationContainer(obs, bucket, prefix_len=0).get_raw(comm_id)


async def test_refreshable_credentials_are_refreshed_by_botocore_for_obstore(rclone_server: str) -> None:
    """Credentials that expire (roles, SSO) reach obstore through a provider; botocore refreshes them."""
    import datetime
    import os

    from botocore.credentials import RefreshableCredentials

    from aioaccess.backends.s3_obstore import ObstoreS3Client

    refreshed: list[int] = []

    def refresh() -> dict[str, str]:
        refreshed.append(1)
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
        return {"access_key": os.environ["AWS_ACCESS_KEY_ID"], "secret_key": os.environ["AWS_SECRET_ACCESS_KEY"],
                "token": "", "expiry_time": expiry.isoformat()}

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    async with make_s3_client(rclone_server) as maker:
        bucket = f"creds-{uuid.uuid4().hex}"
        await maker.create_bucket(Bucket=bucket)
    client = ObstoreS3Client(rclone_server, credentials, "us-east-1")
    # no frozen keys: obstore asks the provider, which asks botocore (which refreshes them)
    assert "access_key_id" not in client._options and callable(client._options["credential_provider"])
    await client.put_object(Bucket=bucket, Key="k", Body=b"payload")
    assert await client.get_bytes(bucket, "k") == b"payload"
    assert len(refreshed) >= 2  # the first expiry is within botocore's refresh window: it refreshed
