"""Run workflows through ``profiles/slurm`` on a real SLURM cluster.

Opt-in: these tests run only with ``RECSAE_TEST_SLURM=1``; without it they are skipped. With it, a
cluster that does not answer is a FAILURE, not a skip, so CI cannot go green on a cluster that
never came up. Bring the one-node cluster up first (as root)::

    profiles/slurm/local_cluster.sh up --install
    RECSAE_TEST_SLURM=1 python -m pytest -m slurm tests/test_slurm.py

Two tests: a two-rule toy workflow (checks the resources each job got) and
``profiles/slurm/demo_sweep.sh``, a small demo sweep of the real workflow.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
OPT_IN = "RECSAE_TEST_SLURM"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Jobs here take seconds: check their state 2 s after submission instead of the profile's 20 s.
FAST_STATUS_CHECKS = (
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
)
# A job is named by its number, a group job (a bundle) by a UUID.
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+)")


def _cluster_problem() -> str | None:
    """Why no SLURM cluster can take jobs here, or None when one can."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "sinfo/sbatch not on PATH (profiles/slurm/local_cluster.sh up --install)"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    if out.returncode != 0:
        return f"sinfo failed: {out.stderr.strip()}"
    states = out.stdout.split()
    if not any(s.rstrip("*~#$@") in {"idle", "mixed", "allocated", "completing"} for s in states):
        return f"no node can run jobs (node states: {states or 'none'})"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(f"SLURM tests are opt-in: set {OPT_IN}=1 (and bring a cluster up)")
    problem = _cluster_problem()
    if problem:
        pytest.fail(f"{OPT_IN}=1 but SLURM is not usable: {problem}")
    # The profile asks for a GPU for the training rules; without gpu GRES sbatch rejects them.
    # local_cluster.sh declares a fake GPU on CPU-only machines, so this only trips elsewhere.
    gres = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True).stdout
    if "gpu" not in gres:
        pytest.fail("the cluster has no gpu GRES; the profile's `gpu: 1` rules cannot run")


def run_on_slurm(cmd: list[str], workdir: Path, check: bool = True) -> tuple[str, dict[str, int]]:
    """Run ``cmd`` (a snakemake call through profiles/slurm, or a script making one) in
    ``workdir``; fail with the tails of the SLURM job logs on error.

    Returns the output (stdout and stderr merged) and the map from Snakemake job id (a group
    job's UUID for a bundle) to the SLURM job id it was submitted as, read from the plugin's log.
    """
    proc = subprocess.run(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200
    )
    if check and proc.returncode != 0:
        logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
        tails = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in logs[-5:])
        pytest.fail(f"exit {proc.returncode}\n$ {' '.join(cmd)}\n{proc.stdout[-8000:]}\n{tails}")
    submitted = {job: int(slurm) for job, slurm in SUBMITTED.findall(proc.stdout)}
    return proc.stdout, submitted


# A workflow named like the real heavy rules, so the profile's set-resources and its bundling of
# train_sae and evaluate_sae apply. Each job writes the SLURM job id it ran under and SLURM's own
# record of that job; a point whose fail-<point> file exists fails its training.
TOY_SNAKEFILE = """\
rule all:
    input: expand("out/{{point}}/evaluate_sae.txt", point={points})

rule train_recommender:
    output: "out/model.txt"
    threads: {threads}
    shell: "echo job=$SLURM_JOB_ID > {{output}}; scontrol show job $SLURM_JOB_ID >> {{output}}"

rule train_sae:
    input: "out/model.txt"
    output: "out/{{point}}/train_sae.txt"
    threads: 1
    shell:
        "if [ -e fail-{{wildcards.point}} ]; then exit 1; fi; "
        "echo job=$SLURM_JOB_ID > {{output}}; scontrol show job $SLURM_JOB_ID >> {{output}}"

rule evaluate_sae:
    input: "out/{{point}}/train_sae.txt"
    output: "out/{{point}}/evaluate_sae.txt"
    threads: 1
    resources: gpu=0
    shell: "echo job=$SLURM_JOB_ID > {{output}}; scontrol show job $SLURM_JOB_ID >> {{output}}"
"""


def _job_record(path: Path) -> tuple[int, dict[str, str]]:
    """The SLURM job id and the `scontrol show job` fields a toy job wrote."""
    text = path.read_text()
    first, _, rest = text.partition("\n")
    assert first.startswith("job=") and first[4:].strip().isdigit(), (
        f"{path} was not written inside a SLURM job (no SLURM_JOB_ID): {first!r}"
    )
    fields = dict(re.findall(r"(\w[\w/:]*)=(\S*)", rest))
    return int(first[4:]), fields


def _toy(tmp_path: Path, points: list[str], threads: int = 1) -> list[str]:
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(TOY_SNAKEFILE.format(threads=threads, points=points))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile)]
    return cmd + ["--workflow-profile", str(PROFILE), *FAST_STATUS_CHECKS]


def _time_limit(minutes: int) -> str:
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:00"


def _gpu_requested(fields: dict[str, str]) -> bool:
    return "gres/gpu" in fields.get("TRES", "") or "gpu" in fields.get("TresPerJob", "")


def test_profile_submits_jobs_through_sbatch_and_bundles_sae_points(slurm_cluster, tmp_path):
    threads = min(2, os.cpu_count() or 1)
    stdout, submitted = run_on_slurm(_toy(tmp_path, ["a", "b"], threads), tmp_path)

    # the recommender alone, the two points' four SAE jobs as one bundle (the local `all` rule
    # is not submitted)
    assert len(submitted) == 2, stdout[-4000:]
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    wanted = profile["set-resources"]
    model_job, fields = _job_record(tmp_path / "out" / "model.txt")
    assert fields["JobState"] in {"RUNNING", "COMPLETING"}
    # the profile's per-rule resources reached sbatch
    assert fields["MinMemoryNode"] == f"{wanted['train_recommender']['mem_mb']}M", fields
    assert fields["TimeLimit"] == _time_limit(wanted["train_recommender"]["runtime"]), fields
    # cpus_per_task: the rule's threads, capped at the profile's `cores` (the recsae workflow
    # refuses a threads_per_job above it: workflow.check_job_width)
    assert fields["NumCPUs"] == str(min(threads, profile["cores"])), fields
    assert fields["Partition"] == _default_partition(), fields  # none named: the default
    assert _gpu_requested(fields)

    bundle = {
        _job_record(tmp_path / "out" / point / f"{rule}.txt")[0]
        for point in ("a", "b")
        for rule in ("train_sae", "evaluate_sae")
    }
    assert len(bundle) == 1, bundle  # one SLURM job ran all four
    _, fields = _job_record(tmp_path / "out" / "a" / "train_sae.txt")
    # the bundle runs its jobs one after another (`cores: 1`): it asks for one job's CPU and
    # memory and the four runtimes in series, no GPU
    assert profile["cores"] == 1
    assert fields["MinMemoryNode"] == f"{wanted['train_sae']['mem_mb']}M", fields
    assert fields["NumCPUs"] == "1", fields
    assert not _gpu_requested(fields)
    series = 2 * (wanted["train_sae"]["runtime"] + wanted["evaluate_sae"]["runtime"])
    assert fields["TimeLimit"] == _time_limit(series), fields
    assert {model_job, *bundle} == set(submitted.values())


def test_a_failed_point_in_a_bundle_loses_only_its_own_outputs(slurm_cluster, tmp_path):
    """The bundle stops at the failed point; what it finished before is kept, and the rerun
    redoes only what is missing (each file holds the SLURM job id that wrote it)."""
    (tmp_path / "fail-b").write_text("")
    stdout, _ = run_on_slurm(_toy(tmp_path, ["a", "b", "c"]), tmp_path, check=False)
    assert "Error in rule train_sae" in stdout, stdout[-4000:]
    assert not (tmp_path / "out/b/train_sae.txt").exists()
    kept = {
        path: path.read_text()
        for point in ("a", "c")
        for path in (tmp_path / "out" / point).glob("*.txt")
    }

    (tmp_path / "fail-b").unlink()
    stdout, _ = run_on_slurm(_toy(tmp_path, ["a", "b", "c"]), tmp_path)
    for point in ("a", "b", "c"):
        assert (tmp_path / "out" / point / "evaluate_sae.txt").is_file(), stdout[-4000:]
    for path, text in kept.items():  # what the failed bundle finished was not redone
        assert path.read_text() == text, path


def _default_partition() -> str:
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout
    return next(p.rstrip("*") for p in out.split() if p.endswith("*"))


DEMO_SCRIPT = PROFILE / "demo_sweep.sh"


def test_demo_sweep_on_slurm(slurm_cluster, tmp_path):
    """profiles/slurm/demo_sweep.sh: a small demo sweep of the real workflow (MF, beta 0 and 5),
    every job through sbatch."""
    stdout, submitted = run_on_slurm(
        ["bash", str(DEMO_SCRIPT), str(tmp_path), *FAST_STATUS_CHECKS], tmp_path
    )
    for beta in (0, 5):
        target = tmp_path / f"results/synthetic/mf/sae/beta~{beta}/metrics.json"
        assert target.is_file(), stdout[-4000:]
    # fetch, prepare, split, train_recommender, probe_ceiling, then one bundle of train_sae +
    # evaluate_sae for the two points
    assert len(submitted) == 5 + 1, stdout[-4000:]
    assert len(set(submitted.values())) == len(submitted)
