"""Documentation pages generated from the project's own sources, so that they cannot drift:

* ``config_reference(schema)``: the configuration reference, one table row per key of
  ``config/schema.yaml`` (type, default, allowed values, description);
* ``results_page(results_dir, config_path)``: a results page from a finished run's
  ``results/tables/*.md``, headed by the run's config, commit, machine, date and the command
  that generated the page, with the run's datasets (their ``stats.json``: size, split, users
  evaluated, concept families) and the item-concept labels its SAE neurons earn.

``recsae docs-config`` and ``recsae docs-results`` write them (``recsae.cli``).
"""

from __future__ import annotations

import json
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

import yaml

from recsae.errors import UserError

CONFIG_COMMAND = "recsae docs-config --out docs/config-reference.md"

# $defs rendered as their own section (a key that refers to one links to it)
SECTIONS = {
    "download_settings": "`datasets.<name>.download`",
    "split_settings": "`datasets.<name>.split`",
    "train_settings": "`models.<name>.train`",
    "sae_settings": "SAE settings (`sae.defaults`, `sae.overrides.*.<name>`, sweep points)",
}
# $defs rendered inline as a type
INLINE_TYPES = {
    "number_list": "list of numbers",
    "int_list": "list of integers ≥ 1",
    "pairs": "list of {datasets: [names], models: [names]}",
    "scalar_or_list": "scalar or list",
}


def _yaml_value(value) -> str:
    """``value`` as it is written in a YAML config."""
    return json.dumps(value, ensure_ascii=False).replace('"', "")


def _ref_name(schema: dict) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/$defs/") else None


def _anchor(name: str) -> str:
    return name.replace("_", "-")


def _type(schema: dict) -> str:
    ref = _ref_name(schema)
    if ref in INLINE_TYPES:
        return INLINE_TYPES[ref]
    if ref in SECTIONS:
        return f"[object](#{_anchor(ref)})"
    if "anyOf" in schema:
        return " or ".join(_type(option) for option in schema["anyOf"])
    if "enum" in schema:
        kinds = ["null" if v is None else type(v).__name__ for v in schema["enum"]]
        names = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
        return " or ".join(dict.fromkeys(names.get(k, k) for k in kinds))
    kind = schema.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(k for k in kinds if k)
    if "array" in kinds and "items" in schema and "type" in schema["items"]:
        text = text.replace("array", f"list of {schema['items']['type']}")
    return text or "any"


def _allowed(schema: dict) -> str:
    parts = []
    if "enum" in schema:
        parts.append(" / ".join(f"`{_yaml_value(v)}`" for v in schema["enum"]))
    for key, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if key in schema:
            parts.append(f"{sign} {_yaml_value(schema[key])}")
    if "pattern" in schema:
        parts.append(f"matches `{schema['pattern']}`")
    items = schema.get("items", {})
    if isinstance(items, dict) and ("minimum" in items or "pattern" in items):
        parts.append("each " + _allowed(items))
    if "propertyNames" in schema:
        parts.append(f"names match `{schema['propertyNames']['pattern']}`")
    if schema.get("uniqueItems"):
        parts.append("unique")
    return ", ".join(parts)


def _cell(text: str) -> str:
    """``text`` on one line for a table cell, with ``|``, ``<`` and ``{`` escaped outside code
    spans (MkDocs' tables keep a code span's pipes; ``<mirror>`` is then not read as an HTML tag
    nor ``{key: [values]}`` as an attribute list)."""
    parts = " ".join(str(text).split()).split("`")
    escaped = (
        p.replace("|", "\\|").replace("<", "&lt;").replace("{", "&#123;") for p in parts[::2]
    )
    parts[::2] = list(escaped)
    return "`".join(parts)


def _rows(schema: dict, prefix: str, required: set[str]) -> list[list[str]]:
    """One row per key below ``schema`` (an object schema), depth first."""
    rows = []
    for name, sub in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        default = f"`{_yaml_value(sub['default'])}`" if "default" in sub else ""
        if name in required:
            default = "required"
        description = sub.get("description", "")
        ref = _ref_name(sub)
        if ref in SECTIONS:
            description = f"{description} See [{SECTIONS[ref]}](#{_anchor(ref)}).".strip()
        rows.append([f"`{path}`", _type(sub), default, _allowed(sub), description])
        if "properties" in sub:
            rows += _rows(sub, f"{path}.", set(sub.get("required", [])))
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in extra:
            rows += _rows(extra, f"{path}.<name>.", set(extra.get("required", [])))
    return rows


def _has_keys(schema: dict) -> bool:
    """Whether ``schema`` is an object with keys of its own (directly or per ``<name>``)."""
    extra = schema.get("additionalProperties")
    return "properties" in schema or (isinstance(extra, dict) and "properties" in extra)


def _table(rows: list[list[str]]) -> str:
    lines = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def undocumented_keys(schema: dict) -> list[str]:
    """Dotted paths of the schema's keys without a description."""
    missing = []

    def walk(sub: dict, prefix: str) -> None:
        for name, child in sub.get("properties", {}).items():
            if not child.get("description") and _ref_name(child) not in SECTIONS:
                missing.append(f"{prefix}{name}")
            walk(child, f"{prefix}{name}.")
            extra = child.get("additionalProperties")
            if isinstance(extra, dict):
                walk(extra, f"{prefix}{name}.<name>.")

    walk(schema, "")
    for name in SECTIONS:
        walk(schema["$defs"][name], f"$defs.{name}.")
    return missing


def config_reference(schema: dict) -> str:
    """The configuration reference page (markdown) of ``schema`` (config/schema.yaml)."""
    top = schema["properties"]
    out = [
        "# Configuration reference",
        "",
        f"Generated from `config/schema.yaml` by `{CONFIG_COMMAND}`; do not edit by hand "
        "(`tests/test_docs.py` fails when this page differs from the schema).",
        "",
        _cell(schema.get("description", "")),
        "",
        "A key written `<name>` is a name you choose (a dataset, a model). *required* keys have "
        "no default. A blank default means the key is unset unless given (a dataset source "
        "reads its own default: see [Datasets](datasets.md)).",
        "",
        "## Top-level keys",
        "",
    ]
    simple = {k: v for k, v in top.items() if not _has_keys(v)}
    out += [_table(_rows({"properties": simple}, "", set(schema.get("required", [])))), ""]
    for name, sub in top.items():
        if name in simple:
            continue
        out += [f"## `{name}`", ""]
        wrapper = {"properties": {name: sub}}
        out += [_table(_rows(wrapper, "", set(schema.get("required", [])))), ""]
    for ref, title in SECTIONS.items():
        block = schema["$defs"][ref]
        out += [f"## {title} {{#{_anchor(ref)}}}", ""]
        if block.get("description"):
            out += [_cell(block["description"]), ""]
        out += [_table(_rows(block, "", set(block.get("required", [])))), ""]
    return "\n".join(out).rstrip() + "\n"


# --- results pages ---------------------------------------------------------------------------


def _machine() -> str:
    """CPU model, logical cores and memory of the machine running this."""
    model = platform.processor() or platform.machine()
    cores = ""
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.exists():
        lines = cpuinfo.read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
        model = names[0] if names else model
        cores = f", {len(names)} logical cores" if names else ""
    memory = ""
    if meminfo.exists():
        match = re.search(r"MemTotal:\s+(\d+) kB", meminfo.read_text())
        memory = f", {int(match.group(1)) / 2**20:.0f} GiB" if match else ""
    return f"{model}{cores}{memory}"


def _run_metadata(results_dir: Path) -> tuple[dict[str, int], list[str]]:
    """The git commits (with how many SAE points each wrote) and kernel settings recorded in the
    run's metrics files."""
    commits: dict[str, int] = {}
    kernels: dict[str, None] = {}
    for path in sorted(results_dir.glob("*/*/sae/**/metrics.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        commit = str(record.get("git_commit") or "unknown")
        commits[commit] = commits.get(commit, 0) + 1
        k = record.get("kernels") or {}
        if k:
            setting = (
                f"cpu_kernels {k.get('cpu_kernels')} ({k.get('aten_cpu_capability')}), "
                f"{k.get('torch_threads')} torch thread(s), torch {k.get('torch_version')}"
            )
            kernels[setting] = None
    return commits, list(kernels)


def _points(count: int) -> str:
    return f"{count} SAE point" + ("" if count == 1 else "s")


def _demote(markdown: str) -> str:
    """A table file's markdown with its headings two levels down (the page keeps ``#``)."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 1) + " ", markdown, flags=re.M)


def _share(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.1f}%)" if whole else str(part)


def _split_text(config: dict) -> str:
    """A split's protocol and sizes, e.g. ``leave_last_out, test 1, valid 1``."""
    test = config.get("test_n") if config.get("test_n") is not None else config.get("test_fraction")
    valid = config.get("valid_n")
    valid = valid if valid is not None else config.get("valid_fraction")
    return f"{config.get('protocol')}, test {test}, valid {valid}"


def _families_text(families: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in families.items()) or "none"


def _scored_families(results_dir: Path, dataset: str) -> str:
    """Item concepts per family that the metrics scored, from the dataset's first SAE fit's
    ``metrics.json`` (every fit of one split scores the same concepts); "" before any fit."""
    for path in sorted(results_dir.glob(f"{dataset}/*/sae/**/metrics.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        concepts = ((record.get("alignment") or {}).get("items") or {}).get("per_concept")
        if concepts is not None:
            families = concepts.get("family") or []
            return _families_text({f: families.count(f) for f in dict.fromkeys(families)})
    return ""


def datasets_section(results_dir: str | Path, dataset_names) -> list[str]:
    """Markdown lines of a table with one row per dataset of ``dataset_names`` that the run
    prepared (its ``data/stats.json``): size, split, users evaluated (users with a test item,
    from ``split/stats.json``), the concept families with their concept counts and the item
    concepts the metrics scored; ``[]`` when none was prepared."""
    from recsae import paths

    rows = []
    for name in dataset_names:
        data_stats = Path(paths.data_dir(name, results_dir)) / "stats.json"
        if not data_stats.is_file():
            continue
        data = json.loads(data_stats.read_text(encoding="utf-8"))
        split_stats = Path(paths.split_dir(name, results_dir)) / "stats.json"
        split = json.loads(split_stats.read_text(encoding="utf-8")) if split_stats.is_file() else {}
        evaluated = (
            _share(split["n_eval_users"], split["n_users"]) if "n_eval_users" in split else ""
        )
        rows.append(
            [
                name,
                str(data.get("source", "")),
                str(data["n_users"]),
                str(data["n_items"]),
                str(data["n_interactions"]),
                _split_text(split.get("config", {})) if split else "not split",
                evaluated,
                _families_text(data.get("concept_families", {})),
                _scored_families(Path(results_dir), name),
            ]
        )
    if not rows:
        return []
    header = [
        "dataset",
        "source",
        "users",
        "items",
        "interactions",
        "split",
        "users evaluated",
        "concept families (concepts)",
        "item concepts scored",
    ]
    return [
        "## Datasets",
        "",
        "From each dataset's `data/stats.json` and `split/stats.json`: users, items and "
        "user-item pairs after the dataset's filters; the split's protocol with its test and "
        "validation items per user; users evaluated: users with a test item (share of all "
        "users); the concept families of `concepts.parquet` with how many concepts each holds; "
        "the item concepts the SAE metrics scored per family (popularity buckets added, and only "
        "concepts with enough active items and enough without: see the thresholds below).",
        "",
        *_markdown_table(header, rows),
        "",
    ]


def _markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """Markdown lines of a table: the header, its rule and one line per row (cells by _cell)."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
    ]


def labels_section(results_dir: str | Path) -> list[str]:
    """Markdown lines of a table of the item-concept labels the run's SAE neurons earn: per
    (dataset, model, label family, label), in how many of each SAE variant's fits (every sweep
    point and seed) some neuron carries the label; ``[]`` when no SAE fit has a label."""
    results_dir = Path(results_dir)
    fits: dict[tuple[str, str, str], int] = {}
    carried: dict[tuple[str, str, str, str, str], int] = {}
    for path in sorted(results_dir.glob("*/*/sae/**/metrics.json")):
        log_path = path.with_name("train_log.json")
        log = json.loads(log_path.read_text(encoding="utf-8")) if log_path.is_file() else {}
        config = log.get("config") or {}
        if config.get("method", "sae") != "sae":
            continue
        dataset, model = path.relative_to(results_dir).parts[:2]
        variant = str(config.get("variant", "sae"))
        fits[dataset, model, variant] = fits.get((dataset, model, variant), 0) + 1
        record = json.loads(path.read_text(encoding="utf-8"))
        neurons = ((record.get("alignment") or {}).get("items") or {}).get("per_neuron") or {}
        pairs = zip(neurons.get("label_family") or [], neurons.get("label") or [], strict=True)
        for family, label in {(f, lab) for f, lab in pairs if lab is not None}:
            key = (dataset, model, variant, str(family), str(label))
            carried[key] = carried.get(key, 0) + 1
    if not carried:
        return []
    variants = list(dict.fromkeys(v for _, _, v in fits))
    labels = sorted(
        {k[:2] + k[3:] for k in carried},
        key=lambda k: (
            k[0],
            k[1],
            -sum(carried.get(k[:2] + (v,) + k[2:], 0) for v in variants),
            k[2],
            k[3],
        ),
    )
    header = ["dataset", "model", "family", "label", *variants]
    lines = [
        "## Item-concept labels the SAE neurons earn",
        "",
        "A neuron's label is the item concept of highest AUROC among those it captures (AUROC and "
        "top-item precision thresholds as in the tables above). Per SAE variant (every sweep "
        "point and seed of it): in how many of its fits some neuron carries the label, of all "
        "its fits; non-SAE methods are left out.",
        "",
    ]
    rows = []
    for dataset, model, family, label in labels:
        cells = []
        for variant in variants:
            total = fits.get((dataset, model, variant), 0)
            count = carried.get((dataset, model, variant, family, label), 0)
            cells.append(f"{count} of {total}" if total else "")
        rows.append([dataset, model, family, label, *cells])
    return lines + _markdown_table(header, rows) + [""]


def results_page(
    results_dir: str | Path,
    config_path: str | Path,
    *,
    title: str | None = None,
    machine: str | None = None,
    command: str | None = None,
) -> str:
    """A results page (markdown) from the finished run in ``results_dir`` (its ``tables/``) run
    with ``config_path``: the run's config, commits and kernels recorded in its metrics files,
    the machine (default: this one), the tables' date, the datasets the run prepared
    (``datasets_section``), every table of ``recsae.paths.TABLES`` that the run wrote, in that
    order, and the labels its SAE neurons earn (``labels_section``)."""
    from recsae.paths import TABLES

    results_dir, config_path = Path(results_dir), Path(config_path)
    tables_dir = results_dir / "tables"
    written = [tables_dir / f"{name}.md" for name in TABLES if (tables_dir / f"{name}.md").exists()]
    if not written:
        raise UserError(f"{tables_dir}: no result tables (*.md) found; finish the run first")
    if not config_path.is_file():
        raise UserError(f"{config_path}: config file not found")
    commits, kernels = _run_metadata(results_dir)
    date = max(path.stat().st_mtime for path in written)
    date_text = datetime.fromtimestamp(date, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = command or (
        f"recsae docs-results {results_dir} --config {config_path} --out <page>.md"
    )
    out = [
        f"# {title or 'Results of ' + config_path.name}",
        "",
        f"Generated by `{command}` from the run's `{tables_dir}`; do not edit by hand.",
        "",
        f"- **config**: `{config_path}` (below)",
        "- **commit**: "
        + (", ".join(f"`{c}` ({_points(n)})" for c, n in commits.items()) or "not recorded"),
        f"- **kernels**: {'; '.join(kernels) or 'not recorded'}",
        f"- **machine**: {machine or _machine()}",
        f"- **tables written**: {date_text}",
        "",
    ]
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    out += datasets_section(results_dir, list(config.get("datasets") or {}))
    for path in written:
        out += [_demote(path.read_text(encoding="utf-8")).strip(), ""]
    out += labels_section(results_dir)
    out += [
        "## The config",
        "",
        "```yaml",
        config_path.read_text(encoding="utf-8").rstrip(),
        "```",
    ]
    return "\n".join(out) + "\n"
