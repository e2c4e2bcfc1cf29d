// The browser merge fold (gateway/static/merge.js) against the shared JSON vectors
// that also pin the Python fold (tests/test_merge.py). Run: node --test tests/js/
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

import { expanded } from "../../gateway/static/compact.js";
import { merge } from "../../gateway/static/merge.js";

const VECTORS = new URL("../vectors/merge/", import.meta.url);
const vectors = readdirSync(VECTORS)
  .filter((name) => name.endsWith(".json"))
  .sort()
  .map((name) => ({ file: name, ...JSON.parse(readFileSync(new URL(name, VECTORS), "utf8")) }));

// What a JSON consumer sees: the view is compared as parsed JSON, never as a string.
const asJson = (value) => JSON.parse(JSON.stringify(value));

test("the vector set is present", () => {
  assert.ok(vectors.length >= 12, `only ${vectors.length} vectors in ${VECTORS.pathname}`);
});

for (const vector of vectors) {
  test(`vector ${vector.file}: ${vector.name}`, async () => {
    const base = structuredClone(vector.base);
    const patches = structuredClone(vector.patches);

    // As the page loads a base: a strata.trace/2 one is expanded first (compact.js).
    const view = merge(await expanded(base), patches);

    assert.deepStrictEqual(asJson(view), vector.expected);
    // The Python fold documents mapping order too; keep the twins identical there.
    assert.deepStrictEqual(
      Object.keys(view.function_results),
      Object.keys(vector.expected.function_results),
    );
    assert.deepStrictEqual(base, vector.base, "merge mutated the base");
    assert.deepStrictEqual(patches, vector.patches, "merge mutated the patches");
  });
}

test("the fold does not depend on the order of the patch list", async () => {
  for (const vector of vectors) {
    const reversed = structuredClone(vector.patches).reverse();
    assert.deepStrictEqual(asJson(merge(await expanded(vector.base), reversed)), vector.expected, vector.file);
  }
});

test("the view shares no object with its inputs", () => {
  const vector = vectors.find((v) => v.name === "nested-calls-in-function-run");
  const base = structuredClone(vector.base);
  const patches = structuredClone(vector.patches);
  const view = merge(base, patches);

  view.input.headers.push(["x-mutated", "1"]);
  view.base_execution.calls[0].args.push("mutated");
  view.execution.calls[0].args.push("mutated");
  for (const entry of Object.values(view.function_results)) {
    if (entry.args) entry.args.push("mutated");
    if (entry.calls) entry.calls.push({ mutated: true });
  }

  assert.deepStrictEqual(base, vector.base);
  assert.deepStrictEqual(patches, vector.patches);
});

test("entries of the patch list that are not objects are skipped", () => {
  const { base, expected } = vectors.find((v) => v.name === "empty-patches");
  assert.deepStrictEqual(asJson(merge(base, [])), expected);
  assert.deepStrictEqual(asJson(merge(base, [null, 3, "x", []])), expected);
});
