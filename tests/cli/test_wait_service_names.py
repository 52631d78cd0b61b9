"""wait-service takes every service name concrete-python's wait-concrete-service.py takes."""

from __future__ import annotations

import asyncio
import re
import subprocess
from typing import Any

import pytest
from _procs import concrete_script

from aioaccess.cli.main import build_parser, main


def _concrete_names() -> list[str]:
    proc = subprocess.run([*concrete_script("wait-concrete-service.py"), "NoSuchService"], capture_output=True,
                          text=True, timeout=60)
    match = re.search(r"invalid choice: .*\(choose from (.*)\)", proc.stderr)
    assert match, proc.stderr
    return re.findall(r"'(\w+)'", match[1])


@pytest.mark.interop
async def test_every_concrete_service_name_is_accepted_and_waited_for(fetch_server: Any) -> None:
    names = await asyncio.to_thread(_concrete_names)
    assert len(names) == 10 and "Summarization" in names
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    ours = next(a for a in sub.choices["wait-service"]._actions if a.dest == "service_name")  # type: ignore[union-attr]
    assert sorted(ours.choices) == sorted(names)
    for name in names:  # any Concrete service answers alive(): here a fetch server stands in for each
        code = await asyncio.to_thread(main, ["wait-service", name, "--host", "127.0.0.1", "-p",
                                              str(fetch_server.bound_port), "--timeout", "10", "-l", "WARNING"])
        assert code == 0, name
