"""HTTP downloads that resume, retry and verify, and checksum-verified local copies.

A file is written to ``<target>.part`` beside the target and renamed into place only after its
checksum (when one is known) matches; a mismatch deletes the partial file. A partial file is
resumed (HTTP Range) only when the server's validator (strong ETag, else Last-Modified), kept in
``<target>.part.validator``, still matches (sent as If-Range); otherwise it restarts at byte 0, so
the halves of two versions are never joined. Every file has an overall deadline, and progress
(bytes, rate, ETA) is logged every few seconds.

The retry loop is the project's own rather than urllib3's ``Retry``: a retry here must resume the
partial file with a fresh Range/If-Range and also covers a body cut short mid-stream, which
``Retry`` (it retries requests, not the reading of a streamed body) does not see.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from recsae.config import fill_defaults
from recsae.errors import UserError

log = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 5.0
_MD5 = re.compile(r"\b[0-9a-fA-F]{32}\b")


class DownloadError(UserError, RuntimeError):
    """A download failed for good (after retries, on a non-retryable HTTP status, or past its
    deadline)."""


class NotFoundError(DownloadError):
    """The server answered 404: the file is not there."""


class ChecksumError(DownloadError):
    """A fetched file's digest differs from the published one."""


class _Retryable(Exception):
    """A transient failure (5xx, truncated body, range mismatch): try again."""


@dataclass(frozen=True)
class DownloadOptions:
    """Network settings (config key ``download``): retries after the first try, the first
    backoff in seconds (doubled each retry), connect/read timeouts in seconds, chunk bytes, the
    deadline in seconds for one file (all tries together), and the extraction caps (an archive
    may unpack to at most ``max_extract_ratio`` times its size and ``max_extract_gib`` GiB).
    Defaults: config/schema.yaml, ``$defs.download_settings``."""

    retries: int
    backoff: float
    connect_timeout: float
    read_timeout: float
    chunk_size: int
    deadline: float
    max_extract_ratio: float
    max_extract_gib: float

    @classmethod
    def from_settings(cls, settings: dict | None) -> DownloadOptions:
        """The block with the schema's defaults filled in; a bad key or value raises a
        ConfigError naming it."""
        return cls(**fill_defaults("$defs.download_settings", settings))


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


def parse_md5_file(path: Path) -> str:
    """The md5 digest in a published checksum file (``MD5 (f.zip) = <hex>`` or ``<hex>  f.zip``)."""
    found = _MD5.search(path.read_text(encoding="ascii", errors="replace"))
    if found is None:
        raise ChecksumError(f"{path}: no md5 digest in this checksum file")
    return found.group(0).lower()


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
    backoff; a 206 answer whose validator matches appends to the partial file, anything else
    restarts it. 404 raises NotFoundError, other 4xx DownloadError, a digest mismatch
    ChecksumError (partial deleted), passing ``options.deadline`` DownloadError (partial kept).
    """
    options = options or DownloadOptions.from_settings(None)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    session = session or requests.Session()
    deadline = time.monotonic() + options.deadline
    failures = 0
    while True:
        try:
            _fetch_once(url, part, options, session, deadline)
            break
        except (
            _Retryable,
            requests.ConnectionError,
            requests.Timeout,
            urllib3.exceptions.HTTPError,
        ) as err:
            failures += 1
            wait = options.backoff * 2 ** (failures - 1)
            if failures > options.retries or time.monotonic() + wait > deadline:
                raise DownloadError(
                    f"{url}: giving up after {failures} attempts: {err}; "
                    f"{part.stat().st_size if part.exists() else 0} bytes kept in {part} "
                    "(the next run resumes from there if the server's file is unchanged)"
                ) from err
            log.warning("%s: %s; retry %d/%d in %.1f s", url, err, failures, options.retries, wait)
            time.sleep(wait)
    _validator_file(part).unlink(missing_ok=True)
    try:
        verify_checksum(part, url, md5, sha256)
    except ChecksumError as err:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{err}; deleted the partial file {part}") from None
    os.replace(part, target)
    log.info("%s: saved %s (%d bytes)", url, target, target.stat().st_size)
    return target


def _validator_file(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _validator(resp: requests.Response) -> str | None:
    """The answer's strong ETag, else its Last-Modified (what If-Range accepts), else None."""
    etag = resp.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return resp.headers.get("Last-Modified")


def _resume_point(url: str, part: Path) -> tuple[int, str | None]:
    """(offset, validator) to resume ``part`` from; (0, None) after deleting a partial file
    whose validator was not recorded (it cannot be shown to belong to the same remote file)."""
    record = _validator_file(part)
    if part.exists() and record.is_file():
        saved_url, _, validator = record.read_text(encoding="utf-8").partition("\n")
        if saved_url == url and validator:
            return part.stat().st_size, validator
    if part.exists():
        log.info("%s: %s has no recorded validator; restarting from byte 0", url, part)
    part.unlink(missing_ok=True)
    record.unlink(missing_ok=True)
    return 0, None


def _fetch_once(
    url: str, part: Path, options: DownloadOptions, session: requests.Session, deadline: float
):
    """One request: append to (206, same validator) or restart (200) ``part``; raise _Retryable
    if incomplete, DownloadError past ``deadline`` (a monotonic time)."""
    offset, validator = _resume_point(url, part)
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = validator
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
        if status == 206 and (_range_start(resp) != offset or _validator(resp) != validator):
            part.unlink(missing_ok=True)
            raise _Retryable(
                "the server resumed at another byte or another version; restarting from byte 0"
            )
        if status == 200:
            if offset:
                log.info("%s: the server sent the whole file (changed or no Range); restarting",
                         url)  # fmt: skip
            offset = 0
            record = _validator(resp)
            if record:
                _validator_file(part).write_text(f"{url}\n{record}", encoding="utf-8")
            else:
                _validator_file(part).unlink(missing_ok=True)
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        if offset:
            log.info("%s: resuming at byte %d", url, offset)
        progress = _Progress(url, offset, total)
        with part.open("ab" if status == 206 else "wb") as out:
            while chunk := resp.raw.read1(options.chunk_size, decode_content=False):
                out.write(chunk)
                progress.advance(len(chunk))
                if time.monotonic() > deadline:
                    raise DownloadError(
                        f"{url}: not complete after the deadline of {options.deadline:g} s "
                        f"(download.deadline); {progress.done} bytes kept in {part}"
                    )
        if total is not None and progress.done < total:
            raise _Retryable(f"transfer cut short at byte {progress.done} of {total}")
        progress.report()


def _range_start(resp: requests.Response) -> int | None:
    """First byte of a 206 answer's ``Content-Range: bytes START-END/TOTAL``."""
    value = resp.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


class _Progress:
    """Logs bytes done, rate and ETA of one transfer at most every ``_PROGRESS_EVERY_S``."""

    def __init__(self, url: str, offset: int, total: int | None):
        self.url, self.start, self.done, self.total = url, offset, offset, total
        self.started = self.last = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        if time.monotonic() - self.last >= _PROGRESS_EVERY_S:
            self.report()

    def report(self) -> None:
        self.last = time.monotonic()
        rate = (self.done - self.start) / max(self.last - self.started, 1e-9)
        text = f"{self.done / 2**20:.1f} MiB"
        if self.total:
            text += f" of {self.total / 2**20:.1f} MiB ({100 * self.done / self.total:.0f}%)"
        text += f", {rate / 2**20:.2f} MiB/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {(self.total - self.done) / rate:.0f} s"
        log.info("%s: %s", self.url, text)


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
