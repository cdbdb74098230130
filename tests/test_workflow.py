"""End-to-end: `snakemake` on config/demo.yaml in a scratch folder; a dataset added as a rule."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from report_check import check_report_outputs

from recsae import workflow
from recsae.workflow import load_config

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]

pytestmark = pytest.mark.slow


def run_snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        *SNAKEMAKE,
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        "2",
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}"
            for p in sorted(workdir.glob("results/logs/**/*.log"))
        )
        pytest.fail(f"snakemake failed ({out.returncode}):\n{out.stderr[-6000:]}\n{logs}")
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, dict]:
    workdir = tmp_path_factory.mktemp("demo")
    run_snakemake(workdir, REPO / "config" / "demo.yaml")
    return workdir, load_config(REPO / "config" / "demo.yaml", REPO / "config" / "schema.yaml")


def test_demo_produces_every_target(demo_run):
    workdir, config = demo_run
    targets = workflow.all_targets(config)
    missing = [t for t in targets if not (workdir / t).is_file()]
    assert not missing


def test_demo_recommenders_beat_mostpop(demo_run):
    workdir, config = demo_run
    for dataset, model in workflow.recommender_pairs(config):
        metrics = json.loads((workdir / f"results/{dataset}/{model}/metrics.json").read_text())
        assert metrics["test"]["ndcg@10"] > metrics["baselines"]["mostpop"]["test"]["ndcg@10"], (
            model
        )
        assert metrics["seed"] == config["seed"]
        kernels = metrics["kernels"]
        assert kernels["cpu_kernels"] == "portable" and kernels["mkl_cbwr"] == "COMPATIBLE"
        assert kernels["torch_threads"] == config["threads_per_job"]


def test_demo_sae_metrics_are_complete(demo_run):
    workdir, config = demo_run
    for sae_dir in workflow.sae_dirs(config):
        summary = json.loads((workdir / sae_dir / "metrics.json").read_text())["summary"]
        for key in (
            "ms_mean",
            "coverage_items",
            "rbo30",
            "kendall_tau",
            "l0_items",
            "planted_auroc",
            "planted_precision_r",
        ):
            assert summary[key] is not None, (sae_dir, key)
        log = json.loads((workdir / sae_dir / "train_log.json").read_text())
        assert log["history"], sae_dir


def test_prediction_aware_sae_recovers_planted_concepts(demo_run):
    """On the planted-concept data, the prediction-aware MF SAE's neurons find the planted concepts
    better than the ``random`` method (a seeded random orthonormal basis split into positive and
    negative halves: 64 latents, as many as the SAE's), and beta > 0 raises ranking fidelity.

    precision@R: the share of a concept among the best neuron's R strongest items (R = concept
    size). The demo measured 0.84 vs 0.70 over all planted concepts and 0.95 vs 0.78 on the
    clusters, whose AUROC error (1 - AUROC) is 0.004 vs 0.037; mean AUROC 0.91 vs 0.87.
    """
    workdir, _ = demo_run
    sae = workdir / "results/synthetic/mf/sae"
    metrics = json.loads((sae / "beta~5/metrics.json").read_text())
    aware = metrics["summary"]
    baseline = json.loads((sae / "beta~0/metrics.json").read_text())["summary"]
    chance_metrics = json.loads((sae / "method~random/metrics.json").read_text())
    chance = chance_metrics["summary"]
    assert aware["planted_precision_r"] >= chance["planted_precision_r"] + 0.1
    assert aware["planted_auroc"] >= chance["planted_auroc"] + 0.02
    clusters = metrics["planted"]["items"]["by_family"]["planted_cluster"]
    chance_clusters = chance_metrics["planted"]["items"]["by_family"]["planted_cluster"]
    assert clusters["precision_at_r_mean"] >= 0.85
    assert clusters["precision_at_r_mean"] >= chance_clusters["precision_at_r_mean"] + 0.12
    assert 1 - clusters["auroc_mean"] <= (1 - chance_clusters["auroc_mean"]) / 4
    assert aware["rbo30"] > baseline["rbo30"]
    assert aware["score_recovered"] > baseline["score_recovered"]


def test_demo_sasrec_pair_keeps_rankings_and_steers_by_concept(demo_run):
    """The demo's SASRec on the time split: the prediction-aware SAE (beta 5) keeps SASRec's
    rankings better than reconstruction alone (beta 0); nudging a neuron through the SAE (encode
    the last hidden state, raise the latent, decode, score) raises its concept's share in the
    next-item lists with the nudge, and a planted cluster's share at least triples at the largest
    nudge; the pair has its explorer page."""
    workdir, _ = demo_run
    sae = workdir / "results/synthetic-seq/sasrec/sae"
    aware = json.loads((sae / "beta~5/metrics.json").read_text())["summary"]
    baseline = json.loads((sae / "beta~0/metrics.json").read_text())["summary"]
    assert aware["rbo30"] > baseline["rbo30"]
    assert aware["score_recovered"] > baseline["score_recovered"]
    interventions = pd.read_csv(workdir / "results/tables/interventions.csv")
    nudges = interventions[
        (interventions["dataset"] == "synthetic-seq")
        & (interventions["experiment"] == "nudging")
        & ~interventions["point"].str.startswith("method~")
    ]
    assert set(nudges["point"]) == {"beta~0", "beta~5", "variant~topk/k~4/beta~1"}
    for (point, concept), rows in nudges.groupby(["point", "concept"]):
        shares = rows.sort_values("level")["share"].to_numpy()
        assert (shares[1:] >= shares[:-1]).all(), (point, concept, shares)
    clusters = nudges[nudges["family"] == "planted_cluster"]
    strongest = clusters.loc[clusters.groupby("point")["level"].idxmax()]
    assert len(strongest) >= 2
    assert (strongest["share"] >= 3 * strongest["share_original"]).all(), strongest
    assert (workdir / "results/explorer/synthetic-seq/sasrec.html").is_file()


def test_demo_baselines_are_exact_and_in_the_methods_table(demo_run):
    """The invertible baselines reconstruct exactly (the recommender's rankings are kept), and the
    methods table has one row per sweep point of each model."""
    workdir, config = demo_run
    for model in ("mf", "ncf"):
        for method in ("identity", "pca", "random"):
            summary = json.loads(
                (
                    workdir / f"results/synthetic/{model}/sae/method~{method}/metrics.json"
                ).read_text()
            )["summary"]
            assert summary["fvu_items"] == pytest.approx(0.0, abs=1e-6), (model, method)
            assert summary["overlap@30"] >= 0.99, (model, method)
            assert summary["probe_ceiling_items"] is not None
    methods = pd.read_csv(workdir / "results/tables/methods.csv")
    assert len(methods) == len(workflow.sae_dirs(config))
    assert set(methods["method"]) == {"sae", "identity", "pca", "random"}


def test_demo_report_outputs(demo_run):
    """Every table has one row per expected point and every figure is a non-empty image."""
    workdir, config = demo_run
    tables = check_report_outputs(workdir / "results", config)
    assert len(tables["sweep"]) == len(workflow.sae_dirs(config))
    planted = tables["planted"]
    assert len(planted) == 4 * len(workflow.sae_dirs(config))  # 3 planted families + "all"


def test_every_job_log_ends_with_the_jobs_cpu_and_memory(demo_run):
    """Each job's log carries its kernel-counted CPU seconds, which agree with Snakemake's
    sampled benchmark file up to the interpreter's shutdown after the line (the sample misses a
    job's end, the line the shutdown), and benchmarks/run_time.py uses every job's line."""
    workdir, _ = demo_run
    results = workdir / "results"
    benchmarks = sorted((results / "benchmarks").rglob("*.tsv"))
    for bench in benchmarks:
        log = (results / "logs" / bench.relative_to(results / "benchmarks")).with_suffix(".log")
        found = re.findall(r"process CPU ([0-9.]+) s .*peak RSS ([0-9.]+) GiB", log.read_text())
        assert found, f"{log} has no process CPU line"
        row = pd.read_csv(bench, sep="\t").iloc[0]
        logged, sampled = float(found[-1][0]), pd.to_numeric(row["cpu_time"], errors="coerce")
        sampled = 0.0 if pd.isna(sampled) else float(sampled)  # NA: a job shorter than a sample
        # the interpreter's shutdown after the line took up to 1.4 s here
        assert sampled - 3.0 <= logged <= 2 * float(row["s"]) + 1.0, (log, found[-1], sampled)
        assert 0.05 < float(found[-1][1]) < 16
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_time.py"), str(results / "benchmarks")],
        capture_output=True,
        text=True,
        check=True,
    )
    n = len(benchmarks)
    assert f"run: {n} jobs;" in out.stdout
    assert f"{n} jobs with a process CPU line in their log" in out.stdout


def test_demo_jobs_ran_in_one_warm_worker_that_stopped_with_the_run(demo_run):
    """Every job was forked from one warm worker per environment (the rules that ask for the
    same threads share one), which the workflow stopped when it ended; its log has its CPU."""
    workdir, _ = demo_run
    workers = workdir / "results" / "logs" / "workers"
    deadline = time.monotonic() + 30
    while list(workers.glob("worker-*.socket")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(workers.glob("worker-*.socket"))  # every worker has ended
    served = [
        int(re.search(r"served (\d+) jobs; process CPU", log.read_text()).group(1))
        for log in workers.glob("worker-*.log")
    ]
    jobs = len(list((workdir / "results" / "benchmarks").rglob("*.tsv")))
    assert served and sum(served) == jobs


def test_demo_rerun_has_nothing_to_do(demo_run):
    """A rerun of the same config reruns nothing, and neither does pointing at another mirror."""
    workdir, _ = demo_run
    out = run_snakemake(workdir, REPO / "config" / "demo.yaml", "--dry-run")
    assert "Nothing to be done" in out.stdout + out.stderr
    out = run_snakemake(
        workdir, REPO / "config" / "demo.yaml", "--dry-run", "--config", f"mirror={workdir}"
    )
    assert "Nothing to be done" in out.stdout + out.stderr


def test_dataset_added_as_a_rule(tmp_path):
    """The example rule writes a CSV dataset's canonical tables; the split step accepts them."""
    rows = [
        (u, i, 1 + (u + i) % 5, 1000 + u * 10 + i, "odd" if i % 2 else "even")
        for u in range(12)
        for i in range(u % 4, 20, 2)
    ]
    csv = tmp_path / "events.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp", "genre"]).to_csv(
        csv, index=False
    )
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    config["datasets"] = {
        "my-csv": {"source": "custom", "path": str(csv), "split": {"test_n": 2, "valid_n": 1}}
    }
    config["extra_rules"] = [str(REPO / "workflow/rules/examples/csv_dataset.smk")]
    config["experiments"] = [{"datasets": ["my-csv"], "models": ["mf"]}]
    config["sae"]["targets"] = []
    configfile = tmp_path / "custom.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, configfile, "results/my-csv/split/stats.json")
    stats = json.loads((tmp_path / "results/my-csv/data/stats.json").read_text())
    assert stats["n_users"] == 12 and stats["n_items"] == 20
    test = pd.read_parquet(tmp_path / "results/my-csv/split/test.parquet")
    assert (test.groupby("user").size() == 2).all()
    concepts = pd.read_parquet(tmp_path / "results/my-csv/data/concepts.parquet")
    assert set(concepts["concept"]) == {"odd", "even"}


def test_network_settings_rerun_nothing_and_edited_raw_files_stop_the_start(tmp_path):
    """Issue 13 items 14 and 4: changing a download setting re-runs nothing; a raw file edited
    after a successful run stops the next run before any job, naming the file."""
    sys.path.insert(0, str(REPO / "tests"))
    from data_fixtures import ml100k_files, write_files

    raw = write_files(tmp_path / "resources/raw/ml", ml100k_files())
    config = {
        "datasets": {
            "ml": {
                "source": "movielens",
                "variant": "ml-100k",
                "split": {"test_n": 1, "valid_n": 0},
                "download": {"retries": 2},
            }
        },
        "models": {"mf": {"model": "mf"}},
    }
    configfile = tmp_path / "data.yaml"
    configfile.write_text(yaml.safe_dump(config))
    target = "results/ml/split/stats.json"
    run_snakemake(tmp_path, configfile, target)
    config["datasets"]["ml"]["download"] = {"retries": 9, "deadline": 60}
    configfile.write_text(yaml.safe_dump(config))
    out = run_snakemake(tmp_path, configfile, target, "--dry-run")
    assert "Nothing to be done" in out.stdout + out.stderr
    (raw / "u.data").write_bytes(ml100k_files()["u.data"].replace(b"\t5\t", b"\t1\t"))
    cmd = [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(configfile), "-n", target]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "ml/u.data: sha256" in out.stdout + out.stderr
    assert "changed since it was fetched" in out.stdout + out.stderr
