"""Issue 26: runs exit promptly, damaged results are named in one line, impossible settings are
refused before any job, and ordinary misuse of ``recsae`` gives one line and exit 2."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recsae.config import ConfigError, load_schema
from recsae.workflow import validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
BASE = {"datasets": {"d": {"source": "synthetic"}}, "models": {"m": {"model": "mf"}}}


def _recsae(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsae.cli", *args], capture_output=True, text=True
    )


def _error_lines(out: subprocess.CompletedProcess) -> list[str]:
    return [line for line in out.stderr.splitlines() if " INFO " not in line]


# --- a run exits when its last job ends ---------------------------------------------------------


@pytest.mark.slow
def test_a_run_exits_when_its_last_job_ends(tmp_path):
    """profiles/default's one-minute max-jobs-per-timespan window made every run that executed a
    job wait about 60 s after its last job; the Snakefile now cancels the re-planning timers."""
    import time

    config = {"datasets": {"d": {"source": "synthetic", "n_users": 40, "n_items": 30,
                                 "interactions_per_user": 8}},
              "models": {"m": {"model": "mf"}}}  # fmt: skip
    configfile = tmp_path / "tiny.yaml"
    configfile.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(configfile), "--cores", "1",
           "results/d/split/stats.json"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    done_at = None
    for line in proc.stderr:
        if "steps (100%) done" in line:
            done_at = time.monotonic()
    proc.wait(timeout=300)
    exited_at = time.monotonic()
    assert proc.returncode == 0 and done_at is not None
    assert exited_at - done_at < 15, f"exit {exited_at - done_at:.0f} s after the last job"


# --- non-finite numbers ---------------------------------------------------------------------

# the name a map's placeholder key gets, by the map's own key (``d`` and ``m`` exist in BASE)
_MAP_KEYS = {"datasets": "d", "models": "m", "pairs": "d/m", "params": "reg", "grids": "g"}


def _resolve(node: dict, root: dict) -> dict:
    while "$ref" in node:
        node = {**root["$defs"][node["$ref"].split("/")[-1]], **{
            k: v for k, v in node.items() if k != "$ref"}}  # fmt: skip
    return node


def _types(node: dict) -> set[str]:
    kind = node.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def numeric_keys(node: dict, root: dict, path: tuple = ()) -> list[tuple]:
    """Every place of the schema that takes a number (type number or integer, also as one choice
    of an ``anyOf``), as a path of keys and list indices (placeholder names for maps)."""
    node = _resolve(node, root)
    out = []
    branches = [_resolve(b, root) for b in node.get("anyOf", [])] or [node]
    if any(_types(b) & {"number", "integer"} for b in branches):
        out.append(path)
    for branch in branches:
        for key, sub in branch.get("properties", {}).items():
            out += numeric_keys(sub, root, (*path, key))
        extra = branch.get("additionalProperties")
        if isinstance(extra, dict):
            out += numeric_keys(extra, root, (*path, _MAP_KEYS.get(path[-1], "lr")))
        if isinstance(branch.get("items"), dict):
            out += numeric_keys(branch["items"], root, (*path, 0))
    return list(dict.fromkeys(out))


def _with_value(path: tuple, value) -> dict:
    config = copy.deepcopy(BASE)
    node = config
    for key, after in zip(path, (*path[1:], None), strict=True):
        if after is None:
            if isinstance(node, list):
                node.append(value)
            else:
                node[key] = value
        elif isinstance(node, list):
            node.append([] if isinstance(after, int) else {})
            node = node[-1]
        else:
            node = node.setdefault(key, [] if isinstance(after, int) else {})
    return config


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


SCHEMA_ROOT = load_schema(SCHEMA)
NUMERIC_KEYS = numeric_keys(SCHEMA_ROOT, SCHEMA_ROOT)


def test_the_schema_walk_finds_the_numeric_keys():
    dotted = {_dotted(p) for p in NUMERIC_KEYS}
    for key in (
        "seed",
        "datasets.d.min_rating",
        "datasets.d.split.test_fraction",
        "datasets.d.noise",
        "datasets.d.download.deadline",
        "models.m.params.reg",
        "models.m.train.weight_decay",
        "sae.defaults.lr",
        "metrics.auroc_threshold",
        "sae.sweep.grid.lr",
        "sae.sweep.points[0].beta",
        "metrics.bucket_cuts[0]",
    ):
        assert key in dotted, key
    assert len(dotted) > 100


@pytest.mark.parametrize("path", NUMERIC_KEYS, ids=_dotted)
def test_non_finite_numbers_are_refused_for_every_numeric_key(path):
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ConfigError) as err:
            validate_config(_with_value(path, value), SCHEMA)
        assert f"{_dotted(path)}: {value!r} is not a finite number" in str(err.value)


def test_nan_in_a_config_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "nan.yaml"
    bad.write_text(yaml.safe_dump(BASE) + "sae: {defaults: {lr: .nan}}\n")
    out = _recsae("validate-config", str(bad))
    assert out.returncode == 2
    (line,) = _error_lines(out)
    assert line.startswith("recsae validate-config: error: ")
    assert "sae.defaults.lr: nan is not a finite number" in line


# --- a pipeline in miniature: the files the CLI cases read ------------------------------------


def _train_sae_args(tiny, model=None, settings="{}", *extra) -> list[str]:
    return ["train-sae", "--model-path", str(model or tiny["model"]), "--data-dir",
            str(tiny["data"]), "--split-dir", str(tiny["split"]), "--point-id", "tiny/mf/x",
            "--out-dir", str(tiny["root"] / "out"), "--settings", settings, "--device", "cpu",
            *extra]  # fmt: skip


def _one_line(out: subprocess.CompletedProcess, command: str) -> str:
    assert out.returncode == 2, out.stderr
    lines = _error_lines(out)
    assert len(lines) == 1 and lines[0].startswith(f"recsae {command}: error: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


# --- checksums of the files the workflow writes ----------------------------------------------


def test_every_checkpoint_and_array_has_a_checksum_record(tiny):
    from recsae.io import checksum_path, damage

    for path in (tiny["model"], tiny["sae"], tiny["root"] / "mf/embeddings.npz"):
        assert checksum_path(path).is_file(), path
        assert damage(path) is None


def _copy(tiny, name: str, tmp_path: Path) -> Path:
    """A copy of a tiny file with its checksum record."""
    import shutil

    from recsae.io import checksum_path

    source = tiny[name]
    target = tmp_path / source.name
    shutil.copy(source, target)
    shutil.copy(checksum_path(source), checksum_path(target))
    return target


def test_a_truncated_sae_checkpoint_is_one_line_naming_it(tiny, tmp_path):
    sae = _copy(tiny, "sae", tmp_path)
    sae.write_bytes(sae.read_bytes()[: sae.stat().st_size // 2])
    out = _recsae("evaluate-sae", "--model-path", str(tiny["model"]), "--sae-path", str(sae),
                  "--data-dir", str(tiny["data"]), "--split-dir", str(tiny["split"]),
                  "--metrics-out", str(tmp_path / "m.json"), "--interventions-out",
                  str(tmp_path / "i.json"), "--device", "cpu")  # fmt: skip
    line = _one_line(out, "evaluate-sae")
    assert f"{sae} is damaged" in line and "where" in line and "rerun snakemake" in line


def test_zeroed_bytes_inside_a_recommender_checkpoint_are_found(tiny, tmp_path):
    from recsae.io import DamagedFileError
    from recsae.recommenders.base import load_checkpoint

    model = _copy(tiny, "model", tmp_path)
    raw = bytearray(model.read_bytes())
    raw[-600:-400] = bytes(200)  # inside the last tensor's data, as the issue did
    model.write_bytes(bytes(raw))
    with pytest.raises(DamagedFileError, match="content differs from the SHA-256"):
        load_checkpoint(model)


def test_a_file_without_a_record_that_torch_cannot_read_is_named(tiny, tmp_path):
    from recsae.io import DamagedFileError
    from recsae.sae.model import load_sae

    broken = tmp_path / "sae.pt"
    broken.write_bytes(tiny["sae"].read_bytes()[:300])
    with pytest.raises(DamagedFileError, match=f"{broken} is not a readable SAE checkpoint"):
        load_sae(broken)


def test_a_truncated_table_is_named(tiny, tmp_path):
    from recsae.io import DamagedFileError, read_parquet

    table = tmp_path / "train.parquet"
    table.write_bytes((tiny["split"] / "train.parquet").read_bytes()[:-100])
    with pytest.raises(DamagedFileError, match=f"{table} is not a readable parquet table"):
        read_parquet(table)


def test_the_workflow_start_finds_damaged_results(tiny, tmp_path):
    from recsae.workflow import clear_damaged_results, damaged_results

    results = tmp_path / "results"
    (results / "d/m").mkdir(parents=True)
    _copy(tiny, "model", results / "d/m")
    damaged = _copy(tiny, "sae", results)
    assert damaged_results(results) == {}
    damaged.write_bytes(damaged.read_bytes()[:-10])
    size = damaged.stat().st_size
    assert damaged_results(results) == {
        str(damaged): f"{size} bytes where {size + 10} were written"
    }
    (results / "metrics.json").write_text("{}")
    (results / "d/m/metrics.json").write_text("{}")
    assert clear_damaged_results(results) == [
        f"recsae: {damaged} is damaged ({size} bytes where {size + 10} were written); removed it "
        "and the results beside it (metrics.json, sae.pt), this run rebuilds them"
    ]
    assert sorted(p.name for p in results.iterdir()) == ["d"]  # subfolders are kept
    assert len(list((results / "d/m").iterdir())) == 3 and clear_damaged_results(results) == []


def test_a_truncated_npy_of_an_embeddings_model_fails_validation(tmp_path):
    import numpy as np

    users, items = tmp_path / "users.npy", tmp_path / "items.npy"
    np.save(users, np.ones((6, 4), dtype=np.float32))
    np.save(items, np.ones((5, 4), dtype=np.float32))
    items.write_bytes(items.read_bytes()[:-20])
    config = copy.deepcopy(BASE)
    config["models"]["m"] = {
        "model": "embeddings",
        "params": {"user_path": str(users), "item_path": str(items)},
    }
    with pytest.raises(ConfigError, match=f"item_path file {items} is damaged or truncated"):
        validate_config(config, SCHEMA)


def test_a_full_disk_names_the_file(tmp_path):
    import errno

    from recsae.io import atomic_write

    def full(tmp: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "results" / "sae.pt"
    with pytest.raises(OSError) as err:
        atomic_write(target, full)
    assert str(err.value) == f"[Errno 28] No space left on device: '{target}'"
    assert list(target.parent.iterdir()) == []


def test_a_full_disk_under_torch_save_names_the_file(tmp_path, monkeypatch):
    import torch

    from recsae.io import save_torch

    def full(payload, handle):
        handle.write(b"x")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=rf"No space left on device: '{tmp_path / 'sae.pt'}'"):
        save_torch(tmp_path / "sae.pt", {})


# --- ordinary misuse of the recsae command ------------------------------------------------------


def test_misuse_of_the_command_is_one_line_and_exit_2(tiny, tmp_path):
    config_json = tmp_path / "config.json"
    config_json.write_text("{}")
    cases = [
        (_train_sae_args(tiny)[:3] + ["--data-dir", str(tmp_path / "nowhere")]
         + _train_sae_args(tiny)[5:], f"--data-dir {tmp_path / 'nowhere'}: no such file"),
        (_train_sae_args(tiny, None, "{}", "--device", "gpu"),
         "argument --device: 'gpu' is not auto, cpu, cuda or cuda:N"),
        (_train_sae_args(tiny, None, "{}", "--threads", "-3"),
         "argument --threads: -3 is less than 1"),
        (_train_sae_args(tiny, None, '{"width": "wide"}'), "--settings: sae config key 'width'"),
        (_train_sae_args(tiny, config_json), f"{config_json} is not a readable recommender"),
        (_train_sae_args(tiny, tiny["sae"]), f"{tiny['sae']} is not a recommender checkpoint"),
        (["evaluate-sae", "--model-path", str(tiny["model"]), "--sae-path", str(tiny["model"]),
          "--data-dir", str(tiny["data"]), "--split-dir", str(tiny["split"]), "--metrics-out",
          str(tmp_path / "m.json"), "--interventions-out", str(tmp_path / "i.json"),
          "--device", "cpu"], f"{tiny['model']} is not an SAE checkpoint"),
    ]  # fmt: skip
    for args, expected in cases:
        line = _one_line(_recsae(*args), args[0])
        assert expected in line, line


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    from recsae import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert cli.main(["validate-config", "x.yaml"]) == 130
    assert capsys.readouterr().err == "recsae validate-config: interrupted (Ctrl-C)\n"


def test_ctrl_c_in_a_real_job_leaves_one_line(tiny, tmp_path):
    import os
    import signal

    def default_sigint():
        """The job gets Ctrl-C as a foreground job does, even where this test runs with SIGINT
        ignored (a background CI shell), which a child would otherwise inherit."""
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    settings = '{"expansion": 2, "epochs": 100000}'
    proc = subprocess.Popen([sys.executable, "-m", "recsae.cli", *_train_sae_args(tiny, None,
                             settings)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=default_sigint)  # fmt: skip
    for line in proc.stdout:  # training has started: the first epoch's line
        if "epoch 1/" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert [line for line in err.splitlines() if " INFO " not in line] == [
        "recsae train-sae: interrupted (Ctrl-C)"
    ]


# --- sizes ----------------------------------------------------------------------------------


def test_a_one_user_dataset_stops_at_the_split(tmp_path):
    import pandas as pd
    from data_fixtures import write_canonical

    from recsae.errors import DataError
    from recsae.stages import data

    frame = pd.DataFrame({"user": [0] * 8, "item": range(8), "rating": 1.0, "timestamp": 0})
    write_canonical(tmp_path / "data", frame)
    with pytest.raises(DataError, match="1 user.* need at least 2 users"):
        data.split({"test_n": 1, "valid_n": 0}, data_dir=str(tmp_path / "data"),
                   out_dir=str(tmp_path / "split"), seed=0)  # fmt: skip


def test_the_sae_holdout_of_a_single_user_names_the_setting():
    from recsae.errors import DataError
    from recsae.sae.holdout import split_sae_users

    with pytest.raises(DataError, match="lower sae holdout_fraction"):
        split_sae_users(1, 0.2, seed=0)


def test_a_synthetic_dataset_of_one_user_is_refused_before_any_job():
    config = copy.deepcopy(BASE)
    config["datasets"]["d"]["n_users"] = 1
    config["experiments"] = [{"datasets": ["d"], "models": ["m"]}]
    with pytest.raises(ConfigError, match="datasets.d has 1 user"):
        validate_config(config, SCHEMA)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda c: c["sae"].update(defaults={"expansion": 1e6}),
         r"sweep point default \(width 64000000\) needs at least .* lower the point's expansion"),
        (lambda c: c["models"]["m"].update(params={"dim": 100_000_000}),
         "m on 1000 users and 500 items needs at least .* lower models.m.params.dim"),
    ],
)  # fmt: skip
def test_jobs_larger_than_the_machine_are_refused_before_any_job(edit, named):
    config = copy.deepcopy(BASE)
    config["sae"] = {"targets": [{"datasets": ["d"], "models": ["m"]}]}
    edit(config)
    with pytest.raises(ConfigError, match=named):
        validate_config(config, SCHEMA)


def test_memory_estimates_against_a_given_machine():
    from recsae.errors import UserError
    from recsae.memory import check_fits, recommender_bytes, sae_bytes

    assert recommender_bytes(10, 5, 8) == 4 * 4 * 15 * 8
    assert sae_bytes(8, 16, 2, tied=True) == 4 * (4 * (8 * 16 + 16 + 8) + 3 * 2 * 16)
    check_fits(1000, "job", "x", available=1000)
    with pytest.raises(UserError, match="job needs at least .* lower x"):
        check_fits(1001, "job", "x", available=1000)


# --- sweeps without points ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sweep", "named"),
    [
        ({}, "sae.sweep is empty"),
        ({"grids": {}}, "sae.sweep.grids is empty"),
        ({"grids": []}, "sae.sweep.grids is empty"),
        ({"points": []}, "sae.sweep.points is empty"),
        ({"grid": {}}, "sweep grid is empty"),
        ({"grids": {"a": {}}}, "sweep grid 'a' is empty"),
    ],
)
def test_a_sweep_without_points_is_refused(sweep, named):
    config = copy.deepcopy(BASE)
    config["sae"] = {"targets": [{"datasets": ["d"], "models": ["m"]}], "sweep": sweep}
    with pytest.raises(ConfigError, match=named):
        validate_config(config, SCHEMA)


def test_a_config_without_a_sweep_trains_the_default_point():
    from recsae.workflow import sae_points

    config = copy.deepcopy(BASE)
    config["sae"] = {"targets": [{"datasets": ["d"], "models": ["m"]}]}
    assert list(sae_points(validate_config(config, SCHEMA), "d", "m")) == ["default"]


# --- item names -----------------------------------------------------------------------------


def test_items_without_a_title_are_named_by_their_raw_id():
    import pandas as pd

    from recsae.report.labels import item_names

    items = pd.DataFrame(
        {
            "raw_id": ["B0001", "B0002", None],
            "title": [None, "Lamp", None],
            "year": [pd.NA, 2001, pd.NA],
        }  # fmt: skip
    ).rename_axis("item")
    assert item_names(items) == ["B0001", "Lamp (2001)", "item 2"]
    assert item_names(items.drop(columns=["title", "year"])) == ["B0001", "B0002", "item 2"]


# --- sweep figures for any result -------------------------------------------------------------


def _sweep_rows():
    import numpy as np
    import pandas as pd

    rows = [
        ("beta~0", "relu", 0.0),
        ("beta~1", "relu", 1.0),
        ("variant~topk/k~4/beta~1", "topk", 1.0),
    ]
    return pd.DataFrame({
        "dataset": "d", "model": "m", "point": [r[0] for r in rows],
        "variant": [r[1] for r in rows], "method": "sae", "width": 64,
        "beta": [r[2] for r in rows], "ms_mean": [0.3, 0.4, 0.5],
        "coverage_items": [0.1, 0.2, 0.3], "l0_items": [4.0, 5.0, 4.0],
        "rbo30": [0.5, 0.6, 0.7], "score_recovered": [0.9, 0.8, 0.7],
        "chosen": [True, False, False],
    }).assign(_nan=np.nan)  # fmt: skip


@pytest.mark.parametrize(
    "empty", [("coverage_items",), ("ms_mean", "coverage_items"), ("rbo30",), ("l0_items",),
              ("width",), ("rbo30", "score_recovered", "ms_mean", "coverage_items")],
)  # fmt: skip
def test_sweep_figures_render_with_a_note_for_every_empty_panel(empty, tmp_path):
    """Issue 26 item 4: no item concept scored and a TopK point: the log-scaled width axis had
    no data and matplotlib raised; now such a panel holds a note."""
    from recsae.config import fill_defaults
    from recsae.report.figures import fidelity_sparsity, ms_coverage

    sweep = _sweep_rows()
    for column in empty:
        sweep[column] = sweep["_nan"]
    cfg = fill_defaults("report")
    for draw in (ms_coverage, fidelity_sparsity):
        draw(sweep, cfg, tmp_path / f"{draw.__name__}.png", tmp_path / f"{draw.__name__}.svg")
        assert (tmp_path / f"{draw.__name__}.png").stat().st_size > 0
        assert (tmp_path / f"{draw.__name__}.svg").stat().st_size > 0


def test_an_empty_panel_holds_a_note_naming_the_setting():
    from recsae.report.figures import empty_panel, plt

    sweep = _sweep_rows()
    fig, ax = plt.subplots()
    assert not empty_panel(ax, sweep, "width", "coverage_items") and not ax.texts
    sweep["coverage_items"] = sweep["_nan"]
    assert empty_panel(ax, sweep, "width", "coverage_items")
    (note,) = ax.texts
    assert "no item concept could be scored" in note.get_text()
    assert "metrics.min_concept_count" in note.get_text()
    plt.close(fig)
