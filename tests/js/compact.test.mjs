// The browser's reader of strata.trace/2 calls (gateway/static/compact.js), twin of
// trace_store/document/compact.py: rows in call_fields order, ending early, the user
// calls' args_hash derived. Run: node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { argsHash } from "../../gateway/static/argshash.js";
import { CALL_FIELDS, callObjects, expanded, FORMAT_1, FORMAT_2 } from "../../gateway/static/compact.js";

const doc = (calls) => ({ format: FORMAT_2, call_fields: [...CALL_FIELDS], trace_id: "t", calls });
// The hash of no arguments, [[],{}] (docs/trace-format.md).
const NO_ARGS_HASH = "1:5eed25f9aa1c68139fe47d7ea93769c16d4ddd46c01693921e0b40d9aaa39beb";

test("a row that ends after duration_us reads as the /1 call, its hash derived", async () => {
  const [call] = await callObjects(doc([[2, 0, "add_tax", "user", [7.0, 0.2], 8.4, 48, 8]]));
  assert.deepEqual(call, {
    id: 2, parent: 0, function: "add_tax", kind: "user", args: [7, 0.2], result: 8.4,
    started_us: 48, duration_us: 8,
    // docs/trace-format.md: add_tax(7.0, 0.2)
    args_hash: "1:bff4abfad7c2a8da7ec0ecde71c2f74705640b158595ec5d6da73586b8e5bbf2",
  });
});

test("kwargs, errors and a builtin's written hash", async () => {
  const error = { type: "ValueError", message: "no", traceback: "" };
  const calls = await callObjects(doc([
    [0, null, "f", "user", [1], 2, 0, 1, { k: 3 }],
    [1, null, "f", "user", [1], null, 0, 1, null, error],
    [2, null, "time.now", "builtin", null, 1.5, 0, 1, null, null, NO_ARGS_HASH],
  ]));
  assert.equal(calls[0].args_hash, await argsHash([1], { k: 3 }));
  assert.deepEqual(calls[0].kwargs, { k: 3 });
  assert.deepEqual(calls[1].error, error);
  assert.equal("result" in calls[1], false);
  assert.equal(calls[1].args_hash, await argsHash([1], {}));
  assert.equal(calls[2].args_hash, NO_ARGS_HASH);
  assert.equal("args" in calls[2], false);
});

test("malformed rows are empty objects, as the Python reader keeps them", async () => {
  const calls = await callObjects(doc([Array(12).fill(0), "x", { id: 0 }, [0, null, "f", "user", "no list", 1, 0, 0]]));
  assert.deepEqual(calls.slice(0, 3), [{}, {}, {}]);
  assert.equal("args_hash" in calls[3], false);
});

test("expanded: a /2 document as the /1 one it stands for; a /1 document itself", async () => {
  const old = await expanded(doc([[0, null, "f", "user", [], null, 0, 0]]));
  assert.equal(old.format, FORMAT_1);
  assert.equal("call_fields" in old, false);
  assert.equal(old.calls[0].args_hash, NO_ARGS_HASH);
  const v1 = { format: FORMAT_1, calls: [{ id: 0 }] };
  assert.equal(await expanded(v1), v1);
});

test("without WebCrypto (no secure context) a user call's hash stays unknown, the call reads", async () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  Object.defineProperty(globalThis, "crypto", { value: {}, configurable: true });
  try {
    const [call] = await callObjects(doc([[0, null, "f", "user", [1], 2, 0, 1]]));
    assert.deepEqual(call, { id: 0, parent: null, function: "f", kind: "user", args: [1], result: 2, started_us: 0, duration_us: 1 });
  } finally {
    Object.defineProperty(globalThis, "crypto", saved);
  }
  assert.match((await callObjects(doc([[0, null, "f", "user", [1], 2, 0, 1]])))[0].args_hash, /^1:/);
});
