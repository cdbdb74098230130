"""Strict, fast readers for the raw file formats; every error names the file and the line.

The fast path is pandas/pyarrow. When it fails (or leaves a required field empty, or a number out
of the int64 range, or not finite), the file is scanned line by line to find the first bad line
and the error says where and why. An empty file is an error ("the file is empty"). A file
declared ISO-8859-1 whose bytes are valid UTF-8 with non-ASCII characters (a re-encoded copy) is
read as UTF-8, with a warning, instead of being silently garbled.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pj

from recsae.errors import UserError

log = logging.getLogger(__name__)

_DTYPES = {"int": "int64", "float": "float64", "str": "str"}
_ARROW = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
_SEP_STANDIN = "\x1f"
_JSON_BLOCK_SIZE = 16 << 20
_INT64 = (-(2**63), 2**63 - 1)
_LATIN1 = {"latin-1", "latin1", "iso-8859-1", "iso8859-1"}
_EXPECTED = {"int": "an integer in the int64 range", "float": "a finite number"}


class MalformedInputError(UserError, ValueError):
    """A raw file does not have the expected format; the message names file and line."""


def read_table(
    path: str | Path,
    columns: dict[str, str],
    *,
    sep: str = "\t",
    header: tuple[str, ...] | None = None,
    encoding: str = "utf-8",
    quoted: bool = False,
) -> pd.DataFrame:
    """Read a delimited text file into columns of the given kinds ("int", "float", "str").

    ``columns`` lists every field in file order. ``header``: the expected first line's field names
    (checked), or None when the file has no header. ``quoted``: fields may be CSV-quoted. "int" and
    "float" fields are required; "str" fields may be empty (null). LF and CRLF are both accepted.
    """
    path = Path(path)
    encoding = _checked_encoding(path, encoding)
    names = list(columns)
    skip = 0
    if header is not None:
        _check_header(path, header, sep, encoding, quoted)
        skip = 1
    source: Path | io.StringIO = path
    read_sep = sep
    if len(sep) > 1:
        try:
            text = path.read_text(encoding=encoding)
        except UnicodeDecodeError as err:
            _locate_table_error(path, columns, sep, encoding, quoted, skip)
            raise MalformedInputError(f"{path}: {err}") from err
        source, read_sep = io.StringIO(text.replace(sep, _SEP_STANDIN)), _SEP_STANDIN
    try:
        frame = pd.read_csv(
            source,
            sep=read_sep,
            header=None,
            skiprows=skip,
            dtype={i: _DTYPES[kind] for i, kind in enumerate(columns.values())},
            encoding=encoding if isinstance(source, Path) else None,
            quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
            keep_default_na=False,
            na_values=[""],
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise MalformedInputError(_empty(path, header)) from None
    except (ValueError, UnicodeDecodeError, OverflowError) as err:
        _locate_table_error(path, columns, sep, encoding, quoted, skip)
        raise MalformedInputError(f"{path}: {err}") from err
    if frame.shape[1] != len(names):
        _locate_table_error(path, columns, sep, encoding, quoted, skip)
        raise MalformedInputError(f"{path}: expected {len(names)} fields, found {frame.shape[1]}")
    frame.columns = names
    if frame.empty:
        raise MalformedInputError(_empty(path, header))
    numeric = [name for name, kind in columns.items() if kind != "str"]
    if not np.isfinite(frame[numeric].to_numpy(dtype=float)).all():
        _locate_table_error(path, columns, sep, encoding, quoted, skip)
        raise MalformedInputError(f"{path}: a numeric field is empty or not finite")
    return frame


def _empty(path: Path, header) -> str:
    return f"{path}: the file is empty" + (" (a header, no data lines)" if header else "")


def _checked_encoding(path: Path, encoding: str) -> str:
    """``encoding``, or "utf-8" for a file declared ISO-8859-1 that is valid, non-ASCII UTF-8."""
    if encoding.lower() not in _LATIN1:
        return encoding
    data = path.read_bytes()
    if data.isascii():
        return encoding
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return encoding
    log.warning("%s: expected ISO-8859-1 but the file is UTF-8 (a re-encoded copy?); "
                "reading it as UTF-8", path)  # fmt: skip
    return "utf-8"


def _check_header(path: Path, header: tuple[str, ...], sep: str, encoding: str, quoted: bool):
    with _open_text(path, encoding) as handle:
        first = handle.readline()
    fields = _split(first.rstrip("\r\n").lstrip("\ufeff"), sep, quoted)
    if [f.strip() for f in fields] != list(header):
        missing = [h for h in header if h not in fields]
        raise MalformedInputError(
            f"{path}, line 1: expected header {list(header)}, found {fields}"
            + (f" (missing column(s) {missing})" if missing else "")
        )


def _locate_table_error(
    path: Path, columns: dict[str, str], sep: str, encoding: str, quoted: bool, skip: int
) -> None:
    """Scan ``path`` and raise MalformedInputError for its first bad line (returns if none)."""
    kinds = list(columns.items())
    with path.open("rb") as raw:
        for line_no, raw_line in enumerate(raw, start=1):
            try:
                line = raw_line.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise MalformedInputError(
                    f"{path}, line {line_no}: cannot decode as {encoding} ({err.reason})"
                ) from err
            if line_no <= skip or not line.strip():
                continue
            fields = _split(line, sep, quoted)
            if len(fields) > len(kinds):
                raise MalformedInputError(
                    f"{path}, line {line_no}: expected {len(kinds)} fields, found {len(fields)}"
                )
            for index, (name, kind) in enumerate(kinds):
                if kind == "str":
                    continue
                if index >= len(fields):
                    raise MalformedInputError(
                        f"{path}, line {line_no}: missing field {name!r} "
                        f"(expected {len(kinds)} fields, found {len(fields)})"
                    )
                if not _is_number(fields[index], kind):
                    raise MalformedInputError(
                        f"{path}, line {line_no}: field {name!r} is not a valid {kind}: "
                        f"{fields[index]!r}" + (f" ({_EXPECTED[kind]})" if fields[index] else "")
                    )


def _split(line: str, sep: str, quoted: bool) -> list[str]:
    if quoted:
        return next(csv.reader([line], delimiter=sep), [])
    return line.split(sep)


def _is_number(text: str, kind: str) -> bool:
    """A finite float, or (kind "int") an integer in the int64 range."""
    try:
        if kind == "int":
            return _INT64[0] <= int(text.strip()) <= _INT64[1]
        return math.isfinite(float(text))
    except ValueError:
        return False


def read_json_lines(
    path: str | Path, fields: dict[str, str], optional: dict[str, str] | None = None
) -> pd.DataFrame:
    """Read top-level fields of a JSON-lines file (plain or .gz); other keys are ignored.

    ``fields``: required name -> kind ("int", "float", "str"); ``optional``: fields that may be
    missing or null (null in the result). Fast path is pyarrow.
    """
    path = Path(path)
    optional = optional or {}
    schema = pa.schema([(name, _ARROW[kind]) for name, kind in (fields | optional).items()])
    try:
        table = pj.read_json(
            path,
            read_options=pj.ReadOptions(block_size=_JSON_BLOCK_SIZE),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except pa.ArrowInvalid as err:
        _locate_json_error(path, fields, optional)
        if next(iter_records(path), None) is None:
            raise MalformedInputError(f"{path}: the file is empty") from err
        raise MalformedInputError(f"{path}: {err}") from err
    frame = table.to_pandas()
    if frame.empty:
        raise MalformedInputError(f"{path}: the file is empty")
    if frame[list(fields)].isna().any().any():
        _locate_json_error(path, fields, optional)
        raise MalformedInputError(f"{path}: a required field is null")
    return frame


def _locate_json_error(path: Path, fields: dict[str, str], optional: dict[str, str]) -> None:
    """Scan ``path`` and raise MalformedInputError for its first bad record (returns if none)."""
    for line_no, record in iter_records(path):
        for name, kind in (fields | optional).items():
            if record.get(name) is None:
                if name in optional:
                    continue
                raise MalformedInputError(f"{path}, line {line_no}: missing key {name!r}")
            value = record[name]
            ok = isinstance(value, str) if kind == "str" else _json_number(value, kind)
            if not ok:
                raise MalformedInputError(
                    f"{path}, line {line_no}: key {name!r} should be {kind}, found {value!r}"
                )


def _json_number(value, kind: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if not math.isfinite(value):
        return False
    return kind == "float" or (float(value).is_integer() and _INT64[0] <= value <= _INT64[1])


def iter_records(path: str | Path, literal_fallback: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line of a JSON-lines file (plain or .gz).

    ``literal_fallback``: lines that are Python dict literals (some Amazon 2018 metadata files)
    are parsed with ``ast.literal_eval``.
    """
    path = Path(path)
    with _open_text(path, "utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                if not literal_fallback:
                    raise MalformedInputError(
                        f"{path}, line {line_no}: invalid JSON ({err.msg})"
                    ) from err
                try:
                    record = ast.literal_eval(line.strip())
                except (ValueError, SyntaxError, MemoryError, RecursionError) as lit_err:
                    raise MalformedInputError(
                        f"{path}, line {line_no}: neither JSON nor a Python literal ({err.msg})"
                    ) from lit_err
            if not isinstance(record, dict):
                raise MalformedInputError(f"{path}, line {line_no}: expected an object")
            yield line_no, record


def _open_text(path: Path, encoding: str):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return path.open("r", encoding=encoding, newline="")
