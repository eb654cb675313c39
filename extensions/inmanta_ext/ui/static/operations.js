// The operations table: per extension requests/s, error rate, p50/p99 latency, CPU, memory,
// restarts and last failure, with a chart of requests/s over the last minutes. The server sends
// cumulative counts (GET /api/v2/extension-metrics); rates come from the readings kept here.

/** How far back the chart reaches, and the window rates and percentiles are computed over. */
const HISTORY_MS = 5 * 60 * 1000;
const WINDOW_MS = 10 * 1000;

const history = new Map(); // extension -> [{ t, requests, errors, latency, cpu }]

/** Prometheus's histogram_quantile over cumulative bucket counts (the last one is +Inf). */
export function quantile(q, bounds, cumulative) {
  const total = cumulative.at(-1);
  if (!(total > 0)) return null;
  const rank = q * total;
  const i = cumulative.findIndex((c) => c >= rank);
  if (i >= bounds.length) return bounds.at(-1); // in +Inf: the highest finite bound
  const lower = i === 0 ? 0 : bounds[i - 1];
  const below = i === 0 ? 0 : cumulative[i - 1];
  const inBucket = cumulative[i] - below;
  return inBucket > 0 ? lower + (bounds[i] - lower) * ((rank - below) / inBucket) : bounds[i];
}

const ms = (seconds) =>
  seconds === null
    ? "—"
    : seconds < 0.001
    ? `${(seconds * 1e6).toFixed(0)} µs`
    : `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0)} ms`;
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const percent = (x) => (x === null ? "—" : `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`);

/** Keeps one reading per extension and returns the rates over the last window. */
function observe(e, now) {
  const readings = history.get(e.extension) ?? [];
  history.set(e.extension, readings);
  readings.push({
    t: now,
    requests: e.requests,
    errors: e.errors,
    latency: e.latency,
    cpu: e.sandbox?.cpuSeconds,
  });
  while (readings.length > 2 && readings[0].t < now - HISTORY_MS) readings.shift();
  const last = readings.at(-1);
  const first = readings.find((r) => r.t >= now - WINDOW_MS && r !== last) ??
    readings.at(-2);
  if (!first) return { rate: null, errorRate: null, p50: null, p99: null, cpu: null };
  const seconds = (last.t - first.t) / 1000;
  const requests = last.requests - first.requests;
  const window = last.latency.map((c, i) => c - (first.latency[i] ?? 0));
  return {
    rate: seconds > 0 ? requests / seconds : null,
    errorRate: requests > 0 ? (last.errors - first.errors) / requests : null,
    window,
    cpu: last.cpu !== undefined && first.cpu !== undefined && seconds > 0
      ? (last.cpu - first.cpu) / seconds
      : null,
  };
}

/** Requests per second between consecutive readings, for the chart. */
function series(extension) {
  const readings = history.get(extension) ?? [];
  const points = [];
  for (let i = 1; i < readings.length; i++) {
    const dt = (readings[i].t - readings[i - 1].t) / 1000;
    if (dt > 0) points.push((readings[i].requests - readings[i - 1].requests) / dt);
  }
  return points;
}

/** A small line chart on a canvas: requests/s over the kept history, scaled to its peak. */
function chart(extension) {
  const points = series(extension);
  const canvas = document.createElement("canvas");
  const width = 160, height = 36;
  const scale = globalThis.devicePixelRatio || 1;
  canvas.width = width * scale;
  canvas.height = height * scale;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const peak = Math.max(0, ...points);
  canvas.dataset.points = String(points.length);
  canvas.dataset.peak = peak.toFixed(2);
  canvas.setAttribute("role", "img");
  canvas.setAttribute(
    "aria-label",
    `${extension}: requests per second over the last ${
      Math.max(1, Math.round(HISTORY_MS / 60000))
    } minutes, peak ${peak.toFixed(1)}`,
  );
  const ctx = canvas.getContext("2d");
  ctx.scale(scale, scale);
  ctx.strokeStyle = getComputedStyle(document.body).color;
  ctx.globalAlpha = 0.25;
  ctx.beginPath();
  ctx.moveTo(0, height - 0.5);
  ctx.lineTo(width, height - 0.5);
  ctx.stroke();
  ctx.globalAlpha = 1;
  if (points.length > 1) {
    ctx.strokeStyle = "#2f6fb3";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((p, i) => {
      const x = (i / (points.length - 1)) * (width - 2) + 1;
      const y = height - 2 - (peak > 0 ? (p / peak) * (height - 4) : 0);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
  return canvas;
}

/**
 * Redraws the operations table from one reading of `/api/v2/extension-metrics`.
 * `el(tag, props, ...children)` builds DOM nodes (text only, never markup).
 */
export function renderOperations(summary, el, now = Date.now()) {
  const { buckets, process } = summary;
  const rows = summary.extensions.map((e) => {
    const rates = observe(e, now);
    const p50 = rates.window ? quantile(0.5, buckets, rates.window) : null;
    const p99 = rates.window ? quantile(0.99, buckets, rates.window) : null;
    const s = e.sandbox;
    const tr = el(
      "tr",
      {},
      el("th", { scope: "row" }, e.extension),
      el("td", { class: "num rate" }, rates.rate === null ? "—" : rates.rate.toFixed(1)),
      el("td", { class: "num errors" }, percent(rates.errorRate)),
      el("td", { class: "num p50" }, ms(p50)),
      el("td", { class: "num p99" }, ms(p99)),
      el("td", { class: "num cpu" }, s ? percent(rates.cpu) : "in server"),
      el(
        "td",
        { class: "num memory" },
        s ? `${mib(s.rssBytes)} (heap ${mib(s.heapUsedBytes)})` : "in server",
      ),
      // A sandbox that is not serving says so beside its count: restarting, failed, starting.
      el(
        "td",
        { class: "num restarts" },
        s ? (s.state === "running" ? String(s.restarts) : `${s.restarts} (${s.state})`) : "—",
      ),
      el(
        "td",
        { class: "last-failure" },
        s?.lastFailure ?? (e.status === "failed" ? "failed" : "—"),
      ),
      el("td", { class: "chart" }, chart(e.extension)),
    );
    tr.dataset.extension = e.extension;
    return tr;
  });
  document.querySelector("#operations tbody").replaceChildren(...rows);
  const server = observe(
    {
      extension: "\0process",
      requests: 0,
      errors: 0,
      latency: [0],
      sandbox: { cpuSeconds: process.cpuSeconds },
    },
    now,
  );
  document.querySelector("#process").textContent = `Server process: CPU ${
    percent(server.cpu)
  } of a core, resident memory ${mib(process.rssBytes)}, heap ${mib(process.heapUsedBytes)}.`;
}
