// A call's args hash for the browser: "1:" + sha256 of the canonical JSON of its tagged
// [args, kwargs]. Dependency-free ES module, no build step.
//
// This is the twin of trace_store/document/values.py's hash_tagged_args: a
// "strata.trace/2" document stores no args_hash for user calls, and a reader derives it
// from the stored tagged arguments. Both are pinned by the shared vectors in
// tests/vectors/args_hash/ (vectors.json: real writer output and its hashes;
// floats.json: orjson's text for 8,993 doubles) and must agree on every one.
//
// The canonical JSON is the bytes of orjson.dumps(value, option=OPT_SORT_KEYS) after
// integral floats within ±(2**53 - 1) became ints:
// - object keys sorted by code point (orjson compares UTF-8 bytes, which is the same;
//   JS's < compares UTF-16 code units and puts "\u{1F600}" before "\uffff");
// - strings escaped as JSON.stringify escapes a well-formed string (", \, \b \t \n \f \r,
//   other controls as \u00xx; U+007F, U+2028 and all non-ASCII raw), which is orjson's
//   escaping; a lone surrogate is refused, as orjson refuses it;
// - a number that is an integer within ±(2**53 - 1) as an integer ("-0" as "0"); any
//   other finite number as orjson writes a double (formatFloat);
// - a tagged float whose "v" is number text ({"$strata": "float", "v": "11.0"}, made by
//   parseExact in exact.js) as that number: it stands for the float Python would hash.
//   A tagged non-finite float ("nan", "inf", "-inf") stays the object Python stores.

import { sha256Hex } from "./digest.js";
import { compareCodePoints, isTaggedFloat } from "./exact.js";

export const ARGS_HASH_VERSION = "1";

const MAX_SAFE = Number.MAX_SAFE_INTEGER; // 2**53 - 1, the hash's integral-float bound
const NUMBER_TEXT = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/;
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * The canonical JSON text of a tagged value (its UTF-8 bytes are what is hashed).
 *
 * @param {*} value decoded JSON: null, booleans, finite numbers, strings, arrays and
 *   plain objects (tagged values included)
 * @returns {string}
 * @throws {TypeError} for anything orjson would not write the same way: non-finite
 *   numbers, lone surrogates, undefined, bigints, functions, symbols, class instances
 */
export function canonicalJson(value) {
  const out = [];
  write(value, out);
  return out.join("");
}

/**
 * The args hash of a call's tagged arguments, as hash_tagged_args computes it.
 *
 * @param {Array} args the call's tagged positional arguments
 * @param {object} [kwargs] its tagged keyword arguments (absent or null: none)
 * @returns {Promise<string|null>} "1:" and 64 hex digits; null where the page has no
 *   WebCrypto (not a secure context)
 */
export async function argsHash(args, kwargs) {
  if (!Array.isArray(args)) throw new TypeError("args must be an array");
  const hex = await sha256Hex(new TextEncoder().encode(canonicalJson([args, kwargs ?? {}])));
  return hex === null ? null : `${ARGS_HASH_VERSION}:${hex}`;
}

/**
 * A finite double as orjson writes it: the shortest round-trip digits, positioned by
 * the decimal exponent: 10**-5 <= |x| < 10**16 in positional form with at least one
 * fractional digit ("1.0", "0.00001", "9007199254740992.0"), anything else in
 * scientific form with a signed exponent and no ".0" ("1e+16", "1e-6", "5e-324",
 * "1.2345678901234568e+20"); zero as "0.0" or "-0.0".
 *
 * @param {number} x
 * @returns {string}
 */
export function formatFloat(x) {
  if (typeof x !== "number" || !Number.isFinite(x)) {
    throw new TypeError(`not a finite number: ${String(x)}`);
  }
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  // Number.prototype.toString gives the shortest digits that round-trip (closest to x,
  // ties to even), as Ryu does; only their layout differs from orjson's.
  const [mantissa, exponent = "0"] = String(Math.abs(x)).split("e");
  const [whole, fraction = ""] = mantissa.split(".");
  let digits = whole + fraction;
  let point = whole.length + Number(exponent); // |x| = 0.DIGITS * 10**point
  const zeros = digits.length - digits.replace(/^0+/, "").length;
  digits = digits.slice(zeros).replace(/0+$/, "");
  point -= zeros;
  if (point > 16 || point <= -5) {
    const e = point - 1;
    const head = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${head}e${e < 0 ? "-" : "+"}${Math.abs(e)}`;
  }
  if (digits.length <= point) return `${sign}${digits}${"0".repeat(point - digits.length)}.0`;
  if (point > 0) return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  return `${sign}0.${"0".repeat(-point)}${digits}`;
}

function write(value, out) {
  switch (typeof value) {
    case "string":
      if (LONE_SURROGATE.test(value)) throw new TypeError("a string holds a lone surrogate");
      out.push(JSON.stringify(value));
      return;
    case "number":
      out.push(numberText(value));
      return;
    case "boolean":
      out.push(value ? "true" : "false");
      return;
    case "object":
      if (value === null) {
        out.push("null");
      } else if (Array.isArray(value)) {
        writeArray(value, out);
      } else if (isTaggedFloat(value) && NUMBER_TEXT.test(value.v)) {
        out.push(numberText(Number(value.v)));
      } else {
        writeObject(value, out);
      }
      return;
    default:
      throw new TypeError(`no JSON form for a ${typeof value}`);
  }
}

function numberText(x) {
  if (!Number.isFinite(x)) throw new TypeError(`not a finite number: ${String(x)}`);
  // Integral floats within the safe range hash as ints (hash_tagged_args), and JSON
  // cannot tell the browser which of the two a number was anyway.
  if (Number.isInteger(x) && Math.abs(x) <= MAX_SAFE) return x === 0 ? "0" : String(x);
  return formatFloat(x);
}

function writeArray(items, out) {
  out.push("[");
  for (let i = 0; i < items.length; i++) {
    if (i > 0) out.push(",");
    if (!(i in items)) throw new TypeError("an array has a hole");
    write(items[i], out);
  }
  out.push("]");
}

function writeObject(object, out) {
  const proto = Object.getPrototypeOf(object);
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(`no JSON form for a ${object.constructor?.name ?? "object"}`);
  }
  // Own enumerable string keys, as JSON.parse makes them ("__proto__" included).
  const keys = Object.keys(object).sort(compareCodePoints);
  out.push("{");
  keys.forEach((key, i) => {
    if (i > 0) out.push(",");
    write(key, out);
    out.push(":");
    write(object[key], out);
  });
  out.push("}");
}
