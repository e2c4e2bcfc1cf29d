// DOM rendering of a merged trace view. Everything from a trace goes in as text nodes,
// never as HTML: traces hold whatever grand-users sent.

import { parseExact, showJson, toNumber } from "./exact.js";
import { valueText } from "./values.js";

/** Characters of a body or value shown before it is cut (the full value stays in memory). */
export const SHOW_CHARS = 64 * 1024;

/** `h("div", {class: "x"}, child, "text")`: a small element builder. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function cut(text, limit = SHOW_CHARS) {
  if (text.length <= limit) return text;
  return `${text.slice(0, limit)}\n… (${text.length.toLocaleString()} characters, first ${limit.toLocaleString()} shown)`;
}

export function json(value) {
  return cut(showJson(value));
}

/** Bodies up to this many characters are pretty-printed (a trace holds at most ~64 MB). */
export const FORMAT_CHARS = 16 * 1024 * 1024;

/** A recorded body's whole text: JSON pretty-printed with its floats kept (0.0 stays 0.0). */
export function fullBodyText(body) {
  if (!body) return "(none)";
  if (body.encoding === "base64") return `(${body.bytes} bytes of binary data, base64)\n${body.data}`;
  let text = body.data ?? "";
  if (text.length < FORMAT_CHARS) {
    try {
      text = showJson(parseExact(text));
    } catch {
      // not JSON: show as sent
    }
  }
  return text + (body.truncated ? `\n… (cut at ${body.bytes} bytes by the trace limits)` : "");
}

/** A recorded body as shown at first: formatted, cut at :data:`SHOW_CHARS`. */
export function bodyText(body) {
  return cut(fullBodyText(body));
}

/** A body's `<pre>`, and for a large one the buttons that show all of it or save it. */
function bodyBlock(body, cls) {
  const text = fullBodyText(body);
  const pre = h("pre", { class: cls }, cut(text));
  if (text.length <= SHOW_CHARS) return pre;
  const all = h("button", { type: "button", class: "show-all" }, `Show all ${text.length.toLocaleString()} characters`);
  all.addEventListener("click", () => {
    pre.textContent = text;
    pre.classList.add("expanded");
    all.remove();
  });
  const save = h("button", { type: "button", class: "download" }, "Download");
  save.addEventListener("click", () => {
    const isJson = body && body.encoding !== "base64";
    const blob = new Blob([body && body.encoding !== "base64" ? body.data : text], { type: isJson ? "application/json" : "text/plain" });
    const link = h("a", { href: URL.createObjectURL(blob), download: isJson ? "body.json" : "body.txt" });
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  });
  return h("div", { class: "large-body" }, pre, h("p", {}, all, " ", save));
}

/** Bytes of JSON args a function run accepts (the API's MAX_ARGS_BYTES). */
export const MAX_RUN_ARGS_BYTES = 1024 * 1024;

// The request body a function run sends, against the API's bound.
function argsTooLarge(args) {
  return new TextEncoder().encode(JSON.stringify({ args })).length > MAX_RUN_ARGS_BYTES;
}

function holdsRepr(value) {
  if (Array.isArray(value)) return value.some(holdsRepr);
  if (value === null || typeof value !== "object") return false;
  if (value.$strata === "repr") return true;
  return Object.values(value).some(holdsRepr);
}

/** Why a recorded call cannot be run again as recorded (`null`: it can). */
export function whyNotRunnable(call) {
  if (call.kind !== "user" || !Array.isArray(call.args)) return "no recorded arguments";
  if (holdsRepr(call.args) || holdsRepr(call.kwargs || {})) return "its arguments hold values recorded only as text";
  if (call.kwargs && Object.keys(call.kwargs).length) return "it was called with keyword arguments";
  if (argsTooLarge(call.args)) return "its arguments are over 1 MiB";
  return null;
}

function headerTable(headers) {
  return h(
    "table",
    { class: "headers" },
    (headers || []).map(([name, value]) => h("tr", {}, h("th", {}, name), h("td", {}, value))),
  );
}

function sourceLabel(source) {
  return source === "base" ? "recorded" : `patch ${String(source).slice(0, 8)}`;
}

/** How a handler is named in lists and headings: its route, queue or schedule. */
export function handlerLabel(handler) {
  if (handler.kind === "worker") return `worker of ${handler.queue}`;
  if (handler.kind === "cron") return `cron ${handler.schedule}`;
  return `${handler.method || ""} ${handler.route || ""}`.trim();
}

function renderEventInput(input) {
  const line =
    input.kind === "worker"
      ? [
          "message ",
          h("code", { id: "input-message" }, input.message_id),
          ` on queue ${input.queue} · attempt ${input.attempt} · enqueued ${input.enqueued_at}`,
        ]
      : ["tick ", h("code", { id: "input-tick" }, input.tick), ` · ${input.schedule}`];
  return h(
    "section",
    { class: "panel", id: "input", dataset: { kind: input.kind } },
    h("h3", {}, "Input"),
    h("p", { class: "request-line" }, ...line),
    input.kind === "worker" ? h("pre", { class: "event", id: "input-event" }, cut(valueText(input.event))) : null,
  );
}

export function renderInput(input) {
  if (input.kind === "worker" || input.kind === "cron") return renderEventInput(input);
  const query = Object.entries(input.query || {})
    .flatMap(([k, vs]) => vs.map((v) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`))
    .join("&");
  return h(
    "section",
    { class: "panel", id: "input" },
    h("h3", {}, "Input"),
    h(
      "p",
      { class: "request-line" },
      h("span", { class: "method" }, input.method),
      " ",
      h("code", { id: "input-path" }, input.path),
      query ? h("code", { class: "query" }, `?${query}`) : null,
    ),
    Object.keys(input.params || {}).length ? h("pre", { class: "params" }, json(input.params)) : null,
    h("details", {}, h("summary", {}, `Headers (${(input.headers || []).length})`), headerTable(input.headers)),
    h("h4", {}, "Body"),
    bodyBlock(input.body, "body"),
  );
}

export function renderOutcome(execution, id = "result") {
  const children = [h("h3", {}, "Result ", h("span", { class: "source" }, sourceLabel(execution.source)))];
  if (execution.error) {
    const e = execution.error;
    children.push(
      h("p", { class: "error-line" }, `${e.type}: ${e.message}`),
      e.traceback ? h("pre", { class: "traceback" }, cut(String(e.traceback))) : null,
    );
  }
  const result = execution.result;
  if (result && "value" in result) {
    children.push(h("pre", { class: "result-value" }, cut(valueText(result.value))));
  } else if (result) {
    children.push(
      h("p", {}, "Status ", h("strong", { class: "status" }, result.status)),
      h("details", {}, h("summary", {}, `Headers (${(result.headers || []).length})`), headerTable(result.headers)),
      bodyBlock(result.body, "body result-body"),
    );
  } else if (!execution.error) {
    children.push(h("p", { class: "muted" }, "No result recorded (adopted from an unmatched request)."));
  }
  const ms = toNumber(execution.duration_ms);
  if (typeof ms === "number") children.push(h("p", { class: "muted" }, `${ms.toFixed(2)} ms`));
  return h("section", { class: "panel", id, dataset: { source: execution.source } }, children);
}

/** The args a developer typed: a JSON array within the API's bound, else why not. */
export function parseArgs(text) {
  let args;
  try {
    args = parseExact(text);
  } catch (err) {
    return { error: `not valid JSON: ${err.message}` };
  }
  if (!Array.isArray(args)) return { error: "the arguments must be a JSON array, e.g. [11.0, 0.2]" };
  if (argsTooLarge(args)) return { error: "over 1 MiB of arguments" };
  return { args };
}

function runButton(call, onRun) {
  if (call.kind !== "user") return null;
  const why = whyNotRunnable(call);
  if (why) return h("span", { class: "muted not-runnable", title: `cannot run again: ${why}` }, `not runnable: ${why}`);
  return [
    h("button", { type: "button", class: "run-function", onclick: () => onRun(call) }, "Run again"),
    h("button", { type: "button", class: "edit-function", onclick: () => onRun(call, "edit") }, "Edit args"),
  ];
}

/** A call's duration for people: µs below 10 ms, else ms. */
export function durationText(us) {
  const value = toNumber(us);
  if (typeof value !== "number") return "";
  return value < 10_000 ? `${Math.round(value).toLocaleString()} µs` : `${(value / 1000).toFixed(1)} ms`;
}

/** A call's arguments as `name=value, …`, named by `names` (the function's parameters). */
export function argsText(call, names = []) {
  if (!Array.isArray(call.args)) return call.kind === "builtin" ? "" : `args hash ${call.args_hash}`;
  const shown = call.args.map((value, i) => (names[i] ? `${names[i]}=${valueText(value)}` : valueText(value)));
  for (const [name, value] of Object.entries(call.kwargs || {})) shown.push(`${name}=${valueText(value)}`);
  return shown.join(", ");
}

function outcomeLine(record) {
  if (record.error) return `raised ${record.error.type ?? "error"}: ${record.error.message ?? ""}`;
  return valueText(record.result);
}

/**
 * The call tree of `execution`, one line per call: `name(param=value, …) → result`,
 * its duration, nested calls collapsible; `latest` is the merged function_results;
 * `onRun(call)` runs a user function again on the call's args; `parameters` maps a
 * function name to its parameter names.
 */
export function renderCalls(execution, latest, onRun, id = "calls", parameters = {}) {
  const calls = Array.isArray(execution.calls) ? execution.calls : [];
  const children = new Map();
  for (const call of calls) {
    const parent = call.parent ?? null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(call);
  }
  const seen = new Set();
  const node = (call) => {
    if (seen.has(call.id)) return null; // a malformed parent cycle must not loop forever
    seen.add(call.id);
    const newer = latest[`${call.function}:${call.args_hash}`];
    const nested = children.get(call.id) || [];
    return h(
      "li",
      { class: `call ${call.kind}`, dataset: { function: call.function, callId: call.id } },
      h("span", { class: "call-head" }, h("code", { class: "fn" }, call.function), call.kind === "builtin" ? h("span", { class: "kind" }, "builtin") : null),
      h("code", { class: "call-args" }, `(${cut(argsText(call, parameters[call.function]), 2000)})`),
      h("code", { class: `call-result${call.error ? " raised" : ""}` }, `→ ${cut(outcomeLine(call), 2000)}`),
      h("span", { class: "call-meta" }, h("span", { class: "muted duration" }, durationText(call.duration_us)), runButton(call, onRun)),
      newer && newer.source !== execution.source
        ? h("code", { class: "call-latest", dataset: { source: newer.source } }, `latest run (${sourceLabel(newer.source)}) → ${cut(outcomeLine(newer), 2000)}`)
        : null,
      nested.length
        ? h("details", { class: "call-children", open: true }, h("summary", {}, `${nested.length} nested call(s)`), h("ul", {}, nested.map(node)))
        : null,
    );
  };
  const roots = calls.filter((c) => c.parent === null || c.parent === undefined || !calls.some((p) => p.id === c.parent));
  return h(
    "section",
    { class: "panel", id },
    h("h3", {}, `Calls (${calls.length})`),
    calls.length ? h("ul", { class: "call-tree" }, roots.map(node)) : h("p", { class: "muted" }, "No calls recorded."),
  );
}

/** Function runs from patches that are not part of the current execution. */
export function renderFunctionRuns(merged, parameters = {}) {
  const runs = Object.values(merged.function_results).filter(
    (r) => r.source !== "base" && r.source !== merged.execution.source,
  );
  if (!runs.length) return null;
  return h(
    "section",
    { class: "panel", id: "function-runs" },
    h("h3", {}, "Function runs"),
    h(
      "ul",
      {},
      runs.map((r) =>
        h(
          "li",
          { class: "function-run", dataset: { function: r.function, source: r.source } },
          h("code", { class: "fn" }, r.function),
          h("code", { class: "call-args" }, `(${cut(argsText({ kind: "user", args: r.args ?? [] }, parameters[r.function]), 2000)})`),
          h("code", { class: "call-result" }, ` → ${cut(outcomeLine(r), 2000)}`),
        ),
      ),
    ),
  );
}
