"""`mcp-notification-service cluster` as a process of its own: Redis, replicas and a balancer on free ports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from random import randrange

import httpx

from harness.service import OnLoopback, service_free_environ
from service.cluster.process import port_is_free, stop_process

__all__ = ["ClusterProcess", "free_port_run", "running_cluster"]

_PART = re.compile(r"^(redis|replica (\S+)|balancer \((\w+)\))\s+pid (\d+)\s+(\S+)")


def free_port_run(length: int) -> int:
    """The first of `length` consecutive free ports of 127.0.0.1 (the balancer's, then one per replica)."""
    for _ in range(200):
        first = randrange(20_000, 30_000)
        if all(port_is_free(first + offset) for offset in range(length)):
            return first
    raise RuntimeError(f"no {length} consecutive free ports")


def _pinned_to(core: int) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


@dataclass
class ClusterProcess(OnLoopback):
    """The supervisor, and what it printed it started: each part's pid and address."""

    workdir: Path
    replicas: int = 3
    balancer: str = "caddy"
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    """The balancer's: what clients use."""
    proc: subprocess.Popen[str] | None = None
    pids: dict[str, int] = field(default_factory=dict)
    """`redis`, `r1`... and `balancer`, as last printed (a restarted replica prints its new pid)."""
    redis_url: str = ""
    lines: list[str] = field(default_factory=list)
    core: int | None = None
    """Run every part on this core alone (the benchmarks); None: wherever the system puts them."""

    def replica_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port + index}"

    def start(self, timeout: float = 60.0) -> ClusterProcess:
        self.port = self.port or free_port_run(self.replicas + 2)  # the balancer, the replicas, nginx's fallback
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **service_free_environ(),
            "SERVICE_PORT": str(self.port),
            "SERVICE_LOG_LEVEL": "WARNING",
            "SERVICE_REDIS_PREFIX": f"c{self.port}",
            **self.env,
        }
        args = [sys.executable, "-m", "service", "cluster", "--replicas", str(self.replicas)]
        self.proc = subprocess.Popen(
            [*args, "--balancer", self.balancer],
            cwd=self.workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Set before anything starts, so that every part and every thread of theirs inherits it.
            preexec_fn=None if self.core is None else _pinned_to(self.core),
        )
        ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        if not ready.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("the cluster did not start:\n" + "\n".join(self.lines))
        return self

    def _read(self, ready: threading.Event) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if (found := _PART.match(line)) is not None:
                name = "redis" if found.group(1) == "redis" else found.group(2) or "balancer"
                self.pids[name] = int(found.group(4))
                if name == "redis":
                    self.redis_url = found.group(5)
            if line.startswith("cluster ready"):
                ready.set()
        ready.set()

    def wait_for_restart(self, replica: str, old_pid: int, timeout: float = 30.0) -> int:
        """The new pid of a replica the supervisor started again, once it answers."""
        deadline = time.monotonic() + timeout
        index = int(replica.removeprefix("r"))
        while time.monotonic() < deadline:
            pid = self.pids.get(replica, old_pid)
            if pid != old_pid:
                try:
                    if httpx.get(f"{self.replica_url(index)}/healthz", timeout=1).status_code == 200:
                        return pid
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"{replica} was not restarted in {timeout}s:\n" + "\n".join(self.lines))

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return stop_process(self.proc, timeout)


@contextmanager
def running_cluster(
    workdir: Path, *, replicas: int = 3, balancer: str = "caddy", **env: str
) -> Iterator[ClusterProcess]:
    cluster = ClusterProcess(workdir, replicas, balancer, dict(env)).start()
    try:
        yield cluster
    finally:
        cluster.stop()
