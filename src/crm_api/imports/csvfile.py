"""Reading an uploaded CSV file into parts, and writing the error report.

A file is UTF-8 (a byte order mark is dropped), its first non-blank row is the header, and its
delimiter is `,`, `;`, tab or `|`: the one given, or else the one of these that splits the header
row into the most cells (`,` on a tie). Line breaks may be `\\n`, `\\r\\n` or `\\r`, and quoted
cells may hold them. A blank row (no cells, or only empty ones) is not a row: it is neither
counted nor imported. Rows are numbered by the physical line they start on, the header being on
line 1 unless blank lines come before it, so a row's number is where an editor shows it.
"""

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import IO, Any

import orjson

from crm_api.core.spreadsheet import guarded
from crm_api.imports.models import CsvDelimiter

FileRow = tuple[int, list[str]]
"""A data row: the line it starts on, and its cells as in the file."""


class FileProblem(Exception):
    """Why an uploaded file cannot be imported."""


@dataclass
class ParsedFile:
    headers: list[str]
    delimiter: CsvDelimiter
    total_rows: int = 0
    parts: list[str] = field(default_factory=list)
    """JSON arrays of `[line, [cell, …]]`, one per chunk of rows."""


def read_upload(
    binary: IO[bytes], delimiter: CsvDelimiter | None, chunk_rows: int, max_rows: int
) -> ParsedFile:
    """Reads the whole file, keeping its data rows in parts of `chunk_rows`; raises FileProblem
    for a file that is not UTF-8 or not CSV, has no header row or more than `max_rows` rows.
    Blocking (file reads and parsing): run it in a thread."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        return _read(text, delimiter, chunk_rows, max_rows)
    except UnicodeDecodeError:
        raise FileProblem("is not UTF-8 text") from None
    finally:
        text.detach()  # the upload closes its own file


def _read(
    text: IO[str], delimiter: CsvDelimiter | None, chunk_rows: int, max_rows: int
) -> ParsedFile:
    lines = iter(text)
    leading: list[str] = []
    for line in lines:
        leading.append(line)
        if line.strip():
            break
    else:
        raise FileProblem("has no header row (it is empty)")
    if delimiter is None:
        delimiter = detect_delimiter(leading[-1])
    reader = csv.reader(chain(leading, lines), delimiter=delimiter.character, strict=True)
    rows = _records(reader)
    header = next(rows, None)
    if header is None:
        raise FileProblem("has no header row (it is empty)")
    headers = [cell.strip() for cell in header[1]]
    if any("\x00" in name for name in headers):
        raise FileProblem("has a NUL character in its header row")
    parsed = ParsedFile(headers=headers, delimiter=delimiter)
    batch: list[FileRow] = []
    for row in rows:
        parsed.total_rows += 1
        if parsed.total_rows > max_rows:
            raise FileProblem(f"has more than {max_rows} rows")
        batch.append(row)
        if len(batch) == chunk_rows:
            parsed.parts.append(orjson.dumps(batch).decode())
            batch = []
    if batch:
        parsed.parts.append(orjson.dumps(batch).decode())
    return parsed


def _records(reader: Any) -> Iterator[FileRow]:
    """The non-blank records, each with the line it starts on."""
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise FileProblem(f"is not readable CSV at line {line}: {error}") from None
        if any(cell.strip() for cell in cells):
            yield line, cells


_CANDIDATES = tuple(CsvDelimiter)


def detect_delimiter(header_line: str) -> CsvDelimiter:
    """The candidate that occurs most often outside quotes in the header line (`,` on a tie)."""
    counts = dict.fromkeys(_CANDIDATES, 0)
    characters = {candidate.character: candidate for candidate in _CANDIDATES}
    quoted = False
    for character in header_line:
        if character == '"':
            quoted = not quoted
        elif not quoted and character in characters:
            counts[characters[character]] += 1
    return max(_CANDIDATES, key=lambda candidate: counts[candidate])


def parse_part(rows: str) -> list[FileRow]:
    return [(line, cells) for line, cells in orjson.loads(rows)]


class _Line:
    """A file-like target for csv.writer that keeps what it was given."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)


def csv_lines(rows: Iterable[list[Any]]) -> str:
    """`rows` as CSV text: `,` between cells, quoted where needed, CRLF after each row; text a
    spreadsheet would run as a formula is defused (the cells come from the uploaded file)."""
    target = _Line()
    writer = csv.writer(target)
    writer.writerows(
        [guarded(cell) if isinstance(cell, str) else cell for cell in row] for row in rows
    )
    return target.text
