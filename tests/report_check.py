"""Checks of the report outputs that the tests use (report and workflow tests, run by CI).

* ``check_report_outputs(results_dir, config)``: every table and figure of
  ``recsae.workflow.report_targets`` exists and is well formed (PNG/SVG signatures), the
  tables have one row per expected point (per setting in the methods table) and no duplicates.
* ``report_results(report_html)``: the results embedded in a ``snakemake --report x.html`` file.
* ``render_report(report_html)``: opens the report in headless Chromium, shows every embedded
  image through the report's own viewer and returns the size each one rendered at (needs a
  ``chromium`` binary: ``apt-get install -y chromium`` on Debian).
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from recsae.paths import RESULTS, SWEEP_TABLE
from recsae.report import collect
from recsae.sweep import strip_seed
from recsae.workflow import report_settings, report_targets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _local(path: str, results_dir: str | Path) -> Path:
    """A target path (``results/...``) under ``results_dir``."""
    rel = Path(path).relative_to(RESULTS)
    return Path(results_dir) / rel


def check_image(path: str | Path) -> None:
    """Raise AssertionError unless ``path`` is a non-empty PNG or SVG."""
    data = Path(path).read_bytes()
    assert data, f"{path} is empty"
    if str(path).endswith(".png"):
        assert data.startswith(PNG_MAGIC), f"{path} is not a PNG"
    elif str(path).endswith(".svg"):
        assert b"<svg" in data[:2000], f"{path} is not an SVG"


def check_report_outputs(results_dir: str | Path, config: dict) -> dict[str, pd.DataFrame]:
    """Assert the report outputs of a validated ``config`` under ``results_dir`` are complete and
    consistent; return the CSV tables read (name -> frame)."""
    for target in report_targets(config):
        path = _local(target, results_dir)
        assert path.is_file() and path.stat().st_size > 0, f"missing or empty: {path}"
        if path.suffix in (".png", ".svg"):
            check_image(path)
    settings = report_settings(config)
    tables = Path(results_dir) / "tables"
    frames = {
        p.stem: pd.read_csv(p) if p.stat().st_size > 1 else pd.DataFrame()
        for p in tables.glob("*.csv")
    }

    recs = frames["recommenders"]
    pairs = [tuple(p) for p in settings["recommenders"]]
    datasets = {d for d, _ in pairs}
    assert len(recs) == len(pairs) + len(datasets), (
        f"recommenders.csv: {len(recs)} rows, expected {len(pairs)} pairs + {len(datasets)} MostPop"
    )
    assert not recs.duplicated(["dataset", "model", "seed"]).any(), "recommenders.csv duplicates"

    points = [tuple(p) for p in settings["sae_points"]]
    sweep = frames[SWEEP_TABLE]
    assert len(sweep) == len(points), f"sweep.csv: {len(sweep)} rows for {len(points)} points"
    if points:
        got = list(
            zip(
                sweep.dataset.astype(str),
                sweep.model.astype(str),
                sweep.point.astype(str),
                strict=True,
            )
        )
        assert got == points, "sweep.csv rows differ from the config's sweep points"
        candidates = sweep[collect.sae_or_all(sweep)]
        groups = candidates.groupby(["dataset", "model", "variant"], dropna=False).ngroups
        assert len(frames["best_points"]) == groups, "best_points.csv: not one row per variant"
        assert sweep.groupby(["dataset", "model"])["chosen"].sum().eq(1).all()
        assert sweep.groupby(["dataset", "model"])["pareto"].sum().ge(1).all()
        settings_seen = {(d, m, strip_seed(p)) for d, m, p in points}
        assert len(frames["methods"]) == len(settings_seen), "methods.csv: not one row per setting"
        n_beta = len({s for s in settings_seen if re.fullmatch(r"beta~[^/]+", s[2])})
        assert len(frames["beta"]) == n_beta, (
            f"beta.csv: {len(frames['beta'])} rows, {n_beta} points"
        )
        planted = frames["planted"]
        keys = list(zip(planted.dataset, planted.model, planted.point, strict=True))
        assert set(keys) <= set(points), "planted.csv has rows of unknown sweep points"
        n_all = int((planted.family == collect.ALL_FAMILIES).sum())
        assert n_all == len(set(keys)), "planted.csv: not one 'all' row per point"
    return frames


def report_results(report_html: str | Path) -> dict:
    """{path: entry} of the results embedded in a self-contained Snakemake HTML report."""
    text = Path(report_html).read_text(encoding="utf-8")
    match = re.search(r'<script id="results">\s*var results = (.*?);?\s*</script>', text, re.S)
    if not match:
        raise ValueError(f"{report_html}: no embedded results (not a Snakemake 9 HTML report?)")
    return json.loads(match.group(1))


def decode_data_uri(uri: str) -> bytes:
    head, _, data = uri.partition(",")
    return base64.b64decode(data) if head.endswith(";base64") else data.encode()


def chromium_binary() -> str | None:
    """A headless-capable Chromium/Chrome on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


# Shows every embedded image through the report app's own view (app.setView, as a click on the
# result does), waits for the <img> to decode and writes {path: [width, height]} into the DOM.
_PROBE = """
<script>
window.addEventListener("load", async function () {
  const out = {app_children: 0, images: {}, error: null};
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  try {
    for (let i = 0; i < 200 && typeof app === "undefined"; i++) await sleep(50);  // React mounts
    out.app_children = document.querySelector("#app").children.length;
    const paths = Object.keys(results).filter((p) => results[p].mime_type.startsWith("image/"));
    for (const p of paths) {
      app.setView({content: "img", contentPath: results[p].data_uri, resultPath: p});
      let size = [0, 0];
      for (let i = 0; i < 100; i++) {
        await sleep(50);
        const img = Array.from(document.querySelectorAll("#app img"))
          .find((im) => im.src === results[p].data_uri);
        if (img && img.complete && img.naturalWidth > 0) {
          size = [img.naturalWidth, img.naturalHeight];
          break;
        }
      }
      out.images[p] = size;
    }
  } catch (err) {
    out.error = String(err);
  }
  const pre = document.createElement("pre");
  pre.id = "recsae-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def render_report(report_html: str | Path, chromium: str | None = None, timeout: float = 180):
    """Open ``report_html`` in headless Chromium and show each embedded image in the report's
    viewer; return {"app_children": n, "images": {path: [width, height]}} ([0, 0]: not
    rendered)."""
    chromium = chromium or chromium_binary()
    if chromium is None:
        raise FileNotFoundError("no chromium binary on PATH (apt-get install -y chromium)")
    text = Path(report_html).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="recsae-chromium-") as tmp:
        page = Path(tmp) / "report.html"
        cut = text.rfind("</body>")  # the last one: library sources may contain the string
        cut = len(text) if cut < 0 else cut
        page.write_text(text[:cut] + _PROBE + text[cut:], encoding="utf-8")
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--mute-audio",
            f"--user-data-dir={tmp}/profile",
            "--virtual-time-budget=300000",
            "--dump-dom",
            page.as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    match = re.search(r'<pre id="recsae-check">(.*?)</pre>', proc.stdout, re.S)
    if not match:
        raise RuntimeError(
            f"chromium did not render {report_html} (rc {proc.returncode}): {proc.stderr[-2000:]}"
        )
    return json.loads(html.unescape(match.group(1)))
