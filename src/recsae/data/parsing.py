"""Strict, fast readers for the raw file formats; every error names the file and the line.

The fast path is pandas/pyarrow. When it fails (or leaves a required field empty), the file is
scanned line by line to find the first bad line and the error says where and why.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.json as pj

_DTYPES = {"int": "int64", "float": "float64", "str": "str"}
_ARROW = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
_SEP_STANDIN = "\x1f"
_JSON_BLOCK_SIZE = 16 << 20


class MalformedInputError(ValueError):
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
        return pd.DataFrame({n: pd.Series(dtype=_DTYPES[k]) for n, k in columns.items()})
    except (ValueError, UnicodeDecodeError) as err:
        _locate_table_error(path, columns, sep, encoding, quoted, skip)
        raise MalformedInputError(f"{path}: {err}") from err
    if frame.shape[1] != len(names):
        _locate_table_error(path, columns, sep, encoding, quoted, skip)
        raise MalformedInputError(f"{path}: expected {len(names)} fields, found {frame.shape[1]}")
    frame.columns = names
    numeric = [name for name, kind in columns.items() if kind != "str"]
    if frame[numeric].isna().any().any():
        _locate_table_error(path, columns, sep, encoding, quoted, skip)
        raise MalformedInputError(f"{path}: a numeric field is empty")
    return frame


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
                        f"{fields[index]!r}"
                    )


def _split(line: str, sep: str, quoted: bool) -> list[str]:
    if quoted:
        return next(csv.reader([line], delimiter=sep), [])
    return line.split(sep)


def _is_number(text: str, kind: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return kind == "float" or value.is_integer()


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
        raise MalformedInputError(f"{path}: {err}") from err
    frame = table.to_pandas()
    if len(frame) and frame[list(fields)].isna().any().any():
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
    return kind == "float" or float(value).is_integer()


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
