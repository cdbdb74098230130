"""A non-editable install (``pip install .``) works outside the checkout: the wheel carries the
config schema and the explorer page, and the installed package validates a config with them."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the files a build reads (the checkout stays untouched)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    (source / "config").mkdir()
    shutil.copy(REPO / "config" / "schema.yaml", source / "config" / "schema.yaml")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", source / "src", symlinks=True, ignore=ignore)
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(out), "."],
        cwd=source,
        check=True,
    )
    (path,) = out.glob("recsae-*.whl")
    return path


def test_the_wheel_carries_the_schema_and_the_explorer_page(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read("recsae/schema.yaml") == (REPO / "config" / "schema.yaml").read_bytes()
    page = {p.name for p in (REPO / "src" / "recsae" / "report" / "explorer_page").iterdir()}
    assert {f"recsae/report/explorer_page/{name}" for name in page} <= names


def test_an_installed_wheel_validates_the_demo_config_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel],
        check=True,
    )
    script = (
        "import recsae.workflow as wf, sys\n"
        "assert wf.__file__.startswith(sys.argv[2]), wf.__file__\n"
        "config = wf.load_config(sys.argv[1])\n"
        "print(config['sae']['defaults']['expansion'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", script, str(REPO / "config" / "demo.yaml"), str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) > 0
