"""Safe extraction of zip, tar (plain, gz, bz2, xz) and single-file gzip archives.

Every member is checked before anything is written: absolute paths, ``..`` parts, paths that
resolve outside the target, links and device files are refused with an UnsafeArchiveError that
names the member and the archive.
"""

from __future__ import annotations

import gzip
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

_GZIP_MAGIC = b"\x1f\x8b"


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the target or is not a plain file/folder."""


def safe_extract(archive: str | Path, target: str | Path) -> list[Path]:
    """Extract ``archive`` into ``target`` after checking every member; return written files."""
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        return _extract_zip(archive, target)
    if tarfile.is_tarfile(archive):
        return _extract_tar(archive, target)
    with archive.open("rb") as handle:
        if handle.read(2) == _GZIP_MAGIC:
            return [_extract_gzip(archive, target)]
    raise ValueError(f"{archive}: not a zip, tar or gzip archive")


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


def _extract_zip(archive: Path, target: Path) -> list[Path]:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        plan = []
        for info in members:
            dest = _checked_path(info.filename, archive, target)
            file_type = stat.S_IFMT(info.external_attr >> 16)
            if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
                kind = "link" if file_type == stat.S_IFLNK else "special file"
                raise UnsafeArchiveError(f"{archive}: refusing member {info.filename!r}: {kind}")
            plan.append((dest, info.is_dir(), lambda info=info: zf.open(info)))
        return _write_plan(plan)


def _write_plan(plan) -> list[Path]:
    """Write checked members: plan = [(dest, is_dir, open_member)]; returns the files written."""
    written = []
    for dest, is_dir, open_member in plan:
        if is_dir:
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open_member() as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        written.append(dest)
    return written


def _extract_tar(archive: Path, target: Path) -> list[Path]:
    with tarfile.open(archive, "r:*") as tf:
        plan = []
        for member in tf.getmembers():
            dest = _checked_path(member.name, archive, target)
            if not (member.isreg() or member.isdir()):
                kind = "link" if member.issym() or member.islnk() else "special file"
                raise UnsafeArchiveError(f"{archive}: refusing member {member.name!r}: {kind}")
            plan.append((dest, member.isdir(), lambda member=member: tf.extractfile(member)))
        return _write_plan(plan)


def _extract_gzip(archive: Path, target: Path) -> Path:
    name = archive.name[:-3] if archive.name.endswith(".gz") else archive.name + ".out"
    dest = _checked_path(name, archive, target)
    with gzip.open(archive, "rb") as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return dest
