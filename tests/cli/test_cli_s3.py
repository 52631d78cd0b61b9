"""aioaccess s3 list|fetch|store against moto, interoperating with concrete-python's S3 layout (boto 2)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from _concrete_s3 import concrete_python_s3

from aioaccess import codec
from benchmarks.synthetic import make_corpus

pytestmark = [pytest.mark.s3, pytest.mark.interop]

async def _in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``aioaccess ARGS`` in this process (in a thread: it runs its own event loop)."""
    from aioaccess.cli.main import main

    capsys.readouterr()
    code = await asyncio.to_thread(main, [*args, "-l", "WARNING"])
    out, err = capsys.readouterr()
    return code, out, err


async def _cli(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "aioaccess", *args, "-l", "WARNING",
                                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_s3_list_fetch_store_interoperate_with_concrete_python(s3_server: str, s3_client: Any, s3_bucket: str,
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    prefix_len = 3  # not the default, so both sides must honour the flag
    raws = {c.id: codec.encode(c) for c in make_corpus(8, size=2000, full=True)}
    src = tmp_path / "src"
    src.mkdir()
    for comm_id, raw in raws.items():
        (src / f"{comm_id}.comm").write_bytes(raw)
    flags = ["--endpoint-url", s3_server, "--prefix-len", str(prefix_len), "--concurrency", "4"]
    # concrete-python stores; aioaccess lists and fetches to a .tar.gz concrete-python reads.
    # (concrete_python_s3: concrete-python's S3BackedStoreHandler and container, what its s3-*-concrete.py use)
    await asyncio.to_thread(concrete_python_s3, "store", s3_server, s3_bucket, prefix_len, os.fspath(src))
    code, out, err = await _in_process(capsys, "s3", "list", s3_bucket, *flags)
    assert code == 0, err
    assert sorted(out.split()) == sorted(raws)
    tgz = tmp_path / "out.tar.gz"
    code, _, err = await _in_process(capsys, "s3", "fetch", s3_bucket, os.fspath(tgz), *flags)
    assert code == 0 and "fetched 8 of 8" in err, err
    from concrete.util import CommunicationReader as CpReader
    from concrete.util import write_communication_to_buffer as cp_encode

    got = {name: cp_encode(c) for c, name in CpReader(os.fspath(tgz), add_references=False)}
    assert got == {f"{comm_id}.concrete": raw for comm_id, raw in raws.items()}
    # aioaccess stores (the .tar.gz, then stdin); concrete-python reads the bucket back byte for byte.
    second = f"b-{uuid.uuid4().hex}"
    await s3_client.create_bucket(Bucket=second)
    code, _, err = await _in_process(capsys, "s3", "store", os.fspath(tgz), second, *flags)
    assert code == 0 and "stored 8, failed 0" in err, err
    extra_comm = next(make_corpus(1, size=500, seed=7))
    extra_comm.id = "from-stdin"
    extra = codec.encode(extra_comm)
    code, _, err = await _cli("s3", "store", "-", second, *flags, stdin=extra + raws[sorted(raws)[0]])
    assert code == 0 and "stored 2, failed 0" in err, err
    back = tmp_path / "back"
    back.mkdir()
    await asyncio.to_thread(concrete_python_s3, "read", s3_server, second, prefix_len, os.fspath(back))
    expected = {**raws, codec.read_string_field(extra, 1): extra}
    assert {p.stem: p.read_bytes() for p in back.iterdir()} == expected


async def test_s3_commands_fail_in_one_line(s3_server: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await _in_process(capsys, "s3", "list", f"no-such-{uuid.uuid4().hex}", "--endpoint-url", s3_server)
    assert code == 2 and "not usable" in err and "Traceback" not in err, err
    code, _, err = await _in_process(capsys, "s3", "store", os.fspath(tmp_path / "missing"), "b", "--endpoint-url",
                                     s3_server)
    assert code == 2 and "does not exist" in err, err
