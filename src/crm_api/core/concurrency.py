"""Optimistic concurrency: `version` columns exposed as ETags and checked against If-Match."""

from crm_api.core.errors import Invalid, PreconditionFailed

Versions = frozenset[int]
"""The versions an If-Match header accepts; None stands for no precondition (absent or `*`)."""

_BAD = Invalid(
    "If-Match must list ETags this API returned.",
    [("header.If-Match", 'expected quoted versions such as "3" (or "3", "4")')],
)


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> Versions | None:
    if header is None or header.strip() == "*":
        return None
    versions: set[int] = set()
    for item in header.split(","):
        tag = item.strip()
        # If-Match compares strongly (RFC 9110 §13.1.1): a weak ETag never matches.
        weak = tag.startswith("W/")
        tag = tag.removeprefix("W/")
        digits = tag[1:-1]
        quoted = len(tag) >= 2 and tag[0] == tag[-1] == '"'
        if not (quoted and digits.isascii() and digits.isdigit() and len(digits) <= 18):
            raise _BAD
        if not weak:
            versions.add(int(digits))
    return frozenset(versions)


def check_version(expected: Versions | None, current: int) -> None:
    if expected is not None and current not in expected:
        if expected:
            wanted = ", ".join(str(v) for v in sorted(expected))
            detail = f"The record is at version {current}, not {wanted}. Re-read it and retry."
        else:
            detail = (
                f"If-Match held only weak ETags, which never match; the record is at version "
                f"{current}: send its ETag as returned."
            )
        raise PreconditionFailed(detail, current_version=current)
