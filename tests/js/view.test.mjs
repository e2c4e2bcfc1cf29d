// The trace view's pure parts: bodies keep their floats, and a call is offered for
// "Run again" only when the API would accept its arguments.
import assert from "node:assert/strict";
import { test } from "node:test";

import { toNumber } from "../../gateway/static/exact.js";
import { bodyText, handlerLabel, MAX_RUN_ARGS_BYTES, whyNotRunnable } from "../../gateway/static/view.js";

// Node 20 has no JSON.parse source text access (Chromium has): there floats cannot be
// told from ints, and the body is plain JSON. The browser test checks the page itself.
const sourceAccess = JSON.parse("1", (key, value, context) => context !== undefined);

test("a JSON body keeps 0.0 and 11.0 as floats, as the calls show them", () => {
  const text = bodyText({ encoding: "utf-8", data: '{"total":0.0,"n":11.0,"k":3,"f":2.5}', bytes: 36, truncated: false });
  const [zero, eleven] = sourceAccess ? ["0.0", "11.0"] : ["0", "11"];
  assert.equal(text, `{\n  "total": ${zero},\n  "n": ${eleven},\n  "k": 3,\n  "f": 2.5\n}`);
});

test("a body that is not JSON is shown as sent; a cut one says so", () => {
  assert.equal(bodyText({ encoding: "utf-8", data: "plain 0.0", bytes: 9, truncated: false }), "plain 0.0");
  assert.match(bodyText({ encoding: "utf-8", data: "abc", bytes: 2000000, truncated: true }), /cut at 2000000 bytes/);
});

test("a call is runnable only with positional args the API accepts", () => {
  const call = (args, extra = {}) => ({ kind: "user", function: "f", args, ...extra });
  assert.equal(whyNotRunnable(call([1, "a", { x: [1.5] }])), null);
  assert.match(whyNotRunnable(call(["x".repeat(MAX_RUN_ARGS_BYTES)])), /over 1 MiB/);
  assert.match(whyNotRunnable(call([{ $strata: "repr", type: "Request", v: "<Request>" }])), /recorded only as text/);
  assert.match(whyNotRunnable(call([[{ a: { $strata: "repr", type: "X", v: "x" } }]])), /recorded only as text/);
  assert.match(whyNotRunnable(call([1], { kwargs: { rate: 0.2 } })), /keyword arguments/);
  assert.match(whyNotRunnable({ kind: "builtin", function: "time.now", args_hash: "x" }), /no recorded arguments/);
  assert.equal(whyNotRunnable(call([{ $strata: "float", v: "11.0" }])), null);
});

test("toNumber reads a tagged float as its number and leaves numbers alone", () => {
  assert.equal(toNumber({ $strata: "float", v: "0.0" }), 0);
  assert.equal(toNumber(2.5), 2.5);
  assert.equal(`${toNumber({ $strata: "float", v: "3.0" })} ms`, "3 ms");
});

test("edited arguments must be a JSON array within the API's bound", async () => {
  const { parseArgs } = await import("../../gateway/static/view.js");
  assert.deepEqual(parseArgs('["tea", 2]'), { args: ["tea", 2] });
  assert.match(parseArgs("[1,").error, /not valid JSON/);
  assert.match(parseArgs('{"a": 1}').error, /must be a JSON array/);
  assert.match(parseArgs(JSON.stringify(["x".repeat(MAX_RUN_ARGS_BYTES)])).error, /over 1 MiB/);
});

test("handlers are named by route, queue or schedule", () => {
  assert.equal(handlerLabel({ id: "a", kind: "http", method: "GET", route: "/users/:id" }), "GET /users/:id");
  assert.equal(handlerLabel({ id: "b", kind: "worker", queue: "emails" }), "worker of emails");
  assert.equal(handlerLabel({ id: "c", kind: "cron", schedule: "*/5 * * * *" }), "cron */5 * * * *");
});
