// runyard studio: live regions, charts and log tails. Plain browser JavaScript, no build step.
"use strict";

const ERROR_LINE = /(error|exception)\b|\b(traceback|failed|fatal|killed)\b/i;

// -- live regions: re-render the page's [data-live-region] parts when the server says something changed
function startLive() {
  const url = document.body.dataset.liveUrl;
  const dot = document.getElementById("live-dot");
  if (dot) dot.hidden = !url;  // pages that do not change (compare, clone) show no live marker
  if (!url || !window.EventSource) return;
  // One stream per page (browsers allow six connections per host): changes, plus the open log's lines
  const pre = document.getElementById("log");
  const params = pre ? `&${new URLSearchParams({ log_run: pre.dataset.logRun, log: pre.dataset.logPath })}` : "";
  const source = new EventSource(url + (url.includes("?") ? params : params.replace("&", "?")));
  window.addEventListener("pagehide", () => source.close());
  if (pre) followLog(source, pre);
  let pending = null;
  source.addEventListener("open", () => dot && dot.classList.add("on"));
  source.addEventListener("error", () => dot && dot.classList.remove("on"));
  source.addEventListener("signed-out", () => { source.close(); location.reload(); });  // to the sign-in page
  const refreshSoon = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refreshRegions(); refreshCharts(); }, 250);
  };
  source.addEventListener("change", refreshSoon);
  // "ready" comes once the stream holds its baselines (and again after each reconnect): one refresh
  // catches what changed between the page's render and then
  source.addEventListener("ready", refreshSoon);
}

async function refreshRegions() {
  const response = await fetch(location.href);
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  const checked = new Set([...document.querySelectorAll("input[name=run]:checked")].map((box) => box.value));
  document.querySelectorAll("[data-live-region][id]").forEach((region) => {
    const replacement = fresh.getElementById(region.id);
    if (replacement && replacement.innerHTML !== region.innerHTML) region.innerHTML = replacement.innerHTML;
  });
  document.querySelectorAll("input[name=run]").forEach((box) => { box.checked = checked.has(box.value); });
}

// -- charts: one line per run, data downsampled by the server (extremes kept)
// plotly reads a few HTML-like tags in names and hover text, so user text goes in as entities
const plain = (text) => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

async function drawChart(el) {
  if (!window.Plotly) return;
  const params = new URLSearchParams({ name: el.dataset.metric, points: "2000" });
  JSON.parse(el.dataset.runs).forEach((run) => params.append("run", run));
  const response = await fetch(`/studio/api/metrics?${params}`);
  if (!response.ok) { el.textContent = "Could not load this chart."; return; }
  const body = await response.json();
  const many = body.series.length > 1;
  const traces = body.series.map((s) => ({
    x: s.x, y: s.y, name: plain(many ? s.label : body.name), type: "scattergl", mode: s.x.length > 200 ? "lines" : "lines+markers",
    hovertemplate: `${plain(s.label)}<br>step %{x}<br>${plain(body.name)} %{y}<extra></extra>`,
  }));
  const note = body.series.filter((s) => s.downsampled).map((s) => `${plain(s.label)}: ${s.count.toLocaleString()} values, extremes kept`);
  el.dataset.points = body.series.map((s) => s.x.length).join(",");
  window.Plotly.react(el, traces, {
    margin: { l: 50, r: 10, t: 10, b: 40 }, height: 260, showlegend: many, uirevision: "keep",  // keep zoom on refresh
    legend: { orientation: "h" }, xaxis: { title: { text: "step" } },
    annotations: note.length ? [{ text: note.join("; "), xref: "paper", yref: "paper", x: 0, y: 1.08, showarrow: false, font: { size: 10 } }] : [],
  }, { displaylogo: false, responsive: true });
}

function refreshCharts() { document.querySelectorAll("[data-chart]").forEach(drawChart); }

// -- log viewer: the file's tail, then each appended line, live until the run ends
function followLog(source, pre) {
  const state = document.getElementById("log-state");
  const follow = document.getElementById("follow");
  let partial = "";
  const clear = () => { pre.textContent = ""; partial = ""; };
  const append = (text) => {
    const lines = (partial + text).split("\n");
    partial = lines.pop();
    const fragment = document.createDocumentFragment();
    for (const line of lines) {
      const span = document.createElement("span");
      span.className = ERROR_LINE.test(line) ? "line err" : "line";
      span.textContent = line + "\n";
      fragment.appendChild(span);
    }
    pre.appendChild(fragment);
    if (follow && follow.checked) pre.scrollTop = pre.scrollHeight;
  };
  source.addEventListener("start", (event) => {
    clear();  // a reconnect starts over from the file's tail
    const info = JSON.parse(event.data);
    if (info.skipped > 0) {
      const note = document.createElement("span");
      note.className = "line skipped";
      note.textContent = `… ${info.skipped.toLocaleString()} earlier bytes not shown: use Download for the whole file\n`;
      pre.appendChild(note);
    }
    if (state) state.textContent = "live";
  });
  source.addEventListener("append", (event) => append(JSON.parse(event.data).text));
  source.addEventListener("reset", clear);  // the file was rewritten from its start
  source.addEventListener("end", () => {
    if (partial) append("\n");
    if (state) state.textContent = "run ended";
  });
}

// -- MLflow's run links: an MLflow client against this server prints http://HOST/#/experiments/<id>/runs/<id>
// (its own UI's routes, in the fragment, which the browser never sends): follow them to the studio's pages.
function followMlflowLink() {
  const found = /^#\/experiments\/([^/?#]+)(?:\/runs\/([^/?#]+))?/.exec(location.hash);
  if (!found) return false;
  const id = (part) => {
    try { return encodeURIComponent(decodeURIComponent(part)); } catch { return encodeURIComponent(part); }
  };
  location.replace(found[2] ? `/runs/${id(found[2])}` : `/experiment-ids/${id(found[1])}`);
  return true;
}

document.addEventListener("DOMContentLoaded", () => {
  if (followMlflowLink()) return;
  startLive();
  if (window.Plotly) refreshCharts();
  else window.addEventListener("load", refreshCharts);
});
