"""Where the time goes, as text, from py-spy's collapsed stacks (`py-spy record --format raw`).

    python bench/profile_summary.py bench/out/<run>/py-spy-get-one-*.txt

Self time is the samples in which a frame was the one executing; total time, those in which it
was anywhere on the stack. A package's share is the self time of its frames. Record with `--gil`
so only the thread running Python code is sampled, not threads waiting for work.
"""

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

Stacks = Counter[tuple[str, ...]]

_FRAME_FILE = re.compile(r"\((?P<file>[^)]*)\)$")


def read_collapsed(paths: Iterable[Path]) -> Stacks:
    """Sums `frame;frame;...;frame count` lines from several files (one per worker)."""
    stacks: Stacks = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            frames, _, count = line.rpartition(" ")
            if frames and count.isdigit():
                stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def package(frame: str) -> str:
    """The top-level package of a frame's file, e.g. `sqlalchemy` or `crm_api`."""
    match = _FRAME_FILE.search(frame)
    if match is None:
        return "?"
    parts = Path(match.group("file")).parts
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif "src" in parts:
        parts = parts[parts.index("src") + 1 :]
    # py-spy shortens paths to the module's (threading.py, asyncio/tasks.py, fastapi/...).
    return parts[0].removesuffix(".py") if parts else "?"


def tallies(stacks: Stacks) -> tuple[int, Counter[str], Counter[str], Counter[str]]:
    total = sum(stacks.values())
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for frames, count in stacks.items():
        own[frames[-1]] += count
        packages[package(frames[-1])] += count
        for frame in set(frames):  # recursion must not count a frame twice
            inclusive[frame] += count
    return total, own, inclusive, packages


def render(stacks: Stacks, top: int = 25) -> str:
    total, own, inclusive, packages = tallies(stacks)
    if not total:
        return "no samples (py-spy needs ptrace rights: run as root or with CAP_SYS_PTRACE)"

    def pct(count: int) -> str:
        return f"{100 * count / total:5.1f}%"

    lines = [f"{total} samples of the thread holding the GIL", "", "self time by package:"]
    lines += [f"  {pct(count)}  {name}" for name, count in packages.most_common(12)]
    lines += ["", f"top {top} frames by self time (self, total):"]
    lines += [f"  {pct(c)} {pct(inclusive[f])}  {f}" for f, c in own.most_common(top)]
    lines += ["", f"top {top} frames by total time (total, self):"]
    lines += [f"  {pct(c)} {pct(own[f])}  {f}" for f, c in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(render(read_collapsed(args.files), args.top))


if __name__ == "__main__":
    main()
