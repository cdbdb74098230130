"""Atomic file writes and the metadata block shared by every result JSON."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recsae import __version__


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    A crash or an exception inside ``write`` leaves no partial file at ``path``. The file gets the
    permissions a plain ``open`` would give it (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def save_torch(path: str | Path, payload) -> Path:
    """``torch.save(payload)`` to ``path`` atomically, through a file handle: torch then names the
    archive's records ``archive/...`` instead of after the temporary file's random name, so equal
    payloads give byte-identical files."""
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)

    return atomic_write(path, write)


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
    """Write a pandas DataFrame to parquet atomically (no index)."""
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


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
