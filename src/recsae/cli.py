"""The ``recsae`` command: one subcommand per workflow stage (each Snakemake rule runs one; the
stage functions are in ``recsae.stages``), plus config validation and listing the registered
datasets and models.

Settings arrive as JSON strings (the rule serialises its part of the validated config); the other
flags become the stage function's keyword arguments.
``--gpus N`` runs the stage on N free GPUs of the slot pool (see ``recsae.gpu_slots``); with 0 the
stage sees no GPU and runs on the CPU. A user error (bad config or data, a checksum mismatch, a
network failure, a missing file, a damaged result file, a bad flag) prints one line,
``recsae <command>: error: <message>``, and exits 2; ``recsae --debug ...`` shows the traceback
instead. Other exceptions are bugs and keep their traceback. Ctrl-C prints one line and exits 130.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
# path flags a stage reads (the others name what it writes)
INPUT_FLAGS = ("raw-dir", "data-dir", "split-dir", "model-path", "sae-path", "results-dir")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``recsae train-sae: error: argument
    --threads: ...``) and exit 2, like every other user error of the command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg}): {text[:200]!r}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text[:200]!r}")
    return value


def _device(text: str) -> str:
    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, cpu, cuda or cuda:N")
    return text


def _count(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


def _check_inputs(args) -> None:
    """Every input path flag of the stage names an existing file or folder."""
    from recsae.errors import UserError

    for flag in INPUT_FLAGS:
        value = getattr(args, flag.replace("-", "_"), None)
        if flag in args.input_flags and value is not None and not Path(value).exists():
            raise UserError(f"--{flag} {value}: no such file or directory")


def _validate(args) -> None:
    from recsae.workflow import load_config

    config = load_config(args.config, args.schema) if args.schema else load_config(args.config)
    print(
        f"{args.config}: valid ({len(config['datasets'])} datasets, {len(config['models'])} models)"
    )


def _list(args) -> None:
    import recsae.recommenders  # noqa: F401  (registers the models)
    from recsae.data.registry import dataset_names
    from recsae.recommenders.base import registered_models

    print("dataset sources:", ", ".join(dataset_names()))
    print("models:", ", ".join(registered_models()))


def _export_test_pairs(args) -> None:
    from recsae.data.split import export_test_pairs

    rows = export_test_pairs(args.data_dir, args.split_dir, args.out)
    print(f"{args.out}: {rows} test pairs (split protocol file: test_file)")


def _write_page(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    from pathlib import Path

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text, encoding="utf-8")
    print(f"wrote {out}")


def _docs_config(args) -> None:
    from recsae.config import SCHEMA_PATH, load_schema
    from recsae.docs import config_reference

    _write_page(config_reference(load_schema(args.schema or SCHEMA_PATH)), args.out)


def _docs_results(args) -> None:
    import shlex

    from recsae.docs import results_page

    words = ["recsae", "docs-results", args.results_dir, "--config", args.config]
    for flag in ("out", "title", "machine"):
        if getattr(args, flag):
            words += [f"--{flag}", getattr(args, flag)]
    command = shlex.join(words)
    page = results_page(
        args.results_dir, args.config, title=args.title, machine=args.machine, command=command
    )
    _write_page(page, args.out)


def _metrics_reference(args) -> None:
    from recsae.metrics.registry import reference_markdown

    print(reference_markdown(), end="")


def _stage(module: str, function: str):
    """The stage function ``recsae.stages.<module>.<function>``, imported when it runs."""

    def run(args) -> None:
        import importlib

        _check_inputs(args)
        stage = getattr(importlib.import_module(f"recsae.stages.{module}"), function)
        stage(args.settings, **{name: getattr(args, name) for name in args.stage_args})

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="recsae", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a user error too"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def stage(name, target, help_text, flags, uses=("seed", "device"), outputs=()):
        """A subcommand running stage ``target`` (module, function) with the required path
        ``flags`` and the shared options it ``uses`` as keyword arguments; the ``INPUT_FLAGS``
        among ``flags``, except its ``outputs``, must exist."""
        p = sub.add_parser(name, help=help_text)
        for flag in flags:
            p.add_argument(f"--{flag}", required=True)
        p.add_argument("--settings", type=_json, default={}, help="JSON object of settings")
        p.add_argument("--seed", type=_count(0), default=0)
        p.add_argument("--device", type=_device, default="auto", help="auto | cpu | cuda[:N]")
        p.add_argument("--gpus", type=_count(0), default=0, help="GPUs to take from the slot pool")
        p.add_argument(
            "--threads", type=_count(1), default=None, help="torch CPU threads (default: torch's)"
        )
        names = [flag.replace("-", "_") for flag in flags] + list(uses)
        inputs = [flag for flag in flags if flag in INPUT_FLAGS and flag not in outputs]
        p.set_defaults(func=_stage(*target), stage_args=names, input_flags=inputs)
        return p

    p = stage(
        "fetch",
        ("data", "fetch"),
        "download, verify and extract a dataset's raw files",
        ["dataset", "raw-dir"],
        uses=("mirror", "download"),
        outputs=("raw-dir",),
    )
    p.add_argument("--mirror", default=None)
    p.add_argument("--download", type=_json, default=None, help="JSON object of network settings")
    stage(
        "prepare",
        ("data", "prepare"),
        "raw files -> canonical tables",
        ["dataset", "raw-dir", "out-dir"],
        uses=("seed",),
    )
    stage(
        "split",
        ("data", "split"),
        "canonical tables -> train/valid/test",
        ["data-dir", "out-dir"],
        uses=("seed",),
    )
    stage(
        "train-recommender",
        ("recommender", "train"),
        "train a base recommender",
        ["data-dir", "split-dir", "out-dir"],
    )
    stage(
        "evaluate-recommender",
        ("recommender", "evaluate"),
        "full-ranking evaluation + MostPop",
        ["data-dir", "split-dir", "model-path", "out"],
        uses=("device",),
    )
    stage(
        "train-sae",
        ("sae", "train"),
        "train one SAE sweep point",
        ["model-path", "data-dir", "split-dir", "point-id", "out-dir"],
    )
    stage(
        "probe-ceiling",
        ("sae_evaluation", "probe_ceilings"),
        "linear-probe ceiling per concept on a recommender's embeddings (once per recommender)",
        ["model-path", "data-dir", "split-dir", "out"],
    )
    p = stage(
        "evaluate-sae",
        ("sae_evaluation", "evaluate"),
        "monosemanticity, fidelity and interventions of an SAE",
        ["model-path", "sae-path", "data-dir", "split-dir", "metrics-out", "interventions-out"],
        uses=("seed", "device", "ceiling_path"),
    )
    p.add_argument(
        "--ceiling-path",
        default=None,
        help="the recommender's probe_ceiling.json (default: compute the ceiling here)",
    )
    p = stage(
        "report",
        ("report", "render"),
        "tables, figures, neuron cards and the neuron explorer from the results (--part)",
        ["part", "results-dir", "out-dir"],
        uses=("dataset", "model", "device"),
    )
    p.add_argument("--dataset", default=None, help="per-pair parts (interventions, ...): the pair")
    p.add_argument("--model", default=None)

    p = sub.add_parser("validate-config", help="check a config file against the schema")
    p.add_argument("config")
    p.add_argument("--schema", default=None)
    p.set_defaults(func=_validate)
    sub.add_parser("list", help="registered dataset sources and models").set_defaults(func=_list)
    p = sub.add_parser(
        "export-test-pairs",
        help="a split's test pairs as a test_file (user_id,item_id in raw ids) for protocol file",
    )
    for flag in ("data-dir", "split-dir", "out"):
        p.add_argument(f"--{flag}", required=True)
    p.set_defaults(func=_export_test_pairs)
    p = sub.add_parser(
        "docs-config", help="the configuration reference page, generated from the schema"
    )
    p.add_argument("--schema", default=None, help="default: the package's config/schema.yaml")
    p.add_argument("--out", default=None, help="markdown file to write (default: stdout)")
    p.set_defaults(func=_docs_config)
    p = sub.add_parser("docs-results", help="a results page from a finished run's results/tables/")
    p.add_argument("results_dir", help="the run's results folder (holding tables/)")
    p.add_argument("--config", required=True, help="the config file the run used")
    p.add_argument("--out", default=None, help="markdown file to write (default: stdout)")
    p.add_argument("--title", default=None, help="page title (default: 'Results of <config>')")
    p.add_argument(
        "--machine", default=None, help="the machine that ran it (default: this machine)"
    )
    p.set_defaults(func=_docs_results)
    sub.add_parser(
        "metrics-reference", help="the metrics.json summary reference (markdown), from the metrics"
    ).set_defaults(func=_metrics_reference)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that report a problem with the user's input, not a bug."""
    import yaml

    from recsae.errors import UserError

    return (UserError, OSError, yaml.YAMLError)


def main(argv: list[str] | None = None) -> int:
    from recsae import worker

    if worker.enabled():
        code = worker.run_in_worker(
            "recsae.cli:main", sys.argv[1:] if argv is None else list(argv)
        )
        if code is not None:
            return code
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    try:
        _run(args)
    except _user_errors() as err:
        if args.debug:
            raise
        print(f"recsae {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"recsae {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    return 0


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def _run(args) -> None:
    if not hasattr(args, "gpus"):
        args.func(args)
        return
    import torch

    from recsae.gpu_slots import gpu_slot
    from recsae.kernels import check_kernels
    from recsae.seeding import deterministic_algorithms

    if args.threads:
        torch.set_num_threads(args.threads)
    deterministic_algorithms()
    warning = check_kernels()
    if warning:
        logging.getLogger("recsae").warning(warning)

    with gpu_slot(args.gpus):
        args.func(args)
    usage = process_usage()
    if usage:
        logging.getLogger("recsae").info(f"{args.command}: {usage}")


def process_usage() -> str | None:
    """This process's CPU seconds and peak resident memory so far by the kernel's accounting
    (children included), e.g. ``process CPU 12.31 s (user 11.90 s, system 0.41 s), peak RSS
    0.521 GiB``; None where the ``resource`` module is missing (Windows). Snakemake's benchmark
    files sample CPU time and miss the end of every job; ``benchmarks/run_time.py`` reads this
    line from the job logs as well."""
    try:
        import resource
    except ImportError:
        return None
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = own.ru_utime + children.ru_utime, own.ru_stime + children.ru_stime
    rss_unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    peak = max(own.ru_maxrss, children.ru_maxrss) * rss_unit / 2**30
    return (
        f"process CPU {user + system:.2f} s (user {user:.2f} s, system {system:.2f} s), "
        f"peak RSS {peak:.3f} GiB"
    )


if __name__ == "__main__":
    sys.exit(main())
