// JSON with Python's int/float distinction kept.
//
// JSON.parse turns the recorded argument 11.0 into the number 11, and sending that back
// to run a function would run it on the int 11: another value, another args hash. Where
// the browser gives the source text of each number (JSON.parse source text access), an
// integral number written as a float ("11.0", "1e16") becomes strata's tagged float
// {"$strata": "float", "v": "11.0"}, which the server decodes back to the float. Other
// values are untouched; without source access the parse is plain JSON.parse.

/** The key of a tagged value: `{"$strata": TAG, "v": ...}` (docs/trace-format.md). */
export const TAG = "$strata";
const FLOAT_TEXT = /[.eE]/;
const MARK = "\u0000strata-float\u0000";

/** Parse JSON text, tagging integral floats so they round-trip to the server. */
export function parseExact(text) {
  return JSON.parse(text, (key, value, context) => {
    if (typeof value === "number" && Number.isInteger(value) && context && FLOAT_TEXT.test(context.source)) {
      return { [TAG]: "float", v: context.source };
    }
    return value;
  });
}

/** Whether `value` is a tagged float (`{"$strata": "float", "v": "11.0"}`). */
export function isTaggedFloat(value) {
  return (
    typeof value === "object" && value !== null && !Array.isArray(value) &&
    value[TAG] === "float" && typeof value.v === "string" && Object.keys(value).length === 2
  );
}

/** Pretty JSON for people: a tagged float shows as the number it stands for (11.0). */
export function showJson(value) {
  const text = JSON.stringify(value, (key, v) => (isTaggedFloat(v) && /^[-+0-9.eE]+$/.test(v.v) ? MARK + v.v : v), 2);
  if (text === undefined) return "undefined";
  return text.replace(/"\\u0000strata-float\\u0000([-+0-9.eE]+)"/g, "$1");
}

/** A number from the API as a JS number: a tagged float (`{"$strata": "float"}`) too. */
export function toNumber(value) {
  return isTaggedFloat(value) ? Number(value.v) : value;
}

/** Whether `value` is a JSON object (not null, not an array). */
export function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Order two strings as Python (and orjson's sorted keys) do: by code point. JS's <
 * compares UTF-16 code units, which disagree once a string holds characters outside
 * the Basic Multilingual Plane ("\u{1F600}" before "\uffff").
 */
export function compareCodePoints(a, b) {
  const left = Array.from(a);
  const right = Array.from(b);
  const n = Math.min(left.length, right.length);
  for (let i = 0; i < n; i++) {
    const diff = left[i].codePointAt(0) - right[i].codePointAt(0);
    if (diff !== 0) return diff;
  }
  return left.length - right.length;
}
