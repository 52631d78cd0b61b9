"""aioaccess.file_io against concrete-python's concrete.util.file_io: every format, both directions."""

from __future__ import annotations

import asyncio
import bz2
import gc
import os
import time
from pathlib import Path
from typing import Any

import pytest

from aioaccess import (
    CommunicationReader,
    CommunicationWriter,
    CommunicationWriterTar,
    CommunicationWriterTGZ,
    CommunicationWriterZip,
    CorruptCommunication,
    codec,
    read_communication_from_file,
    write_communication_to_file,
)
from aioaccess.file_io import FileType
from benchmarks.synthetic import make_corpus

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def raws() -> list[bytes]:
    return [codec.encode(c) for c in make_corpus(5, size=3000, full=True)]


def _cp(raw: bytes) -> Any:
    from concrete.util import read_communication_from_buffer

    return read_communication_from_buffer(raw, add_references=False)


def _cp_read(path: str, **kwargs: Any) -> list[tuple[bytes, str]]:
    from concrete.util import CommunicationReader as CpReader
    from concrete.util import write_communication_to_buffer

    return [(write_communication_to_buffer(c), name) for c, name in CpReader(path, **kwargs)]


async def _read(path: str, **kwargs: Any) -> list[tuple[bytes, str]]:
    return [(codec.encode(c), name) async for c, name in CommunicationReader(path, **kwargs)]


def _cp_write_all(tmp: Path, raws: list[bytes]) -> dict[str, Path]:
    """One file of every kind concrete-python writes (and a .bz2 stream, which it reads)."""
    from concrete.util import CommunicationWriter as CpWriter
    from concrete.util import CommunicationWriterTar as CpTar
    from concrete.util import CommunicationWriterTGZ as CpTGZ
    from concrete.util import CommunicationWriterZip as CpZip

    paths = {k: tmp / f"cp{k}" for k in (".tar", ".tar.gz", ".zip", ".concrete", ".concrete.gz", ".concrete.bz2")}
    for key, cls in ((".tar", CpTar), (".tar.gz", CpTGZ), (".zip", CpZip)):
        with cls(str(paths[key])) as w:
            for raw in raws:
                w.write(_cp(raw))
    for key, gz in ((".concrete", False), (".concrete.gz", True)):
        with CpWriter(str(paths[key]), gzip=gz) as w:
            for raw in raws:
                w.write(_cp(raw))
    paths[".concrete.bz2"].write_bytes(bz2.compress(b"".join(raws)))
    return paths


async def test_reader_reads_what_concrete_python_writes_as_it_reads_it(tmp_path: Path, raws: list[bytes]) -> None:
    for key, path in _cp_write_all(tmp_path, raws).items():
        ours = await _read(str(path), add_references=False)
        assert ours == _cp_read(str(path), add_references=False), key
        assert [r for r, _ in ours] == raws, key
    # A directory of them: recursive=True only, as in concrete-python.
    with pytest.raises(ValueError, match="recursive"):
        CommunicationReader(str(tmp_path))
    ours = await _read(str(tmp_path), recursive=True)
    assert sorted(r for r, _ in ours) == sorted(raws * 6)
    # Explicit filetypes.
    assert [r for r, _ in await _read(str(tmp_path / "cp.tar.gz"), filetype=FileType.TAR_GZ)] == raws
    assert [r for r, _ in await _read(str(tmp_path / "cp.concrete.gz"), filetype="stream-gz")] == raws


@pytest.mark.parametrize("kind", ["tar", "tgz", "zip", "stream", "stream-gz"])
async def test_concrete_python_reads_what_the_writers_write(tmp_path: Path, raws: list[bytes], kind: str) -> None:
    path = str(tmp_path / ("out" + {"tar": ".tar", "tgz": ".tar.gz", "zip": ".zip", "stream": ".concrete",
                                     "stream-gz": ".concrete.gz"}[kind]))
    writer: Any = {"tar": CommunicationWriterTar(path), "tgz": CommunicationWriterTGZ(path),
                   "zip": CommunicationWriterZip(path), "stream": CommunicationWriter(path),
                   "stream-gz": CommunicationWriter(path, gzip=True)}[kind]
    async with writer as w:
        for raw in raws:
            await w.write(codec.read_communication_from_buffer(raw))
    got = _cp_read(path, add_references=False)
    assert [r for r, _ in got] == raws
    if kind in ("tar", "tgz", "zip"):
        assert [n for _, n in got] == [f"{_cp(r).id}.concrete" for r in raws]


async def test_single_files_and_references(tmp_path: Path, raws: list[bytes]) -> None:
    from concrete.util import read_communication_from_file as cp_read_file
    from concrete.util import write_communication_to_file as cp_write_file

    comm = codec.read_communication_from_buffer(raws[0])
    await write_communication_to_file(comm, tmp_path / "a.comm")
    theirs = cp_read_file(str(tmp_path / "a.comm"))  # add_references=True by default, in both
    cp_write_file(theirs, str(tmp_path / "b.comm"))
    ours = await read_communication_from_file(tmp_path / "b.comm")
    assert codec.encode(ours) == raws[0]
    for attr in ("tokenizationForUUID", "entityMentionForUUID", "entityForUUID", "situationMentionForUUID",
                 "situationForUUID", "sectionForUUID", "sentenceForUUID"):
        assert sorted(getattr(ours, attr)) == sorted(getattr(theirs, attr)), attr
    for tok_id, tok in ours.tokenizationForUUID.items():
        assert tok.sentence.tokenization is tok and tok.uuid.uuidString == tok_id
    for entity in ours.entitySetList[0].entityList:
        assert [m.uuid.uuidString for m in entity.mentionList] == [m.uuidString for m in entity.mentionIdList]
    plain = await read_communication_from_file(tmp_path / "b.comm", add_references=False)
    assert not hasattr(plain, "tokenizationForUUID")


async def test_a_file_that_is_not_communications_is_a_clear_error(tmp_path: Path, raws: list[bytes]) -> None:
    path = tmp_path / "bad.concrete"
    path.write_bytes(raws[0] + raws[1][:100])
    reader = CommunicationReader(str(path))
    with pytest.raises(CorruptCommunication, match="bad.concrete#1"):
        async for _ in reader:
            pass


async def test_reading_a_large_tgz_does_not_stall_the_loop(tmp_path: Path) -> None:
    """A ticker sharing the loop keeps ticking while a large .tar.gz is inflated, split and decoded.

    (add_references=False here: its back-pointers make every Communication cyclic garbage, and
    collecting that is the caller's GC work wherever it reads.)
    """
    raws = [codec.encode(c) for c in make_corpus(400, size=6000)]
    path = str(tmp_path / "big.tar.gz")
    async with CommunicationWriterTGZ(path) as w:
        for raw in raws:
            await w.write(codec.read_communication_from_buffer(raw))

    started = time.perf_counter()  # the same work done on the loop: how long it would block everyone
    blocking = len(_blocking_read(path, add_references=False))
    blocked_for = time.perf_counter() - started
    gc.collect()  # (the objects read above are garbage now; a full collection must not land in the timing)

    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    count = 0
    async for comm, _ in CommunicationReader(path, add_references=False):
        count += 1
        assert comm.sectionList
    stop.set()
    await task
    print(f"read {count} Communications; the same read on the loop blocks it {blocked_for * 1000:.0f} ms; "
          f"longest loop gap while reading {max(gaps) * 1000:.1f} ms over {len(gaps)} ticks")
    assert count == len(raws) == blocking
    assert max(gaps) < blocked_for / 4, (max(gaps), blocked_for)


def _blocking_read(path: str, add_references: bool) -> list[tuple[Any, str]]:
    from aioaccess.backends.memory import split_communications
    from aioaccess.file_io import iter_files

    out = []
    for name, data in iter_files(path):
        for raw in split_communications(data, name):
            out.append((codec.read_communication_from_buffer(raw, add_references=add_references), name))
    return out


def test_filetype_names() -> None:
    assert FileType.lookup("tar-gz") == FileType.TAR_GZ and FileType.CHOICES[0] == "auto"
    with pytest.raises(ValueError, match="unknown filetype"):
        FileType.lookup("rar")
    assert os.path.basename(__file__).startswith("test_")
