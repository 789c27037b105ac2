"""Ports and child processes on this machine: what the cluster command, the tests and the benchmarks share."""

from __future__ import annotations

import signal
import socket
import subprocess
from typing import Any

__all__ = ["free_port", "port_is_free", "stop_process"]


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (the system picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def stop_process(proc: subprocess.Popen[Any], timeout: float, sig: int = signal.SIGTERM) -> int:
    """Signal a child and wait for it (killing it after `timeout` seconds); return its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
