"""The data stages: fetch a dataset's raw files, prepare its canonical tables, split them."""

from __future__ import annotations

from pathlib import Path

from recsae.data.fetch import fetch_raw
from recsae.data.prepare import prepare_dataset
from recsae.data.split import make_split


def fetch(
    settings: dict, *, dataset: str, raw_dir: str, mirror: str | None, download: dict | None
) -> None:
    """Fetch, verify and extract config entry ``dataset`` (``settings``: the entry without its
    split and network settings) into ``raw_dir``, from ``mirror`` when given; ``download``: the
    network settings."""
    fetch_raw(dataset, settings, Path(raw_dir), mirror or None, download)


def prepare(settings: dict, *, dataset: str, raw_dir: str, out_dir: str, seed: int) -> None:
    """Raw files of config entry ``dataset`` -> its canonical tables in ``out_dir``."""
    prepare_dataset(dataset, settings, Path(raw_dir), Path(out_dir), seed)


def split(settings: dict, *, data_dir: str, out_dir: str, seed: int) -> None:
    """Canonical tables in ``data_dir`` -> train/valid/test in ``out_dir`` (``settings``: the
    dataset's ``split`` block)."""
    make_split(Path(data_dir), settings, seed, Path(out_dir))
