"""Optimistic concurrency: `version` columns exposed as ETags and checked against If-Match."""

from crm_api.core.errors import Invalid, PreconditionFailed


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> int | None:
    """The version an `If-Match` header requires; None when absent or `*`."""
    if header is None or header.strip() == "*":
        return None
    text = header.strip().removeprefix("W/")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not text.isdigit() or len(text) > 18:
        raise Invalid(
            "If-Match must be an ETag this API returned.",
            [("header.If-Match", 'expected a quoted version such as "3"')],
        )
    return int(text)


def check_version(expected: int | None, current: int) -> None:
    if expected is not None and expected != current:
        raise PreconditionFailed(
            f"The record is at version {current}, not {expected}. Re-read it and retry.",
            current_version=current,
        )
