// Two executions of a handler side by side (SPEC §14): a rerun against the recorded
// execution, or one trace against another, with the differences listed by path.
//
// The diff is structural on decoded JSON: objects by key (sorted), arrays by index, and
// tagged values ({"$strata": ...}) as whole values, never descended into. A tagged float
// is a Python float: {"$strata": "float", "v": "11.0"} equals itself (and "11.00") but not
// the plain number 11, which is an int. Everything is pure except renderComparison, which
// builds DOM only when called, so the module imports under node. Trace data goes into the
// page as text nodes only: it holds whatever grand-users sent.

import { isObject, isTaggedFloat, parseExact, TAG } from "./exact.js";
import { h, json } from "./view.js";

/** Differences listed per part before the rest is summed up in one "more" entry. */
export const DIFF_LIMIT = 200;

const MISSING = Symbol("missing");
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const PARTS = [
  ["status", "Status"],
  ["error", "Error"],
  ["headers", "Headers"],
  ["body", "Body"],
  ["calls", "Calls"],
];

/**
 * The differences between the JSON values `a` and `b`, in a deterministic order:
 * `[{path, kind: "added"|"removed"|"changed", before, after}]` (`before` is undefined for
 * "added", `after` for "removed"), at most `limit` of them plus one
 * `{kind: "more", path: "", count}` for the rest.
 */
export function diffValues(a, b, path = "", limit = DIFF_LIMIT) {
  const out = collector(limit);
  diffInto(out, a, b, path);
  return out.finish();
}

/** The JSON value of a trace Body (`parseExact` of utf-8 JSON), else its text; base64 stays a string. */
export function parseBody(body) {
  if (!isObject(body)) return null;
  const data = typeof body.data === "string" ? body.data : "";
  if (body.encoding === "base64") return data;
  try {
    return parseExact(data);
  } catch {
    return data; // not JSON: compared as text
  }
}

/**
 * The differences between two executions (`{result, error, calls}`, as in a merged view's
 * `execution` and `base_execution`), one diff list per part:
 * `{status, error, body, headers, calls}`.
 */
export function compareExecutions(left, right, limit = DIFF_LIMIT) {
  const l = isObject(left) ? left : {};
  const r = isObject(right) ? right : {};
  return {
    status: diffValues(statusOf(l), statusOf(r), "status", limit),
    error: diffValues(own(l, "error") ?? null, own(r, "error") ?? null, "error", limit),
    body: diffBodies(resultOf(l), resultOf(r), limit),
    headers: diffValues(headersOf(resultOf(l)), headersOf(resultOf(r)), "headers", limit),
    calls: diffCalls(own(l, "calls"), own(r, "calls"), limit),
  };
}

/** How many differences a diff list stands for ("more" entries count as their `count`). */
export function countDifferences(diffs) {
  return diffs.reduce((n, d) => n + (d.kind === "more" ? d.count : 1), 0);
}

/**
 * A `section.panel` (id `id`) with, per part, "same" or a table path | left | right of the
 * differences; `data-differences` holds the total count.
 */
export function renderComparison(left, right, { leftLabel = "left", rightLabel = "right", id = "comparison" } = {}) {
  const parts = compareExecutions(left, right);
  let total = 0;
  const sections = PARTS.map(([name, title]) => {
    total += countDifferences(parts[name]);
    return renderPart(name, title, parts[name], { leftLabel, rightLabel });
  });
  return h(
    "section",
    { class: "panel comparison", id, dataset: { differences: String(total) } },
    h("h3", {}, "Compare ", h("span", { class: "source" }, `${leftLabel} ↔ ${rightLabel}`), " ", h("span", { class: "muted" }, total ? differenceCount(total) : "no differences")),
    sections,
  );
}

// ---- rendering

/** One part of a comparison (`diffs` from `diffValues`): "same", or its table. */
export function renderPart(name, title, diffs, { leftLabel = "left", rightLabel = "right" } = {}) {
  const count = countDifferences(diffs);
  return h(
    "div",
    { class: "compare-part", dataset: { part: name, differences: String(count) } },
    h("h4", {}, title, " ", count ? h("span", { class: "diff-count" }, differenceCount(count)) : h("span", { class: "same muted" }, "same")),
    count ? diffTable(diffs, leftLabel, rightLabel) : null,
  );
}

function differenceCount(n) {
  return n === 1 ? "1 difference" : `${n.toLocaleString()} differences`;
}

function diffTable(diffs, leftLabel, rightLabel) {
  return h(
    "table",
    { class: "diff" },
    h("thead", {}, h("tr", {}, h("th", {}, "path"), h("th", {}, leftLabel), h("th", {}, rightLabel))),
    h("tbody", {}, diffs.map(diffRow)),
  );
}

function diffRow(d) {
  if (d.kind === "more") {
    return h("tr", { class: "diff-more" }, h("td", { colspan: 3, class: "muted" }, `… ${differenceCount(d.count)} more not shown`));
  }
  return h(
    "tr",
    { class: `diff-row diff-${d.kind}`, dataset: { path: d.path } },
    h("td", { class: "diff-path" }, h("code", {}, d.path || "(whole value)")),
    valueCell(d.kind === "added" ? MISSING : d.before, "diff-before"),
    valueCell(d.kind === "removed" ? MISSING : d.after, "diff-after"),
  );
}

function valueCell(value, cls) {
  if (value === MISSING) return h("td", { class: "diff-absent muted" }, "(absent)");
  return h("td", { class: cls }, h("pre", {}, json(value)));
}

// ---- the parts of an execution

function resultOf(execution) {
  const result = own(execution, "result");
  return isObject(result) ? result : null;
}

function statusOf(execution) {
  const result = resultOf(execution);
  return result ? (own(result, "status") ?? null) : null;
}

// `[[name, value], ...]` -> {lowercased name: value}; a repeated name keeps every value, in order.
function headersOf(result) {
  if (!result) return null;
  const pairs = Array.isArray(own(result, "headers")) ? result.headers : [];
  const out = {};
  for (const pair of pairs) {
    if (!Array.isArray(pair) || typeof pair[0] !== "string") continue;
    const name = pair[0].toLowerCase();
    const value = pair[1];
    if (!has(out, name)) setOwn(out, name, value);
    else if (Array.isArray(out[name])) out[name].push(value);
    else out[name] = [out[name], value];
  }
  return out;
}

function diffBodies(left, right, limit) {
  const out = collector(limit);
  const lb = left ? own(left, "body") : undefined;
  const rb = right ? own(right, "body") : undefined;
  // Base64 data and text that happen to match are still different bodies.
  if (isObject(lb) && isObject(rb) && lb.encoding !== rb.encoding) {
    out.add({ path: "body.encoding", kind: "changed", before: lb.encoding, after: rb.encoding });
  }
  diffInto(out, parseBody(lb), parseBody(rb), "body");
  return out.finish();
}

function diffCalls(left, right, limit) {
  const out = collector(limit);
  const l = Array.isArray(left) ? left : [];
  const r = Array.isArray(right) ? right : [];
  for (let i = 0; i < Math.max(l.length, r.length); i++) {
    if (i >= r.length) out.add({ path: callPath(i, l[i]), kind: "removed", before: callView(l[i]), after: undefined });
    else if (i >= l.length) out.add({ path: callPath(i, r[i]), kind: "added", before: undefined, after: callView(r[i]) });
    else diffInto(out, callView(l[i]), callView(r[i]), `calls[${i}]`);
  }
  return out.finish();
}

function callPath(i, call) {
  const fn = isObject(call) ? own(call, "function") : undefined;
  return typeof fn === "string" ? `calls[${i}] ${fn}` : `calls[${i}]`;
}

// What a call is, for comparing: its function, arguments and outcome; not ids, times or hashes.
function callView(call) {
  if (!isObject(call)) return call;
  const view = {};
  for (const name of ["function", "args", "kwargs"]) {
    if (has(call, name)) view[name] = call[name];
  }
  const error = own(call, "error");
  if (error !== undefined && error !== null) view.error = error;
  else if (has(call, "result")) view.result = call.result;
  return view;
}

// ---- the structural diff

function collector(limit) {
  const entries = [];
  let more = 0;
  return {
    add(entry) {
      if (entries.length < limit) entries.push(entry);
      else more += 1;
    },
    finish() {
      return more ? [...entries, { kind: "more", path: "", count: more }] : entries;
    },
  };
}

// Iterative depth-first walk (a body may nest deeper than the call stack allows); children
// are pushed in reverse so they come off the stack, and into `out`, in order.
function diffInto(out, a, b, path) {
  const stack = [[a, b, path]];
  while (stack.length) {
    const [x, y, p] = stack.pop();
    if (x === MISSING) out.add({ path: p, kind: "added", before: undefined, after: y });
    else if (y === MISSING) out.add({ path: p, kind: "removed", before: x, after: undefined });
    else if (Array.isArray(x) && Array.isArray(y)) {
      for (let i = Math.max(x.length, y.length) - 1; i >= 0; i--) {
        stack.push([i < x.length ? x[i] : MISSING, i < y.length ? y[i] : MISSING, `${p}[${i}]`]);
      }
    } else if (isPlainObject(x) && isPlainObject(y)) {
      const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])].sort().reverse();
      for (const k of keys) stack.push([has(x, k) ? x[k] : MISSING, has(y, k) ? y[k] : MISSING, keyPath(p, k)]);
    } else if (!same(x, y)) {
      out.add({ path: p, kind: "changed", before: x, after: y });
    }
  }
}

function keyPath(path, key) {
  if (IDENTIFIER.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}

// Deep equality of JSON values, iterative, with tagged floats compared as floats.
function same(a, b) {
  const stack = [[a, b]];
  while (stack.length) {
    const [x, y] = stack.pop();
    if (x === y) continue;
    if (isTaggedFloat(x) || isTaggedFloat(y)) {
      if (!sameFloat(x, y)) return false;
    } else if (Array.isArray(x) && Array.isArray(y)) {
      if (x.length !== y.length) return false;
      for (let i = 0; i < x.length; i++) stack.push([x[i], y[i]]);
    } else if (isObject(x) && isObject(y)) {
      const keys = Object.keys(x);
      if (keys.length !== Object.keys(y).length) return false;
      for (const k of keys) {
        if (!has(y, k)) return false;
        stack.push([x[k], y[k]]);
      }
    } else {
      return false;
    }
  }
  return true;
}

// 11.0 == 11.00 == 1.1e1 as floats; "nan" equals itself (a recorded value, not arithmetic).
// A plain integral number is an int, never a float; a plain 2.5 can only be a float.
function sameFloat(x, y) {
  const fx = floatOf(x);
  const fy = floatOf(y);
  if (fx === null || fy === null) return false;
  return fx.text === fy.text || fx.value === fy.value;
}

function floatOf(value) {
  if (isTaggedFloat(value)) return { text: value.v, value: Number(value.v) };
  if (typeof value === "number" && !Number.isInteger(value)) return { text: null, value };
  return null;
}

function isPlainObject(value) {
  return isObject(value) && !has(value, TAG);
}

// Own properties only: "constructor" in a body must not read as Object.prototype's.
function has(object, name) {
  return Object.prototype.hasOwnProperty.call(object, name);
}

function own(object, name) {
  return isObject(object) && has(object, name) ? object[name] : undefined;
}

// defineProperty, not assignment: a "__proto__" header must stay an own property.
function setOwn(object, name, value) {
  Object.defineProperty(object, name, { value, enumerable: true, writable: true, configurable: true });
}
