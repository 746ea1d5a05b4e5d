// RunDetails: draws the `snapshot` trait (runyard/widgets/snapshot.py); a click on a step or child shows
// that run's log (the snapshot holds each child's log tail) and sets `selected` for the kernel.
// plotly.js lives in one shared model per kernel session (runyard/widgets/view.py: PlotlySource); the
// `plotly` trait references it ("IPY_MODEL_<id>"). It is evaluated once per page, then kept on window.
const PLOTLY_KEY = "__runyardPlotly";
const SVG = "http://www.w3.org/2000/svg";

async function plotlySource(model) {
  const ref = model.get("plotly");
  if (!ref) return "";
  const shared = typeof ref === "string" ? await model.widget_manager.get_model(ref.replace(/^IPY_MODEL_/, "")) : ref;
  return (shared && shared.get("plotly_js")) || "";
}

function pagePlotly() {
  if (window[PLOTLY_KEY]) return window[PLOTLY_KEY];
  return window.Plotly && window.Plotly.newPlot ? window.Plotly : null;
}

// Plotly, or null: then charts show each series' last value (no kernel and no saved model, or a page
// that forbids eval, as a strict Content-Security-Policy does)
async function loadPlotly(model) {
  if (pagePlotly()) return pagePlotly();
  let source = "";
  try {
    source = await plotlySource(model);
  } catch (err) {
    console.warn("runyard RunDetails: the plotly.js model is not there", err);
  }
  if (pagePlotly() || !source) return pagePlotly();  // another widget may have loaded it meanwhile
  const module = { exports: {} };
  try {
    // the bundle is UMD: given a `module`, it hands Plotly back instead of looking for AMD's define
    const load = new Function("module", "exports", "define", source + "\n;return module.exports;");
    const plotly = load(module, module.exports, undefined);
    if (plotly && plotly.newPlot) window[PLOTLY_KEY] = plotly;
  } catch (err) {
    console.warn("runyard RunDetails: plotly.js could not be loaded", err);
  }
  return pagePlotly();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function duration(props) {
  if (!props.start_time) return "—";
  let s = Math.max(0, (props.end_time || Date.now() / 1000) - props.start_time);
  if (s < 60) return s < 10 ? s.toFixed(1) + "s" : Math.round(s) + "s";
  const m = Math.floor(s / 60); s = Math.floor(s % 60);
  if (m < 60) return `${m}m ${String(s).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

function badge(word) {
  return el("span", { class: `badge st-${String(word).toLowerCase()}` }, word);
}

function header(data) {
  const p = data.run_properties;
  const dur = el("span", { class: "rd-duration" }, duration(p));
  const head = el("div", { class: "rd-head" },
    el("span", { class: "rd-name" }, p.display_name || p.run_id), badge(data.status),
    el("span", { class: "rd-muted" }, `${p.experiment} · ${p.type}`),
    el("span", { class: "rd-muted" }, "Duration: "), dur,
    el("a", { href: data.workbench_run_details_uri, target: "_blank", rel: "noopener" }, "View run in the studio"));
  return { head, dur };
}

function graphView(data, select, selectedId) {
  const g = data.graph;
  const box = el("div", { class: "graph-box rd-graph" });
  const root = svg("svg", { class: "graph", width: g.width, height: g.height, viewBox: `0 0 ${g.width} ${g.height}`,
    role: "group", "aria-label": "Steps of the pipeline, left to right" });
  const defs = svg("defs");
  const marker = svg("marker", { id: "rd-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z" }));
  defs.append(marker); root.append(defs);
  for (const e of g.edges) {
    root.append(svg("path", { class: "edge", d: e.path, "marker-end": "url(#rd-arrow)" }));
    root.append(svg("text", { class: "edge-label", x: e.label_x, y: e.label_y, "text-anchor": "middle" }, e.label));
  }
  for (const n of g.nodes) {
    const word = n.status;
    const sel = n.run_id && n.run_id === selectedId ? " selected" : "";
    const node = svg("g", { class: `node st-${word.toLowerCase()}${sel}`, "data-step": n.name, tabindex: 0,
      "aria-label": `Step ${n.name}: ${word}` });
    node.append(svg("rect", { x: n.x, y: n.y, width: n.w, height: n.h, rx: 8 }));
    node.append(svg("rect", { class: "bar", x: n.x, y: n.y, width: 6, height: n.h, rx: 3 }));
    const name = n.name.length > 22 ? n.name.slice(0, 21) + "…" : n.name;
    node.append(svg("text", { class: "node-name", x: n.x + 16, y: n.y + 24 }, name));
    node.append(svg("text", { class: "node-status", x: n.x + 16, y: n.y + 44 }, n.detail ? `${word} · ${n.detail}` : word));
    if (n.run_id) node.addEventListener("click", () => select(n.run_id));
    root.append(node);
  }
  box.append(root);
  return box;
}

function table(columns, rows, onRow, selectedId) {
  const t = el("table", { class: "rd-table" });
  t.append(el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", {}, c)))));
  const body = el("tbody");
  for (const r of rows) {
    const tr = el("tr", {}, ...r.cells.map((c) => el("td", {}, c === null || c === undefined ? "—" : String(c))));
    if (onRow) { tr.className = "rd-click" + (r.id === selectedId ? " rd-selected" : ""); tr.addEventListener("click", () => onRow(r.id)); }
    body.append(tr);
  }
  t.append(body);
  return t;
}

function metricsView(data, Plotly) {
  const section = el("section", { class: "rd-metrics" }, el("h4", {}, "Metrics"));
  const charts = el("div", { class: "rd-charts" });
  const values = [];
  const plots = [];
  for (const m of data.run_metrics) {
    if (m.kind === "line") {
      const div = el("div", { class: "rd-chart", "data-metric": m.name });
      charts.append(div);
      plots.push([div, m]);
    } else if (m.kind === "value") {
      values.push({ cells: [m.name, m.value] });
    } else {
      section.append(el("h4", {}, m.name + (m.more_rows ? ` (last ${m.rows.length} rows)` : "")));
      section.append(table(m.columns, m.rows.map((r) => ({ cells: r }))));
    }
  }
  if (plots.length) section.insertBefore(charts, section.children[1] || null);
  if (values.length) section.append(table(["Metric", "Value"], values));
  // plotly measures its div: draw once the section is in the page
  const drawCharts = () => {
    for (const [div, m] of plots) {
      if (!Plotly) { div.textContent = `${m.name}: ${m.series[0].data.slice(-1)[0]}`; continue; }
      Plotly.newPlot(div, [{ x: m.categories, y: m.series[0].data, type: "scatter", mode: "lines+markers", name: m.name }],
        { title: { text: m.name }, height: 240, margin: { l: 50, r: 16, t: 36, b: 36 } },
        { displaylogo: false, responsive: true });
    }
  };
  return data.run_metrics.length ? { section, drawCharts } : null;
}

function logView(data, logs) {
  const whose = data.child_runs.find((c) => c.run_id === logs.run_id);
  const reused = logs.reused_from ? `, reused from run ${logs.reused_from}` : "";
  const title = `Log${whose ? " of " + whose.name : ""}${logs.name ? " (" + logs.name + reused + ")" : ""}`;
  const section = el("section", { class: "rd-logs" }, el("h4", {}, title));
  if (logs.progress) {
    const bar = el("progress", { max: 1, value: logs.progress_fraction ?? 0 });
    section.append(el("div", { class: "rd-progress" }, bar, el("span", { class: "rd-progress-text" }, logs.progress)));
  }
  const pre = el("pre", { class: "rd-log", tabindex: 0 }, logs.text || "(no log yet)");
  section.append(pre);
  requestAnimationFrame(() => { pre.scrollTop = pre.scrollHeight; });
  return section;
}

function render({ model, el: host }) {
  const root = el("div", { class: "runyard-rd" });
  host.append(root);
  let ticker = null;
  let Plotly = pagePlotly();  // until plotly.js is loaded, charts show their last value
  let chosen = null;  // what was clicked: the snapshot carries every child's log, so no kernel round trip
  const select = (runId) => {
    chosen = runId;
    draw();
    model.set("selected", runId);  // the kernel follows too (get_widget_data) when it is free
    model.save_changes();
  };
  const draw = () => {
    const data = model.get("snapshot");
    root.replaceChildren();
    if (ticker) { clearInterval(ticker); ticker = null; }
    if (!data || !data.run_properties) { root.append(el("span", { class: "rd-muted" }, "Loading run details…")); return; }
    const { head, dur } = header(data);
    root.append(head);
    if (data.run_properties.active) ticker = setInterval(() => { dur.textContent = duration(data.run_properties); }, 1000);
    if (data.run_properties.error) root.append(el("div", { class: "rd-error" }, data.run_properties.error));
    const logsByRun = data.logs_by_run || {};
    const selectedId = chosen && logsByRun[chosen] ? chosen : data.run_logs.run_id;
    const logs = logsByRun[selectedId] || data.run_logs;
    if (data.graph && data.graph.nodes) root.append(graphView(data, select, selectedId));
    if (data.child_runs.length) {
      const rows = data.child_runs.map((c) => ({ id: c.run_id, cells: [c.name, c.status, c.duration, c.run_id] }));
      root.append(el("section", {}, el("h4", {}, data.graph && data.graph.nodes ? "Steps" : "Child runs"),
        table(["Name", "Status", "Duration", "Run id"], rows, select, selectedId)));
    }
    const metrics = metricsView(data, Plotly);
    if (metrics) root.append(metrics.section);
    root.append(logView(data, logs));
    if (metrics) metrics.drawCharts();
  };
  draw();
  if (!Plotly) loadPlotly(model).then((p) => { if (p) { Plotly = p; draw(); } });
  model.on("change:snapshot", draw);
  return () => { if (ticker) clearInterval(ticker); model.off("change:snapshot", draw); };
}

export default { render };
