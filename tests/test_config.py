"""Config validation: defaults filled in, bad keys named, stage settings checked up front."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recsae import workflow
from recsae.config import ConfigError, load_config, validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"


def demo() -> dict:
    return yaml.safe_load((REPO / "config" / "demo.yaml").read_text())


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml", "scale.yaml"])
def test_shipped_configs_are_valid(name):
    config = load_config(REPO / "config" / name, SCHEMA)
    assert config["experiments"] and config["sae"]["targets"]


def test_defaults_are_filled_in():
    config = validate_config(
        {"datasets": {"d": {"source": "synthetic"}}, "models": {"m": {"model": "mf"}}}, SCHEMA
    )
    assert config["seed"] == 0
    assert config["mirror"] is None
    assert (config["device"], config["gpus_per_job"], config["threads_per_job"]) == ("auto", 0, 1)
    assert config["datasets"]["d"]["split"]["test_n"] == 5
    assert config["datasets"]["d"]["kcore"] == {"user": 0, "item": 0}
    assert config["sae"]["overrides"] == {"datasets": {}, "models": {}, "pairs": {}}


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda c: c.update(unknown_key=1), "unknown_key"),
        (lambda c: c["datasets"]["synthetic"].update(n_users="many"), "datasets.synthetic.n_users"),
        (
            lambda c: c["datasets"]["synthetic"]["split"].update(protocol="kfold"),
            "datasets.synthetic.split.protocol",
        ),
        (
            lambda c: c["sae"]["sweep"]["grids"]["beta"].update(beta=["x"]),
            "sweep point beta~x: sae config key 'beta'",
        ),
        (lambda c: c["sae"]["defaults"].update(widht=3), "widht"),
        (lambda c: c["metrics"].update(ms_topk=3), "ms_topk"),
        (lambda c: c.update(device="tpu"), "device: 'tpu' does not match"),
    ],
)
def test_schema_errors_name_the_key(edit, named):
    config = demo()
    edit(config)
    with pytest.raises(ConfigError, match=None) as err:
        validate_config(config, SCHEMA, source="demo.yaml")
    assert named in str(err.value)
    assert "demo.yaml" in str(err.value)


def test_reference_to_unknown_dataset_is_named():
    config = demo()
    config["experiments"][0]["datasets"].append("ml-7m")
    with pytest.raises(ConfigError, match=r"experiments\[0\]\.datasets names 'ml-7m'"):
        validate_config(config, SCHEMA)


def test_model_params_are_checked_by_the_model():
    config = demo()
    config["models"]["mf"]["params"]["dimension"] = 8
    with pytest.raises(ConfigError, match=r"models\.mf.*dimension"):
        validate_config(config, SCHEMA)


def test_bad_sweep_point_is_named_before_any_job():
    config = demo()
    config["sae"]["sweep"]["grids"]["topk"]["k"] = [1000]
    with pytest.raises(ConfigError, match=r"sweep point variant~topk/k~1000/beta~1.*'k'"):
        validate_config(config, SCHEMA)


def test_sae_settings_merge_in_order():
    config = validate_config(demo(), SCHEMA)
    config["sae"]["overrides"]["pairs"]["synthetic/ncf"] = {"alpha": 3.0}
    mf = workflow.sae_defaults(config, "synthetic", "mf")
    ncf = workflow.sae_defaults(config, "synthetic", "ncf")
    assert mf["alpha"] == 1.0 and mf["expansion"] == 2
    assert ncf["alpha"] == 3.0 and ncf["lambda_kl"] == 0.07


def test_targets_follow_the_config():
    config = validate_config(demo(), SCHEMA)
    points = workflow.sae_points(config, "synthetic", "mf")
    assert list(points) == ["beta~0", "beta~5", "variant~topk/k~4/beta~1"]
    assert workflow.sae_point(config, "synthetic", "mf", "beta~5")["beta"] == 5.0
    targets = workflow.all_targets(config)
    assert "results/synthetic/mf/metrics.json" in targets
    assert "results/synthetic/ncf/sae/variant~topk/k~4/beta~1/interventions.json" in targets
    assert len(targets) == len(set(targets))


def test_validation_does_not_change_a_valid_full_config_twice():
    config = validate_config(demo(), SCHEMA)
    again = validate_config(copy.deepcopy(config), SCHEMA)
    assert again == config


def test_validate_config_command_names_the_key_without_a_traceback(tmp_path):
    config = demo()
    config["sae"]["sweep"]["grids"]["topk"]["k"] = [1000]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    out = subprocess.run(
        [sys.executable, "-m", "recsae.cli", "validate-config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "sweep point variant~topk/k~1000/beta~1" in out.stderr and "'k'" in out.stderr
    assert "Traceback" not in out.stderr
    good = subprocess.run(
        [sys.executable, "-m", "recsae.cli", "validate-config", str(REPO / "config/demo.yaml")],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0 and "valid (1 datasets, 2 models)" in good.stdout
