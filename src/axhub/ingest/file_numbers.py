"""Which decimal mark and thousands separator a file's numbers use, from its first rows.

Evidence is counted over the text cells of the signal columns:

* ``12.5`` says decimal point, ``12,5`` decimal comma (unless it looks like thousands: ``1,234``);
* ``1,234.5`` says thousands ',' with a decimal point; ``1.234,5`` thousands '.' with a comma;
* ``1,234`` alone is ambiguous (1234 or 1.234): it is read as thousands (Korean spreadsheets
  write 1,234) unless other cells show a decimal comma.

The more frequent decimal mark wins (a point when nothing is known); the user can override.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_DOT_DEC = re.compile(r"^[+-]?\d*\.\d+$")
_COMMA_DEC = re.compile(r"^[+-]?\d*,\d+$")
_THOU_COMMA_DOT = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_THOU_DOT_COMMA = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")
_THOU_SPACE = re.compile(r"^[+-]?\d{1,3}( \d{3})+([.,]\d+)?$")


def detect_number_format(cells: Iterable[str]) -> tuple[str, str]:
    """(decimal, thousands) with thousands '' when none is used."""
    dot = comma = thou_comma = thou_dot = thou_space = 0
    ambiguous_comma = 0
    for raw in cells:
        cell = raw.strip()
        if not cell or len(cell) > 40:
            continue
        if _THOU_SPACE.match(cell):
            thou_space += 1
            if "," in cell:
                comma += 1
            elif "." in cell:
                dot += 1
            continue
        if "," in cell and "." in cell:
            if _THOU_COMMA_DOT.match(cell):
                thou_comma += 1
                dot += 1
            elif _THOU_DOT_COMMA.match(cell):
                thou_dot += 1
                comma += 1
            continue
        if _COMMA_DEC.match(cell):
            if re.match(r"^[+-]?\d{1,3},\d{3}$", cell):
                ambiguous_comma += 1
            else:
                comma += 1
        elif _DOT_DEC.match(cell):
            if re.match(r"^[+-]?\d{1,3}\.\d{3}$", cell) and comma:
                thou_dot += 1
            else:
                dot += 1
        elif _THOU_COMMA_DOT.match(cell):
            thou_comma += 1
        elif _THOU_DOT_COMMA.match(cell):
            thou_dot += 1
    if comma > dot:
        decimal = ","
        thousands = "." if thou_dot else " " if thou_space else ""
    else:
        decimal = "."
        thousands = "," if (thou_comma or ambiguous_comma) else " " if thou_space else ""
    return decimal, thousands
