// heron's search page: plain DOM code over the v1 JSON API (docs/server.md), no build step.
// Document text only ever reaches the page through textContent; the server's snippets are
// rebuilt node by node, keeping nothing but text and <mark> (see renderSnippet).
"use strict";

const KEY_STORE = "heron.apiKey";
const COLLECTION_STORE = "heron.collection";
const OPS = [
  ["=", "$eq"], ["≠", "$ne"], [">", "$gt"], ["≥", "$gte"], ["<", "$lt"], ["≤", "$lte"],
  ["in", "$in"], ["not in", "$nin"], ["contains", "$contains"], ["like", "$like"],
  ["exists", "$exists"],
];

const $ = (id) => document.getElementById(id);
const state = { collection: null, info: null, fields: [], plotUrl: null, busy: false };

class ApiError extends Error {
  constructor(code, message, field, status) {
    super(message);
    this.code = code;
    this.field = field || null;
    this.status = status || 0;
  }
}

// ------------------------------------------------------------------ HTTP
function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: "Bearer " + key } : {};
}

async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json", ...authHeaders() } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError("network", "the server cannot be reached (" + e.message + ")");
  }
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    data = null;
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    const detail = data && data.detail ? JSON.stringify(data.detail) : resp.statusText;
    throw new ApiError(err.code || "http_" + resp.status, err.message || detail, err.field, resp.status);
  }
  return data;
}

async function fetchBlobUrl(path) {
  const resp = await fetch(path, { headers: authHeaders() });
  if (!resp.ok) throw new ApiError("http_" + resp.status, "cannot load " + path + ": " + resp.statusText);
  return URL.createObjectURL(await resp.blob());
}

// ------------------------------------------------------------------ small DOM helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function showError(err) {
  $("error-code").textContent = (err.code || "error") + (err.field ? " (" + err.field + ")" : "") + ":";
  let message = err.message || String(err);
  if (err.status === 401 || err.status === 403) {
    message += " — type an API key with the read scope in the field at the top right";
    $("api-key").focus();
  }
  $("error-message").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

function fmtScore(x) {
  if (x === null || x === undefined) return "—";
  if (typeof x !== "number" || !isFinite(x)) return String(x);
  return Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(4);
}

function fmtBytes(n) {
  if (typeof n !== "number") return String(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function fmtValue(v) {
  return typeof v === "string" ? v : JSON.stringify(v);
}

// A snippet from the server is HTML-escaped text with <mark>…</mark> around matched terms.
// It is parsed in an inert document and rebuilt from text nodes and <mark> elements only, so
// nothing else the text might contain can become markup or script.
function renderSnippet(html) {
  const doc = new DOMParser().parseFromString("<body>" + html + "</body>", "text/html");
  const out = document.createDocumentFragment();
  const walk = (node, into) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) into.append(document.createTextNode(child.data));
      else if (child.nodeType === Node.ELEMENT_NODE && child.tagName === "MARK") {
        into.append(el("mark", { text: child.textContent }));
      } else if (child.nodeType === Node.ELEMENT_NODE) walk(child, into);
    }
  };
  walk(doc.body, out);
  return out;
}

// ------------------------------------------------------------------ collections
async function loadCollections() {
  const sel = $("collection");
  let data;
  try {
    data = await api("GET", "/v1/collections");
  } catch (e) {
    showError(e);
    return;
  }
  sel.replaceChildren();
  const names = (data.collections || []).map((c) => c.name);
  for (const c of data.collections || []) {
    sel.append(el("option", { value: c.name, text: c.name + " (" + c.documents + ")" }));
  }
  if (!names.length) {
    $("status").textContent = "this server holds no collections";
    return;
  }
  const wanted = new URLSearchParams(location.hash.slice(1)).get("collection")
    || sessionStorage.getItem(COLLECTION_STORE);
  sel.value = names.includes(wanted) ? wanted : names[0];
  await selectCollection(sel.value);
}

function indexNames(info) {
  return (info.indexes || []).map((x) => (typeof x === "string" ? x : x.name));
}

async function selectCollection(name) {
  state.collection = name;
  sessionStorage.setItem(COLLECTION_STORE, name);
  $("hits").replaceChildren();
  $("status").textContent = "";
  clearError();
  let info;
  try {
    info = await api("GET", "/v1/collections/" + encodeURIComponent(name));
  } catch (e) {
    showError(e);
    return;
  }
  state.info = info;
  state.fields = info.metadata_fields || [];
  renderRetrievers(info);
  renderInfo(info);
  $("filter-rows").replaceChildren();
  loadReports(name);
}

function renderRetrievers(info) {
  const sel = $("retriever");
  const previous = sel.value;
  sel.replaceChildren();
  const retrievers = info.retrievers && info.retrievers.length ? info.retrievers : ["dense"];
  const g1 = el("optgroup", { label: "retrievers" });
  for (const r of retrievers) g1.append(el("option", { value: r, text: r }));
  sel.append(g1);
  const extra = indexNames(info).filter((n) => !retrievers.includes(n));
  if (extra.length) {
    const g2 = el("optgroup", { label: "indexes" });
    for (const n of extra) g2.append(el("option", { value: n, text: n }));
    sel.append(g2);
  }
  const all = retrievers.concat(extra);
  sel.value = all.includes(previous) ? previous : all[0];
}

function renderInfo(info) {
  const dl = $("info");
  dl.replaceChildren();
  const add = (k, v) => { dl.append(el("dt", { text: k }), el("dd", { text: v })); };
  add("name", info.name);
  add("documents", String(info.documents));
  add("model", info.model + (info.dim ? " (" + info.dim + " dims)" : ""));
  const idx = (info.indexes || []).map((x) => (typeof x === "string" ? x : x.name + " (" + x.kind + ")"));
  add("indexes", idx.length ? idx.join(", ") : "none");
  if (info.retrievers) add("retrievers", info.retrievers.join(", "));
  if (info.bytes_on_disk !== undefined) add("size", fmtBytes(info.bytes_on_disk));
  if (info.segments !== undefined) add("segments", String(info.segments));
  if (info.generation !== undefined) add("generation", String(info.generation));
  if (state.fields.length) {
    add("metadata", state.fields.map((f) => f.name + (f.type ? ": " + f.type : "")).join(", "));
  }
}

// ------------------------------------------------------------------ bench report and plot
async function loadReports(name) {
  const box = $("plot-box");
  box.replaceChildren(el("p", { class: "muted", text: "loading reports…" }));
  if (state.plotUrl) { URL.revokeObjectURL(state.plotUrl); state.plotUrl = null; }
  let reports;
  try {
    reports = (await api("GET", "/v1/collections/" + encodeURIComponent(name) + "/reports")).reports || [];
  } catch (e) {
    box.replaceChildren(el("p", { class: "muted", text: "reports unavailable: " + e.message }));
    return;
  }
  if (name !== state.collection) return; // another collection was chosen meanwhile
  const bench = reports.filter((r) => r.kind === "bench" && r.plot);
  if (!bench.length) {
    box.replaceChildren(el("p", { class: "muted", id: "no-report", text: "no bench report" }));
    return;
  }
  const report = bench[0];
  let url;
  try {
    url = await fetchBlobUrl(report.plot);
  } catch (e) {
    box.replaceChildren(el("p", { class: "muted", text: e.message }));
    return;
  }
  state.plotUrl = url;
  const thumb = el("img", { id: "plot-thumb", src: url, alt: "bench Pareto plot: " + report.name });
  const open = el("button", { type: "button", id: "open-plot", text: "open plot" });
  const caption = el("p", { class: "muted", text: report.name + (bench.length > 1 ? " (+" + (bench.length - 1) + " more)" : "") });
  const show = () => { $("plot-full").src = url; $("plot-dialog").showModal(); };
  thumb.addEventListener("click", show);
  open.addEventListener("click", show);
  box.replaceChildren(thumb, caption, open);
}

// ------------------------------------------------------------------ filters
function fieldType(name) {
  const f = state.fields.find((x) => x.name === name);
  return f ? String(f.type || "") : "";
}

function parseValue(text, type, field) {
  const t = text.trim();
  if (type.includes("/")) type = ""; // mixed types: read the value as JSON, else as text
  if (/int|float|num|double/i.test(type)) {
    const n = Number(t);
    if (t === "" || !isFinite(n)) {
      throw new ApiError("bad_request", "value " + JSON.stringify(text) + " for " + field + " is not a number", "filter");
    }
    return n;
  }
  if (/bool/i.test(type)) {
    if (t === "true" || t === "false") return t === "true";
    throw new ApiError("bad_request", "value " + JSON.stringify(text) + " for " + field + " is not true/false", "filter");
  }
  if (/str|text/i.test(type)) return text;
  try {
    const v = JSON.parse(t);
    return typeof v === "object" && v !== null ? text : v;
  } catch (e) {
    return text;
  }
}

function addFilterRow() {
  const row = el("div", { class: "filter-row" });
  let field;
  if (state.fields.length) {
    field = el("select", { class: "f-field", "aria-label": "field" });
    for (const f of state.fields) field.append(el("option", { value: f.name, text: f.name }));
  } else {
    field = el("input", { class: "f-field", type: "text", placeholder: "field", "aria-label": "field" });
  }
  const op = el("select", { class: "f-op", "aria-label": "operator" });
  for (const [label, code] of OPS) op.append(el("option", { value: code, text: label }));
  const listId = "examples-" + Math.random().toString(36).slice(2);
  const list = el("datalist", { id: listId });
  const value = el("input", { class: "f-value", type: "text", placeholder: "value", list: listId, "aria-label": "value" });
  const fillExamples = () => {
    const f = state.fields.find((x) => x.name === field.value);
    list.replaceChildren(...((f && f.examples) || []).map((x) => el("option", { value: fmtValue(x) })));
  };
  field.addEventListener("change", fillExamples);
  fillExamples();
  op.addEventListener("change", () => { value.disabled = op.value === "$exists"; });
  const remove = el("button", { type: "button", class: "f-remove", "aria-label": "remove condition", text: "×" });
  remove.addEventListener("click", () => row.remove());
  row.append(field, op, value, list, remove);
  $("filter-rows").append(row);
  return row;
}

function buildFilter() {
  const parts = [];
  for (const row of document.querySelectorAll("#filter-rows .filter-row")) {
    const field = row.querySelector(".f-field").value.trim();
    const op = row.querySelector(".f-op").value;
    const raw = row.querySelector(".f-value").value;
    if (!field) continue;
    if (op === "$exists") { parts.push({ [field]: { $exists: true } }); continue; }
    if (raw.trim() === "") continue;
    const type = fieldType(field);
    let v;
    if (op === "$in" || op === "$nin") v = raw.split(",").map((s) => parseValue(s, type, field));
    else if (op === "$contains" || op === "$like") v = /list|arr/i.test(type) ? parseValue(raw, "", field) : raw;
    else v = parseValue(raw, type, field);
    parts.push({ [field]: { [op]: v } });
  }
  const text = $("filter-json").value.trim();
  if (text) {
    let obj;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new ApiError("bad_request", "the filter JSON does not parse: " + e.message, "filter");
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      throw new ApiError("bad_request", "the filter JSON must be an object like {\"year\": 2020}", "filter");
    }
    if (Object.keys(obj).length) parts.push(obj);
  }
  if (!parts.length) return null;
  return parts.length === 1 ? parts[0] : { $and: parts };
}

// ------------------------------------------------------------------ search
async function search() {
  clearError();
  if (!state.collection) {
    showError(new ApiError("bad_request", "choose a collection first"));
    return;
  }
  const query = $("query").value.trim();
  if (!query) {
    showError(new ApiError("bad_request", "type a query", "query"));
    return;
  }
  const spec = $("spec").value.trim();
  const body = {
    queries: [query],
    k: Number($("k").value) || 10,
    using: spec || $("retriever").value,
    with_metadata: true,
    snippet: true,
    explain: $("explain").checked,
  };
  try {
    const filter = buildFilter();
    if (filter) body.filter = filter;
  } catch (e) {
    showError(e);
    return;
  }
  state.busy = true;
  document.body.classList.add("busy");
  $("status").textContent = "searching…";
  try {
    const data = await api("POST", "/v1/collections/" + encodeURIComponent(state.collection) + "/search", body);
    renderResults(data, body);
  } catch (e) {
    $("status").textContent = "";
    $("hits").replaceChildren();
    showError(e);
  } finally {
    state.busy = false;
    document.body.classList.remove("busy");
  }
}

function renderResults(data, body) {
  const hits = ((data.results || [])[0] || {}).hits || [];
  const kind = data.score_kind || "score";
  const status = $("status");
  status.replaceChildren(
    el("span", { id: "hit-count", text: hits.length + (hits.length === 1 ? " hit" : " hits") }),
    " · score: ",
    el("span", { id: "score-kind", class: "kind", text: kind }),
    " · using ",
    el("code", { id: "using", text: data.using || body.using }),
    body.filter ? el("span", { class: "muted", text: " · filter " + JSON.stringify(body.filter) }) : "",
    typeof data.took_ms === "number" ? " · " + data.took_ms.toFixed(1) + " ms" : "",
  );
  const list = $("hits");
  list.replaceChildren();
  for (const h of hits) list.append(renderHit(h, kind));
  if (!hits.length) list.append(el("li", { class: "muted", text: "no hits" }));
}

function renderHit(h, kind) {
  const li = el("li", { class: "hit", "data-id": h.id, "data-rank": String(h.rank) });
  const head = el("div", { class: "hit-head" },
    el("span", { class: "rank", text: "#" + h.rank }),
    el("span", { class: "score", title: kind, text: kind + " " + fmtScore(h.score) }),
    el("span", { class: "doc-id", text: h.id }));
  li.append(head);
  if (h.metadata && Object.keys(h.metadata).length) {
    const meta = el("div", { class: "meta" });
    for (const [k, v] of Object.entries(h.metadata)) {
      meta.append(el("span", { class: "meta-item", "data-field": k, "data-value": JSON.stringify(v) },
        el("b", { text: k }), " " + fmtValue(v)));
    }
    li.append(meta);
  }
  if (typeof h.snippet === "string") {
    const p = el("p", { class: "snippet" });
    p.append(renderSnippet(h.snippet));
    li.append(p);
  } else if (typeof h.text === "string") {
    li.append(el("p", { class: "snippet", text: h.text.length > 300 ? h.text.slice(0, 300) + "…" : h.text }));
  }
  if (typeof h.passage === "string" && h.passage) {
    li.append(el("p", { class: "passage muted", text: "passage: " + h.passage }));
  }
  if (h.explain) li.append(renderExplain(h.explain));
  return li;
}

function renderExplain(x) {
  const box = el("div", { class: "explain" });
  if (x.parts && Object.keys(x.parts).length) {
    box.append(el("div", { class: "parts" }, "parts: ",
      ...Object.entries(x.parts).map(([k, v]) => el("span", { class: "part", text: k + " " + fmtScore(v) }))));
  }
  if (x.terms && x.terms.length) {
    box.append(el("div", { class: "terms" }, "matched terms: ",
      ...x.terms.map(([t, w]) => el("span", { class: "term", "data-term": t, text: t + " " + fmtScore(w) }))));
  }
  if (x.sparse_terms && x.sparse_terms.length) {
    box.append(el("div", { class: "terms sparse" }, "sparse terms: ",
      ...x.sparse_terms.map(([t, w]) => el("span", { class: "term", "data-term": t, text: t + " " + fmtScore(w) }))));
  }
  if (x.weights && Object.keys(x.weights).length) {
    box.append(el("div", { class: "weights" }, "fusion weights: ",
      ...Object.entries(x.weights).map(([k, v]) => el("span", { class: "weight", text: k + " " + fmtValue(v) }))));
  }
  if (!box.childNodes.length) box.append(el("span", { class: "muted", text: "no explanation for this retriever" }));
  return box;
}

// ------------------------------------------------------------------ wiring
function init() {
  const keyBox = $("api-key");
  keyBox.value = sessionStorage.getItem(KEY_STORE) || "";
  keyBox.addEventListener("change", () => {
    const v = keyBox.value.trim();
    if (v) sessionStorage.setItem(KEY_STORE, v);
    else sessionStorage.removeItem(KEY_STORE);
    clearError();
    loadCollections();
  });
  $("collection").addEventListener("change", (e) => selectCollection(e.target.value));
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  $("filter-json").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); search(); }
  });
  $("add-filter").addEventListener("click", () => addFilterRow().querySelector(".f-value").focus());
  $("error-close").addEventListener("click", clearError);
  loadCollections();
}

document.addEventListener("DOMContentLoaded", init);
