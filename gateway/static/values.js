// Trace values as one line of text for people: what the code view puts at the end of a
// line and the call list after a function's name. Values are tagged as the server tags
// them (`{"$strata": TAG, "v": ...}`, see docs/trace-format.md).

import { showJson, TAG } from "./exact.js";

/**
 * A value as one line of text, the way Python would write it where that is clear:
 * `[2.5, 5.0]`, `{"a": 1}`, `(1, 2)`, `{1, 2}`, a `repr` as itself, dates and UUIDs as
 * their strings; floats stay floats (`5.0`).
 */
export function valueText(value) {
  if (Array.isArray(value)) return `[${value.map(valueText).join(", ")}]`;
  if (value === null || typeof value !== "object") return showJson(value);
  if (!(TAG in value)) {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${valueText(v)}`).join(", ")}}`;
  }
  const v = value.v;
  switch (value[TAG]) {
    case "float":
    case "int":
    case "decimal":
      return String(v);
    case "repr":
      return String(v);
    case "tuple":
      return Array.isArray(v) ? `(${v.map(valueText).join(", ")}${v.length === 1 ? "," : ""})` : showJson(value);
    case "set":
    case "frozenset":
      return Array.isArray(v) ? (v.length ? `{${v.map(valueText).join(", ")}}` : "set()") : showJson(value);
    case "dict":
      return Array.isArray(v) ? `{${v.map(([k, x]) => `${valueText(k)}: ${valueText(x)}`).join(", ")}}` : showJson(value);
    case "datetime":
    case "date":
    case "time":
    case "uuid":
      return JSON.stringify(String(v));
    case "bytes":
      return `<${Math.floor((String(v).length * 3) / 4)} bytes>`;
    default:
      return showJson(value).replace(/\s*\n\s*/g, " ");
  }
}
