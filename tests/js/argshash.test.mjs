// The browser args hash (gateway/static/argshash.js) against the shared vectors that
// also pin Python's hash_tagged_args (tests/test_args_hash_vectors.py). Regenerate the
// vectors with tests/vectors/args_hash/make_vectors.py. Run: node --test tests/js/
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { argsHash, canonicalJson, formatFloat } from "../../gateway/static/argshash.js";
import { parseExact } from "../../gateway/static/exact.js";

const VECTORS = new URL("../vectors/args_hash/vectors.json", import.meta.url);
const FLOATS = new URL("../vectors/args_hash/floats.json", import.meta.url);
const vectorsText = readFileSync(VECTORS, "utf8");
const vectors = JSON.parse(vectorsText);

test("the vector set is present", () => {
  assert.ok(vectors.length >= 250, `only ${vectors.length} vectors in ${VECTORS.pathname}`);
  assert.equal(new Set(vectors.map((v) => v.name)).size, vectors.length, "vector names repeat");
});

test("every vector hashes as Python hashed it (JSON.parse)", async () => {
  for (const vector of vectors) {
    assert.equal(await argsHash(vector.args, vector.kwargs), vector.args_hash, vector.name);
  }
});

test("every vector hashes as Python hashed it (parseExact, as the page reads)", async () => {
  const parsed = parseExact(vectorsText);
  for (const [i, vector] of parsed.entries()) {
    assert.equal(await argsHash(vector.args, vector.kwargs), vectors[i].args_hash, vector.name);
  }
});

// Node 20 gives JSON.parse no number source text without a flag, so parseExact tags
// nothing in-process; a child with the flag reads integral floats as tagged floats.
test("every vector hashes the same when parseExact tags integral floats", (t) => {
  const module = (path) => JSON.stringify(new URL(path, import.meta.url).href);
  const script = `
    import { readFileSync } from "node:fs";
    import { argsHash } from ${module("../../gateway/static/argshash.js")};
    import { parseExact } from ${module("../../gateway/static/exact.js")};
    const text = readFileSync(${JSON.stringify(VECTORS.pathname)}, "utf8");
    const tagged = (text.match(/"\\$strata":"float"/g) || []).length;
    const parsed = parseExact(text);
    const after = (JSON.stringify(parsed).match(/"\\$strata":"float"/g) || []).length;
    const hashes = [];
    for (const v of parsed) hashes.push(await argsHash(v.args, v.kwargs));
    console.log(JSON.stringify({ added: after - tagged, hashes }));
  `;
  const child = spawnSync(
    process.execPath,
    ["--harmony-json-parse-with-source", "--input-type=module", "-e", script],
    { encoding: "utf8", maxBuffer: 1 << 24 },
  );
  if (child.status !== 0 && /bad option/.test(child.stderr)) {
    t.skip("this node has no --harmony-json-parse-with-source");
    return;
  }
  assert.equal(child.status, 0, child.stderr);
  const { added, hashes } = JSON.parse(child.stdout);
  if (added === 0) {
    t.skip("no JSON.parse source text access even with the flag");
    return;
  }
  assert.ok(added >= 20, `parseExact tagged only ${added} integral floats`);
  assert.deepEqual(hashes, vectors.map((v) => v.args_hash));
});

test("orjson's float text for every double of floats.json", () => {
  const cases = JSON.parse(readFileSync(FLOATS, "utf8"));
  assert.ok(cases.length >= 8000, `only ${cases.length} floats in ${FLOATS.pathname}`);
  const view = new DataView(new ArrayBuffer(8));
  const wrong = [];
  for (const [hex, text] of cases) {
    view.setBigUint64(0, BigInt(`0x${hex}`));
    const got = formatFloat(view.getFloat64(0));
    if (got !== text) wrong.push(`${hex}: orjson ${text}, formatFloat ${got}`);
  }
  assert.deepEqual(wrong.slice(0, 20), [], `${wrong.length} floats differ`);
});

test("float layout at the thresholds", () => {
  const cases = [
    [1e16, "1e+16"],
    [1e15, "1000000000000000.0"],
    [9007199254740992, "9007199254740992.0"],
    [9999999999999998, "9999999999999998.0"],
    [1.5e-7, "1.5e-7"],
    [1e-5, "0.00001"],
    [9.999999999999999e-6, "9.999999999999999e-6"],
    [1.2345678901234568e20, "1.2345678901234568e+20"],
    [5e-324, "5e-324"],
    [-0, "-0.0"],
    [2, "2.0"],
    [-123.456, "-123.456"],
  ];
  for (const [x, text] of cases) assert.equal(formatFloat(x), text, String(x));
});

test("canonical JSON: integral numbers, tagged floats, key order, escapes", () => {
  assert.equal(
    canonicalJson([2, -0, 9007199254740991, 9007199254740992, 0.5]),
    "[2,0,9007199254740991,9007199254740992.0,0.5]",
  );
  assert.equal(
    canonicalJson([
      { $strata: "float", v: "11.0" },
      { $strata: "float", v: "1e+16" },
      { $strata: "float", v: "-0.0" },
      { $strata: "float", v: "nan" },
      { $strata: "float", v: "-inf" },
    ]),
    '[11,1e+16,0,{"$strata":"float","v":"nan"},{"$strata":"float","v":"-inf"}]',
  );
  // Not a tagged float: a third key, or a v that is not number text, stays an object.
  assert.equal(
    canonicalJson({ v: "1.0", $strata: "float", x: 1 }),
    '{"$strata":"float","v":"1.0","x":1}',
  );
  assert.equal(canonicalJson({ $strata: "float", v: " 1" }), '{"$strata":"float","v":" 1"}');
  assert.equal(
    canonicalJson({ "\u{1F600}": 1, "\uffff": 2, b: 3, a: 4 }),
    '{"a":4,"b":3,"\uffff":2,"\u{1F600}":1}',
  );
  assert.equal(canonicalJson(JSON.parse('{"__proto__": 1, "a": 2}')), '{"__proto__":1,"a":2}');
  assert.equal(
    canonicalJson("\u0000\b\t\n\f\r\u001f\"\\\u007f\u2028"),
    '"\\u0000\\b\\t\\n\\f\\r\\u001f\\"\\\\\u007f\u2028"',
  );
});

test("values orjson would not write the same way are refused", () => {
  const refused = [NaN, Infinity, -Infinity, undefined, 1n, () => 1, Symbol("s")];
  refused.push(new Date(0), new Map(), "\ud800", { "\udc00": 1 }, [, 1]);
  for (const bad of refused) {
    assert.throws(() => canonicalJson([bad]), TypeError, String(bad));
  }
  assert.throws(() => canonicalJson({ $strata: "float", v: "1e400" }), TypeError);
});

test("absent or null kwargs hash as empty kwargs", async () => {
  const empty = vectors.find((v) => v.name === "empty");
  assert.equal(await argsHash([]), empty.args_hash);
  assert.equal(await argsHash([], null), empty.args_hash);
  await assert.rejects(argsHash({}), TypeError);
});
