"""Hypothesis runs are reproducible: with CI set each run draws the same examples; a failure says how to replay it."""

from __future__ import annotations

import os
import subprocess
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
FAILING = """
import conftest  # loads the suite's hypothesis profile
from hypothesis import given, strategies as st

@given(st.integers(0, 10**9))
def test_fails(x):
    print("DRAWN", x)
    assert x % 7 != 3

test_fails()
"""


def _run(**env: str) -> tuple[list[str], str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    proc = subprocess.run([sys.executable, "-c", FAILING], cwd=TESTS, env={**base, **env}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "AssertionError" in proc.stderr, proc.stderr  # the property fails, as it must
    return [line for line in proc.stdout.splitlines() if line.startswith("DRAWN")], proc.stdout + proc.stderr


def test_ci_profile_draws_the_same_examples_and_prints_the_replay() -> None:
    (first, output), (second, _) = _run(CI="1"), _run(CI="1")
    assert first and first == second
    assert "@reproduce_failure(" in output
