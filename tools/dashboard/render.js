// SPDX-License-Identifier: Apache-2.0
// tools/render-dashboard's page: draws the panels it queried where their gridPos says,
// in Grafana's layout (24 columns, 30 px rows, 8 px gaps) and dark colours, with uPlot.
"use strict";

const D = JSON.parse(document.getElementById("data").textContent);
const WIDTH = document.body.clientWidth || parseInt(document.body.style.width, 10);
const CELL_H = 30, MARGIN = 8, PAD = 8, HEADER_H = 86;
const COL_W = (WIDTH - 2 * PAD - 23 * MARGIN) / 24;
const FONT = '11px "DejaVu Sans", sans-serif';
// Grafana's palette-classic and named colours
const PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
  "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477"];
const NAMED = { green: "#73BF69", red: "#F2495C", yellow: "#FADE2A", orange: "#FF9830", blue: "#5794F2",
  purple: "#B877D9", "dark-red": "#C4162A", "text": "#ccccdc" };
const color = c => NAMED[c] || c;

const root = document.getElementById("dashboard");
const measure = document.createElement("canvas").getContext("2d");
measure.font = FONT;

function el(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

// ---- units, as Grafana writes them
function trim(s) { return s.indexOf(".") >= 0 ? s.replace(/\.?0+$/, "") : s; }
function fixed(v, decimals) {
  if (decimals != null) return v.toFixed(decimals);
  const a = Math.abs(v);
  return trim(v.toFixed(a === 0 ? 0 : a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3));
}
function scaled(v, base, units, decimals) {
  let i = 0;
  while (Math.abs(v) >= base && i < units.length - 1) { v /= base; i++; }
  return fixed(v, decimals) + units[i];
}
function fmt(unit, v, decimals) {
  if (v == null || isNaN(v)) return "–";
  switch (unit) {
    case "bytes": return scaled(v, 1024, [" B", " KiB", " MiB", " GiB", " TiB", " PiB"], decimals);
    case "percentunit": return fixed(v * 100, decimals) + "%";
    case "percent": return fixed(v, decimals) + "%";
    case "s":
      if (v === 0) return "0 s";
      if (Math.abs(v) < 1e-3) return fixed(v * 1e6, decimals) + " µs";
      if (Math.abs(v) < 1) return fixed(v * 1e3, decimals) + " ms";
      return fixed(v, decimals) + " s";
    case "ops": return scaled(v, 1000, [" ops/s", "K ops/s", "M ops/s"], decimals);
    case "reqps": return scaled(v, 1000, [" req/s", "K req/s", "M req/s"], decimals);
    default: return scaled(v, 1000, ["", " K", " Mil", " Bil"], decimals);
  }
}
const BYTE_INCRS = [];
for (const u of [1, 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4])
  for (const m of [1, 2, 4, 5, 8, 10, 16, 20, 32, 50, 64, 100, 128, 256, 512]) BYTE_INCRS.push(m * u);
const INT_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 1e4, 2e4, 5e4, 1e5];

function props(panel, s) {
  const d = (panel.fieldConfig && panel.fieldConfig.defaults) || {};
  const custom = Object.assign({}, d.custom || {});
  const o = s.props || {};
  const out = { custom, color: d.color, mappings: d.mappings || [], thresholds: d.thresholds, unit: d.unit,
    decimals: d.decimals };
  for (const k in o) {
    if (k.startsWith("custom.")) custom[k.slice(7)] = o[k];
    else out[k] = o[k];
  }
  return out;
}

function thresholdColor(th, v) {
  let c = "#73BF69";
  for (const st of (th && th.steps) || []) if (st.value == null || (v != null && v >= st.value)) c = color(st.color);
  return c;
}

function mapValue(mappings, v) {
  for (const m of mappings || [])
    if (m.type === "value" && v != null && m.options[String(v)] != null) return m.options[String(v)];
  return null;
}

function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16 & 255},${n >> 8 & 255},${n & 255},${a})`;
}

// ---- the frame: title, variables, time range
function header() {
  const h = el("div", "header", root);
  const crumbs = el("div", "crumbs", h);
  el("span", "dim", crumbs, "Dashboards › ");
  el("span", "", crumbs, D.title);
  if (D.note) el("span", "note", crumbs, D.note);
  const vars = el("div", "vars", h);
  const v = (k, val, cls) => {
    const b = el("div", "var" + (cls ? " " + cls : ""), vars);
    el("span", "k", b, k);
    el("span", "v", b, val);
  };
  v("Data source", "Prometheus");
  for (const [k, val] of D.variables) v(k, val);
  const t = s => new Date(s * 1000).toISOString().replace("T", " ").slice(0, 19);
  v("Time (UTC)", `${t(D.from)} to ${t(D.to).slice(11)}`, "time");
}

function box(gp) {
  return { left: PAD + gp.x * (COL_W + MARGIN), top: HEADER_H + gp.y * (CELL_H + MARGIN),
    width: gp.w * COL_W + (gp.w - 1) * MARGIN, height: gp.h * CELL_H + (gp.h - 1) * MARGIN };
}

function panelFrame(p) {
  const b = box(p.gridPos);
  const e = el("div", "panel", root);
  Object.assign(e.style, { left: b.left + "px", top: b.top + "px", width: b.width + "px", height: b.height + "px" });
  el("div", "title", e, p.title);
  return el("div", "body", e);
}

// Grafana's time axis: 15:04:05, or 15:04 over more than 15 minutes (the page runs in UTC)
const timeLabel = uPlot.fmtDate(D.to - D.from > 900 ? "{HH}:{mm}" : "{HH}:{mm}:{ss}");
function timeLabelOf(v) { return timeLabel(new Date(v * 1000)); }

function axisSize(u, values) {
  if (!values) return 40;
  return Math.ceil(Math.max(...values.map(v => measure.measureText(v).width))) + 16;
}

function timeSeries(p) {
  const body = panelFrame(p);
  const d = p.fieldConfig.defaults || {};
  const unit = d.unit || "short";
  if (!p.series.length) { el("div", "nodata", body, "No data"); return; }
  const legend = el("div", "legend");
  const stacked = d.custom && d.custom.stacking && d.custom.stacking.mode === "normal";
  const data = [p.times];
  const series = [{}];
  const accum = p.times.map(() => 0);
  const any = p.times.map((t, j) => p.series.some(s => s.values[j] != null));
  p.series.forEach((s, i) => {
    const pr = props(p, s);
    const c = pr.color && pr.color.mode === "fixed" ? color(pr.color.fixedColor) : PALETTE[i % PALETTE.length];
    const dash = pr.custom.lineStyle && pr.custom.lineStyle.fill === "dash" ? pr.custom.lineStyle.dash || [10, 10] : null;
    const fillOpacity = pr.custom.fillOpacity != null ? pr.custom.fillOpacity : 0;
    let values = s.values;
    // stacked: a missing point adds nothing (the line runs along the one below), where
    // another series has one
    if (stacked) values = values.map((v, j) => any[j] ? (accum[j] += v == null ? 0 : v) : null);
    data.push(values);
    series.push({ label: s.name, stroke: c, width: pr.custom.lineWidth != null ? pr.custom.lineWidth : 1,
      dash: dash || undefined, fill: fillOpacity > 0 ? alpha(c, fillOpacity / 100) : undefined,
      points: { show: false }, spanGaps: false });
    const item = el("span", "item", legend);
    const sw = el("span", "swatch" + (dash ? " dash" : ""), item);
    sw.style.borderTopColor = c;
    el("span", "", item, s.name);
  });
  const bands = [];
  if (stacked) for (let i = 2; i < series.length; i++) bands.push({ series: [i, i - 1] });
  body.appendChild(legend);
  const chart = el("div", "");
  body.insertBefore(chart, legend);
  const height = body.clientHeight - legend.offsetHeight;
  const min = d.min, max = d.max;
  const axis = { stroke: "#ccccdc", font: FONT, grid: { stroke: "rgba(204,204,220,0.08)", width: 1 },
    ticks: { show: false } };
  new uPlot({
    width: body.clientWidth, height, legend: { show: false }, cursor: { show: false }, select: { show: false },
    bands,
    scales: {
      x: { time: true },
      y: {
        range: (u, lo, hi) => {
          if (lo == null) { lo = 0; hi = 1; }
          if (min != null) lo = Math.min(min, lo);
          if (max != null) hi = max;
          if (hi <= lo) hi = lo + (lo === 0 ? 1 : Math.abs(lo));
          const r = uPlot.rangeNum(lo, hi, 0.1, true);
          return [min != null ? min : r[0], max != null ? max : r[1]];
        },
      },
    },
    axes: [
      // no label at the left edge, where it would run into the y axis' lowest one
      Object.assign({}, axis, { space: 70,
        values: (u, splits) => splits.map(v => u.valToPos(v, "x") < 28 ? null : timeLabelOf(v)) }),
      Object.assign({}, axis, { size: axisSize, space: 26,
        incrs: unit === "bytes" ? BYTE_INCRS : unit === "short" ? INT_INCRS : undefined,
        values: (u, splits) => splits.map(v => fmt(unit, v, null)) }),
    ],
    series,
  }, data, chart);
}

function stat(p) {
  const body = panelFrame(p);
  const d = p.fieldConfig.defaults || {};
  const s = p.series[0];
  let last = null;
  if (s) for (const v of s.values) if (v != null) last = v;
  const c = thresholdColor(d.thresholds, last);
  const box_ = el("div", "stat", body);
  const m = mapValue(d.mappings, last);
  const v = el("div", "value", box_, m ? m.text : fmt(d.unit || "short", last, d.decimals));
  const H = body.clientHeight;
  v.style.fontSize = Math.round(Math.min(H * 0.42, body.clientWidth / 5)) + "px";
  v.style.lineHeight = Math.round(H * 0.62) + "px";
  v.style.color = c;
  if (s && (p.options.graphMode || "area") === "area") {
    const spark = el("div", "spark", box_);
    new uPlot({
      width: body.clientWidth + 16, height: Math.round(H * 0.55), legend: { show: false },
      cursor: { show: false }, select: { show: false },
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [Math.min(0, lo == null ? 0 : lo), (hi == null || hi <= 0 ? 1 : hi) * 1.1] } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: c, width: 1, fill: alpha(c, 0.18), points: { show: false } }],
    }, [p.times, s.values], spark);
  }
}

function table(p) {
  const body = panelFrame(p);
  const d = p.fieldConfig.defaults || {};
  if (!p.rows.length) { el("div", "nodata", body, "No data"); return; }
  const t = el("table", "grid", body);
  const hr = el("tr", "", el("thead", "", t));
  for (const c of p.columns) el("th", "", hr, c.name);
  const tb = el("tbody", "", t);
  for (const row of p.rows) {
    const tr = el("tr", "", tb);
    row.forEach((v, i) => {
      const pr = props(p, p.columns[i]);
      const m = mapValue(pr.mappings, v);
      const td = el("td", "", tr, m ? m.text : typeof v === "number" ? fmt(pr.unit || "short", v, pr.decimals) : v);
      const cell = pr.custom.cellOptions || {};
      if (m && m.color && cell.type === "color-text") td.style.color = color(m.color);
      if (m && m.color && cell.type === "color-background") td.style.background = alpha(color(m.color), 0.6);
    });
  }
}

function row(p) {
  const b = box(p.gridPos);
  const e = el("div", "row", root, p.title);
  Object.assign(e.style, { left: b.left + "px", top: b.top + "px", width: b.width + "px" });
}

header();
for (const p of D.panels) {
  if (p.type === "row") row(p);
  else if (p.type === "timeseries") timeSeries(p);
  else if (p.type === "stat") stat(p);
  else if (p.type === "table") table(p);
  else el("div", "nodata", panelFrame(p), "panel type " + p.type + " is not drawn by this renderer");
}
const bottom = Math.max(...D.panels.map(p => { const b = box(p.gridPos); return b.top + b.height; }));
root.style.height = bottom + PAD + "px";
