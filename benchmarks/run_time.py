"""Wall and CPU time of a workflow run, whole and per stage, from the Snakemake `benchmark:` files.

    python benchmarks/run_time.py results/benchmarks

Every job writes one benchmark file (`s`: its wall seconds, `cpu_time`: CPU seconds of its
processes) when it ends, so the file's modification time is the job's end and `mtime - s` its
start. Snakemake samples `cpu_time` (every second for a job's first 30 s, then every 30 s) and
so misses the end of every job; every `recsae` stage therefore ends its log with the kernel's
count up to that point (`process CPU 12.31 s (...), peak RSS 0.521 GiB`, results/logs/ mirrors
results/benchmarks/; it misses only the interpreter's shutdown, under a second). This script
takes the larger of the two CPU figures and the log's peak memory, and the benchmark file alone
for jobs without that line (older runs). Prints:

* the machine this script runs on (CPU model, cores, memory, load average now): run it on the
  machine and soon after the run it describes;
* the whole run: jobs, elapsed wall time from the first job's start to the last job's end, summed
  job wall and CPU seconds, mean jobs running at once, and the CPU share of a job-second (CPU
  seconds / wall seconds; 1.0 per thread when every job had its cores, lower when other
  processes on the machine competed for them);
* per stage (fetch, prepare, split, train/evaluate recommender, probe ceiling (once per
  recommender), train/evaluate SAE, report):
  jobs, wall and CPU seconds summed, the stage's share of all CPU seconds and the largest
  resident memory of one of its jobs (``max_rss``, GiB);
* per (dataset, model): the SAE sweep points and their summed train and evaluate seconds.

Jobs forked by a warm worker (recsae.worker, the ``warm_worker`` setting) log only their own CPU;
the worker's imports are counted once, as the stage "warm worker", from its log in
``logs/workers/`` (its line ends the same way). The summary's job count leaves the workers out.

Copy a results folder with `cp -p` (or rsync -t) to keep the times this script reads.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
from pathlib import Path

import pandas as pd

STAGES = {
    ("fetch",): "fetch data",
    ("prepare",): "prepare data",
    ("split",): "split data",
    ("recommender", "train"): "train recommender",
    ("recommender", "evaluate"): "evaluate recommender",
    ("recommender", "probe_ceiling"): "probe ceiling",
    ("sae", "train"): "train SAE",
    ("sae", "evaluate"): "evaluate SAE",
}


WORKER = "warm worker"
USAGE_LINE = re.compile(r"process CPU ([0-9.]+) s .*peak RSS ([0-9.]+) GiB")


def logged_usage(log: Path) -> tuple[float, float] | None:
    """(CPU seconds, peak RSS GiB) of the last ``process CPU`` line of a job log, or None."""
    if not log.is_file():
        return None
    found = USAGE_LINE.findall(log.read_text(encoding="utf-8", errors="replace"))
    return (float(found[-1][0]), float(found[-1][1])) if found else None


def job_times(bench_dir: Path, log_dir: Path | None = None) -> pd.DataFrame:
    """One row per benchmark file: stage, dataset, model, point, wall and CPU seconds, peak
    resident memory (GiB), where the CPU figure comes from ("log" or "benchmark"), start and end
    (POSIX seconds). ``log_dir``: the run's logs (default: ``logs`` beside ``bench_dir``)."""
    log_dir = bench_dir.parent / "logs" if log_dir is None else log_dir
    rows = []
    for path in sorted(bench_dir.rglob("*.tsv")):
        parts = path.relative_to(bench_dir).parts
        row = pd.read_csv(path, sep="\t").iloc[0]
        dataset = model = point = None
        if parts[0] == "report":
            stage = "report"
        elif len(parts) == 2:
            stage, dataset = STAGES[(path.stem,)], parts[0]
        elif len(parts) == 3:
            stage, (dataset, model) = STAGES[("recommender", path.stem)], parts[:2]
        else:
            stage, (dataset, model) = STAGES[("sae", path.stem)], parts[:2]
            point = "/".join(parts[3:-1])
        end = path.stat().st_mtime
        cpu = pd.to_numeric(row["cpu_time"], errors="coerce")
        rss = pd.to_numeric(row["max_rss"], errors="coerce") / 1024
        logged = logged_usage(log_dir / Path(*parts).with_suffix(".log"))
        if logged:  # both are lower bounds: the log line misses the interpreter's shutdown
            cpu, rss = max(logged[0], cpu if pd.notna(cpu) else 0.0), logged[1]
        rows.append(
            {
                "stage": stage,
                "dataset": dataset,
                "model": model,
                "point": point,
                "wall_s": float(row["s"]),
                "cpu_s": float(cpu),
                "max_rss_gib": float(rss),
                "cpu_from": "log" if logged else "benchmark",
                "start": end - float(row["s"]),
                "end": end,
            }
        )
    if not rows:
        raise SystemExit(f"no benchmark files under {bench_dir} (run the workflow first)")
    rows += worker_rows(log_dir / "workers")
    return pd.DataFrame(rows)


def worker_rows(worker_logs: Path) -> list[dict]:
    """One row per warm worker (recsae.worker) that ran the jobs: the CPU of its own imports and
    forks (its jobs' CPU is in their own logs), no wall time of its own."""
    rows = []
    for log in sorted(worker_logs.glob("worker-*.log")):
        logged = logged_usage(log)
        if logged is None:
            continue
        end = log.stat().st_mtime
        rows.append(
            {
                "stage": WORKER,
                "dataset": None,
                "model": None,
                "point": None,
                "wall_s": 0.0,
                "cpu_s": logged[0],
                "max_rss_gib": logged[1],
                "cpu_from": "log",
                "start": end,
                "end": end,
            }
        )
    return rows


def machine() -> str:
    """CPU model, logical cores, memory and the load average of the machine running this."""
    model = platform.processor() or platform.machine()
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        model = names[0] if names else model
    memory = ""
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kib / 2**20:.0f} GiB memory"
    load = ", load average now {:.1f} / {:.1f} / {:.1f} (1/5/15 min)".format(*os.getloadavg())
    return f"{model}, {os.cpu_count()} logical cores{memory}{load}"


def summary(times: pd.DataFrame) -> str:
    workers = int((times["stage"] == WORKER).sum())
    times = times[times["stage"] != WORKER]
    elapsed = times["end"].max() - times["start"].min()
    wall, cpu = times["wall_s"].sum(), times["cpu_s"].sum()
    return (
        f"{len(times)} jobs; elapsed {elapsed / 60:.1f} min of wall time "
        f"(first job start to last job end); job wall {wall / 60:.1f} min summed, "
        f"CPU {cpu / 60:.1f} min summed; {wall / elapsed:.2f} jobs running at once on average; "
        f"CPU share per job-second {cpu / wall:.2f}; {(times['cpu_from'] == 'log').sum()} jobs "
        "with a process CPU line in their log, the rest from the sampled benchmark files alone "
        f"(a lower bound); {workers} warm workers"
    )


def per_stage(times: pd.DataFrame) -> pd.DataFrame:
    order = [WORKER, *STAGES.values(), "report"]
    stage = pd.Categorical(times["stage"], categories=order, ordered=True)
    table = times.groupby(stage, observed=True).agg(
        jobs=("wall_s", "size"),
        wall_s=("wall_s", "sum"),
        cpu_s=("cpu_s", "sum"),
        max_rss_gib=("max_rss_gib", "max"),
    )
    table.insert(3, "cpu_share", table["cpu_s"] / table["cpu_s"].sum())
    table.loc["all"] = [
        int((times["stage"] != WORKER).sum()),  # jobs; a worker's CPU counts, it is no job
        times["wall_s"].sum(),
        times["cpu_s"].sum(),
        1.0,
        times["max_rss_gib"].max(),
    ]
    return table


def per_sweep(times: pd.DataFrame) -> pd.DataFrame:
    sae = times[times["point"].notna()]
    table = sae.pivot_table(
        index=["dataset", "model"], columns="stage", values="wall_s", aggfunc="sum"
    )
    table.insert(0, "points", sae.groupby(["dataset", "model"])["point"].nunique())
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench_dir", type=Path, help="results/benchmarks of a finished run")
    args = parser.parse_args()
    times = job_times(args.bench_dir)
    print(f"machine: {machine()}")
    print(f"run: {summary(times)}\n")
    print(per_stage(times).round(2).to_string())
    if times["point"].notna().any():
        print("\nSAE sweeps, job wall seconds summed:")
        print(per_sweep(times).round(1).to_string())


if __name__ == "__main__":
    main()
