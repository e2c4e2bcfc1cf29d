// The comparison of two executions (gateway/static/compare.js): the structural diff,
// bodies parsed for it, and the per-part comparison. renderComparison needs a DOM and is
// tested in Chromium; here the module only has to import. Run: node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  compareExecutions,
  countDifferences,
  DIFF_LIMIT,
  diffValues,
  parseBody,
  renderComparison,
} from "../../gateway/static/compare.js";

// Node 20 has no JSON.parse source text access, so parseExact cannot tag floats there:
// tagged floats are written into the test values directly.
const float = (v) => ({ $strata: "float", v });

const utf8 = (data) => ({ encoding: "utf-8", data, bytes: data.length, truncated: false });

function execution({ status = 200, headers = [["Content-Type", "application/json"]], body = '{"ok":true}', error = null, calls = [] } = {}) {
  return { source: "base", result: { status, headers, body: utf8(body) }, error, calls, duration_ms: 1.5, started_at: "2024-01-01T00:00:00Z" };
}

function call(id, fn, args, result, extra = {}) {
  return { id, parent: null, function: fn, kind: "user", args, result, args_hash: `1:${fn}:${id}`, started_us: 10 * id, duration_us: 5, ...extra };
}

const noDifferences = { status: [], error: [], body: [], headers: [], calls: [] };

test("the module imports under node and renderComparison is a function", () => {
  assert.equal(typeof renderComparison, "function");
});

test("equal executions have no differences, whatever their ids, times and sources", () => {
  const left = execution({ calls: [call(0, "add_tax", [10, float("0.2")], float("12.0"))] });
  const right = structuredClone(left);
  right.source = "patch-1";
  right.duration_ms = 99;
  right.calls[0] = { ...right.calls[0], id: 7, started_us: 1234, duration_us: 999, args_hash: "1:other" };
  assert.deepEqual(compareExecutions(left, right), noDifferences);
  assert.deepEqual(diffValues({ a: [1, { b: "x" }] }, { a: [1, { b: "x" }] }), []);
  assert.deepEqual(compareExecutions(null, undefined), noDifferences);
});

test("a changed status is one change at path status", () => {
  const diff = compareExecutions(execution({ status: 200 }), execution({ status: 500 }));
  assert.deepEqual(diff.status, [{ path: "status", kind: "changed", before: 200, after: 500 }]);
  assert.deepEqual(diff.body, []);
});

test("a changed nested body field is found by its path", () => {
  const left = execution({ body: '{"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}],"total":3}' });
  const right = execution({ body: '{"total":3,"items":[{"sku":"a","qty":1},{"sku":"b","qty":5}]}' });
  assert.deepEqual(compareExecutions(left, right).body, [{ path: "body.items[1].qty", kind: "changed", before: 2, after: 5 }]);
});

test("added and removed keys, in sorted order, non-identifiers bracketed", () => {
  const diffs = diffValues({ b: 1, keep: 0, "content-type": "x" }, { a: 2, keep: 0, "x-new": true });
  assert.deepEqual(diffs, [
    { path: "a", kind: "added", before: undefined, after: 2 },
    { path: "b", kind: "removed", before: 1, after: undefined },
    { path: '["content-type"]', kind: "removed", before: "x", after: undefined },
    { path: '["x-new"]', kind: "added", before: undefined, after: true },
  ]);
  assert.deepEqual(diffValues({ o: { "a b": 1 } }, { o: {} }, "body"), [
    { path: 'body.o["a b"]', kind: "removed", before: 1, after: undefined },
  ]);
});

test("headers compare by lowercased name; a repeated header keeps all its values", () => {
  const left = execution({ headers: [["Content-Type", "application/json"], ["X-Order", "accepted"], ["Set-Cookie", "a=1"]] });
  const right = execution({ headers: [["content-type", "text/plain"], ["Set-Cookie", "a=1"], ["set-cookie", "b=2"], ["X-New", "1"]] });
  assert.deepEqual(compareExecutions(left, right).headers, [
    { path: 'headers["content-type"]', kind: "changed", before: "application/json", after: "text/plain" },
    { path: 'headers["set-cookie"]', kind: "changed", before: "a=1", after: ["a=1", "b=2"] },
    { path: 'headers["x-new"]', kind: "added", before: undefined, after: "1" },
    { path: 'headers["x-order"]', kind: "removed", before: "accepted", after: undefined },
  ]);
});

test("arrays of different lengths: common items by index, then the extra ones", () => {
  assert.deepEqual(diffValues([1, 2, 3], [1, 9], "items"), [
    { path: "items[1]", kind: "changed", before: 2, after: 9 },
    { path: "items[2]", kind: "removed", before: 3, after: undefined },
  ]);
  assert.deepEqual(diffValues([], [{ a: 1 }, "x"]), [
    { path: "[0]", kind: "added", before: undefined, after: { a: 1 } },
    { path: "[1]", kind: "added", before: undefined, after: "x" },
  ]);
});

test("a type change is one change of the whole value", () => {
  assert.deepEqual(diffValues({ a: [1] }, { a: { 0: 1 } }), [{ path: "a", kind: "changed", before: [1], after: { 0: 1 } }]);
  assert.deepEqual(diffValues(null, { a: 1 }, "error"), [{ path: "error", kind: "changed", before: null, after: { a: 1 } }]);
  assert.deepEqual(diffValues(1, "1"), [{ path: "", kind: "changed", before: 1, after: "1" }]);
});

test("a tagged float equals itself, not the int of the same value", () => {
  assert.deepEqual(diffValues({ n: float("11.0") }, { n: float("11.0") }), []);
  assert.deepEqual(diffValues(float("11.0"), float("11.00")), [], "the same float, written two ways");
  assert.deepEqual(diffValues(float("nan"), float("nan")), []);
  assert.deepEqual(diffValues({ n: float("11.0") }, { n: 11 }), [{ path: "n", kind: "changed", before: float("11.0"), after: 11 }]);
  assert.deepEqual(diffValues(11, float("11.0")), [{ path: "", kind: "changed", before: 11, after: float("11.0") }]);
  assert.deepEqual(diffValues(float("11.0"), float("12.0")).length, 1);
  assert.deepEqual(diffValues(float("inf"), float("-inf")).length, 1);
  // A plain non-integral number can only be a float.
  assert.deepEqual(diffValues([2.5], [float("2.5")]), []);
  assert.deepEqual(diffValues([2.5], [2.5]), []);
  assert.deepEqual(diffValues([2.5], [2.25]), [{ path: "[0]", kind: "changed", before: 2.5, after: 2.25 }]);
});

test("other tagged values are compared whole, never descended into", () => {
  const tuple = (...v) => ({ $strata: "tuple", v });
  assert.deepEqual(diffValues({ t: tuple(1, float("2.0")) }, { t: tuple(1, float("2.0")) }), []);
  assert.deepEqual(diffValues({ t: tuple(1, 2) }, { t: tuple(1, 3) }), [
    { path: "t", kind: "changed", before: tuple(1, 2), after: tuple(1, 3) },
  ]);
  assert.deepEqual(diffValues({ $strata: "decimal", v: "1.10" }, { $strata: "decimal", v: "1.1" }).map((d) => d.path), [""]);
  const tagged = { $strata: "dict", v: [[1, "a"]] };
  assert.deepEqual(diffValues(tagged, { v: [[1, "a"]] }), [{ path: "", kind: "changed", before: tagged, after: { v: [[1, "a"]] } }]);
});

test("a call whose result changed is reported under its position", () => {
  const left = execution({ calls: [call(0, "load", ["o1"], { qty: 2 }), call(1, "add_tax", [10], float("12.0"))] });
  const right = execution({ calls: [call(0, "load", ["o1"], { qty: 2 }), call(1, "add_tax", [10], float("13.0"))] });
  assert.deepEqual(compareExecutions(left, right).calls, [
    { path: "calls[1].result", kind: "changed", before: float("12.0"), after: float("13.0") },
  ]);
  const raised = structuredClone(right);
  delete raised.calls[0].result;
  raised.calls[0].error = { type: "KeyError", message: "'o1'", traceback: "..." };
  assert.deepEqual(compareExecutions(left, raised).calls.slice(0, 2), [
    { path: "calls[0].error", kind: "added", before: undefined, after: raised.calls[0].error },
    { path: "calls[0].result", kind: "removed", before: { qty: 2 }, after: undefined },
  ]);
});

test("a call on one side only is added or removed, with its function name", () => {
  const tick = { id: 1, parent: null, function: "time.now", kind: "builtin", args_hash: "1:x", result: 1.5, started_us: 3, duration_us: 1 };
  const left = execution({ calls: [call(0, "load", ["o1"], 1)] });
  const right = execution({ calls: [call(0, "load", ["o1"], 1), tick] });
  assert.deepEqual(compareExecutions(left, right).calls, [
    { path: "calls[1] time.now", kind: "added", before: undefined, after: { function: "time.now", result: 1.5 } },
  ]);
  assert.deepEqual(compareExecutions(right, left).calls, [
    { path: "calls[1] time.now", kind: "removed", before: { function: "time.now", result: 1.5 }, after: undefined },
  ]);
});

test("errors and kwargs are compared too", () => {
  const error = (message) => ({ type: "ValueError", message, traceback: "Traceback ..." });
  const diff = compareExecutions(execution({ error: null }), execution({ error: error("bad") }));
  assert.deepEqual(diff.error, [{ path: "error", kind: "changed", before: null, after: error("bad") }]);
  assert.deepEqual(compareExecutions(execution({ error: error("a") }), execution({ error: error("b") })).error, [
    { path: "error.message", kind: "changed", before: "a", after: "b" },
  ]);
  const left = execution({ calls: [call(0, "f", [1], 2, { kwargs: { rate: float("0.0") } })] });
  const right = execution({ calls: [call(0, "f", [1], 2, { kwargs: { rate: 0 } })] });
  assert.deepEqual(compareExecutions(left, right).calls.map((d) => d.path), ["calls[0].kwargs.rate"]);
});

test("a missing result (adopted trace) compares as null", () => {
  const adopted = { source: "base", result: null, error: null, calls: [] };
  const diff = compareExecutions(adopted, execution({ status: 201 }));
  assert.deepEqual(diff.status, [{ path: "status", kind: "changed", before: null, after: 201 }]);
  assert.deepEqual(diff.body.map((d) => d.path), ["body"]);
  assert.deepEqual(diff.headers.map((d) => d.path), ["headers"]);
});

test("parseBody: JSON bodies parsed, text kept as text, base64 kept as its string", () => {
  assert.deepEqual(parseBody(utf8('{"a":[1,2.5]}')), { a: [1, 2.5] });
  assert.equal(parseBody(utf8("plain 0.0")), "plain 0.0");
  assert.equal(parseBody(utf8('{"cut":')), '{"cut":');
  assert.equal(parseBody({ encoding: "base64", data: "AAEC", bytes: 3, truncated: false }), "AAEC");
  assert.equal(parseBody(null), null);
  assert.equal(parseBody(undefined), null);
});

test("bodies: text compared as text, JSON key order ignored, encodings told apart", () => {
  assert.deepEqual(compareExecutions(execution({ body: "hello" }), execution({ body: "hullo" })).body, [
    { path: "body", kind: "changed", before: "hello", after: "hullo" },
  ]);
  assert.deepEqual(compareExecutions(execution({ body: '{"a":1,"b":2}' }), execution({ body: '{ "b": 2, "a": 1 }' })).body, []);
  const binary = execution();
  binary.result.body = { encoding: "base64", data: "aGk=", bytes: 2, truncated: false };
  assert.deepEqual(compareExecutions(execution({ body: "aGk=" }), binary).body, [
    { path: "body.encoding", kind: "changed", before: "utf-8", after: "base64" },
  ]);
});

test("keys inherited from Object.prototype are not taken for present ones", () => {
  assert.deepEqual(diffValues({}, { constructor: 1 }), [{ path: "constructor", kind: "added", before: undefined, after: 1 }]);
  const proto = JSON.parse('{"__proto__": {"x": 1}}');
  assert.deepEqual(diffValues(proto, JSON.parse('{"__proto__": {"x": 2}}')).map((d) => d.path), ["__proto__.x"]);
  assert.deepEqual(diffValues(proto, {}).map((d) => d.kind), ["removed"]);
});

test("the diff stops at the limit and counts the rest in one 'more' entry", () => {
  const a = Array.from({ length: 500 }, (_, i) => i);
  const b = a.map((n) => n + 1);
  const diffs = diffValues(a, b);
  assert.equal(diffs.length, DIFF_LIMIT + 1);
  assert.equal(DIFF_LIMIT, 200);
  assert.deepEqual(diffs[DIFF_LIMIT - 1], { path: "[199]", kind: "changed", before: 199, after: 200 });
  assert.deepEqual(diffs[DIFF_LIMIT], { kind: "more", path: "", count: 300 });
  assert.equal(countDifferences(diffs), 500);
  assert.deepEqual(diffValues(a, b, "x", 3).at(-1), { kind: "more", path: "", count: 497 });
  assert.equal(diffValues(a.slice(0, 200), b.slice(0, 200)).length, 200, "exactly the limit: no 'more' entry");

  const many = (n) => Array.from({ length: n }, (_, i) => call(i, `f${i}`, [i], i));
  const calls = compareExecutions(execution({ calls: [] }), execution({ calls: many(250) })).calls;
  assert.equal(calls.length, DIFF_LIMIT + 1);
  assert.equal(calls[0].path, "calls[0] f0");
  assert.deepEqual(calls.at(-1), { kind: "more", path: "", count: 50 });
});

test("deeply nested bodies do not overflow the stack", () => {
  let a = 1;
  let b = 2;
  for (let i = 0; i < 20000; i++) {
    a = [a];
    b = [b];
  }
  const diffs = diffValues(a, b);
  assert.equal(diffs.length, 1);
  assert.equal(diffs[0].path, "[0]".repeat(20000));
});
