"""Report stage: tables, figures, neuron cards and the Snakemake HTML report.

The result tree is made by the real stages (``recsae`` CLI, in process) on a tiny synthetic
dataset, so the JSON files have exactly the structure of a real run. The last test runs the
report rules (workflow/rules/report.smk) with Snakemake on that tree, builds the HTML report and,
where a ``chromium`` binary exists, renders it headless and checks every figure displays.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_check import (
    PNG_MAGIC,
    check_report_outputs,
    chromium_binary,
    decode_data_uri,
    render_report,
    report_results,
)

from recsae import workflow as wf
from recsae.cli import main as cli
from recsae.config import fill_defaults
from recsae.paths import RESULTS
from recsae.report.collect import (
    best_mask,
    beta_points,
    mark_rules,
    over_seeds,
    pareto_mask,
    point_setting,
    setting_frame,
)
from recsae.report.tables import build_tables, mean_std_cells
from recsae.stages.report import render
from recsae.workflow import report_settings, report_targets, validate_config

REPORT_DEFAULTS = fill_defaults("report")

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "seed": 0,
    "device": "cpu",
    "gpus_per_job": 0,
    "threads_per_job": 1,
    "datasets": {
        "tiny": {
            "source": "synthetic",
            "n_users": 120,
            "n_items": 60,
            "interactions_per_user": 12,
            "n_clusters": 3,
            "n_eras": 2,
            "n_popularity_levels": 2,
            "split": {"protocol": "random_holdout", "test_n": 2, "valid_n": 1},
        }
    },
    "models": {
        "mf": {"model": "mf", "params": {"dim": 8}, "train": {"epochs": 2}},
        "ncf": {"model": "ncf", "params": {"dim": 8}, "train": {"epochs": 1}},
    },
    "experiments": [{"datasets": ["tiny"], "models": ["mf", "ncf"]}],
    "sae": {
        "targets": [{"datasets": ["tiny"], "models": ["mf", "ncf"]}],
        "defaults": {"expansion": 2, "epochs": 2, "batch_size": 64},
        "sweep": {
            "grids": {
                "beta": {"beta": [0, 5]},
                "topk": {"variant": ["topk"], "k": [2], "beta": [1]},
            }
        },
    },
    "metrics": {"interventions": {"n_concepts": 1, "audience_size": 5, "promotion_targets": 1}},
    "report": {"neuron_cards": 2},
}


def _run(*args) -> None:
    assert cli([str(a) for a in args]) == 0


def _json(value) -> str:
    import json

    return json.dumps(value, sort_keys=True)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """(workdir, config): results/ of the tiny config made by the real stages, as the rules do."""
    work = tmp_path_factory.mktemp("report")
    config = validate_config(copy.deepcopy(TINY), REPO / "config" / "schema.yaml")
    res = work / RESULTS
    for dataset, entry in config["datasets"].items():
        raw, data, split = (
            work / "resources/raw" / dataset,
            res / dataset / "data",
            res / dataset / "split",
        )
        settings = {k: v for k, v in entry.items() if k != "split"}
        _run("fetch", "--dataset", dataset, "--settings", _json(settings), "--raw-dir", raw)
        _run(
            "prepare",
            "--dataset",
            dataset,
            "--settings",
            _json(settings),
            "--raw-dir",
            raw,
            "--out-dir",
            data,
        )
        _run("split", "--data-dir", data, "--settings", _json(entry["split"]), "--out-dir", split)
    for dataset, model in wf.recommender_pairs(config):
        data, split, out = res / dataset / "data", res / dataset / "split", res / dataset / model
        _run(
            "train-recommender",
            "--data-dir",
            data,
            "--split-dir",
            split,
            "--settings",
            _json(wf.model_settings(config, model)),
            "--device",
            "cpu",
            "--out-dir",
            out,
        )
        _run(
            "evaluate-recommender",
            "--data-dir",
            data,
            "--split-dir",
            split,
            "--model-path",
            out / "model.pt",
            "--settings",
            _json(config["evaluation"]),
            "--device",
            "cpu",
            "--out",
            out / "metrics.json",
        )
    for dataset, model in wf.sae_pairs(config):
        data, split, pair = res / dataset / "data", res / dataset / "split", res / dataset / model
        for path, settings in wf.sae_points(config, dataset, model).items():
            out = pair / "sae" / path
            _run(
                "train-sae",
                "--model-path",
                pair / "model.pt",
                "--data-dir",
                data,
                "--split-dir",
                split,
                "--settings",
                _json(settings),
                "--point-id",
                f"{dataset}/{model}/{path}",
                "--device",
                "cpu",
                "--out-dir",
                out,
            )
            _run(
                "evaluate-sae",
                "--model-path",
                pair / "model.pt",
                "--sae-path",
                out / "sae.pt",
                "--data-dir",
                data,
                "--split-dir",
                split,
                "--settings",
                _json(config["metrics"]),
                "--device",
                "cpu",
                "--metrics-out",
                out / "metrics.json",
                "--interventions-out",
                out / "interventions.json",
            )
    return work, config


def build_report(work: Path, config: dict) -> None:
    """Every report part through the CLI, as the rules call it."""
    res = work / RESULTS
    settings = _json(report_settings(config))
    for part, out in (
        ("tables", res / "tables"),
        ("sweep-figures", res / "figures"),
        ("explorer-index", res / "explorer"),
    ):
        _run(
            "report", "--part", part, "--results-dir", res, "--out-dir", out, "--settings", settings
        )
    for dataset, model in wf.sae_pairs(config):
        figures = res / "figures" / dataset / model
        for part, out in (
            ("interventions", figures),
            ("neuron-cards", figures),
            ("explorer", res / "explorer" / dataset),
        ):
            _run(
                "report",
                "--part",
                part,
                "--results-dir",
                res,
                "--out-dir",
                out,
                "--dataset",
                dataset,
                "--model",
                model,
                "--settings",
                settings,
                "--device",
                "cpu",
            )


@pytest.fixture(scope="module")
def report(tree):
    work, config = tree
    build_report(work, config)
    return work, config


def test_tables_have_one_row_per_expected_point(report):
    work, config = report
    frames = check_report_outputs(work / RESULTS, config)
    points = report_settings(config)["sae_points"]
    sweep = frames["sweep"]
    assert len(sweep) == len(points) == 6
    assert {
        "beta",
        "variant",
        "width",
        "k",
        "rbo30",
        "l0_items",
        "train_l0_items",
        "train_dead_fraction",
        "best",
        "chosen",
        "pareto",
    } <= set(sweep.columns)
    assert sweep.loc[sweep.point == "variant~topk/k~2/beta~1", "k"].tolist() == [2, 2]
    assert sweep.loc[sweep.point == "beta~5", "k"].isna().all()  # k means nothing to ReLU
    recs = frames["recommenders"]
    assert recs.model.tolist() == ["mf", "ncf", "MostPop"]
    assert {"hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "mrr@20"} <= set(recs.columns)
    beta = frames["beta"]
    assert sorted(zip(beta.model, beta.beta, strict=True)) == [
        ("mf", 0),
        ("mf", 5),
        ("ncf", 0),
        ("ncf", 5),
    ]
    assert {"rbo30", "kendall_tau", "ms_mean", "coverage_items"} <= set(beta.columns)
    best = frames["best_points"]
    assert sorted(zip(best.model, best.variant, strict=True)) == [
        ("mf", "relu"),
        ("mf", "topk"),
        ("ncf", "relu"),
        ("ncf", "topk"),
    ]
    inter = frames["interventions"]
    assert set(inter.point) == {p for _, _, p in points}
    assert set(inter.experiment) <= {"filtering", "nudging", "promotion"}
    assert not inter.duplicated(
        ["dataset", "model", "point", "concept", "experiment", "level"]
    ).any()
    md = (work / "results/tables/best_points.md").read_text()
    assert "maximum of the mean `rbo30`" in md and md.count("\n| tiny") == 4
    planted = frames["planted"]
    assert len(planted) == 4 * len(points)  # three planted families + "all" per point
    assert set(planted.family) == {"planted_cluster", "planted_era", "planted_popularity", "all"}
    overall = planted[planted.family == "all"].set_index("point")
    by_point = sweep.set_index("point")
    for model, group in overall.groupby("model"):
        rows = by_point[by_point.model == model]
        assert group.auroc.to_dict() == pytest.approx(rows.planted_auroc.to_dict())
        assert group.precision_at_r.to_dict() == pytest.approx(rows.planted_precision_r.to_dict())
    assert (planted.n_concepts[planted.family == "all"] == 3 + 2 + 2).all()


def test_best_point_matches_the_rule(report):
    work, config = report
    sweep = pd.read_csv(work / "results/tables/sweep.csv")
    for (_, _), group in sweep.groupby(["dataset", "model"]):
        chosen = group[group.chosen]
        assert len(chosen) == 1
        assert chosen.rbo30.iloc[0] == group.rbo30.max()
        for _, variant in group.groupby("variant"):
            assert variant[variant.best].rbo30.iloc[0] == variant.rbo30.max()


def test_rerun_gives_identical_tables(report):
    work, config = report
    tables = work / "results/tables"
    before = {p.name: p.read_bytes() for p in sorted(tables.iterdir())}
    build_tables(work / "results", {**report_settings(config)}, tables)
    build_tables(work / "results", {**report_settings(config)}, tables)
    after = {p.name: p.read_bytes() for p in sorted(tables.iterdir())}
    assert before == after
    check_report_outputs(work / "results", config)


def test_figures_are_nonempty_png_and_svg(report):
    work, config = report
    figures = [t for t in report_targets(config) if "/figures/" in t]
    assert len(figures) == 4 + 2 * 2 * 2
    for target in figures:
        data = (work / target).read_bytes()
        if target.endswith(".png"):
            assert data.startswith(PNG_MAGIC) and len(data) > 10_000, target
        else:
            assert b"<svg" in data[:2000] and len(data) > 10_000, target


def test_neuron_cards_show_titles_of_top_items(report):
    work, _ = report
    svg = (work / "results/figures/tiny/mf/neuron_cards.svg").read_text()
    assert "neuron cards of SAE" in svg and "item " in svg  # synthetic titles are "item N"
    assert "AUROC" in svg and "popularity" in svg


def test_best_mask_ties_missing_and_goal():
    frame = pd.DataFrame(
        {
            "dataset": "d",
            "model": "m",
            "variant": ["relu", "relu", "relu", "topk", "topk"],
            "point": ["b", "a", "c", "x", "y"],
            "rbo30": [0.5, 0.5, np.nan, np.nan, 0.1],
            "l0_items": [3.0, 3.0, 1.0, 1.0, 9.0],
        }
    )
    best = best_mask(frame, ["dataset", "model", "variant"], "rbo30")
    assert frame.point[best].tolist() == ["a", "y"]  # tie -> same l0 -> path "a"; NaN never wins
    frame.loc[0, "l0_items"] = 2.0
    assert frame.point[best_mask(frame, ["variant"], "rbo30")].tolist() == ["b", "y"]
    assert frame.point[best_mask(frame, ["dataset"], "rbo30", "min")].tolist() == ["y"]


def test_over_seeds_and_point_setting():
    assert point_setting("expansion~4/beta~1/seed~2") == ("expansion~4/beta~1", 2)
    assert point_setting("beta~5") == ("beta~5", None)
    assert point_setting("seed~0") == ("default", 0)
    frame = pd.DataFrame(
        {
            "dataset": "d",
            "setting": ["beta~0", "beta~0", "beta~0", "beta~5"],
            "k": [None, None, None, None],
            "seed": [0, 1, 2, 0],
            "path": ["beta~0/seed~0", "beta~0/seed~1", "beta~0/seed~2", "beta~5/seed~0"],
            "rbo30": [0.2, 0.4, 0.9, 0.7],
        }
    )
    out = over_seeds(frame, ["rbo30"])
    assert list(out["setting"]) == ["beta~0", "beta~5"] and list(out["n_seeds"]) == [3, 1]
    assert out["rbo30"].tolist() == pytest.approx([0.5, 0.7])
    assert out["rbo30_std"].iloc[0] == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1))
    assert np.isnan(out["rbo30_std"].iloc[1])


def test_pareto_mask():
    frame = pd.DataFrame(
        {
            "dataset": "d",
            "model": ["m"] * 6 + ["n"],
            "point": list("abcdefg"),
            "rbo30": [0.9, 0.8, 0.7, 0.95, 0.7, np.nan, 0.1],
            "l0_items": [10.0, 4.0, 4.0, 20.0, 2.0, 1.0, 50.0],
        }
    )
    mask = pareto_mask(frame, "rbo30", "l0_items", ["dataset", "model"])
    # c is dominated by b (same L0, lower fidelity); f misses a value; g is alone in its group
    assert frame.point[mask].tolist() == ["a", "b", "d", "e", "g"]
    twins = pd.DataFrame({"rbo30": [0.5, 0.5], "l0_items": [3.0, 3.0]})
    assert pareto_mask(twins, "rbo30", "l0_items").all()  # equal points do not dominate


def test_beta_points_and_unknown_metric():
    frame = pd.DataFrame(
        {
            "dataset": "d",
            "model": "m",
            "variant": "relu",
            "point": ["beta~10", "beta~0", "variant~topk/beta~1", "expansion~4/beta~0", "default"],
            "beta": [10.0, 0.0, 1.0, 0.0, 0.0],
            "rbo30": 0.5,
            "l0_items": 3.0,
        }
    )
    assert beta_points(frame).point.tolist() == ["beta~0", "beta~10"]
    with pytest.raises(ValueError, match="not a sweep column"):
        mark_rules(frame, {**REPORT_DEFAULTS, "best_point_metric": "nope"})


def test_over_seeds_means_stds_and_counts():
    frame = pd.DataFrame(
        {
            "dataset": "d",
            "model": ["m", "m", "m", "m", "n"],
            "point": [
                "beta~1/seed~0",
                "beta~1/seed~1",
                "beta~1/seed~2",
                "beta~5/seed~0",
                "default",
            ],
            "seed": [0, 1, 2, 0, 0],
            "rbo30": [0.5, 0.7, 0.9, 0.4, 0.3],
            "l0_items": [3.0, np.nan, 5.0, 2.0, 1.0],
        }
    )
    out = over_seeds(frame, ["rbo30", "l0_items"])
    assert out.point.tolist() == ["beta~1", "beta~5", "default"] and "seed" not in out
    assert out.n_seeds.tolist() == [3, 1, 1]
    assert out.rbo30.tolist() == pytest.approx([0.7, 0.4, 0.3])
    assert out.rbo30_std[0] == pytest.approx(np.std([0.5, 0.7, 0.9], ddof=1))
    assert out.rbo30_std[1:].isna().all()  # one seed: no spread
    assert out.l0_items[0] == 4.0 and out.l0_items_std[0] == pytest.approx(np.sqrt(2))
    assert list(out.columns) == [
        "dataset",
        "model",
        "point",
        "rbo30",
        "rbo30_std",
        "l0_items",
        "l0_items_std",
        "n_seeds",
    ]
    cells = mean_std_cells(out)
    assert cells.rbo30.tolist() == ["0.7 ± 0.2", "0.4", "0.3"] and "rbo30_std" not in cells
    with pytest.raises(ValueError, match="nope"):
        over_seeds(frame, ["nope"])


def test_best_point_rule_uses_the_mean_over_seeds():
    """Setting a has the best single run (0.95) but the lower mean (0.5 < 0.6): b wins."""
    frame = pd.DataFrame(
        {
            "dataset": "d",
            "model": "m",
            "variant": "relu",
            "point": ["a/seed~0", "a/seed~1", "b/seed~0", "b/seed~1"],
            "seed": [0, 1, 0, 1],
            "beta": [1.0, 1.0, 2.0, 2.0],
            "rbo30": [0.95, 0.05, 0.6, 0.6],
            "l0_items": [3.0, 3.0, 3.0, 3.0],
        }
    )
    frame["point"] = frame.point.str.replace("a/", "beta~1/").str.replace("b/", "beta~2/")
    marked = mark_rules(frame, REPORT_DEFAULTS)
    assert marked.chosen.tolist() == [False, False, True, False]  # b's first seed carries it
    assert marked.best.tolist() == [False, False, True, False]
    assert marked.pareto.tolist() == [False, False, True, False]
    settings = setting_frame(marked)
    assert settings.point.tolist() == ["beta~1", "beta~2"]
    assert settings.chosen.tolist() == [False, True] and settings.n_seeds.tolist() == [2, 2]
    assert settings.rbo30.tolist() == pytest.approx([0.5, 0.6])
    assert beta_points(marked).point.tolist() == list(frame.point)


def test_recommender_seed_variant_trains_with_its_seed(tree, tmp_path):
    """A seed variant's settings seed overrides --seed: equal bytes to a run with --seed N."""
    work, config = tree
    res = work / RESULTS / "tiny"
    entry = wf.model_settings(config, "mf")

    def train(name, settings, seed):
        out = tmp_path / name
        _run(
            "train-recommender",
            "--data-dir",
            res / "data",
            "--split-dir",
            res / "split",
            "--settings",
            _json(settings),
            "--seed",
            seed,
            "--device",
            "cpu",
            "--out-dir",
            out,
        )
        return (out / "model.pt").read_bytes()

    variant = train("variant", {**entry, "seed": 4}, 0)
    assert variant == train("plain", entry, 4)
    assert variant != train("other", {**entry, "seed": 5}, 0)


def test_report_targets_follow_the_config():
    config = validate_config(copy.deepcopy(TINY), REPO / "config" / "schema.yaml")
    targets = report_targets(config)
    assert len(targets) == len(set(targets))
    assert "results/tables/sweep.csv" in targets
    assert "results/figures/tiny/ncf/neuron_cards.svg" in targets
    no_sae = copy.deepcopy(TINY)
    no_sae["sae"]["targets"] = []
    no_sae = validate_config(no_sae, REPO / "config" / "schema.yaml")
    assert not [t for t in report_targets(no_sae) if "/figures/" in t]
    assert report_settings(no_sae)["sae_points"] == []


def test_empty_sweep_still_writes_tables(tree, tmp_path):
    work, config = tree
    settings = {**report_settings(config), "sae_points": []}
    render(settings, part="tables", results_dir=work / "results", out_dir=tmp_path / "tables")
    assert len(pd.read_csv(tmp_path / "tables/recommenders.csv")) == 3
    assert "(no rows)" in (tmp_path / "tables/beta.md").read_text()
    assert "(no rows)" in (tmp_path / "tables/planted.md").read_text()


SNAKEFILE = """
from recsae import paths
from recsae import workflow as wf

configfile: "config.yaml"
wf.validate_config(config, {schema!r})
LOGS = paths.LOGS
BENCH = paths.BENCHMARKS

wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*",

rule all:
    input: wf.report_targets(config)

include: {common!r}
include: {report!r}
"""


@pytest.mark.slow
def test_snakemake_report_rules_and_html(report):
    """The report rules on the tiny tree (upstream files are plain inputs), then
    ``snakemake --report``; rendered in headless Chromium when one is installed."""
    import yaml

    work, _ = report
    small = copy.deepcopy(TINY)  # one SAE pair keeps the run short
    small["sae"]["targets"] = [{"datasets": ["tiny"], "models": ["mf"]}]
    config = validate_config(copy.deepcopy(small), REPO / "config" / "schema.yaml")
    for target in report_targets(config):  # the rules must make them again
        (work / target).unlink()
    (work / "config.yaml").write_text(yaml.safe_dump(small))
    (work / "Snakefile").write_text(
        SNAKEFILE.format(
            schema=str(REPO / "config/schema.yaml"),
            common=str(REPO / "workflow/rules/common.smk"),
            report=str(REPO / "workflow/rules/report.smk"),
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    base = [sys.executable, "-m", "snakemake", "-s", str(work / "Snakefile"), "-d", str(work)]
    for extra in (["--cores", "2"], ["--report", "report.html"]):
        out = subprocess.run(base + extra, capture_output=True, text=True, env=env, timeout=300)
        logs = "".join(p.read_text() for p in (work / "results/logs").rglob("*.log"))
        assert out.returncode == 0, out.stderr[-4000:] + logs[-3000:]
    check_report_outputs(work / "results", config)

    results = report_results(work / "report.html")
    figures = [t for t in report_targets(config) if "/figures/" in t]
    assert set(figures) <= set(results)
    assert all(results[f"results/tables/{t}.html"]["caption"] for t in ("beta", "pareto"))
    assert decode_data_uri(results[figures[0]]["data_uri"]).startswith(PNG_MAGIC)

    if chromium_binary() is None:
        pytest.skip("chromium not installed (apt-get install -y chromium): render check skipped")
    rendered = render_report(work / "report.html")
    assert rendered["error"] is None and rendered["app_children"] > 0
    assert set(rendered["images"]) == set(figures)
    assert all(w > 100 and h > 100 for w, h in rendered["images"].values()), rendered


def explorer_data(page: Path) -> dict:
    """The JSON embedded in an explorer page."""
    import json

    text = page.read_text(encoding="utf-8")
    start = text.index('<script type="application/json" id="explorer-data">')
    start = text.index(">", start) + 1
    return json.loads(text[start : text.index("</script>", start)].replace("<\\/", "</"))


@pytest.fixture(scope="module")
def explorer(report):
    """(workdir, config, pages): the explorer pages of the tiny tree, in a folder of their own
    (the Snakemake test rebuilds results/ for a smaller config)."""
    work, config = report
    pages, settings = work / "explorer-pages", report_settings(config)
    render(settings, part="explorer-index", results_dir=work / RESULTS, out_dir=pages)
    for dataset, model in wf.sae_pairs(config):
        render(
            settings,
            part="explorer",
            results_dir=work / RESULTS,
            out_dir=pages / dataset,
            dataset=dataset,
            model=model,
        )
    return work, config, pages


def test_explorer_lists_every_neuron_of_every_point(explorer):
    """Page data against an independent computation from the SAE checkpoints: one entry per
    sweep point, one row per neuron, top items by activation, the neurons of each item, the
    best-AUROC neuron of each concept (scikit-learn) and the neurons intervened on."""
    import torch
    from sklearn.metrics import roc_auc_score

    from recsae.recommenders.base import load_checkpoint
    from recsae.sae.model import load_sae

    work, config, pages = explorer
    res = work / RESULTS
    index = (pages / "index.html").read_text()
    for dataset, model in wf.sae_pairs(config):
        assert f'href="{dataset}/{model}.html"' in index
        data = explorer_data(pages / dataset / f"{model}.html")
        paths = list(wf.sae_points(config, dataset, model))
        assert [p["path"] for p in data["points"]] == paths
        k = config["metrics"]["agreement_k"]  # the summary line: L0 and dead share lower is better
        assert [(m["key"], m["goal"]) for m in data["metrics"]] == [
            ("l0_items", "min"),
            (f"rbo{k}", "max"),
            ("ms_mean", "max"),
            ("coverage_items", "max"),
            ("dead_fraction", "min"),
        ]
        assert data["metrics"][1]["title"] == f"RBO@{k} vs original top-{k}"
        recommender = load_checkpoint(res / dataset / model / "model.pt", "cpu")
        items = recommender.item_embeddings().detach()
        concepts = pd.read_parquet(res / dataset / "data/concepts.parquet").query(
            "entity == 'item'"
        )
        for point in data["points"]:
            sae = load_sae(res / dataset / model / "sae" / point["path"] / "sae.pt", "cpu")
            with torch.no_grad():
                z = sae.encode(items).numpy()  # (N, H)
            assert point["width"] == z.shape[1] == len(point["neurons"]["auroc"])
            metrics = json.loads(
                (res / dataset / model / "sae" / point["path"] / "metrics.json").read_text()
            )
            per_neuron = metrics["alignment"]["items"]["per_neuron"]
            assert point["neurons"]["label"] == [
                None if c is None else f"{f}={c}"
                for f, c in zip(per_neuron["label_family"], per_neuron["label"], strict=True)
            ]
            for j in range(z.shape[1]):
                order = np.argsort(-z[:, j], kind="stable")
                expected = [int(i) for i in order[:20] if z[i, j] > 0]
                assert point["topItems"][j] == expected
            assert [n for n, _ in point["itemNeurons"][0]] == [
                int(n) for n in np.argsort(-z[0], kind="stable")[:5] if z[0, n] > 0
            ]
            name = data["itemConcepts"]["name"][0]
            family, _, value = name.partition("=")
            members = concepts[(concepts.family == family) & (concepts.concept == value)].id
            label = np.isin(np.arange(len(z)), members)
            aurocs = [roc_auc_score(label, z[:, j]) for j in range(z.shape[1])]
            best, best_auroc, _ = point["conceptNeurons"][0][0]
            assert best_auroc == pytest.approx(max(aurocs), abs=1e-3)
            assert aurocs[best] == pytest.approx(max(aurocs), abs=1e-3)
            inter = res / dataset / model / "sae" / point["path"] / "interventions.json"
            expected = [e["neuron"] for e in json.loads(inter.read_text())["concepts"]]
            assert [e["neuron"] for e in point["interventions"]] == expected


def chrome(tmp_path):
    """A headless Chromium driven by selenium, or a skip naming what is missing."""
    import shutil

    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium_binary(), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip(
            "chromium or chromium-driver not installed "
            "(apt-get install -y chromium chromium-driver): browser test skipped"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_explorer_in_a_browser(explorer, tmp_path):
    """Open the page headless, click a neuron, search an item title, switch the sweep point,
    compare a concept across points; the page shows the expected rows and logs no error."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = explorer[2] / "tiny" / "mf.html"
    data = explorer_data(page)
    driver = chrome(tmp_path)
    try:
        driver.get(page.as_uri())
        first = data["points"][0]
        alive = [j for j, dead in enumerate(first["neurons"]["dead"]) if not dead]
        rows = driver.find_elements(By.CSS_SELECTOR, "#neuron-table tbody tr")
        assert len(rows) == len(alive)
        assert driver.find_element(By.ID, "row-count").text == (
            f"{len(alive)} of {first['width']} neurons"
        )
        neuron = int(rows[0].get_attribute("data-neuron"))
        rows[0].click()
        view = driver.find_element(By.ID, "neuron-view")
        assert view.find_element(By.TAG_NAME, "h2").text.startswith(f"Neuron {neuron}")
        shown = [li.text for li in view.find_elements(By.CSS_SELECTOR, "ol.top-items li")]
        titles = [data["items"]["title"][i] for i in first["topItems"][neuron]]
        assert [s.rsplit(" [", 1)[0] for s in shown] == titles

        driver.find_element(By.CSS_SELECTOR, '.tab[data-tab="search"]').click()
        driver.find_element(By.ID, "item-search").send_keys("item 1")
        hits = driver.find_elements(By.CSS_SELECTOR, "#item-results li")
        expected = [t for t in data["items"]["title"] if "item 1" in t]
        assert [h.text.rsplit(" (id", 1)[0] for h in hits] == expected
        hits[0].click()
        fired = driver.find_elements(By.CSS_SELECTOR, "#item-neuron-table tbody tr")
        item = data["items"]["title"].index(expected[0])
        assert [int(r.get_attribute("data-neuron")) for r in fired] == [
            n for n, _ in first["itemNeurons"][item]
        ]

        driver.find_element(By.CSS_SELECTOR, '.tab[data-tab="neurons"]').click()
        driver.find_element(By.ID, "hide-dead").click()  # show every neuron
        last = data["points"][-1]
        Select(driver.find_element(By.ID, "point-select")).select_by_visible_text(last["path"])
        rows = driver.find_elements(By.CSS_SELECTOR, "#neuron-table tbody tr")
        assert len(rows) == last["width"]
        assert driver.find_element(By.ID, "row-count").text == (
            f"{last['width']} of {last['width']} neurons"
        )

        driver.find_element(By.CSS_SELECTOR, '.tab[data-tab="compare"]').click()
        groups = driver.find_elements(By.CSS_SELECTOR, "#compare tr.group")
        assert len(groups) == len({p["setting"] for p in data["points"]})
        assert len(driver.find_elements(By.CSS_SELECTOR, "#compare tbody tr")) == (
            len(groups) + len(data["points"])
        )
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
