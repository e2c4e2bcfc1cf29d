// Integral floats survive the page (gateway/static/exact.js). Run: node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseExact, showJson } from "../../gateway/static/exact.js";

const sourceAccess = JSON.parse("1", (key, value, context) => context !== undefined);

test("integral floats are tagged where the engine gives number source text", () => {
  const parsed = parseExact('{"args": [11.0, 11, 0.2, 1e16, -3.0e0, "11.0"]}');
  if (sourceAccess) {
    assert.deepEqual(parsed.args, [
      { $strata: "float", v: "11.0" },
      11,
      0.2,
      { $strata: "float", v: "1e16" },
      { $strata: "float", v: "-3.0e0" },
      "11.0",
    ]);
  } else {
    assert.deepEqual(parsed.args, [11, 11, 0.2, 1e16, -3, "11.0"]);
  }
});

test("tagged floats show as numbers; other tags and strings are left alone", () => {
  const value = [{ $strata: "float", v: "11.0" }, { $strata: "float", v: "nan" }, "x", { a: { $strata: "float", v: "2.0" } }];
  assert.equal(
    showJson(value),
    '[\n  11.0,\n  {\n    "$strata": "float",\n    "v": "nan"\n  },\n  "x",\n  {\n    "a": 2.0\n  }\n]',
  );
  assert.equal(showJson(undefined), "undefined");
});
