"""Cells of CSV files people open in spreadsheets, which run a cell starting with `=`, `+`,
`-`, `@`, tab or CR as a formula (OWASP's CSV injection list)."""

import re

FORMULA_STARTS = "=+-@\t\r"
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def guarded(text: str) -> str:
    """`text`, with a leading `'` if a spreadsheet would run it as a formula. A plain number
    (`-12.5`, an E.164 phone) stays as it is: a spreadsheet reads it as a number, nothing more."""
    if text and text[0] in FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
