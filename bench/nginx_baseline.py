"""nginx serving the exact bytes of a status GET at the same path: the static-file baseline of
status_get.py. Debian's nginx, one worker process, pinned to CPU 0 like the server under test,
from a config generated into a scratch folder (no system config, log or pid file is touched).

    python bench/nginx_baseline.py --install   # install Debian's nginx if it is missing
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from procs import stop

CONFIG = """\
{user}worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {work}/tmp;
    proxy_temp_path {work}/tmp;
    fastcgi_temp_path {work}/tmp;
    uwsgi_temp_path {work}/tmp;
    scgi_temp_path {work}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {work}/www;
        location / {{ default_type application/json; }}
    }}
}}
"""


def binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def ensure(install: bool) -> tuple[str | None, str]:
    """(nginx's path, or None with the reason). With ``install``, a missing nginx is installed
    from Debian's packages."""
    found = binary()
    if found or not install:
        return found, "" if found else "nginx is not installed (`apt-get install -y nginx`)"
    failed = apt_install("nginx")
    found = binary()
    return found, failed or ("" if found else "apt-get installed nginx but it is not on PATH")


def apt_install(package: str) -> str:
    """Install one Debian package (as root); "" or why it failed."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return f"{package} is not installed and apt-get cannot run here (not root or no apt-get)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            return f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-300:]}"
    return ""


def version(nginx: str) -> str:
    out = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False).stderr
    match = re.search(r"nginx/(\S+)", out)
    return match.group(1) if match else out.strip()


@contextlib.contextmanager
def serve(
    nginx: str, body: bytes, path: str, port: int, work: Path, pin: list[str]
) -> Iterator[None]:
    """nginx answering ``GET path`` with ``body`` (application/json) on 127.0.0.1:``port``."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "tmp").mkdir(exist_ok=True)
    target = work / "www" / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    # As root, nginx's worker would run as `nobody`, which cannot read a private scratch folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(CONFIG.format(user=user, work=work, port=port))
    proc = subprocess.Popen(
        [*pin, nginx, "-e", str(work / "error.log"), "-p", str(work), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        stop(proc)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="apt-get install nginx if missing")
    found, why = ensure(parser.parse_args().install)
    print(f"nginx {version(found)} at {found}" if found else f"no nginx: {why}")
