"""Safe extraction of zip, tar (plain, gz, bz2, xz) and single-file gzip archives.

Every member is checked before anything is written: absolute paths, ``..`` parts, paths that
resolve outside the target, links and device files are refused with an UnsafeArchiveError that
names the member and the archive, and so is an archive that would unpack to more than
``ExtractLimits`` allow (sizes from the member headers; a single-file gzip, which has no reliable
size header, is counted while it is written). Tar members are then written by ``tarfile`` itself
with its ``"data"`` extraction filter where the Python has it (3.12, and 3.10.12 / 3.11.4
backports), a second guard that also drops permission bits such as setuid.
"""

from __future__ import annotations

import gzip
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from recsae.errors import UserError

_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 1 << 20


class ArchiveError(UserError, ValueError):
    """A file that cannot be extracted (not an archive, damaged, or refused)."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would be written outside the target, is not a plain file/folder, or
    the archive unpacks to more than the limits allow."""


@dataclass(frozen=True)
class ExtractLimits:
    """Caps on what one archive may unpack to: ``max_ratio`` times the archive's size, and
    ``max_bytes`` in total (config: download.max_extract_ratio / download.max_extract_gib)."""

    max_ratio: float = 50.0
    max_bytes: int = 100 * 2**30

    def cap(self, archive: Path) -> int:
        return int(min(self.max_ratio * archive.stat().st_size, self.max_bytes))


def safe_extract(
    archive: str | Path, target: str | Path, limits: ExtractLimits | None = None
) -> list[Path]:
    """Extract ``archive`` into ``target`` after checking every member; return written files."""
    archive, target = Path(archive), Path(target)
    limits = limits or ExtractLimits()
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        return _extract_zip(archive, target, limits)
    if tarfile.is_tarfile(archive):
        return _extract_tar(archive, target, limits)
    with archive.open("rb") as handle:
        if handle.read(2) == _GZIP_MAGIC:
            return [_extract_gzip(archive, target, limits)]
    raise ArchiveError(f"{archive}: not a zip, tar or gzip archive")


def _checked_path(name: str, archive: Path, target: Path) -> Path:
    """Where member ``name`` goes under ``target``; raise if that is unsafe."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and ":" in posix.parts[0]):
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: absolute path")
    if ".." in posix.parts:
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: '..' in path")
    dest = (target / Path(*posix.parts)).resolve() if posix.parts else target.resolve()
    if not dest.is_relative_to(target.resolve()):
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: resolves outside {target}")
    return dest


def _too_big(archive: Path, name: str, total: int, cap: int) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive}: refusing member {name!r}: the archive would unpack to {total} bytes or more, "
        f"over the cap of {cap} bytes (raise datasets.<name>.download.max_extract_ratio or "
        "max_extract_gib if the archive is genuine)"
    )


def _check_sizes(archive: Path, sizes: list[tuple[str, int]], limits: ExtractLimits) -> None:
    """Raise when the running total of member ``sizes`` (name, bytes) passes the cap."""
    cap, total = limits.cap(archive), 0
    for name, size in sizes:
        total += size
        if total > cap:
            raise _too_big(archive, name, total, cap)


def _extract_zip(archive: Path, target: Path, limits: ExtractLimits) -> list[Path]:
    with zipfile.ZipFile(archive) as zf:
        plan = []
        for info in zf.infolist():
            dest = _checked_path(info.filename, archive, target)
            file_type = stat.S_IFMT(info.external_attr >> 16)
            if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
                kind = "link" if file_type == stat.S_IFLNK else "special file"
                raise UnsafeArchiveError(f"{archive}: refusing member {info.filename!r}: {kind}")
            plan.append((info, dest))
        # zipfile never returns more than a member's header file_size (then checks its CRC).
        _check_sizes(archive, [(info.filename, info.file_size) for info, _ in plan], limits)
        written = []
        for info, dest in plan:
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, dest.open("wb") as out:
                while block := src.read(_BLOCK):
                    out.write(block)
            written.append(dest)
        return written


def _extract_tar(archive: Path, target: Path, limits: ExtractLimits) -> list[Path]:
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        for member in members:
            _checked_path(member.name, archive, target)
            if not (member.isreg() or member.isdir()):
                kind = "link" if member.issym() or member.islnk() else "special file"
                raise UnsafeArchiveError(f"{archive}: refusing member {member.name!r}: {kind}")
        _check_sizes(archive, [(m.name, m.size) for m in members if m.isreg()], limits)
        if hasattr(tarfile, "data_filter"):
            tf.extractall(target, members=members, filter="data")
        else:
            tf.extractall(target, members=members)
        return [_checked_path(m.name, archive, target) for m in members if m.isreg()]


def _extract_gzip(archive: Path, target: Path, limits: ExtractLimits) -> Path:
    name = archive.name[:-3] if archive.name.endswith(".gz") else archive.name + ".out"
    dest = _checked_path(name, archive, target)
    cap, total = limits.cap(archive), 0
    with gzip.open(archive, "rb") as src, dest.open("wb") as out:
        while block := src.read(_BLOCK):
            total += len(block)
            if total > cap:
                out.close()
                dest.unlink()
                raise _too_big(archive, name, total, cap)
            out.write(block)
    return dest
