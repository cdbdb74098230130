"""HTTP downloads that resume, retry and verify, and checksum-verified local copies.

A file is written to ``<target>.part`` beside the target and renamed into place only after its
checksum (when one is known) matches. A checksum mismatch deletes the partial file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path

import requests
import urllib3

log = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 5.0


class DownloadError(RuntimeError):
    """A download failed for good (after retries, or on a non-retryable HTTP status)."""


class NotFoundError(DownloadError):
    """The server answered 404: the file is not there."""


class ChecksumError(DownloadError):
    """A fetched file's digest differs from the published one."""


class _Retryable(Exception):
    """A transient failure (5xx, truncated body, range mismatch): try again."""


@dataclass(frozen=True)
class DownloadOptions:
    """Network settings (config key ``download``): retries after the first try, the first
    backoff in seconds (doubled each retry), connect/read timeouts in seconds, chunk bytes."""

    retries: int = 5
    backoff: float = 2.0
    connect_timeout: float = 30.0
    read_timeout: float = 120.0
    chunk_size: int = 1 << 20

    @classmethod
    def from_settings(cls, settings: dict | None) -> DownloadOptions:
        settings = dict(settings or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"download: unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**settings)


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path, source: str, md5: str | None, sha256: str | None) -> None:
    """Raise ChecksumError (naming ``source``, expected and actual digest) on a mismatch."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is None:
            continue
        actual = file_digest(path, algorithm)
        if actual != expected.lower():
            raise ChecksumError(
                f"{source}: {algorithm} mismatch: expected {expected}, got {actual}"
            )


def download(
    url: str,
    target: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    options: DownloadOptions | None = None,
    session: requests.Session | None = None,
) -> Path:
    """Download ``url`` to ``target`` (resuming a ``.part`` file) and verify it; return target.

    Connection errors, timeouts, truncated bodies and 5xx answers are retried with exponential
    backoff; a 206 answer appends to the partial file, a 200 answer restarts it. 404 raises
    NotFoundError, other 4xx DownloadError, a digest mismatch ChecksumError (partial deleted).
    """
    options = options or DownloadOptions()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    session = session or requests.Session()
    failures = 0
    while True:
        try:
            _fetch_once(url, part, options, session)
            break
        except (
            _Retryable,
            requests.ConnectionError,
            requests.Timeout,
            urllib3.exceptions.HTTPError,
        ) as err:
            failures += 1
            if failures > options.retries:
                raise DownloadError(
                    f"{url}: giving up after {failures} attempts: {err}; "
                    f"{part.stat().st_size if part.exists() else 0} bytes kept in {part} "
                    "(the next run resumes from there)"
                ) from err
            wait = options.backoff * 2 ** (failures - 1)
            log.warning("%s: %s; retry %d/%d in %.1f s", url, err, failures, options.retries, wait)
            time.sleep(wait)
    try:
        verify_checksum(part, url, md5, sha256)
    except ChecksumError as err:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{err}; deleted the partial file {part}") from None
    os.replace(part, target)
    log.info("%s: saved %s (%d bytes)", url, target, target.stat().st_size)
    return target


def _fetch_once(url: str, part: Path, options: DownloadOptions, session: requests.Session):
    """One request: append to (206) or restart (200) ``part``; raise _Retryable if incomplete."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = (options.connect_timeout, options.read_timeout)
    with session.get(url, stream=True, timeout=timeout, headers=headers) as resp:
        status = resp.status_code
        if status == 404:
            raise NotFoundError(f"{url}: HTTP 404 (not found)")
        if status == 416:
            part.unlink(missing_ok=True)
            raise _Retryable("HTTP 416 (range not satisfiable); restarting from byte 0")
        if status >= 500:
            raise _Retryable(f"HTTP {status}")
        if status not in (200, 206):
            raise DownloadError(f"{url}: HTTP {status} {resp.reason}")
        if status == 206 and _range_start(resp) != offset:
            part.unlink(missing_ok=True)
            raise _Retryable("the server resumed at the wrong byte; restarting from byte 0")
        if status == 200:
            offset = 0
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        if offset:
            log.info("%s: resuming at byte %d", url, offset)
        written = offset
        last_report = time.monotonic()
        with part.open("ab" if status == 206 else "wb") as out:
            for chunk in resp.raw.stream(options.chunk_size, decode_content=False):
                out.write(chunk)
                written += len(chunk)
                if time.monotonic() - last_report >= _PROGRESS_EVERY_S:
                    log.info("%s: %s", url, _progress(written, total))
                    last_report = time.monotonic()
        if total is not None and written < total:
            raise _Retryable(f"transfer cut short at byte {written} of {total}")
        log.info("%s: %s", url, _progress(written, total))


def _range_start(resp: requests.Response) -> int | None:
    """First byte of a 206 answer's ``Content-Range: bytes START-END/TOTAL``."""
    value = resp.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _progress(done: int, total: int | None) -> str:
    mib = done / 2**20
    if not total:
        return f"{mib:.1f} MiB"
    return f"{mib:.1f} of {total / 2**20:.1f} MiB ({100 * done / total:.0f}%)"


def copy_verified(
    source: str | Path, target: str | Path, *, md5: str | None = None, sha256: str | None = None
) -> Path:
    """Copy a local file to ``target`` via a temporary file, verifying the checksum first."""
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    shutil.copyfile(source, tmp)
    try:
        verify_checksum(tmp, str(source), md5, sha256)
    except ChecksumError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target
