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
