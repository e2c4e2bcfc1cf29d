// The strata editor page: canvases, handlers with live trace dots, unmatched requests,
// and a trace viewer that downloads the base straight from the store and folds the
// patches with merge.js (SPEC §8-§9).

import { Api, ApiError, canvasPath } from "./api.js";
import { BaseError, describeFailure, loadBase } from "./base.js";
import { merge } from "./merge.js";
import { diffValues, renderComparison, renderPart } from "./compare.js";
import { scaffold } from "./scaffold.js";
import { EventStream } from "./sse.js";
import { renderExplained } from "./codeview.js";
import { showJson, toNumber } from "./exact.js";
import { valueText } from "./values.js";
import { h, handlerLabel, parseArgs, renderCalls, renderFunctionRuns, renderInput, renderOutcome } from "./view.js";

const TOKEN_KEY = "strata.token";
const CANVAS_KEY = "strata.canvas";
const TRACES_PER_HANDLER = 40;
const MAX_DOTS = 60;

const $ = (id) => document.getElementById(id);

const state = {
  api: null,
  canvas: null,
  stream: null,
  handlers: new Map(), // id -> {description, row, dots: Map(trace_id -> element)}
  open: null, // {traceId, manifest, doc, decoder, bytes, patches, code}
  loadError: null, // the last `canvas` event's error: the file that did not load
  timers: {},
};

// -- messages -------------------------------------------------------------------

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
}

function clearMessage() {
  $("message").hidden = true;
  $("message").textContent = "";
}

function describe(err) {
  if (err instanceof ApiError || err instanceof BaseError) return err.message;
  return `Unexpected error: ${err && err.message ? err.message : err}`;
}

function fail(err) {
  if (err instanceof ApiError && err.status === 401) return signOut("The token was refused: enter a valid editor token.");
  showMessage(describe(err));
}

function debounce(name, fn, ms = 250) {
  clearTimeout(state.timers[name]);
  state.timers[name] = setTimeout(() => fn().catch(fail), ms);
}

// -- token and canvases ---------------------------------------------------------

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.stream) state.stream.stop();
  Object.assign(state, { api: null, canvas: null, stream: null, open: null });
  $("workspace").hidden = true;
  $("canvas-select").hidden = true;
  $("sign-out").hidden = true;
  $("token-form").hidden = false;
  setLive("off");
  if (reason) showMessage(reason);
  else clearMessage();
  $("token-input").focus();
}

async function signIn(token) {
  const api = new Api(token);
  let listing;
  try {
    listing = await api.get("/api/v1/canvases");
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      return signOut("The token was refused: enter a valid editor token.");
    }
    return showMessage(describe(err));
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.api = api;
  clearMessage();
  $("token-form").hidden = true;
  $("sign-out").hidden = false;
  const select = $("canvas-select");
  select.replaceChildren(...listing.canvases.map((c) => h("option", { value: c.name }, c.name)));
  select.hidden = listing.canvases.length === 0;
  if (!listing.canvases.length) return showMessage("This token grants no canvas loaded on this server.", "info");
  const names = listing.canvases.map((c) => c.name);
  const remembered = sessionStorage.getItem(CANVAS_KEY);
  await openCanvas(names.includes(remembered) ? remembered : names[0]);
}

async function openCanvas(name) {
  if (state.stream) state.stream.stop();
  state.canvas = name;
  state.open = null;
  state.handlers = new Map();
  sessionStorage.setItem(CANVAS_KEY, name);
  $("canvas-select").value = name;
  $("workspace").hidden = false;
  $("trace-view").hidden = true;
  $("handlers").replaceChildren();
  // Stream first, lists second: an event arriving in between is merged by trace id.
  state.stream = new EventStream({
    url: canvasPath(name, "events"),
    token: state.api.token,
    onEvent,
    onState: setLive,
  }).start();
  await loadLists();
}

function setLive(live, detail) {
  const el = $("live-state");
  el.dataset.state = live;
  const labels = {
    off: "offline",
    connecting: "connecting…",
    live: "live",
    retrying: `reconnecting in ${Math.round((detail || 0) / 1000)} s`,
    unauthorized: "token refused",
  };
  el.textContent = labels[live] || live;
  if (live === "unauthorized") signOut("The event stream refused the token: enter a valid editor token.");
}

// -- lists ----------------------------------------------------------------------

async function loadLists() {
  const canvas = state.canvas;
  const { handlers } = await state.api.get(canvasPath(canvas, "handlers"));
  if (canvas !== state.canvas) return;
  const container = $("handlers");
  const known = new Map(state.handlers);
  state.handlers = new Map();
  const rows = handlers.map((handler) => {
    const entry = known.get(handler.id) || { dots: new Map() };
    entry.description = handler;
    const dots = entry.row ? entry.row.querySelector(".dots") : h("div", { class: "dots" });
    entry.row = h(
      "div",
      { class: "handler-row", dataset: { handlerId: handler.id } },
      h(
        "div",
        { class: "handler-name" },
        h("code", {}, handler.id),
        h("span", { class: "route" }, handlerLabel(handler)),
        h("button", { type: "button", class: "link list-toggle", onclick: () => toggleTraceList(handler.id) }, "all traces"),
      ),
      dots,
    );
    state.handlers.set(handler.id, entry);
    return entry.row;
  });
  container.replaceChildren(...(rows.length ? rows : [h("p", { class: "muted" }, "No handlers.")]));
  await Promise.all([
    ...handlers.map((handler) => loadTraces(canvas, handler.id)),
    loadUnmatched(),
    loadWaitingWork(),
  ]);
}

async function loadTraces(canvas, handlerId) {
  const path = `${canvasPath(canvas, "handlers", handlerId, "traces")}?limit=${TRACES_PER_HANDLER}`;
  const { traces } = await state.api.get(path);
  if (canvas !== state.canvas) return;
  // Newest first from the API; dots run oldest to newest, left to right.
  for (const summary of traces.slice().reverse()) addDot(summary);
}

function setDotStatus(traceId, status) {
  const dot = document.querySelector(`.dot[data-trace-id="${CSS.escape(traceId)}"]`);
  if (!dot) return;
  dot.classList.remove("status-none", "status-1xx", "status-2xx", "status-3xx", "status-4xx", "status-5xx");
  dot.classList.add(statusClass(status));
}

// A trace not open was rerun (elsewhere): its dot takes the latest rerun's status.
async function recolorFromManifest(traceId) {
  if (!document.querySelector(`.dot[data-trace-id="${CSS.escape(traceId)}"]`)) return;
  const manifest = await fetchManifest(traceId);
  const reruns = (manifest.patches || []).filter((p) => p.kind === "rerun");
  if (reruns.length) setDotStatus(traceId, reruns[reruns.length - 1].result?.status ?? null);
}

// A trace's status as the page shows it: its latest rerun's when it has one (the code
// as it is now), else the recorded one.
function shownStatus(summary) {
  return "latest_status" in summary ? summary.latest_status : summary.status;
}

function statusClass(status) {
  if (status === null || status === undefined) return "status-none";
  return `status-${Math.floor(status / 100)}xx`;
}

function addDot(summary) {
  const entry = state.handlers.get(summary.handler_id);
  if (!entry) {
    debounce("handlers", loadLists); // a handler this page has not seen yet
    return;
  }
  if (entry.dots.has(summary.trace_id)) return;
  // A rerun's status colours the dot: the code as it is now.
  const status = shownStatus(summary);
  const rerun = "latest_status" in summary ? " (latest rerun)" : "";
  const dot = h("button", {
    type: "button",
    class: `dot ${statusClass(status)}`,
    title: `${summary.started_at} · ${status ?? "no result"}${rerun} · ${toNumber(summary.duration_ms)} ms`,
    "aria-label": `trace ${summary.trace_id}`,
    dataset: { traceId: summary.trace_id, startedAt: summary.started_at },
    onclick: () => openTrace(summary.trace_id).catch(fail),
  });
  const dots = entry.row.querySelector(".dots");
  // Keep time order even when a list page and live events interleave.
  const after = [...dots.children].find((d) => d.dataset.traceId > summary.trace_id);
  dots.insertBefore(dot, after || null);
  entry.dots.set(summary.trace_id, dot);
  while (dots.children.length > MAX_DOTS) {
    const oldest = dots.firstElementChild;
    entry.dots.delete(oldest.dataset.traceId);
    oldest.remove();
  }
}

// -- a handler's traces, paged and filtered (SPEC §14) ------------------------------

const PAGE = 50;

function filterQuery(form) {
  const params = new URLSearchParams({ limit: String(PAGE) });
  const status = form.querySelector(".filter-status").value;
  const fn = form.querySelector(".filter-function").value.trim();
  if (status) params.set("status", status);
  if (fn) params.set("function", fn);
  for (const name of ["since", "until"]) {
    const value = form.querySelector(`.filter-${name}`).value;
    if (value) params.set(name, new Date(value).toISOString()); // the input's local time
  }
  return params;
}

function toggleTraceList(handlerId) {
  const entry = state.handlers.get(handlerId);
  if (!entry) return;
  const open = entry.row.querySelector(".trace-list");
  if (open) return open.remove();
  const field = (cls, label, input) => h("label", { class: "filter" }, label, " ", input);
  const functions = h("datalist", { id: `functions-${handlerId}` });
  const form = h(
    "form",
    { class: "trace-list", dataset: { handlerId } },
    h(
      "div",
      { class: "filters" },
      field("status", "status", h("select", { class: "filter-status" }, ["", "2xx", "3xx", "4xx", "5xx", "error"].map((s) => h("option", { value: s }, s || "any")))),
      field("function", "called", h("input", { class: "filter-function", list: functions.id, placeholder: "function", size: 12 })),
      field("since", "since", h("input", { class: "filter-since", type: "datetime-local", step: 1 })),
      field("until", "until", h("input", { class: "filter-until", type: "datetime-local", step: 1 })),
      h("button", { type: "submit" }, "Filter"),
      functions,
    ),
    h("table", { class: "trace-table" }, h("thead", {}, h("tr", {}, ["started", "status", "ms", "patches"].map((c) => h("th", {}, c)))), h("tbody", {})),
    h("p", { class: "muted list-state" }),
    h("button", { type: "button", class: "older", hidden: true }, "Older"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    loadTracePage(handlerId, form, false).catch(fail);
  });
  form.querySelector(".older").addEventListener("click", () => loadTracePage(handlerId, form, true).catch(fail));
  entry.row.append(form);
  state.api.get(canvasPath(state.canvas, "handlers", handlerId, "source")).then(
    (source) => functions.replaceChildren(...(source.functions || []).map((f) => h("option", { value: f.name }))),
    () => {}, // the list works without suggestions
  );
  return loadTracePage(handlerId, form, false).catch(fail);
}

async function loadTracePage(handlerId, form, more) {
  const params = filterQuery(form);
  if (more && form.dataset.next) params.set("before", form.dataset.next);
  const body = form.querySelector("tbody");
  form.dataset.loading = "yes";
  let page;
  try {
    page = await state.api.get(`${canvasPath(state.canvas, "handlers", handlerId, "traces")}?${params}`);
  } finally {
    form.dataset.loading = "no";
  }
  const rows = page.traces.map((s) =>
    h(
      "tr",
      { class: `trace-row ${statusClass(shownStatus(s))}`, dataset: { traceId: s.trace_id }, onclick: () => openTrace(s.trace_id).catch(fail) },
      h("td", {}, s.started_at.replace("T", " ").replace("Z", "")),
      h("td", {}, String(shownStatus(s) ?? "–")),
      h("td", {}, String(toNumber(s.duration_ms))),
      h("td", {}, s.patch_count ? String(s.patch_count) : ""),
    ),
  );
  if (more) body.append(...rows);
  else body.replaceChildren(...rows);
  form.dataset.next = page.next || "";
  form.querySelector(".older").hidden = !page.next;
  form.querySelector(".list-state").textContent = `${body.children.length} trace(s)${page.next ? ", more below" : ""}`;
  form.dataset.count = String(body.children.length);
}

async function loadUnmatched() {
  const box = $("unmatched");
  try {
    const { unmatched } = await state.api.get(canvasPath(state.canvas, "unmatched"));
    box.replaceChildren(
      unmatched.length
        ? h(
            "ul",
            { class: "unmatched-list" },
            unmatched.map((u) =>
              h(
                "li",
                { class: "unmatched-entry", dataset: { traceId: u.trace_id } },
                h(
                  "button",
                  { type: "button", class: "link", onclick: () => openUnmatched(u).catch(fail) },
                  h("span", { class: "method" }, u.method),
                  " ",
                  h("code", {}, u.path),
                ),
                h("span", { class: "muted" }, ` ×${u.count}, last ${u.last_seen}`),
              ),
            ),
          )
        : h("p", { class: "muted" }, "None."),
    );
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      // A server without the unmatched store (or an older one): not an error for the page.
      box.replaceChildren(h("p", { class: "muted" }, "Not available on this server."));
      return;
    }
    throw err;
  }
}

// Messages for queues no loaded worker takes (SPEC §15): each queue with its oldest
// values, and the worker to paste that takes them.
async function loadWaitingWork() {
  const box = $("waiting-work");
  const { queues } = await state.api.get(canvasPath(state.canvas, "queues"));
  const waiting = queues.filter((q) => q.worker === null && q.ready > 0);
  const blocks = await Promise.all(
    waiting.map(async (q) => {
      const { messages } = await state.api.get(`${canvasPath(state.canvas, "queues", q.name, "messages")}?limit=3`);
      const name = `handle_${q.name.replace(/[^a-z0-9_]/g, "_")}`;
      return h(
        "div",
        { class: "waiting-queue", dataset: { queue: q.name } },
        h("p", {}, h("code", {}, q.name), h("span", { class: "muted" }, ` ${q.ready} waiting since ${q.oldest_ready_at}`)),
        ...messages.map((m) => h("pre", { class: "event" }, valueText(m.event))),
        h("pre", { class: "scaffold" }, `@canvas.worker("${q.name}")\nasync def ${name}(event):\n    ...\n`),
      );
    }),
  );
  box.replaceChildren(...(blocks.length ? blocks : [h("p", { class: "muted" }, "None.")]));
}

// A request that found no handler: its input, and the handler to paste that takes it.
async function openUnmatched(entry) {
  clearMessage();
  state.open = null;
  const view = $("trace-view");
  view.hidden = false;
  view.replaceChildren(h("p", { class: "muted" }, `Loading ${entry.method} ${entry.path}…`));
  const manifest = await state.api.get(canvasPath(state.canvas, "unmatched", entry.trace_id));
  let doc;
  try {
    doc = (await loadBase(manifest)).doc;
  } catch (err) {
    return showTraceError(entry.trace_id, err);
  }
  const input = doc.input || {};
  const made = scaffold({ method: input.method, path: input.path, query: input.query, headers: input.headers, body: input.body });
  const code = h("pre", { class: "scaffold", id: "scaffold" }, made.code);
  const copy = h("button", { type: "button", id: "copy-scaffold", onclick: () => navigator.clipboard?.writeText(made.code) }, "Copy");
  view.replaceChildren(
    h(
      "header",
      { class: "trace-head" },
      h("h2", {}, "No handler for ", h("span", { class: "method" }, input.method || entry.method), " ", h("code", {}, input.path || entry.path)),
      h("p", { class: "muted" }, `${entry.count} request(s), last ${entry.last_seen}. Add a handler for it to the canvas module; with `, h("code", {}, "serve --reload"), " the stored requests become its traces when the file is saved."),
    ),
    h("section", { class: "panel", id: "scaffold-panel", dataset: { route: made.route, functionName: made.functionName } }, h("h3", {}, "A handler to start from ", copy), code),
    renderInput(input),
  );
}

// -- live events ----------------------------------------------------------------

function onEvent(event) {
  const data = event.data || {};
  if (event.type === "trace") {
    addDot(data);
    debounce("waiting-work", loadWaitingWork, 200); // the request may have enqueued
  }
  else if (event.type === "unmatched") debounce("unmatched", loadUnmatched);
  else if (event.type === "patch") {
    if (state.open && state.open.traceId === data.trace_id) debounce("patches", refreshPatches, 50);
    else if (data.kind === "rerun") debounce(`dot-${data.trace_id}`, () => recolorFromManifest(data.trace_id), 50);
  } else if (event.type === "canvas") onCanvasChanged(data);
  else if (event.type === "resync") debounce("lists", loadLists, 50);
}

// The canvas's code changed (`serve --reload`): new handlers, and the open trace
// explained again by the new code; or the file did not load, shown at its line.
function onCanvasChanged(data) {
  state.loadError = data.error || null;
  if (data.error) {
    const e = data.error;
    showMessage(`The code did not load: ${e.type} at ${e.file}:${e.line ?? "?"}: ${e.message}. The previous code keeps serving.`);
    if (state.open) renderTrace();
    return;
  }
  clearMessage();
  debounce("handlers", loadLists, 50);
  if (state.open) debounce("code", () => loadCode(state.open), 50);
}

// -- the trace viewer -----------------------------------------------------------

async function fetchManifest(traceId) {
  return state.api.get(canvasPath(state.canvas, "traces", traceId));
}

async function openTrace(traceId) {
  clearMessage();
  const view = $("trace-view");
  view.hidden = false;
  view.replaceChildren(h("p", { class: "muted" }, `Loading trace ${traceId}…`));
  for (const dot of document.querySelectorAll(".dot.selected")) dot.classList.remove("selected");
  document.querySelector(`.dot[data-trace-id="${CSS.escape(traceId)}"]`)?.classList.add("selected");
  try {
    let manifest = await fetchManifest(traceId);
    let loaded;
    try {
      loaded = await loadBase(manifest);
    } catch (err) {
      if (!(err instanceof BaseError && err.kind === "expired")) throw err;
      // A link that expired while the page sat open: one fresh manifest, then give up.
      manifest = await fetchManifest(traceId);
      loaded = await loadBase(manifest);
    }
    state.open = { traceId, manifest, patches: manifest.patches || [], code: null, ...loaded };
    renderTrace();
    loadCode(state.open).catch(fail);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) throw err;
    showTraceError(traceId, err);
  }
}

function showTraceError(traceId, err) {
  let shown = err;
  if (err instanceof ApiError && err.code === "object_not_found") {
    // The store checked before signing: same meaning as a 404 from the signed URL.
    shown = describeFailure(404, "", null);
  }
  $("trace-view").replaceChildren(
    h("h2", {}, "Trace ", h("code", {}, traceId)),
    h("p", { class: "trace-error", dataset: { kind: shown.kind || shown.code || "error" } }, describe(shown)),
  );
}

async function refreshPatches() {
  const open = state.open;
  if (!open) return;
  const manifest = await fetchManifest(open.traceId);
  if (state.open !== open) return;
  open.patches = manifest.patches || [];
  renderTrace();
}

// The handler's current code, and the open trace explained by it (SPEC §14).
async function loadCode(open) {
  const handlerId = open.manifest.handler_id;
  let code;
  try {
    const [source, explained] = await Promise.all([
      state.api.get(canvasPath(state.canvas, "handlers", handlerId, "source")),
      state.api.post(canvasPath(state.canvas, "traces", open.traceId, "explain")),
    ]);
    code = { source, explained };
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) throw err;
    code = { failure: describe(err) };
  }
  if (state.open !== open) return; // another trace was opened meanwhile
  open.code = code;
  renderTrace();
}

// -- comparing two traces of a handler -------------------------------------------

function compareControl(open) {
  const entry = state.handlers.get(open.manifest.handler_id);
  const others = entry ? [...entry.dots.keys()].filter((id) => id !== open.traceId).reverse() : [];
  if (!others.length) return null;
  const select = h(
    "select",
    { id: "compare-with", "aria-label": "compare with", onchange: (e) => compareWith(open, e.target.value).catch(fail) },
    h("option", { value: "" }, "Compare with another trace…"),
    others.map((id) => h("option", { value: id, selected: open.compare && open.compare.traceId === id }, `${entry.dots.get(id).dataset.startedAt} · ${id.slice(0, 8)}`)),
  );
  return h("p", {}, select);
}

async function compareWith(open, traceId) {
  if (!traceId) {
    open.compare = null;
    return renderTrace();
  }
  const manifest = await fetchManifest(traceId);
  const loaded = await loadBase(manifest);
  if (state.open !== open) return;
  open.compare = { traceId, merged: merge(loaded.doc, manifest.patches || []) };
  renderTrace();
}

function renderTraceComparison(open, merged) {
  if (!open.compare) return null;
  const other = open.compare.merged;
  const inputs = diffValues(merged.input || {}, other.input || {}, "input");
  return h(
    "section",
    { class: "panel", id: "trace-comparison-panel" },
    h("h3", {}, "This trace against ", h("code", {}, open.compare.traceId)),
    renderPart("input", "Input", inputs, { leftLabel: "this trace", rightLabel: "other trace" }),
    renderComparison(merged.execution, other.execution, { leftLabel: "this trace", rightLabel: "other trace", id: "trace-comparison" }),
  );
}

// -- running a function with edited arguments ------------------------------------

// The argument editor lives in the open trace's state, so a re-render (a new explain,
// a patch) keeps what the developer typed.
function editAndRun(call) {
  const open = state.open;
  if (!open) return;
  open.editing = open.editing && open.editing.call.id === call.id ? null : { call, text: showJson(call.args), problem: "" };
  renderTrace();
  document.querySelector("#calls .edit-args .args-input")?.focus();
}

function editForm(open) {
  const editing = open.editing;
  const area = h("textarea", { class: "args-input", rows: 4, cols: 60, spellcheck: "false" }, editing.text);
  area.addEventListener("input", () => {
    editing.text = area.value;
  });
  const problem = h("p", { class: "trace-error args-problem", hidden: !editing.problem }, editing.problem);
  const go = h("button", { type: "submit" }, "Run with these arguments");
  const form = h("form", { class: "edit-args" }, area, problem, go);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // From the state, not this element: a re-render may have replaced it meanwhile.
    const parsed = parseArgs(editing.text);
    editing.problem = parsed.error || "";
    if (parsed.error) return renderTrace();
    runFunction({ ...editing.call, args: parsed.args }, go);
  });
  return form;
}

function renderCodePanel(open) {
  const code = open.code;
  if (!code) return h("section", { class: "panel", id: "code-panel", dataset: { explained: "pending" } }, h("h3", {}, "Code"), h("p", { class: "muted" }, "Explaining the trace with the current code…"));
  if (code.failure) return h("section", { class: "panel", id: "code-panel", dataset: { explained: "failed" } }, h("h3", {}, "Code"), h("p", { class: "trace-error" }, code.failure));
  const error = state.loadError && state.loadError.file === code.source.file ? state.loadError : null;
  return renderExplained(code.source, code.explained, { error });

}

function addPatch(patch) {
  const open = state.open;
  if (!open || patch.trace_id !== open.traceId) return;
  if (!open.patches.some((p) => p.patch_id === patch.patch_id)) open.patches = [...open.patches, patch];
  renderTrace();
}

async function withBusy(button, action) {
  button.disabled = true;
  clearMessage();
  try {
    await action();
  } catch (err) {
    fail(err);
  } finally {
    button.disabled = false;
  }
}

function rerun(button) {
  const traceId = state.open.traceId;
  return withBusy(button, async () => {
    addPatch(await state.api.post(canvasPath(state.canvas, "traces", traceId, "rerun")));
  });
}

function runFunction(call, button) {
  const traceId = state.open.traceId;
  return withBusy(button, async () => {
    const path = canvasPath(state.canvas, "traces", traceId, "functions", call.function, "run");
    addPatch(await state.api.post(path, { args: call.args }));
  });
}

function renderTrace() {
  const open = state.open;
  const merged = merge(open.doc, open.patches);
  const rerunButton = h("button", { type: "button", id: "rerun", onclick: (e) => rerun(e.currentTarget) }, "Rerun handler");
  // Parameter names from the source API, once the code has loaded: calls read `f(a=1)`.
  const parameters = Object.fromEntries(((open.code && open.code.source && open.code.source.functions) || []).map((f) => [f.name, f.parameters || []]));
  // An adopted trace has no handler in its document: the list knows whose it is.
  const listed = state.handlers.get(open.manifest.handler_id);
  const handler = merged.handler || (listed && listed.description) || { id: open.manifest.handler_id };
  const parts = [
    h(
      "header",
      { class: "trace-head" },
      h("h2", {}, h("code", {}, handlerLabel(handler)), " ", h("span", { class: "muted" }, handler.id || "")),
      h(
        "p",
        {
          class: "muted",
          id: "trace-meta",
          dataset: { decoder: open.decoder, traceId: open.traceId, verified: String(Boolean(open.verified)) },
        },
        `trace ${open.traceId} · ${merged.base_execution.started_at} · ${open.bytes.toLocaleString()} bytes ` +
          `(${open.manifest.base.bytes.toLocaleString()} compressed${open.manifest.base.range ? ", one frame of a segment" : ""}` +
          `${open.verified ? ", sha256 checked" : ""}, decoded ${open.decoder === "native" ? "by the browser" : "by fzstd"})`,
        merged.truncated ? " · truncated by the trace limits" : "",
      ),
      h("p", { id: "patches", dataset: { applied: merged.applied_patches.length } }, `${merged.applied_patches.length} patch(es) applied `, rerunButton),
      compareControl(open),
      merged.input && merged.input.body && merged.input.body.truncated
        ? h("p", { class: "warning", id: "rerun-cut" }, `The recorded body was cut at the trace limit (${merged.input.body.bytes.toLocaleString()} bytes were sent): a rerun runs on the cut body.`)
        : null,
    ),
    renderCodePanel(open),
    renderInput(merged.input || {}),
    renderOutcome(merged.execution),
    merged.execution.source !== "base"
      ? renderComparison(merged.base_execution, merged.execution, { leftLabel: "recorded", rightLabel: "latest rerun", id: "rerun-comparison" })
      : null,
    renderCalls(merged.execution, merged.function_results, (call, mode) => {
      if (mode === "edit") return editAndRun(call);
      const button = document.querySelector(`#calls .call[data-call-id="${CSS.escape(String(call.id))}"] .run-function`);
      return runFunction(call, button || rerunButton);
    }, "calls", parameters),
    renderFunctionRuns(merged, parameters),
    renderTraceComparison(open, merged),
  ];
  if (merged.execution.source !== "base") {
    parts.push(
      h(
        "details",
        { class: "panel", id: "recorded", dataset: { key: "recorded" } },
        h("summary", {}, "Recorded execution"),
        renderOutcome({ ...merged.base_execution, source: "base" }, "recorded-result"),
        renderCalls({ ...merged.base_execution, source: "base" }, {}, (call) => {
          const button = document.querySelector(`#recorded-calls .call[data-call-id="${CSS.escape(String(call.id))}"] .run-function`);
          return runFunction(call, button || rerunButton);
        }, "recorded-calls", parameters),
      ),
    );
  }
  // A re-render (a patch, a new explain) keeps what the developer had opened.
  const view = $("trace-view");
  const opened = new Set([...view.querySelectorAll("details[data-key][open]")].map((d) => d.dataset.key));
  view.replaceChildren(...parts.filter(Boolean));
  for (const details of view.querySelectorAll("details[data-key]")) if (opened.has(details.dataset.key)) details.open = true;
  if (open.editing) {
    view.querySelector(`#calls .call[data-call-id="${CSS.escape(String(open.editing.call.id))}"]`)?.append(editForm(open));
  }
  if (merged.execution.source !== "base") setDotStatus(open.traceId, merged.execution.result?.status ?? null);
}

// -- start ----------------------------------------------------------------------

function main() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    $("token-input").value = "";
    if (token) signIn(token).catch(fail);
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("canvas-select").addEventListener("change", (event) => openCanvas(event.target.value).catch(fail));
  const token = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token).catch(fail);
  else signOut();
}

// `make run` prints the editor URL as `/#token=...`: a fragment never reaches a server or
// its logs. Take the token once and drop it from the address bar and the history entry.
function tokenFromFragment() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token === null) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return token.trim() || null;
}

main();
