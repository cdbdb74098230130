// recsae neuron explorer: draws the JSON of #explorer-data (recsae.report.explorer) with plain DOM
// and SVG; no library, no network request.
"use strict";

const DATA = JSON.parse(document.getElementById("explorer-data").textContent);
const state = { point: 0, sortKey: "auroc", sortAsc: false, neuron: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

function fmt(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function point() {
  return DATA.points[state.point];
}

function itemTitle(item) {
  return DATA.items.title[item];
}

// ---- charts (SVG) ---------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Paired horizontal bars: rows [{label, a, b}], a = this neuron (blue), b = reference (grey).
function pairedBars(title, rows, legendA, legendB) {
  const rowH = 16, labelW = 150, barW = 170, top = 30;
  const root = svg("svg", { width: labelW + barW + 50, height: top + rows.length * rowH + 8 });
  root.append(svg("text", { x: 0, y: 11, "font-weight": "bold" }, title));
  root.append(svg("rect", { x: 0, y: 17, width: 9, height: 8, fill: "#3572c6" }));
  root.append(svg("text", { x: 12, y: 25 }, legendA));
  root.append(svg("rect", { x: 150, y: 17, width: 9, height: 8, fill: "#bbb" }));
  root.append(svg("text", { x: 162, y: 25 }, legendB));
  rows.forEach((row, i) => {
    const y = top + i * rowH;
    const label = row.label.length > 26 ? row.label.slice(0, 25) + "…" : row.label;
    root.append(svg("text", { x: labelW - 4, y: y + 11, "text-anchor": "end" }, label));
    root.append(svg("rect", { x: labelW, y: y + 1, width: barW * row.a, height: 7, fill: "#3572c6" }));
    root.append(svg("rect", { x: labelW, y: y + 8, width: barW * row.b, height: 6, fill: "#bbb" }));
    root.append(svg("text", { x: labelW + barW * Math.max(row.a, row.b) + 3, y: y + 11 },
      row.a.toFixed(2)));
  });
  return root;
}

// Histogram of log10(1 + train interactions) of the top items against the catalogue (densities).
function popularityChart(items) {
  const pop = DATA.items.popularity.map((p) => Math.log10(1 + p));
  const hi = Math.max(...pop, 1), bins = 12, w = 310, h = 110, left = 40, bottom = 28;
  const count = (values) => {
    const c = new Array(bins).fill(0);
    values.forEach((v) => { c[Math.min(bins - 1, Math.floor((v / hi) * bins))] += 1; });
    return c.map((n) => n / Math.max(values.length, 1));
  };
  const all = count(pop), top = count(items.map((i) => pop[i]));
  const ymax = Math.max(...all, ...top, 0.01), bw = (w - left) / bins;
  const root = svg("svg", { width: w + 10, height: h + bottom + 18 });
  root.append(svg("text", { x: left, y: 11, "font-weight": "bold" },
    `popularity: top-${items.length} items (blue), catalogue (grey)`));
  for (let b = 0; b < bins; b++) {
    const x = left + b * bw;
    const ha = (all[b] / ymax) * h, ht = (top[b] / ymax) * h;
    root.append(svg("rect", { x, y: 16 + h - ha, width: bw - 1, height: ha, fill: "#ccc" }));
    root.append(svg("rect", { x: x + bw * 0.25, y: 16 + h - ht, width: bw * 0.5, height: ht,
      fill: "#3572c6" }));
  }
  root.append(svg("line", { x1: left, x2: w, y1: 16 + h, y2: 16 + h, stroke: "#666" }));
  [0, hi / 2, hi].forEach((v) => root.append(svg("text", {
    x: left + (v / hi) * (w - left), y: 16 + h + 12, "text-anchor": "middle" },
    String(Math.round(10 ** v - 1)))));
  root.append(svg("text", { x: left + (w - left) / 2, y: 16 + h + 25, "text-anchor": "middle" },
    "train interactions per item (log scale)"));
  root.append(svg("text", { x: 10, y: 16 + h / 2 + 30,
    transform: `rotate(-90 10 ${16 + h / 2 + 30})` }, "share of items"));
  return root;
}

// A line chart of y against level, with an optional dashed reference line.
function lineChart(title, xs, ys, ylabel, reference, yrange) {
  const w = 210, h = 90, left = 38, top = 18, bottom = 26;
  const finite = ys.filter((v) => v !== null);
  const lo = yrange ? yrange[0] : Math.min(...finite, reference ?? Infinity, 0);
  const hi = yrange ? yrange[1] : Math.max(...finite, reference ?? -Infinity, 0);
  const span = hi - lo || 1, xmin = Math.min(...xs), xspan = Math.max(...xs) - xmin || 1;
  const X = (x) => left + ((x - xmin) / xspan) * (w - left - 8);
  const Y = (y) => top + h - ((y - lo) / span) * h;
  const root = svg("svg", { width: w, height: top + h + bottom });
  root.append(svg("text", { x: 0, y: 11, "font-weight": "bold" }, title));
  root.append(svg("line", { x1: left, x2: w - 8, y1: top + h, y2: top + h, stroke: "#666" }));
  root.append(svg("line", { x1: left, x2: left, y1: top, y2: top + h, stroke: "#666" }));
  [lo, hi].forEach((v) => root.append(svg("text", { x: left - 3, y: Y(v) + 3,
    "text-anchor": "end" }, v.toFixed(2))));
  if (reference !== null && reference !== undefined) {
    root.append(svg("line", { x1: left, x2: w - 8, y1: Y(reference), y2: Y(reference),
      stroke: "#999", "stroke-dasharray": "4 3" }));
  }
  const pts = xs.map((x, i) => [x, ys[i]]).filter((p) => p[1] !== null);
  root.append(svg("polyline", { points: pts.map((p) => `${X(p[0])},${Y(p[1])}`).join(" "),
    fill: "none", stroke: "#3572c6", "stroke-width": 1.5 }));
  pts.forEach((p) => root.append(svg("circle", { cx: X(p[0]), cy: Y(p[1]), r: 2.5,
    fill: "#3572c6" })));
  xs.forEach((x) => root.append(svg("text", { x: X(x), y: top + h + 12, "text-anchor": "middle" },
    String(x))));
  root.append(svg("text", { x: left + (w - left) / 2, y: top + h + 24, "text-anchor": "middle" },
    "level (× neuron's max activation)"));
  root.append(svg("text", { x: left + 4, y: top + 8 }, ylabel));
  return root;
}

// ---- neuron table ---------------------------------------------------------------------------

function neuronRows() {
  const n = point().neurons;
  return n.concept.map((concept, id) => ({
    id, concept: concept || "", label: (n.label && n.label[id]) || "", auroc: n.auroc[id], precision: n.precision[id], ms: n.ms[id],
    freqItems: n.freqItems[id], freqUsers: n.freqUsers[id], dead: n.dead[id], dense: n.dense[id],
  }));
}

function compare(a, b) {
  const key = state.sortKey;
  let x = key === "flags" ? Number(a.dead) * 2 + Number(a.dense) : a[key];
  let y = key === "flags" ? Number(b.dead) * 2 + Number(b.dense) : b[key];
  if (x === null || x === "") return 1;
  if (y === null || y === "") return -1;
  const order = typeof x === "string" ? x.localeCompare(y) : x - y;
  return (state.sortAsc ? order : -order) || a.id - b.id;
}

function renderTable() {
  const query = $("neuron-filter").value.trim().toLowerCase();
  const hideDead = $("hide-dead").checked;
  const all = neuronRows();
  const rows = all
    .filter((r) => !(hideDead && r.dead))
    .filter((r) => !query || r.concept.toLowerCase().includes(query)
      || r.label.toLowerCase().includes(query) || String(r.id) === query)
    .sort(compare);
  const body = $("neuron-table").querySelector("tbody");
  body.replaceChildren(...rows.map((r) => el("tr",
    { "data-neuron": r.id, class: r.id === state.neuron ? "selected" : "",
      onclick: () => showNeuron(r.id) },
    el("td", { class: "num" }, r.id), el("td", {}, r.concept || "–"), el("td", {}, r.label || "–"),
    el("td", { class: "num" }, fmt(r.auroc, 3)), el("td", { class: "num" }, fmt(r.precision, 2)),
    el("td", { class: "num" }, fmt(r.ms, 3)), el("td", { class: "num" }, fmt(r.freqItems, 3)),
    el("td", { class: "num" }, fmt(r.freqUsers, 3)),
    el("td", {}, r.dead ? el("span", { class: "flag" }, "dead") : null,
      r.dense ? el("span", { class: "flag" }, "dense") : null))));
  $("row-count").textContent = `${rows.length} of ${all.length} neurons`;
  document.querySelectorAll("#neuron-table th").forEach((th) => {
    th.classList.toggle("sorted", th.dataset.key === state.sortKey);
    th.classList.toggle("asc", th.dataset.key === state.sortKey && state.sortAsc);
  });
}

// ---- neuron view ----------------------------------------------------------------------------

function showNeuron(id) {
  state.neuron = id;
  showTab("neurons");
  renderTable();
  const p = point(), n = p.neurons;
  const view = $("neuron-view");
  const items = p.topItems[id], acts = p.topActs[id];
  const head = el("h2", {}, `Neuron ${id}` + (n.concept[id] ? ` — ${n.concept[id]}` : ""));
  const facts = el("p", { class: "note" },
    `AUROC ${fmt(n.auroc[id], 3)} · top-${DATA.alignTopK} precision ${fmt(n.precision[id], 2)}` +
    ` · MS ${fmt(n.ms[id], 3)} · active on ${fmt(100 * n.freqItems[id], 1)}% of items and ` +
    `${fmt(100 * n.freqUsers[id], 1)}% of held-out users` + (n.dead[id] ? " · dead" : "") +
    (n.dense[id] ? " · dense" : ""));
  const list = el("ol", { class: "top-items" }, ...items.map((item, i) => el("li", {},
    itemTitle(item), " ", el("span", { class: "act" }, `[${acts[i].toFixed(2)}]`))));
  const catalogue = DATA.itemConcepts;
  const shares = p.itemShares[id].slice(0, 10).map(([c, share]) => ({
    label: catalogue.name[c], a: share, b: catalogue.share[c] }));
  const users = DATA.userConcepts;
  const userRows = p.userShares[id].slice(0, 12).map(([c, share]) => ({
    label: users.name[c], a: share, b: users.share[c] }));
  const charts = el("div", { class: "charts" });
  if (shares.length) {
    charts.append(pairedBars(`item concepts of the top-${DATA.alignTopK} items`, shares,
      "top items", "catalogue"));
  }
  if (items.length) charts.append(popularityChart(items));
  if (userRows.length) {
    charts.append(pairedBars(`its ${p.topUserCount[id]} most activating users (of all users)`,
      userRows, "top users", "all users"));
  }
  const curves = el("div", { class: "charts" });
  p.interventions.filter((e) => e.neuron === id).forEach((entry) => {
    for (const [name, c] of Object.entries(entry.curves)) {
      const ylabel = name === "promotion" ? "success rate" : "concept share in top-k";
      curves.append(lineChart(`${name}: ${entry.concept}`, c.level, c.effect, ylabel,
        c.shareOriginal, [0, 1]));
      const cost = c.costName ? `Δ${c.costName.replace("delta_", "").toUpperCase()}` : "cost";
      curves.append(lineChart(`${name}: cost`, c.level, c.cost, `${cost} (edited − original)`, 0));
    }
  });
  const parts = [head, facts, el("h3", {}, "Most activating items (activation)"),
    items.length ? list : el("p", { class: "note" }, "No item activates this neuron."), charts];
  if (curves.childElementCount) {
    parts.push(el("h3", {}, "Interventions on this neuron (dashed: unedited)"), curves);
  }
  view.replaceChildren(...parts);
}

// ---- search ---------------------------------------------------------------------------------

function searchItems() {
  const query = $("item-search").value.trim().toLowerCase();
  const out = $("item-results");
  if (!query) { out.replaceChildren(); return; }
  const hits = [];
  DATA.items.title.forEach((title, item) => {
    if (hits.length < 30 && (String(item) === query || title.toLowerCase().includes(query))) {
      hits.push(item);
    }
  });
  out.replaceChildren(...hits.map((item) => el("li", { "data-item": item,
    onclick: () => showItemNeurons(item) }, `${itemTitle(item)} (id ${item})`)));
}

function showItemNeurons(item) {
  const p = point(), rows = p.itemNeurons[item];
  const table = el("table", { id: "item-neuron-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "neuron"), el("th", {}, "activation"),
      el("th", {}, "best concept"), el("th", {}, "AUROC"))),
    el("tbody", {}, ...rows.map(([neuron, act]) => el("tr", { "data-neuron": neuron,
      onclick: () => showNeuron(neuron) },
    el("td", { class: "num" }, neuron), el("td", { class: "num" }, act.toFixed(3)),
    el("td", {}, p.neurons.concept[neuron] || "–"),
    el("td", { class: "num" }, fmt(p.neurons.auroc[neuron], 3))))));
  $("item-neurons").replaceChildren(el("h3", {}, `Neurons firing most on ${itemTitle(item)}`),
    rows.length ? table : el("p", { class: "note" }, "No neuron fires on this item."));
}

function showConceptNeurons() {
  const c = Number($("concept-search").value), p = point();
  const rows = p.conceptNeurons[c] || [];
  $("concept-neurons").replaceChildren(el("table", { id: "concept-neuron-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "neuron"), el("th", {}, "AUROC"),
      el("th", {}, `top-${DATA.alignTopK} precision`), el("th", {}, "top items"))),
    el("tbody", {}, ...rows.map(([neuron, auroc, precision]) => el("tr", {
      "data-neuron": neuron, onclick: () => showNeuron(neuron) },
    el("td", { class: "num" }, neuron), el("td", { class: "num" }, auroc.toFixed(3)),
    el("td", { class: "num" }, precision.toFixed(2)),
    el("td", {}, p.topItems[neuron].slice(0, 3).map(itemTitle).join("; ")))))));
}

// ---- comparison across points ---------------------------------------------------------------

function renderCompare() {
  if (!DATA.itemConcepts.name.length) {
    $("compare-table").replaceChildren(el("p", { class: "note" }, "This dataset has no concepts."));
    return;
  }
  const c = Number($("compare-concept").value);
  const groups = new Map();
  DATA.points.forEach((p, index) => {
    if (!groups.has(p.setting)) groups.set(p.setting, []);
    groups.get(p.setting).push(index);
  });
  const body = el("tbody");
  for (const [setting, indices] of groups) {
    body.append(el("tr", { class: "group" }, el("td", { colspan: 6 }, setting)));
    for (const index of indices) {
      const p = DATA.points[index];
      const [neuron, auroc, precision] = p.conceptNeurons[c][0];
      body.append(el("tr", { onclick: () => { selectPoint(index); showNeuron(neuron); } },
        el("td", {}, p.seed === null ? "–" : `seed ${p.seed}`),
        el("td", { class: "num" }, p.width), el("td", { class: "num" }, neuron),
        el("td", { class: "num" }, auroc.toFixed(3)), el("td", { class: "num" },
          precision.toFixed(2)),
        el("td", {}, p.topItems[neuron].slice(0, 3).map(itemTitle).join("; "))));
    }
  }
  $("compare-table").replaceChildren(el("table", { id: "compare" },
    el("thead", {}, el("tr", {}, el("th", {}, "seed"), el("th", {}, "neurons"),
      el("th", {}, "best neuron"), el("th", {}, "AUROC"),
      el("th", {}, `top-${DATA.alignTopK} precision`), el("th", {}, "its top items"))), body));
}

// ---- page -----------------------------------------------------------------------------------

// DATA.metrics: the summary line's metrics as recsae.metrics declares them (explorer.py)
const DIRECTION = { max: " ↑", min: " ↓" };

function summaryParts(p) {
  const s = p.summary, parts = [el("span", {}, `${p.width} neurons`)];
  for (const m of DATA.metrics) {
    if (s[m.key] === undefined || s[m.key] === null) continue;
    const better = m.goal === "max" ? "higher is better" : m.goal === "min" ? "lower is better" : "";
    const tip = `${m.key}: ${m.definition}${better ? ` (${better})` : ""}`;
    parts.push(" · ", el("span", { title: tip },
      `${m.title}${DIRECTION[m.goal] || ""} ${fmt(s[m.key], 3)}`));
  }
  return parts;
}

function selectPoint(index) {
  state.point = index;
  $("point-select").value = String(index);
  $("point-summary").replaceChildren(...summaryParts(point()));
  const width = point().width;
  if (state.neuron !== null && state.neuron >= width) state.neuron = null;
  renderTable();
  if (state.neuron !== null) showNeuron(state.neuron);
  else $("neuron-view").replaceChildren(el("p", { class: "note" }, "Click a neuron in the table."));
  $("item-neurons").replaceChildren();
  showConceptNeurons();
}

function showTab(name) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active",
    t.dataset.tab === name));
  document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("hidden",
    p.id !== `tab-${name}`));
  if (name === "compare") renderCompare();
}

function init() {
  $("title").textContent = `recsae neuron explorer: ${DATA.dataset} / ${DATA.model}`;
  document.querySelector('#neuron-table th[data-key="precision"]').textContent =
    `top-${DATA.alignTopK} precision`;
  const select = $("point-select");
  DATA.points.forEach((p, index) => select.append(el("option", { value: index }, p.path)));
  select.addEventListener("change", () => selectPoint(Number(select.value)));
  const options = DATA.itemConcepts.name.map((name, c) => el("option", { value: c }, name));
  $("concept-search").append(...options);
  $("compare-concept").append(...options.map((o) => o.cloneNode(true)));
  $("concept-search").addEventListener("change", showConceptNeurons);
  $("compare-concept").addEventListener("change", renderCompare);
  $("neuron-filter").addEventListener("input", renderTable);
  $("hide-dead").addEventListener("change", renderTable);
  $("item-search").addEventListener("input", searchItems);
  document.querySelectorAll("#neuron-table th").forEach((th) => th.addEventListener("click",
    () => {
      state.sortAsc = state.sortKey === th.dataset.key ? !state.sortAsc : th.dataset.key === "id";
      state.sortKey = th.dataset.key;
      renderTable();
    }));
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click",
    () => showTab(t.dataset.tab)));
  if (DATA.points.length) selectPoint(0);
  else $("neuron-view").replaceChildren(el("p", {}, "This pair has no sweep point."));
}

init();
