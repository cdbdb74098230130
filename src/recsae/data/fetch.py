"""Get a dataset's raw files into ``resources/raw/<dataset>/`` and record them in a manifest.

Order of preference for each resource of a dataset: key files already in the raw dir (pre-placed)
> the ``archive`` setting (a local archive) > the archive already in the raw dir > the ``mirror``
(a folder or http(s) base URL holding ``<name>/<archive>`` or the extracted ``<name>/<key files>``;
it replaces the upstream hosts) > the upstream URL.

What is verified: an archive against its pinned checksum, else against the ``<archive>.md5`` the
publisher puts beside it (MovieLens); key files a mirror serves extracted against their pinned
sha256; a ``.gz`` key file by decompressing it once. An archive that fails to extract is moved
aside (``<archive>.rejected``) so the next run downloads it again. ``MANIFEST.json`` records the
sha256, size and mtime of every key file; if a recorded key file later differs, fetching,
preparing and the workflow's start (``check_raw_unchanged``) fail naming the file. A
``MANIFEST.json`` inside an archive is never used.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from recsae.data.download import (
    ChecksumError,
    DownloadOptions,
    NotFoundError,
    copy_verified,
    download,
    file_digest,
    parse_md5_file,
    verify_checksum,
)
from recsae.data.extract import ArchiveError, ExtractLimits, safe_extract
from recsae.data.registry import DatasetSpec, Resource, get_dataset
from recsae.errors import UserError
from recsae.io import read_json, write_json

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
_NESTED = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")


class RawDataChangedError(UserError, RuntimeError):
    """A key file differs from the sha256 recorded in the raw dir's manifest."""


class MissingRawFileError(UserError, FileNotFoundError):
    """A raw file is not where the dataset's settings say it is, nor in the mirror."""


def fetch_raw(
    dataset: str,
    settings: dict,
    raw_dir: Path,
    mirror: str | None = None,
    download_settings: dict | None = None,
) -> Path:
    """Fetch, verify and extract the raw files of config entry ``dataset``; return ``raw_dir``.

    ``settings``: the dataset's config entry (``source`` plus source keys, optional ``archive``);
    ``download_settings``: the network settings (``DownloadOptions``; the workflow passes them
    apart from ``settings`` so that changing them re-runs nothing). Always writes
    ``raw_dir/MANIFEST.json`` (also for synthetic data, which has no files), so a workflow rule
    can declare it as its output.
    """
    spec = get_dataset(settings["source"])
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    options = DownloadOptions.from_settings(
        download_settings if download_settings is not None else settings.get("download")
    )
    resources = spec.resources(settings)
    archives, missing = {}, []
    for resource in resources:
        if all((raw_dir / key).is_file() for key in resource.key_files):
            continue
        try:
            archives[resource.filename] = _obtain(spec, resource, dataset, raw_dir, mirror, options)
        except (NotFoundError, MissingRawFileError) as err:
            if not resource.optional:
                raise
            log.warning("%s: optional file %s not available, going on without it (%s)",
                        dataset, resource.filename, err)  # fmt: skip
            missing.append(resource.filename)
    key_files = [key for r in resources if r.filename not in missing for key in r.key_files]
    hashes = verify_manifest(raw_dir, key_files)
    path = raw_dir / MANIFEST
    manifest = read_json(path) if path.is_file() else {}
    manifest.update(dataset=dataset, source=spec.name, files=hashes, stat=_stats(raw_dir, hashes))
    manifest["archives"] = manifest.get("archives", {}) | archives
    manifest["missing_optional"] = missing
    write_json(path, manifest)
    return raw_dir


def _manifest_names(raw_dir: Path, recorded: dict) -> None:
    """Refuse manifest entries that are not plain relative paths inside ``raw_dir``."""
    for name in recorded:
        posix = PurePosixPath(name)
        if posix.is_absolute() or ".." in posix.parts or not posix.parts:
            raise RawDataChangedError(
                f"{raw_dir / MANIFEST}: refusing entry {name!r} (not a path inside {raw_dir}); "
                f"delete {raw_dir / MANIFEST} to fetch again"
            )


def verify_manifest(raw_dir: Path, key_files: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Hash ``key_files`` and every file listed in ``raw_dir/MANIFEST.json``; return
    {relative path: sha256}. Raise RawDataChangedError naming a file whose hash differs from the
    recorded one, MissingRawFileError for a listed file that is gone.
    """
    raw_dir = Path(raw_dir)
    path = raw_dir / MANIFEST
    recorded: dict[str, str] = read_json(path).get("files", {}) if path.is_file() else {}
    _manifest_names(raw_dir, recorded)
    hashes = {}
    for name in sorted(set(recorded) | set(key_files)):
        file = raw_dir / name
        if not file.is_file():
            raise MissingRawFileError(
                f"{file}: key file listed in {path} is missing; delete {path} to fetch again"
            )
        hashes[name] = file_digest(file)
        if name in recorded and recorded[name] != hashes[name]:
            raise RawDataChangedError(_changed(file, hashes[name], recorded[name], path))
    return hashes


def _changed(file: Path, actual: str, recorded: str, manifest: Path) -> str:
    return (
        f"{file}: sha256 {actual} differs from {recorded} recorded in {manifest}; the raw file "
        f"changed since it was fetched (delete {file.parent} to fetch it again, or {manifest} "
        "to accept the files as they are now)"
    )


def _stats(raw_dir: Path, hashes: dict[str, str]) -> dict[str, list[int]]:
    """{name: [size, mtime_ns]} of the hashed key files (for the cheap check at start-up)."""
    out = {}
    for name in hashes:
        info = (raw_dir / name).stat()
        out[name] = [info.st_size, info.st_mtime_ns]
    return out


def check_raw_unchanged(raw_dir: Path) -> None:
    """Cheap re-check of a fetched raw dir (the workflow runs it before scheduling any job):
    a key file whose size or mtime differs from the manifest is hashed; RawDataChangedError if
    its sha256 differs too, MissingRawFileError if it is gone. No manifest: nothing to check."""
    raw_dir = Path(raw_dir)
    path = raw_dir / MANIFEST
    if not path.is_file():
        return
    manifest = read_json(path)
    recorded, stats = manifest.get("files", {}), manifest.get("stat", {})
    _manifest_names(raw_dir, recorded)
    for name, digest in recorded.items():
        file = raw_dir / name
        if not file.is_file():
            raise MissingRawFileError(
                f"{file}: key file listed in {path} is missing; delete {path} to fetch again"
            )
        info = file.stat()
        if stats.get(name) == [info.st_size, info.st_mtime_ns]:
            continue
        actual = file_digest(file)
        if actual != digest:
            raise RawDataChangedError(_changed(file, actual, digest, path))


def _obtain(
    spec: DatasetSpec,
    resource: Resource,
    dataset: str,
    raw_dir: Path,
    mirror: str | None,
    options: DownloadOptions,
) -> dict:
    """Put ``resource``'s key files into ``raw_dir``; return a record of where they came from."""
    limits = ExtractLimits(options.max_extract_ratio, int(options.max_extract_gib * 2**30))
    if resource.local is not None:
        if not resource.local.is_file():
            raise MissingRawFileError(f"{dataset}: archive {resource.local} does not exist")
        sums = _sums_beside(resource, resource.local)
        verify_checksum(resource.local, str(resource.local), **sums)
        _unpack(resource.local, resource, raw_dir, limits, owned=False)
        return {"from": str(resource.local), **_record(sums)}
    placed = raw_dir / resource.filename
    if placed.is_file() and resource.unpack:
        sums = _sums_beside(resource, placed)
        verify_checksum(placed, str(placed), **sums)
        _unpack(placed, resource, raw_dir, limits)
        return {"from": str(placed), **_record(sums)}
    if mirror:
        return _from_mirror(resource, dataset, raw_dir, mirror, options, limits)
    if resource.url is None:
        raise MissingRawFileError(
            f"{dataset}: no {', '.join(resource.key_files)} in {raw_dir} and no download address. "
            + spec.how_to_get
        )
    target, sums = _download_archive(resource, resource.url, raw_dir, options)
    _finish(target, resource, raw_dir, limits)
    return {"from": resource.url, **_record(sums)}


def _record(sums: dict) -> dict:
    return {algorithm: value for algorithm, value in sums.items() if value}


def _pinned(resource: Resource) -> dict:
    return {"md5": resource.md5, "sha256": resource.sha256}


def _sums_beside(resource: Resource, archive: Path) -> dict:
    """Pinned sums, else the md5 in ``<archive>.md5`` beside a local archive when there is one."""
    sums = _pinned(resource)
    if resource.md5 or resource.sha256 or not resource.md5_beside:
        return sums
    sidecar = archive.with_name(archive.name + ".md5")
    if sidecar.is_file():
        return {**sums, "md5": parse_md5_file(sidecar)}
    log.warning("%s: no pinned checksum and no %s beside it: not verified", archive, sidecar.name)
    return sums


def _download_archive(
    resource: Resource, url: str, raw_dir: Path, options: DownloadOptions
) -> tuple[Path, dict]:
    """Download ``url`` into the raw dir verified against the pinned sums, else (publishers that
    put one beside every archive) against the md5 published at ``<url>.md5``, which must exist
    (a mirror must carry it too); return (target, sums). A mismatch deletes the download."""
    sums = _pinned(resource)
    target = download(url, raw_dir / resource.filename, options=options, **sums)
    if resource.md5 or resource.sha256 or not resource.md5_beside:
        return target, sums
    sidecar = raw_dir / f"{resource.filename}.md5"
    try:
        download(f"{url}.md5", sidecar, options=options)
        sums = {**sums, "md5": parse_md5_file(sidecar)}
        verify_checksum(target, url, **sums)
    except (NotFoundError, ChecksumError) as err:
        target.unlink()
        reason = (
            f"{url}.md5 not found and no checksum is pinned in the code (the publisher puts one "
            "beside every archive; a mirror must carry it too)"
            if isinstance(err, NotFoundError)
            else str(err)
        )
        raise ChecksumError(f"{reason}; deleted {target}") from err
    return target, sums


def _finish(target: Path, resource: Resource, raw_dir: Path, limits: ExtractLimits) -> None:
    """Extract a fetched archive, or check a fetched ``.gz`` key file decompresses."""
    if resource.unpack:
        _unpack(target, resource, raw_dir, limits)
    else:
        _check_gzip(target)


def _from_mirror(
    resource: Resource,
    dataset: str,
    raw_dir: Path,
    mirror: str,
    options: DownloadOptions,
    limits: ExtractLimits,
) -> dict:
    """Look up ``<mirror>/<name>/<archive>``, then ``<mirror>/<name>/<key files>``."""
    remote = mirror.startswith(("http://", "https://"))
    tried = []
    for name in dict.fromkeys([dataset, resource.mirror_name]):
        if remote:
            base = f"{mirror.rstrip('/')}/{quote(name)}"
            url = f"{base}/{quote(resource.filename)}"
            try:
                target, sums = _download_archive(resource, url, raw_dir, options)
            except NotFoundError:
                tried.append(f"{base}/{resource.filename}")
            else:
                _finish(target, resource, raw_dir, limits)
                return {"from": url, **_record(sums)}
            try:
                for key in resource.key_files:
                    sha256 = resource.key_sha256.get(key)
                    download(f"{base}/{quote(key)}", raw_dir / key, options=options, sha256=sha256)
                    _check_gzip(raw_dir / key)
            except NotFoundError as err:
                tried.append(f"{base}/{{{','.join(resource.key_files)}}} ({err})")
                continue
            return {"from": f"{base}/"}
        folder = Path(mirror).expanduser() / name
        archive = folder / resource.filename
        if archive.is_file():
            sums = _sums_beside(resource, archive)
            target = copy_verified(archive, raw_dir / resource.filename, **sums)
            _finish(target, resource, raw_dir, limits)
            return {"from": str(archive), **_record(sums)}
        if all((folder / key).is_file() for key in resource.key_files):
            for key in resource.key_files:
                copy_verified(folder / key, raw_dir / key, sha256=resource.key_sha256.get(key))
                _check_gzip(raw_dir / key)
            return {"from": str(folder)}
        tried.append(f"{archive} or {folder}/{{{','.join(resource.key_files)}}}")
    raise MissingRawFileError(f"{dataset}: not in mirror {mirror}; looked for " + "; ".join(tried))


def _check_gzip(path: Path) -> None:
    """Decompress a ``.gz`` ``path`` once (other files: nothing to do); a damaged or truncated
    file is deleted (so the next run fetches it again) and reported."""
    if not path.name.endswith(".gz"):
        return
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass
    except (OSError, EOFError, zlib.error) as err:
        path.unlink(missing_ok=True)
        raise ArchiveError(
            f"{path}: damaged gzip file ({err}); deleted it so that the next run fetches it again"
        ) from err


def _unpack(
    archive: Path, resource: Resource, raw_dir: Path, limits: ExtractLimits, owned: bool = True
) -> None:
    """Extract ``archive`` (and, if needed, archives nested in it) and move the folder that holds
    the key files (``ml-1m/`` inside ml-1m.zip, or the top level) into ``raw_dir``; a
    ``MANIFEST.json`` in it is left out. An ``owned`` archive (one in the raw dir) that fails is
    moved aside to ``<archive>.rejected``; the user's own (the ``archive`` setting) is left."""
    staging = raw_dir / f".unpack-{resource.filename}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        root = _extract_keys(archive, resource, staging, limits)
        for entry in root.iterdir():
            if entry.name == MANIFEST:
                log.warning("%s: ignored the %s inside the archive", archive, MANIFEST)
                continue
            dest = raw_dir / entry.name
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(entry, dest)
        log.info("%s: extracted into %s", archive, raw_dir)
    except Exception as err:
        where = ""
        if owned:
            rejected = archive.with_name(archive.name + ".rejected")
            os.replace(archive, rejected)
            where = f"; moved it to {rejected} so that the next run fetches it again"
        message = str(err) if str(archive) in str(err) else f"{archive}: cannot extract ({err})"
        error_class = type(err) if isinstance(err, ArchiveError) else ArchiveError
        raise error_class(message + where) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_keys(archive: Path, resource: Resource, staging: Path, limits) -> Path:
    """Extract into ``staging``; return the folder holding the key files."""
    safe_extract(archive, staging, limits)
    root = _key_root(staging, resource.key_files)
    if root is None:
        for inner in sorted(staging.rglob("*")):
            if inner.name.endswith(_NESTED) and inner.is_file():
                safe_extract(inner, inner.parent, limits)
                inner.unlink()
        root = _key_root(staging, resource.key_files)
    if root is None:
        found = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        raise ArchiveError(
            f"{archive}: expected file(s) {list(resource.key_files)} not in the archive; "
            f"it holds {found[:20]}"
        )
    return root


def _key_root(folder: Path, key_files: tuple[str, ...]) -> Path | None:
    """The shallowest folder under ``folder`` (itself included) holding all ``key_files``."""
    candidates = [folder] + sorted(
        (p for p in folder.rglob("*") if p.is_dir()), key=lambda p: (len(p.parts), str(p))
    )
    for candidate in candidates:
        if all((candidate / key).is_file() for key in key_files):
            return candidate
    return None
