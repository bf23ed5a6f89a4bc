// Fleet dashboard: plain JavaScript and SVG, no dependencies, served by the service itself.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const state = { models: [], result: null, selected: null, horizon: null, risk: null, drivers: null };
// Horizons the trajectory view shades the RUL's distribution with: the probability mass in
// each band between two of them (the last ends at the models' RUL cap).
const SHADE_HORIZONS = [10, 20, 30, 40, 50, 60, 80, 100, 125];

function headers() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

// The API's own words: FastAPI's {"detail": ...} (string or validation list) or {"error": ...}.
async function apiError(response) {
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  let message = body && (body.detail ?? body.error);
  if (Array.isArray(message)) message = message.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("\n");
  return `${response.status} ${response.statusText}: ${message || "no details"}`;
}

function showError(text) { $("error").textContent = text; $("error").hidden = !text; }
function status(text) { $("status").textContent = text; }

async function loadModels() {
  showError("");
  const response = await fetch("/v1/models", { headers: headers() });
  if (response.status === 401 || response.status === 403) {
    $("key-field").hidden = false;
    showError(await apiError(response));
    return;
  }
  if (!response.ok) { showError(await apiError(response)); return; }
  const body = await response.json();
  state.models = body.models;
  const select = $("model");
  select.replaceChildren(...body.models.map((m) => new Option(`${m.name} (${m.version})`, m.name)));
  if (body.default_model) select.value = body.default_model;
  // the service's defaults (RUL_DEFAULT_HORIZONS, RUL_DEFAULT_RISK) until the user picks others
  if (!$("horizon").value) $("horizon").value = body.default_horizons[0];
  if (!$("risk").value) $("risk").value = body.default_risk;
  describeModel();
}

function describeModel() {
  const model = state.models.find((m) => m.name === $("model").value);
  $("model-info").textContent = model
    ? `version ${model.version} · trained on ${(model.subsets || []).join(", ")} · window ${model.window_length} cycles · running on ${model.execution_provider}`
    : "";
  if (!model || !model.input_features) return;
  // the columns this model's fleet files need: its own names (its data set's), in any order
  const dataset = model.dataset || {}, features = model.input_features;
  const cmapss = features.length === 24 && features[0] === "setting_1" && features[23] === "s_21";
  $("file-hint").textContent = (cmapss ? "26 columns per line: unit, cycle, 3 settings, 21 sensors; or a " : "A ")
    + `CSV with a header naming ${dataset.unit || "unit"}, ${dataset.cycle || "cycle"} and the model's `
    + `${features.length} features (${features.join(", ")}), in any order; other columns are ignored. `
    + "Gzip is fine; Parquet with the same columns too.";
}

async function score(event) {
  event.preventDefault();
  showError("");
  const file = $("file").files[0];
  if (!file) { showError("Choose a fleet file first."); return; }
  const model = $("model").value;
  const horizon = Number($("horizon").value), risk = Number($("risk").value);
  const form = new FormData();
  form.append("file", file);
  // the horizon asked, and those the trajectory's shading needs (the service refuses repeats)
  const horizons = [...new Set([horizon, ...SHADE_HORIZONS])];
  const query = new URLSearchParams([["all_cycles", "true"], ["risk", String(risk)],
    ...horizons.map((h) => ["horizons", String(h)])]);
  $("score").disabled = true;
  status(`Scoring ${file.name} with ${model}…`);
  try {
    const response = await fetch(`/v1/models/${encodeURIComponent(model)}/score?${query}`,
      { method: "POST", body: form, headers: headers() });
    if (!response.ok) {
      if (response.status === 401 || response.status === 403) $("key-field").hidden = false;
      showError(await apiError(response));
      status("");
      return;
    }
    state.result = await response.json();
    state.horizon = horizon;
    state.risk = risk;
    state.drivers = explainFleet(model, file);
    render();
    status(`Scored ${state.result.units} units with ${state.result.model} ${state.result.model_version}.`);
  } catch (err) {
    showError(`The service could not be reached: ${err}`);
    status("");
  } finally {
    $("score").disabled = false;
  }
}

// P(RUL <= the horizon picked) of an answer, from its failure_probabilities.
function failureProbability(p, horizon = state.horizon) {
  const entry = p.failure_probabilities.find((f) => f.within_cycles === horizon);
  return entry ? entry.probability : NaN;
}

// Most likely to fail within the horizon first; then the lowest RUL.
function sortedPredictions() {
  return [...state.result.predictions].sort((a, b) =>
    failureProbability(b) - failureProbability(a) || a.rul - b.rul || a.unit - b.unit);
}

function render() {
  const rows = sortedPredictions();
  const skipped = state.result.skipped.length ? `, ${state.result.skipped.length} skipped (see the API answer for why)` : "";
  $("fleet-summary").textContent = `— ${rows.length} units${skipped}`;
  const counts = { normal: 0, degrading: 0, critical: 0 };
  rows.forEach((p) => { counts[p.health_state] = (counts[p.health_state] || 0) + 1; });
  $("fleet-summary").textContent += ` · ${counts.critical} critical, ${counts.degrading} degrading, ${counts.normal} normal`;
  const warned = rows.filter((p) => p.quality.status !== "ok").length;
  if (warned) $("fleet-summary").textContent += ` · ⚠ ${warned} with input warnings`;
  $("p-fail-head").textContent = `P(fail ≤ ${state.horizon} cycles)`;
  $("at-risk-head").textContent = `RUL at risk ${state.risk}`;
  $("units-caption").textContent = `Units sorted by the probability of failing within ${state.horizon} cycles, ` +
    "then by predicted RUL. Select a row (Enter or click) to see its trajectory.";
  const tbody = $("units").tBodies[0];
  tbody.replaceChildren(...rows.map(row));
  drawBars(rows);
  $("fleet").hidden = false;
  $("trajectory").hidden = true;
}

function cell(text, html) {
  const td = document.createElement("td");
  if (html) td.append(html); else td.textContent = text;
  return td;
}

function row(p) {
  const tr = document.createElement("tr");
  tr.tabIndex = 0;
  tr.dataset.unit = p.unit;
  tr.setAttribute("aria-selected", "false");
  const badge = document.createElement("span");
  badge.className = `badge ${p.health_state}`;
  badge.textContent = p.health_state;
  const probs = p.health_probabilities;
  tr.append(cell(String(p.unit)), cell(String(p.cycle)), cell(failureProbability(p).toFixed(3)),
    cell(p.rul.toFixed(1)), cell(intervalText(p)), cell(p.rul_at_risk.rul.toFixed(1)), cell("", badge),
    cell(probs.normal.toFixed(3)), cell(probs.degrading.toFixed(3)), cell(probs.critical.toFixed(3)),
    cell("", qualityCell(p.quality)));
  const open = () => showTrajectory(p.unit, tr);
  tr.addEventListener("click", open);
  tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
  return tr;
}

// rul_upper null: the model cannot bound the RUL from above (near its training cap).
function intervalText(p) {
  if (p.rul_lower === null) return "–";
  return p.rul_upper === null ? `≥ ${p.rul_lower.toFixed(1)}` : `${p.rul_lower.toFixed(1)} – ${p.rul_upper.toFixed(1)}`;
}

// A warning badge and the flagged columns; each flag's sentence in the tooltip.
function qualityCell(quality) {
  const wrap = document.createElement("span");
  const badge = document.createElement("span");
  badge.className = `badge quality ${quality.status}`;
  badge.textContent = quality.status === "ok" ? "ok" : `⚠ ${quality.status.replaceAll("_", " ")}`;
  wrap.append(badge);
  if (quality.flags.length) {
    const columns = document.createElement("span");
    columns.className = "flagged";
    // a whole window's flag (column null) is shown by its check: short_history, direction, ...
    columns.textContent = ` ${quality.flags.map((f) => f.column ?? f.check.replaceAll("_", " ")).join(", ")}`;
    wrap.append(columns);
  }
  wrap.title = quality.flags.map((f) => `${f.column ?? "window"}: ${f.problem}`).join("\n") || `ood_score ${quality.ood_score}`;
  return wrap;
}

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawBars(rows) {
  const svg = $("bars");
  const width = svg.clientWidth || 1000, height = 260, left = 40, bottom = 20;
  const max = Math.max(130, ...rows.map((p) => p.rul));
  const step = (width - left) / Math.max(rows.length, 1);
  const y = (v) => height - bottom - (v / max) * (height - bottom - 10);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const nodes = [el("line", { class: "axis", x1: left, x2: width, y1: y(0), y2: y(0) })];
  [0, 30, 80, 125].forEach((v) => nodes.push(el("text", { x: 4, y: y(v) + 4 }, String(v))));
  rows.forEach((p, i) => {
    const bar = el("rect", { class: `bar ${p.health_state}`, x: left + i * step + step * 0.1,
      y: y(p.rul), width: Math.max(step * 0.8, 1), height: Math.max(y(0) - y(p.rul), 0.5) });
    bar.append(el("title", {}, `unit ${p.unit}: ${p.rul.toFixed(1)} cycles (${p.health_state})`));
    nodes.push(bar);
  });
  svg.replaceChildren(...nodes);
}

// Each unit's drivers at its last cycle: a second score of the same file with explain=true
// (the service refuses explain with all_cycles: it would rerun the model per sensor and cycle).
async function explainFleet(model, file) {
  const form = new FormData();
  form.append("file", file);
  const response = await fetch(`/v1/models/${encodeURIComponent(model)}/score?explain=true`,
    { method: "POST", body: form, headers: headers() });
  if (!response.ok) return { error: await apiError(response) };
  const byUnit = new Map();
  for (const p of (await response.json()).predictions) byUnit.set(p.unit, p);
  return { byUnit };
}

function item(text) {
  const node = document.createElement("li");
  node.textContent = text;
  return node;
}

async function showDrivers(unit) {
  const list = $("drivers");
  list.replaceChildren(item("Asking the service…"));
  const explained = await state.drivers;
  if (!explained) { list.replaceChildren(); return; }
  if (explained.error) { list.replaceChildren(item(`No drivers: ${explained.error}`)); return; }
  const p = explained.byUnit.get(unit);
  const items = (p?.drivers || []).map((d) => item(
    `${d.column}: ${d.effect > 0 ? "+" : ""}${d.effect.toFixed(1)} cycles (reads ${d.reads} against its estimate)`));
  if (p?.drivers_note) items.push(item(`Note: ${p.drivers_note}`));
  list.replaceChildren(...items);
}

function showTrajectory(unit, tr) {
  document.querySelectorAll("#units tbody tr").forEach((r) => r.setAttribute("aria-selected", "false"));
  tr.setAttribute("aria-selected", "true");
  const trajectory = (state.result.trajectories || []).find((t) => t.unit === unit);
  $("trajectory-title").textContent = `Unit ${unit}: predicted RUL over cycles`;
  $("trajectory").hidden = false;
  showDrivers(unit);
  if (!trajectory) { $("trajectory-chart").replaceChildren(); return; }
  drawTrajectory(trajectory.points);
  $("trajectory").scrollIntoView({ block: "nearest" });
}

function drawTrajectory(points) {
  const svg = $("trajectory-chart");
  const width = svg.clientWidth || 1000, height = 260, left = 40, bottom = 24;
  const cycles = points.map((p) => p.cycle);
  const x0 = Math.min(...cycles), x1 = Math.max(...cycles, x0 + 1);
  const max = Math.max(130, ...points.map((p) => p.rul_upper ?? p.rul));
  const top = (p) => (p.rul_upper === null ? max : p.rul_upper); // open above: to the top of the chart
  const x = (c) => left + ((c - x0) / (x1 - x0)) * (width - left - 10);
  const y = (v) => height - bottom - (v / max) * (height - bottom - 10);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const nodes = [
    el("rect", { class: "band critical", x: left, y: y(30), width: width - left - 10, height: y(0) - y(30) }),
    el("rect", { class: "band degrading", x: left, y: y(80), width: width - left - 10, height: y(30) - y(80) }),
  ];
  if (points[0].rul_lower !== null) {
    const upper = points.map((p) => `${x(p.cycle)},${y(top(p))}`);
    const lower = [...points].reverse().map((p) => `${x(p.cycle)},${y(p.rul_lower)}`);
    nodes.push(el("polygon", { class: "band interval", points: [...upper, ...lower].join(" ") }));
  }
  nodes.push(...distributionShading(points, x, y));
  nodes.push(el("polyline", { class: "line", points: points.map((p) => `${x(p.cycle)},${y(p.rul)}`).join(" ") }));
  nodes.push(el("line", { class: "axis", x1: left, x2: width - 10, y1: y(0), y2: y(0) }));
  [0, 30, 80, 125].forEach((v) => nodes.push(el("text", { x: 4, y: y(v) + 4 }, String(v))));
  nodes.push(el("text", { x: left, y: height - 6 }, `cycle ${x0}`));
  nodes.push(el("text", { x: width - 80, y: height - 6 }, `cycle ${x1}`));
  svg.replaceChildren(...nodes);
}

// The RUL's distribution at every cycle: one rect per cycle and band between two shading
// horizons, as opaque as the probability that the RUL lies in the band.
function distributionShading(points, x, y) {
  const nodes = [];
  const step = points.length > 1 ? x(points[1].cycle) - x(points[0].cycle) : 4;
  points.forEach((p) => {
    let below = 0, from = 0;
    SHADE_HORIZONS.forEach((h) => {
      const upTo = failureProbability(p, h);
      const mass = upTo - below;
      if (mass > 0.01) {
        nodes.push(el("rect", { class: "mass", x: x(p.cycle) - step / 2, y: y(h), width: Math.max(step, 1),
          height: y(from) - y(h), "fill-opacity": Math.min(mass * 1.5, 0.9).toFixed(3) }));
      }
      below = upTo; from = h;
    });
  });
  return nodes;
}

document.addEventListener("DOMContentLoaded", () => {
  $("score-form").addEventListener("submit", score);
  $("model").addEventListener("change", describeModel);
  $("api-key").addEventListener("change", loadModels);
  loadModels().catch((err) => showError(`The service could not be reached: ${err}`));
});
