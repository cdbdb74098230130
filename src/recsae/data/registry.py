"""Dataset registry: every dataset module declares one ``DatasetSpec`` and registers it by name.

A spec says where the raw files come from (``resources``: urls, checksums, key files), what the
licence asks, and how to read the raw files into a ``RawData`` (raw ids, not yet filtered or
remapped; ``recsae.data.prepare`` does the rest) and which config keys the source reads
(``settings``). Adding a dataset = one module in this package that calls ``register_dataset`` +
one config entry with ``source: <name>``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recsae.errors import DataError

# A file name the project writes into the raw dir: no path separators or control characters,
# no leading dot (so neither "." nor "..").
SAFE_NAME = re.compile(r"^[^./\\\x00-\x1f][^/\\\x00-\x1f]*$")

_REGISTRY: dict[str, DatasetSpec] = {}
_DISCOVERED = False


@dataclass(frozen=True)
class Resource:
    """One file to fetch into the raw dir.

    ``filename``: the archive (or single data file) name as served upstream; ``url`` its upstream
    address (None: there is no public address, see ``DatasetSpec.how_to_get``). ``key_files``:
    paths relative to the raw dir that must exist once fetched; their sha256 goes into the
    manifest. ``unpack``: extract the archive (False: the file is itself a key file).
    ``mirror_name``: the folder name under a mirror (``<mirror>/<mirror_name>/<filename>``).
    ``local``: a local archive to use instead of downloading (the ``archive`` setting).
    ``md5``/``sha256``: the archive's pinned digest. ``md5_beside``: the publisher puts
    ``<filename>.md5`` beside the archive; it is fetched and checked when nothing is pinned.
    ``key_sha256``: pinned sha256 of key files, checked when a mirror serves them extracted.
    ``optional``: a missing file is logged and skipped instead of failing the fetch.
    Names are checked (``SAFE_NAME``) so that no setting can point a file outside the raw dir.
    """

    mirror_name: str
    filename: str
    url: str | None
    key_files: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    unpack: bool = True
    local: Path | None = None
    md5_beside: bool = False
    key_sha256: dict[str, str] = field(default_factory=dict)
    optional: bool = False

    def __post_init__(self):
        for name in (self.mirror_name, self.filename, *self.key_files):
            if not SAFE_NAME.fullmatch(name):
                raise DataError(
                    f"unsafe file name {name!r} for the raw dir (no / or \\, no control "
                    "characters, not starting with a dot); check the dataset's settings"
                )


@dataclass
class RawData:
    """What a reader returns, keyed by the dataset's own ids.

    * ``interactions``: user, item (raw ids), rating (float), timestamp (int seconds, 0 unknown).
    * ``items``: raw_id, title (nullable), year (nullable); may list items never interacted with.
    * ``users``: raw_id plus attribute columns (nullable).
    * ``concepts``: entity ("item" | "user"), raw_id, family, concept.
    * ``extra_json``: file name -> JSON object written beside the tables (e.g. ground_truth.json).
    * ``stats``: extra entries for stats.json (e.g. reviews whose item has no metadata).
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    concepts: pd.DataFrame | None = None
    extra_json: dict[str, dict] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """Declarative description of one dataset source.

    ``resources(settings)`` lists what to fetch for these settings (variant, category, ...);
    ``read(raw_dir, settings, seed)`` parses the fetched files. ``how_to_get`` is shown when a
    resource has no url and nothing local was found. ``default_split``: the split settings this
    source uses where the config's ``split`` block leaves a key unset (review data: leave-last-out
    by time, one test and one validation item; ``recsae.data.split.resolve_split_settings``).
    ``settings``: the config keys of a dataset entry that only this source reads, as a
    JSON-schema fragment ``{key: {type..., description}}`` (composed into the schema's dataset
    entry, ``recsae.config.compose_schema``).
    """

    name: str
    description: str
    licence: str
    homepage: str
    resources: Callable[[dict], list[Resource]]
    read: Callable[[Path, dict, int], RawData]
    how_to_get: str = ""
    default_split: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Make ``spec`` available as ``source: <spec.name>`` in config."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"dataset source {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def dataset_names() -> list[str]:
    """Names of all registered dataset sources."""
    _discover()
    return sorted(_REGISTRY)


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered as ``name``."""
    _discover()
    if name not in _REGISTRY:
        raise KeyError(f"unknown dataset source {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def dataset_settings() -> dict:
    """{key: schema} of every registered source's own settings; a key two sources declare must
    have one schema."""
    _discover()
    out: dict = {}
    for name in sorted(_REGISTRY):
        for key, spec in _REGISTRY[name].settings.items():
            if out.get(key, spec) != spec:
                raise ValueError(f"dataset setting {key!r} is declared differently by {name!r}")
            out[key] = spec
    return out


def _discover() -> None:
    """Import every module of ``recsae.data`` once so their ``register_dataset`` calls run."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    package = importlib.import_module("recsae.data")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"recsae.data.{module.name}")
    _DISCOVERED = True


def default_split(source: str | None) -> dict:
    """The split settings source ``source`` states (empty for an unregistered source such as
    ``custom``)."""
    _discover()
    spec = _REGISTRY.get(source) if source else None
    return dict(spec.default_split) if spec else {}


def local_archive(settings: dict) -> Path | None:
    """The ``archive`` setting (a local archive file to use instead of downloading), if set."""
    value = settings.get("archive")
    return Path(value).expanduser() if value else None
