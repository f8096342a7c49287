"""The reference row: nginx ``proxy_pass`` to the same upstream, when nginx is installed.

One worker process (the gateway runs one too), keep-alive connections to the upstream,
no buffering and no access log: the fastest relay this machine can run, what a gateway
with every check on is compared with at 16 connections.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_CONFIG = """\
{user}worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    fastcgi_temp_path {workdir}/nginx-fastcgi;
    uwsgi_temp_path {workdir}/nginx-uwsgi;
    scgi_temp_path {workdir}/nginx-scgi;
    upstream llm {{
        server 127.0.0.1:{upstream_port};
        keepalive 256;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://llm;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def command(workdir: Path, port: int, upstream_port: int) -> list[str]:
    """The nginx command line, its configuration written into ``workdir``."""
    binary = nginx_path()
    if binary is None:
        raise RuntimeError("nginx is not installed")
    # As root, nginx's worker would switch to an account that cannot use ``workdir``.
    user = "user root;\n" if os.geteuid() == 0 else ""
    config = workdir / "nginx.conf"
    config.write_text(
        _CONFIG.format(user=user, workdir=workdir, port=port, upstream_port=upstream_port)
    )
    return [binary, "-p", str(workdir), "-c", str(config)]
