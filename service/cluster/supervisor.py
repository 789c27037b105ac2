"""`mcp-notification-service cluster`: Redis, N replicas and a load balancer on this machine, watched.

The balancer listens on `SERVICE_PORT`, replica *i* (`SERVICE_REPLICA_ID=r<i>`) on
`SERVICE_PORT + i`, all on 127.0.0.1. A Redis server is started too, unless
`SERVICE_REDIS_URL` names one. A replica that exits is started again, as an orchestrator
would; Ctrl-C or SIGTERM stops every part, replicas first (each records its running jobs as
interrupted), then the balancer, then Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from service.cluster.balancer import Replica, caddy_config, nginx_config, start_balancer
from service.cluster.process import free_port, stop_process
from service.cluster.redis_server import RedisServer
from service.settings import ENV_PREFIX, Settings

__all__ = ["Part", "Supervisor"]

RESTART_DELAY = 1.0
"""Seconds before a replica that exited is started again (so a replica that cannot start does not spin)."""


@dataclass
class Part:
    """One process of the cluster, and how to start it (again)."""

    name: str
    address: str
    launch: Callable[[], subprocess.Popen[bytes]]
    restart: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.proc = self.launch()

    def stop(self, timeout: float) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout)


class Supervisor:
    def __init__(self, settings: Settings, *, replicas: int, balancer: str, workdir: Path | None = None) -> None:
        self._settings = settings
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="mcp-cluster-"))
        self._owns_workdir = workdir is None
        """A directory of its own goes once everything stopped cleanly; after a failure it stays, with the logs."""
        self._replicas = [Replica(f"r{index}", settings.port + index) for index in range(1, replicas + 1)]
        self._balancer = balancer
        self._redis: RedisServer | None = None
        self._parts: list[Part] = []
        self._stopping = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self._start()
            self._say(f"cluster ready: http://127.0.0.1:{self._settings.port} (Ctrl-C stops it)")
            while not self._stopping:
                self._restart_exited()
                time.sleep(0.2)
        finally:
            self._stop()
        if self._owns_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _say(self, line: str) -> None:
        print(line, flush=True)

    def _start(self) -> None:
        redis_url = os.environ.get(f"{ENV_PREFIX}REDIS_URL")
        if redis_url is None:
            self._redis = RedisServer(self._workdir / "redis", free_port()).start()
            redis_url = self._redis.url
            assert self._redis.proc is not None
            self._say(f"redis     pid {self._redis.proc.pid:<7} {redis_url}")
        else:
            self._say(f"redis     (given)     {redis_url}")
        for replica in self._replicas:
            part = Part(
                f"replica {replica.id}", f"http://{replica.address}", self._replica_launcher(replica, redis_url)
            )
            part.restart = True
            self._launch(part)
        for part in self._parts:
            self._wait_healthy(part)
        listen = self._settings.port
        if self._balancer == "caddy":
            config = caddy_config(listen, self._replicas)
        else:
            config = nginx_config(listen, self._replicas, self._workdir / "nginx")
        workdir = self._workdir / self._balancer
        log = self._workdir / f"{self._balancer}.log"
        balancer = Part(
            f"balancer ({self._balancer})",
            f"http://127.0.0.1:{listen}",
            lambda: start_balancer(self._balancer, config, workdir, log),
        )
        self._launch(balancer)
        self._wait_healthy(balancer)

    def _replica_launcher(self, replica: Replica, redis_url: str) -> Callable[[], subprocess.Popen[bytes]]:
        listen = self._settings.port
        public = [f"127.0.0.1:{listen}", f"localhost:{listen}"]
        env = {
            **os.environ,
            f"{ENV_PREFIX}STORE": "redis",
            f"{ENV_PREFIX}REDIS_URL": redis_url,
            f"{ENV_PREFIX}PORT": str(replica.port),
            f"{ENV_PREFIX}HOST": "127.0.0.1",
            f"{ENV_PREFIX}REPLICA_ID": replica.id,
            # Clients address the balancer: its Host and Origin are the replicas' own.
            f"{ENV_PREFIX}ALLOWED_HOSTS": json.dumps([*self._settings.allowed_hosts, *public]),
            f"{ENV_PREFIX}ALLOWED_ORIGINS": json.dumps(
                [*self._settings.allowed_origins, *(f"http://{host}" for host in public)]
            ),
        }
        log = self._workdir / f"replica-{replica.id}.log"

        def launch() -> subprocess.Popen[bytes]:
            out = log.open("ab")
            return subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=out, stderr=subprocess.STDOUT)

        return launch

    def _launch(self, part: Part) -> None:
        part.start()
        assert part.proc is not None
        self._say(f"{part.name:<9} pid {part.proc.pid:<7} {part.address}")
        if part not in self._parts:
            self._parts.append(part)

    def _wait_healthy(self, part: Part, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping:
            assert part.proc is not None
            if part.proc.poll() is not None:
                raise RuntimeError(f"{part.name} exited with {part.proc.returncode} (logs in {self._workdir})")
            try:
                if httpx.get(f"{part.address}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        if not self._stopping:
            raise RuntimeError(f"{part.name} did not answer in {timeout}s (logs in {self._workdir})")

    def _restart_exited(self) -> None:
        for part in self._parts:
            if part.restart and part.proc is not None and part.proc.poll() is not None and not self._stopping:
                self._say(f"{part.name} exited with {part.proc.returncode}: starting it again")
                time.sleep(RESTART_DELAY)
                self._launch(part)

    def _stop(self) -> None:
        timeout = self._settings.shutdown_timeout + 5
        replicas = [part for part in self._parts if part.restart]
        for part in replicas:  # all at once: each takes up to its graceful timeout
            if part.proc is not None and part.proc.poll() is None:
                part.proc.terminate()
        for part in replicas:
            part.stop(timeout)
        for part in self._parts:
            part.stop(timeout)
        if self._redis is not None:
            self._redis.stop()
        self._say("cluster stopped")
