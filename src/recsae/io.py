"""Atomic file writes, checksummed result files and the metadata block shared by every result
JSON.

Checkpoints and arrays (``model.pt``, ``sae.pt``, ``embeddings.npz``) are written with
``checksum=True``: a record ``<file>.sha256`` beside the file holds its SHA-256, size and
modification time. ``verify_file`` (``load_torch`` calls it) and the workflow's start
(``recsae.workflow.mark_damaged_results``) compare a file with its record, so a truncated or
overwritten result is named in one line instead of being loaded, or failing deep inside torch.
The parquet tables carry no record (a custom dataset's own rule writes them too);
``read_parquet`` names one that pyarrow cannot read.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recsae import __version__
from recsae.errors import UserError

CHECKSUM_SUFFIX = ".sha256"


class DamagedFileError(UserError):
    """A result file that differs from the checksum written with it, or that cannot be read as
    what it should be; the message names the file and says how to rebuild it."""


def atomic_write(path: str | Path, write: Callable[[Path], None], checksum: bool = False) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place;
    with ``checksum``, then write its record ``<path>.sha256`` (``verify_file``).

    A crash or an exception inside ``write`` leaves no partial file at ``path``. The file gets the
    permissions a plain ``open`` would give it (0666 less the umask), not mkstemp's 0600. An
    OSError that names no file, or only the temporary one (a full disk: ``[Errno 28] No space
    left on device``), is raised again naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())
        record = file_record(tmp_path) if checksum else None
        os.replace(tmp_path, path)
    except OSError as err:
        tmp_path.unlink(missing_ok=True)
        if err.filename not in (None, tmp, str(tmp_path)):
            raise
        if err.errno is None:
            raise OSError(f"{err} (writing {path})") from err
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    if record is not None:
        text = json.dumps({**record, "mtime_ns": path.stat().st_mtime_ns}) + "\n"
        atomic_write(checksum_path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def checksum_path(path: str | Path) -> Path:
    """The checksum record of ``path``: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def file_record(path: str | Path) -> dict:
    """{"sha256": hex digest, "bytes": size} of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": Path(path).stat().st_size}


def damage(path: str | Path, quick: bool = False) -> str | None:
    """What is wrong with ``path`` against its checksum record (``atomic_write(checksum=True)``),
    or None: also None for a file without a record (written by hand or by an older version).
    ``quick``: a file whose size and modification time match its record counts as intact
    without hashing it."""
    path = Path(path)
    record_path = checksum_path(path)
    if not record_path.exists() or not path.exists():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        expected_bytes, expected_hash = int(record["bytes"]), str(record["sha256"])
    except (ValueError, KeyError, TypeError):
        return f"its checksum record {record_path.name} is unreadable"
    stat = path.stat()
    if stat.st_size != expected_bytes:
        return f"{stat.st_size} bytes where {expected_bytes} were written"
    if quick and stat.st_mtime_ns == record.get("mtime_ns"):
        return None
    if file_record(path)["sha256"] != expected_hash:
        return f"its content differs from the SHA-256 in {record_path.name}"
    return None


def damaged_message(path: str | Path, problem: str) -> str:
    return (
        f"{path} is damaged ({problem}); rerun snakemake, which rebuilds it, or delete it and "
        "rerun the command that wrote it"
    )


def verify_file(path: str | Path) -> Path:
    """``path`` if it matches its checksum record; a damaged file raises DamagedFileError naming
    it (a missing one: FileNotFoundError)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    problem = damage(path)
    if problem:
        raise DamagedFileError(damaged_message(path, problem))
    return path


def save_torch(path: str | Path, payload) -> Path:
    """``torch.save(payload)`` to ``path`` atomically, with its checksum record, through a file
    handle: torch then names the archive's records ``archive/...`` instead of after the temporary
    file's random name, so equal payloads give byte-identical files."""
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)

    return atomic_write(path, write, checksum=True)


def load_torch(path: str | Path, what: str, map_location="cpu") -> dict:
    """The dict a ``save_torch`` file holds (``torch.load(weights_only=True)``), after
    ``verify_file``; a file torch cannot read, or that holds no dict, raises DamagedFileError
    naming it and ``what`` it should be (e.g. "recommender checkpoint")."""
    import torch

    path = verify_file(path)
    rebuild = "if the workflow wrote it, delete it and rerun snakemake to rebuild it"
    if not zipfile.is_zipfile(path):
        raise DamagedFileError(
            f"{path} is not a readable {what} (not a torch archive, or cut short); {rebuild}"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DamagedFileError(
            f"{path} is not a readable {what} ({first[:160]}); {rebuild}"
        ) from err
    if not isinstance(payload, dict):
        raise DamagedFileError(f"{path} is not a {what} (it holds {type(payload).__name__})")
    return payload


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err


def write_parquet(path: str | Path, frame) -> Path:
    """Write a pandas DataFrame to parquet atomically (no index). No checksum record: a custom
    dataset's rule writes these tables too, and parquet checks its own structure on reading."""
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def read_parquet(path: str | Path):
    """The DataFrame of a parquet file; a file pyarrow cannot read (truncated, not parquet)
    raises DamagedFileError naming it."""
    import pandas as pd
    import pyarrow

    path = verify_file(path)
    try:
        return pd.read_parquet(path)
    except (pyarrow.ArrowException, ValueError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DamagedFileError(
            f"{path} is not a readable parquet table ({first[:160]}); if the workflow wrote it, "
            "delete it and rerun snakemake to rebuild it"
        ) from err


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def result_metadata(config: dict, seed: int | None) -> dict:
    """The block every metrics/result JSON carries: config, seed, version, commit and the kernels
    the numbers were computed with (``recsae.kernels.kernel_report``)."""
    from recsae.kernels import kernel_report

    return {
        "config": config,
        "seed": seed,
        "recsae_version": __version__,
        "git_commit": git_commit(),
        "kernels": kernel_report(),
    }


def _json_default(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"object of type {type(value).__name__} is not JSON serialisable")
