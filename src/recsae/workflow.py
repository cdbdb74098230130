"""What a validated config asks the workflow to build: the (dataset, model) pairs, the SAE sweep
points of each pair, and the target paths. The Snakefile and the rules only call these.

Seeds. A model entry with ``seeds: [0, 1, 2]`` stands for one recommender per seed, named
``<name>.seed~N`` (the {model} wildcard and results folder) and trained with seed N (initialisation,
negatives, batches; the data and split keep the config's ``seed``); every place that names the
entry (experiments, sae.targets) gets all of them, and ``sae.overrides`` keyed by the entry's name
apply to each. ``sae.seeds`` repeats every SAE sweep point once per seed (``recsae.sweep``).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from recsae import paths
from recsae.config import (
    SCHEMA_PATH,
    ConfigError,
    read_config,
    resolve_metrics_config,
    validate_schema,
)
from recsae.data.split import MIN_ITEMS, MIN_USERS
from recsae.errors import UserError
from recsae.io import read_json
from recsae.memory import check_fits, recommender_bytes, sae_bytes
from recsae.sae.config import SAE_DEFAULTS, SAEPoint
from recsae.sae.presets import apply_presets
from recsae.sweep import SAE_WILDCARD_REGEX, point_from_path, seeded_points, sweep_points

MODEL_SEED = ".seed~"


def model_variants(config: dict, name: str) -> list[str]:
    """The recommenders a model entry stands for: ``<name>.seed~N`` per seed of its ``seeds``, or
    the name itself."""
    seeds = config["models"][name].get("seeds") or []
    return [f"{name}{MODEL_SEED}{seed}" for seed in seeds] or [name]


def split_model_seed(model: str) -> tuple[str, int | None]:
    """(entry name, seed) of a recommender name; seed None for an entry without seeds."""
    name, sep, seed = model.partition(MODEL_SEED)
    return (name, int(seed)) if sep else (model, None)


def _pairs(config: dict, groups: list[dict]) -> list[tuple[str, str]]:
    """Distinct (dataset, recommender) pairs of a list of {datasets: [...], models: [...]}, in
    order, each model entry expanded to its seed variants."""
    out: list[tuple[str, str]] = []
    for group in groups:
        for dataset in group["datasets"]:
            for name in group["models"]:
                for model in model_variants(config, name):
                    if (dataset, model) not in out:
                        out.append((dataset, model))
    return out


def recommender_pairs(config: dict) -> list[tuple[str, str]]:
    """(dataset, model) pairs whose recommender is trained and evaluated."""
    return _pairs(config, config["experiments"] + config["sae"]["targets"])


def sae_pairs(config: dict) -> list[tuple[str, str]]:
    """(dataset, model) pairs that get an SAE sweep."""
    return _pairs(config, config["sae"]["targets"])


def sae_defaults(config: dict, dataset: str, model: str) -> dict:
    """Full SAE settings before the sweep: package defaults < sae.defaults < per-dataset < per-model
    < per-pair ("dataset/model"); a layer that names a ``preset`` lays down the preset's settings
    for the model's family just below its own keys (``recsae.sae.presets``)."""
    overrides = config["sae"]["overrides"]
    name = split_model_seed(model)[0]
    layers = [
        SAE_DEFAULTS,
        config["sae"]["defaults"],
        overrides["datasets"].get(dataset, {}),
        overrides["models"].get(name, {}),
        overrides["pairs"].get(f"{dataset}/{name}", {}),
    ]
    family = None
    if any(layer.get("preset") is not None for layer in layers):
        family = model_family(config, model)
    return apply_presets(layers, family)


def model_family(config: dict, model: str) -> str:
    """The ``scorer_kind`` ("dot" or "pairwise") of the recommender that config model ``model``
    (an entry name or its ``.seed~N`` variant) names: the family that selects an SAE preset."""
    import recsae.recommenders  # noqa: F401  (registers the models)
    from recsae.recommenders.base import model_class

    return model_class(config["models"][split_model_seed(model)[0]]["model"]).scorer_kind


def sae_points(config: dict, dataset: str, model: str) -> dict[str, dict]:
    """{sweep path: the point's settings} of one (dataset, model) pair (``point_settings`` of
    each); with ``sae.seeds`` every point once per seed (path ``.../seed~N``)."""
    points = sweep_points(config["sae"]["sweep"], sae_defaults(config, dataset, model))
    return seeded_points(points, config["sae"].get("seeds"))


def point_settings(config: dict, dataset: str, model: str, path: str) -> dict:
    """The settings of the sweep point that one sweep path names: every SAE key, before the
    training job resolves them for the recommender's embedding size into its ``SAEPoint``
    (``recsae.sae.config``; this dict is the JSON of its ``--settings``)."""
    return point_from_path(path, sae_defaults(config, dataset, model))


def dataset_settings(config: dict, dataset: str) -> dict:
    """A dataset's entry without its ``split`` block (so a split change re-runs only the split)
    and without its network settings (``download_settings``: they never change the data)."""
    return {k: v for k, v in config["datasets"][dataset].items() if k not in ("split", "download")}


def download_settings(config: dict, dataset: str) -> dict:
    """A dataset's network settings (retries, timeouts, deadline, extraction caps): a resource
    of the fetch job, not a param, so that changing them re-runs nothing."""
    return config["datasets"][dataset].get("download", {})


def check_raw_data(config: dict) -> None:
    """Before any job runs: fail naming a fetched raw file that changed since it was fetched
    (``recsae.data.fetch.check_raw_unchanged``; a stat per file, a hash only if that differs)."""
    from recsae.data.fetch import check_raw_unchanged

    for dataset in fetchable_datasets(config):
        check_raw_unchanged(Path(paths.raw_dir(dataset)))


def stop_replanning_timers() -> None:
    """Cancel Snakemake's pending re-planning timers, so that a run exits when its last job ends.

    With ``max-jobs-per-timespan`` (profiles/default: 1000/1m, which keeps the scheduler's CPU
    low) every scheduling pass starts a ``threading.Timer`` that wakes the scheduler one timespan
    later; the interpreter waits for the last one before it exits, a minute after the run. The
    Snakefile's ``onsuccess`` and ``onerror`` call this once the scheduler has stopped."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


def damaged_results(results: str | Path = paths.RESULTS) -> dict[str, str]:
    """{path: what is wrong} of every result file under ``results`` with a checksum record
    (``recsae.io.atomic_write(checksum=True)``: checkpoints and embedding arrays) that no longer
    matches it. A file whose size and modification time match its record is not hashed."""
    from recsae.io import CHECKSUM_SUFFIX, damage

    out = {}
    for record in sorted(Path(results).glob(f"**/*{CHECKSUM_SUFFIX}")):
        path = record.with_name(record.name.removesuffix(CHECKSUM_SUFFIX))
        problem = damage(path, quick=True)
        if problem:
            out[str(path)] = problem
    return out


def clear_damaged_results(results: str | Path = paths.RESULTS) -> list[str]:
    """Before any job: remove every damaged result file (``damaged_results``) with the files
    beside it, which the same jobs computed from it (a recommender's or an SAE point's folder,
    its subfolders kept), so that the run rebuilds them: each folder holds a target of ``rule
    all`` (``metrics.json``), and Snakemake would not rerun a job whose missing output is only an
    intermediate file. Jobs computed from the rebuilt checkpoint (an SAE of a retrained
    recommender, the tables) then see a newer input and rerun. One line per damaged file."""
    lines = []
    for path, problem in damaged_results(results).items():
        folder = Path(path).parent
        removed = sorted(p.name for p in folder.iterdir() if p.is_file())
        for name in removed:
            (folder / name).unlink()
        lines.append(
            f"recsae: {path} is damaged ({problem}); removed it and the results beside it "
            f"({', '.join(n for n in removed if not n.endswith('.sha256'))}), this run rebuilds "
            "them"
        )
    return lines


def split_settings(config: dict, dataset: str) -> dict:
    """A dataset's full split settings: its ``split`` block over its source's default split
    over the schema's defaults."""
    from recsae.data.split import resolve_split_settings

    entry = config["datasets"][dataset]
    return resolve_split_settings(entry["split"], entry["source"])


def split_test_files(config: dict, dataset: str) -> list[str]:
    """The files a dataset's split reads besides the canonical tables: its ``test_file`` under
    ``protocol: file``, else none."""
    settings = split_settings(config, dataset)
    return [settings["test_file"]] if settings["protocol"] == "file" else []


def model_settings(config: dict, model: str) -> dict:
    """The entry of a recommender (``model``: an entry name or ``<name>.seed~N``) without its
    ``seeds``; a seed variant carries its training ``seed``."""
    name, seed = split_model_seed(model)
    entry = {k: v for k, v in config["models"][name].items() if k != "seeds"}
    return entry if seed is None else {**entry, "seed": seed}


def fetchable_datasets(config: dict) -> list[str]:
    """Datasets the suite fetches and prepares itself (``source: custom`` ones come from a rule of
    the user's that writes the canonical tables)."""
    return [name for name, s in config["datasets"].items() if s["source"] != "custom"]


def custom_datasets(config: dict) -> list[str]:
    """Datasets whose canonical tables a user rule writes (``source: custom``)."""
    return [name for name, s in config["datasets"].items() if s["source"] == "custom"]


def name_regex(names: list[str]) -> str:
    """A wildcard constraint matching exactly these names."""

    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def sae_dirs(config: dict) -> list[str]:
    return [
        paths.sae_dir(dataset, model, point)
        for dataset, model in sae_pairs(config)
        for point in sae_points(config, dataset, model)
    ]


def recommender_targets(config: dict) -> list[str]:
    return [f"{paths.model_dir(d, m)}/metrics.json" for d, m in recommender_pairs(config)]


def sae_targets(config: dict) -> list[str]:
    return [
        f"{d}/{name}" for d in sae_dirs(config) for name in ("metrics.json", "interventions.json")
    ]


def split_inputs(wildcards) -> dict[str, str]:
    """Input files of a job that reads the prepared dataset and its split (Snakemake unpack)."""
    return paths.split_inputs(wildcards.dataset)


def report_settings(config: dict) -> dict:
    """What ``recsae report`` needs of a validated config: the report block, the metrics settings
    (their thresholds are named in the tables), the recommender pairs and every SAE sweep point,
    in config order."""
    return {
        "report": config["report"],
        "metrics": config["metrics"],
        "recommenders": [list(pair) for pair in recommender_pairs(config)],
        "sae_points": [
            [dataset, model, point]
            for dataset, model in sae_pairs(config)
            for point in sae_points(config, dataset, model)
        ],
    }


def aggregate_inputs(config: dict) -> list[str]:
    """Every result file the tables are built from."""
    files = recommender_targets(config)
    for directory in sae_dirs(config):
        files += [
            f"{directory}/{n}" for n in ("metrics.json", "interventions.json", "train_log.json")
        ]
    return files


def pair_sae_files(config: dict, dataset: str, model: str, names=("sae.pt", "metrics.json")):
    """The given files of every sweep point of one (dataset, model) pair."""
    return [
        f"{paths.sae_dir(dataset, model, point)}/{name}"
        for point in sae_points(config, dataset, model)
        for name in names
    ]


def report_targets(config: dict) -> list[str]:
    """Every table and figure ``rule all`` must request for the report."""
    out = list(paths.table_paths().values())
    pairs = sae_pairs(config)
    if pairs:
        out += list(paths.sweep_figure_paths().values())
    out += [
        paths.pair_figure_path(name, fmt, dataset, model)
        for dataset, model in pairs
        for name in paths.PAIR_FIGURES
        for fmt in paths.FIGURE_FORMATS
    ]
    if pairs:
        out += [paths.explorer_index_path()]
        out += [paths.explorer_page_path(dataset, model) for dataset, model in pairs]
    return out


def all_targets(config: dict) -> list[str]:
    """Everything ``rule all`` asks for: recommenders, SAE metrics, tables and figures."""
    return recommender_targets(config) + sae_targets(config) + report_targets(config)


def validate_config(
    config: dict, schema_path: str | Path = SCHEMA_PATH, source: str = "config"
) -> dict:
    """Validate ``config`` in place (``recsae.config.validate_schema``, filling defaults) and run
    the package's checks on it; raise ConfigError naming the bad key. The Snakefile calls this
    before any job is scheduled."""
    sweep = config.get("sae", {}).get("sweep") if isinstance(config.get("sae"), dict) else None
    if sweep is not None and not sweep:
        raise ConfigError(
            f"{source}: sae.sweep is empty: give it grid, grids or points, or leave it out to "
            "train one point with sae.defaults"
        )
    validate_schema(config, schema_path, source)
    _check_stage_settings(config, source)
    return config


def check_job_width(config: dict, cores: int | None, local: bool) -> None:
    """On a cluster (``local`` False), ``--cores`` (profiles/slurm: the width of a bundle of SAE
    points) caps every job's threads: raise ConfigError when threads_per_job exceeds it, instead of
    letting Snakemake give the jobs fewer threads than the config asks for."""
    threads = config["threads_per_job"]
    if not local and cores is not None and threads > cores:
        raise ConfigError(
            f"threads_per_job: {threads} is more than the {cores} cores the profile gives a job "
            f"on the cluster; raise `cores` in the profile (or pass --cores {threads})"
        )


def known_sizes(config: dict, dataset: str) -> tuple[int, int] | None:
    """(n_users, n_items) of a dataset where they are known before any job: its prepared
    stats.json from an earlier run, or a synthetic dataset's config; else None."""
    stats_path = Path(paths.data_dir(dataset)) / "stats.json"
    if stats_path.is_file():
        try:
            stats = read_json(stats_path)
            return int(stats["n_users"]), int(stats["n_items"])
        except (ValueError, KeyError, TypeError):
            return None
    entry = config["datasets"][dataset]
    if entry["source"] == "synthetic":
        from recsae.data.synthetic import SyntheticSettings

        defaults = SyntheticSettings()
        return (
            int(entry.get("n_users", defaults.n_users)),
            int(entry.get("n_items", defaults.n_items)),
        )
    return None


def load_config(path: str | Path, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Read a YAML config file and validate it (``validate_config``)."""
    return validate_config(read_config(path), schema_path, source=str(path))


def _check_stage_settings(config: dict, source: str) -> None:
    """Check what only the package knows: dataset sources are registered modules (or
    ``custom``), and each stage's own resolver accepts its config slice, so that a key only a
    stage knows (a model's params, an SAE sweep point, a metric setting) fails now, not hours
    into a run."""
    import recsae.recommenders  # noqa: F401  (registers the models)
    from recsae.data.registry import dataset_names
    from recsae.recommenders.base import model_class
    from recsae.recommenders.train import resolve_config

    sources = [*dataset_names(), "custom"]
    for name, entry in config["datasets"].items():
        if entry["source"] not in sources:
            raise ConfigError(
                f"{source}: datasets.{name}.source: {entry['source']!r} is not a dataset module "
                f"(known: {sources})"
            )
        split = split_settings(config, name)
        if split["protocol"] == "file" and not split["test_file"]:
            raise ConfigError(f"{source}: datasets.{name}.split: protocol file needs test_file")
        if split["protocol"] == "file" and not Path(split["test_file"]).is_file():
            raise ConfigError(
                f"{source}: datasets.{name}.split.test_file: {split['test_file']!r} is not a file"
            )
    model_dims = {}
    checks = []
    for name, entry in config["models"].items():

        def check_model(entry=entry, name=name):
            params, _ = resolve_config(entry["model"], entry["params"], entry["train"])
            model_dims[name] = model_class(entry["model"]).embedding_dim(params)

        checks.append((f"models.{name}", check_model))
    for dataset, model in recommender_pairs(config):

        def check_model_memory(dataset=dataset, model=model):
            dim, sizes = model_dims.get(split_model_seed(model)[0]), known_sizes(config, dataset)
            if sizes and (sizes[0] < MIN_USERS or sizes[1] < MIN_ITEMS):
                raise ValueError(
                    f"datasets.{dataset} has {sizes[0]} user(s) and {sizes[1]} item(s); a "
                    f"recommender and its SAE need at least {MIN_USERS} users and {MIN_ITEMS} "
                    "items (raise n_users / n_items)"
                )
            if dim and sizes:
                check_fits(
                    recommender_bytes(*sizes, dim),
                    f"{model} on {sizes[0]} users and {sizes[1]} items",
                    f"models.{split_model_seed(model)[0]}.params.dim",
                )

        checks.append((f"dataset {dataset}, model {model}", check_model_memory))
    checks.append(("metrics", lambda: resolve_metrics_config(config["metrics"])))
    for dataset, model in sae_pairs(config):

        def check_points(dataset=dataset, model=model):
            points = sae_points(config, dataset, model)
            dim = model_dims.get(split_model_seed(model)[0])
            if dim is None:
                return  # embedding size unknown until the model is built: the job checks
            for path, settings in points.items():
                try:
                    point = SAEPoint.resolve(settings, dim, model_family(config, model))
                except ValueError as err:
                    raise ValueError(f"sweep point {path}: {err}") from err
                check_fits(
                    sae_bytes(dim, point.width, point.batch_size, point.tied),
                    f"sweep point {path} (width {point.width})",
                    "the point's expansion (or width) or batch_size",
                )

        checks.append((f"sae (dataset {dataset}, model {model})", check_points))
    for where, check in checks:
        try:
            check()
        except (KeyError, ValueError, TypeError, UserError) as err:
            message = err.args[0] if err.args else str(err)
            raise ConfigError(f"{source}: {where}: {message}") from err


__all__ = [
    "aggregate_inputs",
    "all_targets",
    "split_inputs",
    "SAE_WILDCARD_REGEX",
    "custom_datasets",
    "check_job_width",
    "check_raw_data",
    "dataset_settings",
    "download_settings",
    "fetchable_datasets",
    "load_config",
    "model_settings",
    "model_variants",
    "name_regex",
    "pair_sae_files",
    "recommender_pairs",
    "recommender_targets",
    "clear_damaged_results",
    "damaged_results",
    "report_settings",
    "report_targets",
    "sae_dirs",
    "sae_pairs",
    "point_settings",
    "sae_points",
    "sae_targets",
    "split_model_seed",
    "split_settings",
    "stop_replanning_timers",
    "validate_config",
]
