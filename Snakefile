"""recsae: sparse autoencoders on recommender embeddings, from raw data to the HTML report.

Plain `snakemake` runs config/config.yaml (the full reproduction) with profiles/default;
`snakemake --configfile config/demo.yaml` runs the offline demo. Every computation lives in the
`recsae` package; each rule hands paths and one validated slice of the config to the `recsae` CLI.
"""

import os
import sys
from pathlib import Path

from snakemake.utils import min_version

from recsae import paths
from recsae import workflow as wf
from recsae.kernels import kernel_environment
from recsae.worker import stop_workers, warm_worker_environment, worker_log_dir

min_version("9.0")


# The default config; a `--configfile` on the command line replaces it instead of merging into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



wf.validate_config(config, Path(workflow.basedir) / "config" / "schema.yaml")
wf.check_raw_data(config)
wf.check_job_width(config, workflow.global_resources["_cores"].value, workflow.local_exec)
# A checkpoint that no longer matches the checksum written with it is removed with the results
# beside it, so that this run rebuilds them.
if workflow.is_main_process:
    for line in wf.clear_damaged_results():
        print(line, file=sys.stderr)

# Every job starts with the CPU kernels that `cpu_kernels` names (recsae.kernels; docs/method.md).
os.environ.update(kernel_environment(config["cpu_kernels"]))
# Jobs run in children of one warm worker that imported the suite once (recsae.worker); not on a
# cluster, where every job step gets its own environment and its processes end with it.
if (
    config["warm_worker"]
    and workflow.local_exec
    and "SLURM_JOB_ID" not in os.environ
    and hasattr(os, "fork")
):
    os.environ.update(warm_worker_environment(paths.LOGS))

LOGS = paths.LOGS
BENCH = paths.BENCHMARKS


wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    model=r"[A-Za-z0-9][A-Za-z0-9_.-]*(?:\.seed~[0-9]+)?",
    sae=wf.SAE_WILDCARD_REGEX,


rule all:
    input:
        wf.all_targets(config),


# The run exits when its last job ends, not a `max-jobs-per-timespan` window later.
onsuccess:
    wf.stop_replanning_timers()
    stop_workers(worker_log_dir(paths.LOGS))


onerror:
    wf.stop_replanning_timers()
    stop_workers(worker_log_dir(paths.LOGS))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/recommenders.smk"
include: "workflow/rules/sae.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"


for extra_rules in config["extra_rules"]:

    include: extra_rules
