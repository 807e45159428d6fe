"""Running crm-api as a user would: its command line and a real server, in processes."""

import os
import socket
import subprocess
import sys
import time

import httpx

CLI = [sys.executable, "-m", "crm_api.cli"]


def run(url: str, *args: str) -> str:
    """`crm-api <args>` against the database at `url`; its output."""
    env = {**os.environ, "CRM_DATABASE_URL": url, "CRM_ACCESS_LOG": "false"}
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(url: str, port: int, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """`crm-api serve` on `port`, once it answers `/readyz`."""
    environment = {**os.environ, "CRM_DATABASE_URL": url, "CRM_ACCESS_LOG": "false", **env}
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), *args],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError("server did not become ready")
        time.sleep(0.2)
