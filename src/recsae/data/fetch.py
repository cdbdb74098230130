"""Get a dataset's raw files into ``resources/raw/<dataset>/`` and record them in a manifest.

Order of preference for each resource of a dataset: key files already in the raw dir (pre-placed)
> the ``archive`` setting (a local archive) > the archive already in the raw dir > the ``mirror``
(a folder or http(s) base URL holding ``<name>/<archive>`` or the extracted ``<name>/<key files>``;
it replaces the upstream hosts) > the upstream URL. ``MANIFEST.json`` records a sha256 of every
key file; if a recorded key file later differs, fetching (and preparing) fails naming the file.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from urllib.parse import quote

from recsae.data.download import (
    DownloadOptions,
    NotFoundError,
    copy_verified,
    download,
    file_digest,
    verify_checksum,
)
from recsae.data.extract import safe_extract
from recsae.data.registry import DatasetSpec, Resource, get_dataset
from recsae.io import read_json, write_json

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
_NESTED = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")


class RawDataChangedError(RuntimeError):
    """A key file differs from the sha256 recorded in the raw dir's manifest."""


def fetch_raw(dataset: str, settings: dict, raw_dir: Path, mirror: str | None = None) -> Path:
    """Fetch, verify and extract the raw files of config entry ``dataset``; return ``raw_dir``.

    ``settings``: the dataset's config entry (``source`` plus source keys, optional ``archive``
    and ``download``). Always writes ``raw_dir/MANIFEST.json`` (also for synthetic data, which
    has no files), so a workflow rule can declare it as its output.
    """
    spec = get_dataset(settings["source"])
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    options = DownloadOptions.from_settings(settings.get("download"))
    resources = spec.resources(settings)
    archives = {}
    for resource in resources:
        if all((raw_dir / key).is_file() for key in resource.key_files):
            continue
        archives[resource.filename] = _obtain(spec, resource, dataset, raw_dir, mirror, options)
    key_files = [key for resource in resources for key in resource.key_files]
    hashes = verify_manifest(raw_dir, key_files)
    path = raw_dir / MANIFEST
    manifest = read_json(path) if path.is_file() else {}
    manifest.update(dataset=dataset, source=spec.name, files=hashes)
    manifest["archives"] = manifest.get("archives", {}) | archives
    write_json(path, manifest)
    return raw_dir


def verify_manifest(raw_dir: Path, key_files: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Hash ``key_files`` and every file listed in ``raw_dir/MANIFEST.json``; return
    {relative path: sha256}. Raise RawDataChangedError naming a file whose hash differs from the
    recorded one, FileNotFoundError for a listed file that is gone.
    """
    raw_dir = Path(raw_dir)
    path = raw_dir / MANIFEST
    recorded: dict[str, str] = read_json(path).get("files", {}) if path.is_file() else {}
    hashes = {}
    for name in sorted(set(recorded) | set(key_files)):
        file = raw_dir / name
        if not file.is_file():
            raise FileNotFoundError(f"{file}: key file listed in {path} is missing")
        hashes[name] = file_digest(file)
        if name in recorded and recorded[name] != hashes[name]:
            raise RawDataChangedError(
                f"{file}: sha256 {hashes[name]} differs from {recorded[name]} recorded in {path}; "
                f"the raw file changed since it was fetched (delete {raw_dir} to fetch it again)"
            )
    return hashes


def _obtain(
    spec: DatasetSpec,
    resource: Resource,
    dataset: str,
    raw_dir: Path,
    mirror: str | None,
    options: DownloadOptions,
) -> dict:
    """Put ``resource``'s key files into ``raw_dir``; return a record of where they came from."""
    sums = {"md5": resource.md5, "sha256": resource.sha256}
    if resource.local is not None:
        if not resource.local.is_file():
            raise FileNotFoundError(f"{dataset}: archive {resource.local} does not exist")
        verify_checksum(resource.local, str(resource.local), **sums)
        _unpack(resource.local, resource, raw_dir)
        return {"from": str(resource.local)}
    placed = raw_dir / resource.filename
    if placed.is_file() and resource.unpack:
        verify_checksum(placed, str(placed), **sums)
        _unpack(placed, resource, raw_dir)
        return {"from": str(placed)}
    if mirror:
        return _from_mirror(resource, dataset, raw_dir, mirror, options)
    if resource.url is None:
        raise FileNotFoundError(
            f"{dataset}: no {', '.join(resource.key_files)} in {raw_dir} and no download address. "
            + spec.how_to_get
        )
    target = download(resource.url, placed, options=options, **sums)
    if resource.unpack:
        _unpack(target, resource, raw_dir)
    return {"from": resource.url}


def _from_mirror(
    resource: Resource, dataset: str, raw_dir: Path, mirror: str, options: DownloadOptions
) -> dict:
    """Look up ``<mirror>/<name>/<archive>``, then ``<mirror>/<name>/<key files>``."""
    sums = {"md5": resource.md5, "sha256": resource.sha256}
    remote = mirror.startswith(("http://", "https://"))
    tried = []
    for name in dict.fromkeys([dataset, resource.mirror_name]):
        if remote:
            base = f"{mirror.rstrip('/')}/{quote(name)}"
            try:
                target = download(
                    f"{base}/{quote(resource.filename)}",
                    raw_dir / resource.filename,
                    options=options,
                    **sums,
                )
            except NotFoundError:
                tried.append(f"{base}/{resource.filename}")
            else:
                if resource.unpack:
                    _unpack(target, resource, raw_dir)
                return {"from": f"{base}/{resource.filename}"}
            try:
                for key in resource.key_files:
                    download(f"{base}/{quote(key)}", raw_dir / key, options=options)
            except NotFoundError as err:
                tried.append(f"{base}/{{{','.join(resource.key_files)}}} ({err})")
                continue
            return {"from": f"{base}/"}
        folder = Path(mirror).expanduser() / name
        archive = folder / resource.filename
        if archive.is_file():
            target = copy_verified(archive, raw_dir / resource.filename, **sums)
            if resource.unpack:
                _unpack(target, resource, raw_dir)
            return {"from": str(archive)}
        if all((folder / key).is_file() for key in resource.key_files):
            for key in resource.key_files:
                copy_verified(folder / key, raw_dir / key)
            return {"from": str(folder)}
        tried.append(f"{archive} or {folder}/{{{','.join(resource.key_files)}}}")
    raise FileNotFoundError(f"{dataset}: not in mirror {mirror}; looked for " + "; ".join(tried))


def _unpack(archive: Path, resource: Resource, raw_dir: Path) -> None:
    """Extract ``archive`` (and, if needed, archives nested in it) and move the folder that holds
    the key files (``ml-1m/`` inside ml-1m.zip, or the top level) into ``raw_dir``."""
    staging = raw_dir / f".unpack-{resource.filename}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        safe_extract(archive, staging)
        root = _key_root(staging, resource.key_files)
        if root is None:
            for inner in sorted(staging.rglob("*")):
                if inner.name.endswith(_NESTED) and inner.is_file():
                    safe_extract(inner, inner.parent)
                    inner.unlink()
            root = _key_root(staging, resource.key_files)
        if root is None:
            found = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
            raise FileNotFoundError(
                f"{archive}: expected file(s) {list(resource.key_files)} not in the archive; "
                f"it holds {found[:20]}"
            )
        for entry in root.iterdir():
            dest = raw_dir / entry.name
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(entry, dest)
        log.info("%s: extracted into %s", archive, raw_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _key_root(folder: Path, key_files: tuple[str, ...]) -> Path | None:
    """The shallowest folder under ``folder`` (itself included) holding all ``key_files``."""
    candidates = [folder] + sorted(
        (p for p in folder.rglob("*") if p.is_dir()), key=lambda p: (len(p.parts), str(p))
    )
    for candidate in candidates:
        if all((candidate / key).is_file() for key in key_files):
            return candidate
    return None
