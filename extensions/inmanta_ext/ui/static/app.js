// The console: reads the public API only and redraws every two seconds (`?refresh=MS` sets
// another period). DOM text is always set with textContent, so names and failure reasons can
// never inject markup.
import { renderOperations } from "./operations.js";

const $ = (selector) => document.querySelector(selector);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("aria-") || key === "for" || key === "scope") {
      node.setAttribute(key, value);
    } else node[key] = value;
  }
  for (const child of children) node.append(child ?? "");
  return node;
}

const TOKEN_KEY = "inmanta-console-token";

async function getJson(url) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const response = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const body = await response.json().catch(() => ({}));
  return { status: response.status, body };
}

function statusCell(status, failure) {
  const cell = el("td", { class: `status status-${status}` }, status);
  if (failure) cell.append(el("span", { class: "failure" }, failure));
  return cell;
}

function fillTable(selector, rows) {
  const body = $(`${selector} tbody`);
  body.replaceChildren(...rows.map((cells) => el("tr", {}, ...cells)));
}

function renderExtensions(extensions) {
  fillTable(
    "#extensions",
    extensions.map((e) => [
      el("th", { scope: "row" }, e.name),
      el("td", {}, e.version),
      el("td", { class: "schema" }, e.schema_version ?? "—"),
      el("td", {}, el("code", {}, e.source)),
      el("td", {}, e.isolation),
      el("td", {}, el("code", {}, e.permissions)),
      statusCell(e.status, e.reason),
    ]),
  );
}

/** What a slice's getStatus() returned, as `key: value` lines. */
function sliceStatusCell(status) {
  const entries = Object.entries(status ?? {});
  if (entries.length === 0) return el("td", { class: "slice-status" }, "—");
  const list = el("dl", { class: "slice-status" });
  for (const [key, value] of entries) {
    list.append(
      el("dt", {}, key),
      el("dd", {}, typeof value === "string" ? value : JSON.stringify(value)),
    );
  }
  return el("td", {}, list);
}

function renderSlices(slices) {
  fillTable(
    "#slices",
    slices.map((s) => [
      el("th", { scope: "row" }, s.name),
      statusCell(s.state, s.reason),
      sliceStatusCell(s.status),
      el("td", {}, s.dependencies.join(", ") || "—"),
    ]),
  );
  drawGraph(slices);
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Layered drawing: a slice's column is one more than the deepest slice it must start after. */
function drawGraph(slices) {
  const names = new Set(slices.map((s) => s.name));
  const before = new Map(slices.map((s) => [s.name, new Set()]));
  for (const s of slices) {
    for (const d of s.dependencies) if (names.has(d)) before.get(s.name).add(d);
    for (const d of s.dependedBy ?? []) if (names.has(d)) before.get(d).add(s.name);
  }
  const depth = new Map();
  const depthOf = (name, seen = new Set()) => {
    if (depth.has(name)) return depth.get(name);
    if (seen.has(name)) return 0;
    seen.add(name);
    let d = 0;
    for (const dep of before.get(name)) d = Math.max(d, depthOf(dep, seen) + 1);
    depth.set(name, d);
    return d;
  };
  slices.forEach((s) => depthOf(s.name));
  const columns = [];
  for (const s of slices) (columns[depth.get(s.name)] ??= []).push(s);
  const W = 180, H = 44, GX = 50, GY = 16;
  const position = new Map();
  columns.forEach((column, x) =>
    column.forEach((s, y) => position.set(s.name, { x: x * (W + GX) + 10, y: y * (H + GY) + 10 }))
  );
  const width = columns.length * (W + GX) + 10;
  const height = Math.max(...columns.map((c) => c.length)) * (H + GY) + 10;
  const graph = $("#graph");
  graph.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const keep = [...graph.querySelectorAll("title, desc")];
  const defs = svg("defs");
  const marker = svg("marker", {
    id: "arrow",
    viewBox: "0 0 10 10",
    refX: "10",
    refY: "5",
    markerWidth: "8",
    markerHeight: "8",
    orient: "auto-start-reverse",
  });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "currentColor" }));
  defs.append(marker);
  const parts = [defs];
  for (const [name, deps] of before) {
    const to = position.get(name);
    for (const dep of deps) {
      const from = position.get(dep);
      parts.push(svg("path", {
        class: "edge",
        d: `M ${from.x + W} ${from.y + H / 2} C ${from.x + W + GX / 2} ${from.y + H / 2}, ${
          to.x - GX / 2
        } ${to.y + H / 2}, ${to.x} ${to.y + H / 2}`,
      }));
    }
  }
  for (const s of slices) {
    const { x, y } = position.get(s.name);
    const node = svg("g", { class: `node ${s.state}`, "data-slice": s.name });
    node.append(
      svg("rect", { x, y, width: W, height: H, rx: 6 }),
      svg("text", { x: x + 8, y: y + 18 }, s.name),
      svg("text", { x: x + 8, y: y + 35, class: `status-${s.state}` }, s.state),
    );
    parts.push(node);
  }
  graph.replaceChildren(...keep, ...parts);
}

let endpointsDrawn = "";
function renderEndpoints(document_) {
  const signature = JSON.stringify(Object.keys(document_.paths ?? {}));
  if (signature === endpointsDrawn) return; // keep what the user typed
  endpointsDrawn = signature;
  const items = [];
  for (const [path, operations] of Object.entries(document_.paths ?? {})) {
    for (const [operation, spec] of Object.entries(operations)) {
      const item = el(
        "li",
        {},
        el("span", { class: "op" }, operation.toUpperCase()),
        el("code", {}, path),
        spec.summary ? el("div", {}, spec.summary) : "",
      );
      if (operation === "get") item.append(tryForm(path, spec));
      items.push(item);
    }
  }
  $("#endpoints").replaceChildren(...items);
}

function tryForm(path, spec) {
  const form = el("form", { class: "try" });
  const params = (spec.parameters ?? []).filter((p) => p.in === "path");
  const inputs = params.map((p) => {
    const input = el("input", { name: p.name, required: true });
    form.append(el("label", {}, p.name, input));
    return input;
  });
  const output = el("pre", { hidden: true, "aria-live": "polite" });
  form.append(el("button", { type: "submit" }, `Try GET ${path}`));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let url = path;
    params.forEach((
      p,
      i,
    ) => (url = url.replace(`{${p.name}}`, encodeURIComponent(inputs[i].value))));
    const { status, body } = await getJson(url);
    output.hidden = false;
    output.textContent = `${status}\n${JSON.stringify(body, null, 2)}`;
  });
  const wrapper = el("div", {}, form, output);
  return wrapper;
}

const when = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "—");
function renderTasks(tasks) {
  fillTable(
    "#tasks",
    tasks.map((t) => [
      el("td", {}, t.slice),
      el("th", { scope: "row" }, t.name),
      el("td", {}, t.schedule),
      el("td", {}, when(t.lastRun)),
      el("td", {}, when(t.nextRun)),
      el("td", {}, `${t.runs} / ${t.failures}`),
    ]),
  );
}

async function refresh() {
  try {
    // Health is read off serverstatus: /api/v2/health answers 503 when degraded, which a
    // browser reports as a console error on every poll.
    const [status, tasks, api, figures] = await Promise.all([
      getJson("/api/v1/serverstatus"),
      getJson("/api/v2/scheduled-tasks"),
      getJson("/api/v2/docs/openapi.json"),
      getJson("/api/v2/extension-metrics"),
    ]);
    if (status.status === 401 || status.status === 403) {
      $("#login").hidden = false;
      $("#health").textContent = `Not signed in: ${status.body.message ?? status.status}`;
      document.body.dataset.needsToken = "true";
      return;
    }
    $("#login").hidden = true;
    delete document.body.dataset.needsToken;
    const data = status.body.data;
    $("#version").textContent = data.version;
    const failed = data.extensions.some((e) => e.status === "failed") ||
      data.slices.some((s) => s.state === "failed");
    const up = data.slices.every((s) => s.state === "started");
    const state = failed ? "degraded" : up ? "up" : "starting";
    $("#health").textContent = `Health: ${state}`;
    $("#health").className = `status status-${state}`;
    renderExtensions(data.extensions);
    renderSlices(data.slices);
    renderTasks(tasks.body.data ?? []);
    renderEndpoints(api.body);
    if (figures.body.data) renderOperations(figures.body.data, el);
    $("#updated").textContent = `Last update ${new Date().toLocaleTimeString()}.`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    $("#health").textContent = `Cannot reach the server: ${error.message}`;
  } finally {
    clearTimeout(timer);
    timer = setTimeout(refresh, PERIOD);
  }
}

let timer;
const PERIOD = Math.max(200, Number(new URLSearchParams(location.search).get("refresh")) || 2000);
$("#period").textContent = PERIOD === 2000 ? "2 seconds" : `${PERIOD} ms`;
$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
  $("#token").value = "";
  clearTimeout(timer);
  refresh();
});

refresh();
