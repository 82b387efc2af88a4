"""Which text encoding a CSV file is in: a strict try-order over the WHOLE file.

Korean Windows saves CSV from Excel as CP949 (a superset of EUC-KR); newer tools write UTF-8,
often with a byte-order mark. Order: a UTF-8 BOM says so; else the file is UTF-8 if every byte
decodes strictly as UTF-8 (text in CP949 with Hangul practically never does); else CP949 if
every byte decodes as CP949; else we refuse and ask, rather than guess and store mojibake.
Decoding is incremental, so memory stays flat for large files.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from axhub.core.errors import InputValidationError, problem

TRY_ORDER = ("utf-8", "cp949")
_CHUNK = 1 << 20


def _decodes(path: Path, encoding: str) -> int | None:
    """None when the whole file decodes as ``encoding``, else the offset of the first bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset
    return None


def detect_encoding(path: Path, label: str, given: str | None = None) -> str:
    """The codec name to read ``path`` with (``utf-8-sig`` when it starts with a BOM)."""
    if given:
        try:
            name = codecs.lookup(given).name
        except LookupError as exc:
            raise InputValidationError(
                problem(label, None, None, "encoding_name", encoding=given), whole_file=True
            ) from exc
        if name in {"utf-8", "utf_8"}:
            name = "utf-8-sig"  # a BOM is never data
        bad = _decodes(path, name)
        if bad is not None:
            raise InputValidationError(
                problem(label, None, None, "encoding_invalid", encoding=given, offset=bad), whole_file=True
            )
        return name
    with open(path, "rb") as fh:
        if fh.read(3) == codecs.BOM_UTF8 and _decodes(path, "utf-8-sig") is None:
            return "utf-8-sig"
    for name in TRY_ORDER:
        if _decodes(path, name) is None:
            return "utf-8-sig" if name == "utf-8" else name
    raise InputValidationError(problem(label, None, None, "encoding_unknown"), whole_file=True)


def read_text_sample(path: Path, encoding: str, limit: int = 256 * 1024) -> str:
    """The first ``limit`` bytes as text (a character cut at the end is dropped)."""
    with open(path, "rb") as fh:
        raw = fh.read(limit)
    return raw.decode(encoding, errors="ignore")
