"""Serving with several worker processes, each on its own SO_REUSEPORT socket.

With one shared listening socket (uvicorn's `--workers`), whichever worker wakes first accepts
every connection waiting in the queue, so a burst of keep-alive connections can land 32 to 0 on
two workers: one saturated, one idle, and latency set by the unlucky one. With a socket per
worker and SO_REUSEPORT, the kernel spreads connections across the workers as they arrive.
"""

import multiprocessing
import multiprocessing.connection
import signal
import socket
import sys
from types import FrameType
from typing import Any

import uvicorn

APP = "crm_api.app:create_app_from_env"


def _config(**options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        APP, factory=True, log_config=None, access_log=False, proxy_headers=True, **options
    )


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _run_worker(host: str, port: int) -> None:
    uvicorn.Server(_config()).run(sockets=[_listen(host, port)])


def serve(host: str, port: int, workers: int) -> None:
    if workers <= 1:
        uvicorn.Server(_config(host=host, port=port)).run()
        return
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_run_worker, args=(host, port), name=f"crm-api-worker-{i}")
        for i in range(workers)
    ]

    def stop(signum: int, _: FrameType | None) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.start()
    # A worker that dies takes the server down with it: the orchestrator restarts the whole
    # thing, rather than this process hiding a crash loop.
    sentinels = {process.sentinel: process for process in processes}
    multiprocessing.connection.wait(list(sentinels))
    stop(signal.SIGTERM, None)
    for process in processes:
        process.join()
    # uvicorn re-raises the stop signal after a graceful shutdown, so -SIGTERM is a clean exit.
    clean = (0, -signal.SIGTERM, -signal.SIGINT)
    sys.exit(0 if all(process.exitcode in clean for process in processes) else 1)
