"""A real Redis Cluster for tests: 3 masters with one replica each, from redis-server and redis-cli.

``redis_cluster`` (session) yields a started :class:`RedisCluster`; tests that kill
nodes start their own (``with RedisCluster() as cluster:``).  Every node listens
on a free loopback port with its cluster bus on another (``cluster-port``), keeps
no data on disk and fails over after ``cluster-node-timeout`` (1 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Self

import pytest
from _procs import unused_port
from _services import RedisServerProcess

__all__ = ["RedisCluster", "redis_cluster"]

NODE_TIMEOUT_MS = 1000


class ClusterNode(RedisServerProcess):
    """One cluster-enabled redis-server."""

    name = "redis-cluster"

    def __init__(self, workdir: str, port: int | None = None, bus_port: int | None = None) -> None:
        super().__init__(port)
        self.bus_port = bus_port or unused_port()
        os.makedirs(os.path.join(workdir, str(self.port)), exist_ok=True)
        self.argv += ["--cluster-enabled", "yes", "--cluster-port", str(self.bus_port),
                      "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--dir", os.path.join(workdir, str(self.port)),
                      "--cluster-config-file", "nodes.conf", "--cluster-require-full-coverage", "no"]


class RedisCluster:
    """3 masters + ``replicas`` replicas each, on loopback; ``url`` is ``redis+cluster://...``."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.workdir = tempfile.mkdtemp(prefix="aioaccess-cluster-")
        self.nodes = [ClusterNode(self.workdir) for _ in range(masters * (1 + replicas))]
        self.replicas = replicas

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3]) + "/"

    def cli(self, port: int, *args: str, timeout: float = 30) -> str:
        out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError(f"redis-cli {' '.join(args)} failed: {out.stdout}{out.stderr}")
        return out.stdout

    def start(self) -> Self:
        if shutil.which("redis-cli") is None:
            pytest.fail("redis-cli is not on PATH: install redis-tools (tests/run.sh does)", pytrace=False)
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        self.cli(self.nodes[0].port, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas),
                 "--cluster-yes", timeout=60)
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node reports cluster_state:ok and every slot is served."""
        deadline = time.monotonic() + timeout
        while True:
            states = [self.cli(n.port, "cluster", "info") for n in self.nodes if n.alive()]
            links = [self.cli(n.port, "info", "replication") for n in self.nodes if n.alive()]
            if all("cluster_state:ok" in s and "cluster_slots_ok:16384" in s for s in states) and \
                    all("role:master" in r or "master_link_status:up" in r for r in links):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster not ok after {timeout} s: {states[0]}")
            time.sleep(0.1)

    def wait_failed_over(self, port: int, timeout: float = 30) -> None:
        """Until every live node marks node ``port`` as failed, then :meth:`wait_ok` (its replica serves its slots).

        Right after a kill the others have not noticed yet and still report the cluster ok."""
        deadline = time.monotonic() + timeout
        while True:
            views = [self.cli(n.port, "cluster", "nodes") for n in self.nodes if n.alive()]
            if all(any(f":{port}@" in line and "fail" in line.split()[2].split(",") for line in view.splitlines())
                   for view in views):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"node {port} not marked failed after {timeout} s: {views[0]}")
            time.sleep(0.1)
        self.wait_ok(max(1.0, deadline - time.monotonic()))

    def masters(self) -> list[ClusterNode]:
        """Live nodes that are masters now."""
        return [n for n in self.nodes if n.alive() and "role:master" in self.cli(n.port, "info", "replication")]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A 3-master, 3-replica Redis Cluster for the session (tests use fresh keys)."""
    with RedisCluster() as cluster:
        yield cluster
