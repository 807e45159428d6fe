"""Driving a server with wrk, and checking that nothing else is using the CPUs meanwhile."""

import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DEFAULT_TIMEOUT = 5


@dataclass
class Measurement:
    """What the done() hook in lua/done.lua prints; latencies in microseconds."""

    requests: int
    duration_us: int
    p50_us: int
    p99_us: int
    max_us: int
    mean_us: float
    non_2xx_3xx: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    foreign_cpu: float = 0.0
    """Share of the machine's CPU that other processes used during the run (set by the runner)."""

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def socket_errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts


@dataclass(frozen=True)
class Load:
    threads: int
    connections: int
    headers: tuple[str, ...]
    env: dict[str, str]
    """Read by the Lua scripts, e.g. BENCH_IDS_FILE."""
    script_dir: Path


def script(load: Load, name: str) -> Path:
    """wrk takes one script: the scenario's, followed by the shared done() hook."""
    path = load.script_dir / name
    if not path.exists():
        path.write_text((LUA_DIR / name).read_text() + (LUA_DIR / "done.lua").read_text())
    return path


def run_wrk(
    load: Load,
    script_name: str,
    url: str,
    seconds: int,
    timeout: int = DEFAULT_TIMEOUT,
    connections: int | None = None,
) -> Measurement:
    """`timeout`: seconds after which wrk gives up on a response and counts a socket error;
    `connections`: instead of the load's (with one thread)."""
    threads, connections = (
        (load.threads, load.connections) if connections is None else (1, connections)
    )
    options = f"-t{threads} -c{connections} -d{seconds}s --timeout {timeout}s"
    command = ["wrk", *options.split(), "-s", str(script(load, script_name))]
    for header in load.headers:
        command += ["-H", header]
    command.append(url)
    # A new tag per wrk run: POSTed emails never repeat, across runs and servers.
    tag = f"w{time.time_ns()}{secrets.token_hex(3)}"
    env = {**os.environ, **load.env, "BENCH_RUN_TAG": tag}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    match = re.search(r"^BENCH_RESULT (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return Measurement(**json.loads(match.group(1)))


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies over all CPUs since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return idle, sum(fields[:8])


def cpu_idle(seconds: float = 1.0) -> float:
    idle_before, total_before = _cpu_times()
    time.sleep(seconds)
    idle_after, total_after = _cpu_times()
    return (idle_after - idle_before) / max(1, total_after - total_before)


def wait_for_quiet(min_idle: float, max_wait: float) -> float:
    """Waits (at most `max_wait` s) until the CPUs are idle, between runs, when our servers
    are idle too: another job on this 2-core machine would skew every number. Returns the
    last idle fraction seen."""
    deadline = time.monotonic() + max_wait
    idle = cpu_idle()
    while idle < min_idle and time.monotonic() < deadline:
        idle = cpu_idle()
    return idle


def _process(pid: str) -> tuple[int, int, str] | None:
    """(process group, CPU jiffies used, command line) of a live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None  # it exited meanwhile
    fields = stat.rpartition(")")[2].split()  # the command name may contain spaces
    return int(fields[2]), int(fields[11]) + int(fields[12]), cmdline


class ForeignCpu:
    """CPU used, during one run, by processes that are not part of the benchmark.

    A shared machine's other jobs (a test suite, a build) steal a core from the servers
    and make a run meaningless; this catches them even when they start mid-run.
    `is_ours(process group, command line)` tells the benchmark's own processes apart.
    """

    def __init__(self, is_ours: Callable[[int, str], bool]) -> None:
        self.is_ours = is_ours
        self.share = 0.0
        self._before: dict[str, int] = {}
        self._started = 0.0

    def _jiffies(self) -> dict[str, int]:
        used = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (process := _process(entry.name)) is not None:
                group, jiffies, cmdline = process
                if not self.is_ours(group, cmdline):
                    used[entry.name] = jiffies
        return used

    def __enter__(self) -> "ForeignCpu":
        self._before = self._jiffies()
        self._started = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        after = self._jiffies()
        used = sum(jiffies - self._before.get(pid, 0) for pid, jiffies in after.items())
        capacity = (time.monotonic() - self._started) * os.cpu_count() * _CLOCK_TICKS
        self.share = max(0.0, used / capacity) if capacity else 0.0
