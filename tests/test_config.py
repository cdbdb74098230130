"""Config validation: defaults filled in, bad keys named, stage settings checked up front."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recsae import workflow
from recsae.config import ConfigError
from recsae.workflow import load_config, validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"


def demo() -> dict:
    return yaml.safe_load((REPO / "config" / "demo.yaml").read_text())


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml", "scale.yaml", "reviews.yaml"])
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
    assert config["datasets"]["d"]["split"] == {}  # layered: the source's default split between
    assert workflow.split_settings(config, "d")["test_n"] == 5
    assert config["datasets"]["d"]["kcore"] == {"user": 0, "item": 0}
    assert config["sae"]["overrides"] == {"datasets": {}, "models": {}, "pairs": {}}
    # every job's slice arrives complete, nested blocks included ...
    assert config["metrics"]["interventions"]["audience_size"] == 20
    assert config["evaluation"] == {"ks": [10, 20], "batch_size": 1024}
    assert config["report"]["best_point_metric"] == "rbo30"
    # ... except the layered blocks, whose model and preset defaults lie under the config's keys
    assert config["models"]["m"]["train"] == {} and config["sae"]["defaults"] == {}


def test_dataset_sources_are_the_registered_modules():
    config = {"datasets": {"d": {"source": "netflix"}}, "models": {"m": {"model": "mf"}}}
    with pytest.raises(ConfigError, match=r"datasets\.d\.source: 'netflix' is not a dataset"):
        validate_config(config, SCHEMA)


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


def test_split_file_protocol_needs_an_existing_test_file(tmp_path):
    dataset = next(iter(demo()["datasets"]))
    for split, message in (
        ({"protocol": "file"}, rf"datasets\.{dataset}\.split: protocol file needs test_file"),
        (
            {"protocol": "file", "test_file": str(tmp_path / "absent.csv")},
            rf"datasets\.{dataset}\.split\.test_file: .*absent\.csv' is not a file",
        ),
    ):
        config = demo()
        config["datasets"][dataset]["split"] = split
        with pytest.raises(ConfigError, match=message):
            validate_config(config, SCHEMA)
    config, test_file = demo(), tmp_path / "test.csv"
    test_file.write_text("user_id,item_id\n")
    config["datasets"][dataset]["split"] = {"protocol": "file", "test_file": str(test_file)}
    assert workflow.split_test_files(validate_config(config, SCHEMA), dataset) == [str(test_file)]


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
    assert list(points) == [
        "beta~0",
        "beta~5",
        "variant~topk/k~4/beta~1",
        "method~identity",
        "method~pca",
        "method~random",
    ]
    assert workflow.point_settings(config, "synthetic", "mf", "beta~5")["beta"] == 5.0
    assert workflow.point_settings(config, "synthetic", "mf", "method~pca")["method"] == "pca"
    targets = workflow.all_targets(config)
    assert "results/synthetic/mf/metrics.json" in targets
    assert "results/synthetic/ncf/sae/variant~topk/k~4/beta~1/interventions.json" in targets
    assert len(targets) == len(set(targets))


def test_sae_seeds_and_recommender_seeds_expand_the_targets():
    unseeded = workflow.sae_points(validate_config(demo(), SCHEMA), "synthetic", "mf")
    config = demo()
    config["sae"]["seeds"] = [0, 1]
    config["models"]["mf"]["seeds"] = [3, 4]
    config = validate_config(config, SCHEMA)
    assert workflow.model_variants(config, "mf") == ["mf.seed~3", "mf.seed~4"]
    assert workflow.model_variants(config, "ncf") == ["ncf"]
    pairs = [
        ("synthetic", "mf.seed~3"),
        ("synthetic", "mf.seed~4"),
        ("synthetic", "ncf"),
        ("synthetic-seq", "sasrec"),
    ]
    assert workflow.sae_pairs(config) == pairs == workflow.recommender_pairs(config)
    settings = workflow.model_settings(config, "mf.seed~4")
    assert settings["seed"] == 4 and "seeds" not in settings and settings["model"] == "mf"
    assert "seed" not in workflow.model_settings(config, "ncf")
    # the entry's sae.overrides apply to every seed variant
    assert workflow.sae_defaults(config, "synthetic", "mf.seed~3")["lambda_kl"] == 0.1
    points = workflow.sae_points(config, "synthetic", "mf.seed~3")
    assert list(points)[:2] == ["beta~0/seed~0", "beta~0/seed~1"]
    assert len(points) == 2 * len(unseeded)
    assert points["beta~5/seed~1"]["seed"] == 1
    assert workflow.split_model_seed("mf.seed~3") == ("mf", 3)
    assert workflow.split_model_seed("mf-d20") == ("mf-d20", None)
    targets = workflow.all_targets(config)
    assert "results/synthetic/mf.seed~4/sae/beta~5/seed~1/metrics.json" in targets
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
    assert good.returncode == 0 and "valid (2 datasets, 3 models)" in good.stdout


# --- issue 13: model params, path parts, one-line errors ------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "params.dim: 0 is less than the minimum of 1"),
        (-5, "params.dim: -5 is less than the minimum of 1"),
        ("abc", "params.dim: 'abc' is not of type 'integer'"),
        (True, "params.dim: True is not of type 'integer'"),
    ],
)
def test_model_params_are_checked_against_the_model_schema(value, message):
    """Item 10: a model's params are typed and ranged before any job runs."""
    config = demo()
    config["models"]["mf"]["params"]["dim"] = value
    with pytest.raises(ConfigError) as err:
        validate_config(config, SCHEMA, source="demo.yaml")
    assert f"demo.yaml: models.mf: {message}" in str(err.value)


def test_every_model_declares_a_type_for_each_param():
    import recsae.recommenders  # noqa: F401  (registers the models)
    from recsae.recommenders.base import model_class, registered_models

    for name in registered_models():
        cls = model_class(name)
        assert set(cls.param_schema) == set(cls.default_params), name


def test_sae_points_use_the_embedding_files_size(tmp_path):
    """Item 10: an embeddings model's SAE points are checked at the files' size, not 64."""
    import numpy as np

    for name, n in (("users.npy", 3), ("items.npy", 4)):
        np.save(tmp_path / name, np.zeros((n, 8), dtype=np.float32))
    config = demo()
    config["models"]["mf"] = {
        "model": "embeddings",
        "params": {"user_path": str(tmp_path / "users.npy"),
                   "item_path": str(tmp_path / "items.npy")},
    }  # fmt: skip
    config["sae"]["overrides"]["models"]["mf"].update(width=8, expansion=1.0)
    validate_config(copy.deepcopy(config), SCHEMA)
    config["sae"]["overrides"]["models"]["mf"].update(width=16)
    with pytest.raises(ConfigError, match="width 16 and expansion 1.0 disagree"):
        validate_config(config, SCHEMA)


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"source": "amazon2018", "category": "../../../../x/Books"}, "category"),
        ({"source": "yelp", "url": "file:///etc/passwd"}, "url"),
    ],
)
def test_path_and_url_parts_are_checked(entry, key):
    """Item 11: config values that become file names or URL parts must look like names."""
    config = demo()
    config["datasets"]["bad"] = entry
    with pytest.raises(ConfigError, match=rf"datasets\.bad\.{key}: .* does not match"):
        validate_config(config, SCHEMA)


def _recsae(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsae.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_user_errors_print_one_line_and_exit_2(tmp_path):
    """Item 12: YAML syntax errors, missing files and data errors: one line, exit 2."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("datasets:\n  d: {source: synthetic\nmodels: {}\n")
    cases = [
        (("validate-config", str(broken)), f"{broken}, line 3, column 7: not valid YAML"),
        (("validate-config", str(tmp_path / "missing.yaml")), "No such file or directory"),
        (("fetch", "--dataset", "y", "--raw-dir", str(tmp_path / "raw"),
          "--settings", '{"source": "yelp"}'), "y: no yelp_academic_dataset_review.json"),
    ]  # fmt: skip
    for args, expected in cases:
        out = _recsae(*args)
        assert out.returncode == 2, out.stderr
        lines = [line for line in out.stderr.splitlines() if " INFO " not in line]
        assert len(lines) == 1 and lines[0].startswith(f"recsae {args[0]}: error: "), out.stderr
        assert expected in lines[0]
    debug = _recsae("--debug", "validate-config", str(broken))
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_a_cluster_job_width_below_threads_per_job_is_refused():
    from recsae.config import ConfigError
    from recsae.workflow import check_job_width

    check_job_width({"threads_per_job": 2}, cores=1, local=True)  # local runs: Snakemake's own
    check_job_width({"threads_per_job": 1}, cores=1, local=False)
    check_job_width({"threads_per_job": 4}, cores=None, local=False)
    with pytest.raises(ConfigError, match="threads_per_job: 2 is more than the 1 cores"):
        check_job_width({"threads_per_job": 2}, cores=1, local=False)
