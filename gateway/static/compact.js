// The calls of a "strata.trace/2" document, read as "strata.trace/1" Call objects.
//
// The twin of trace_store/document/compact.py (its docstring states the format): a /2
// document writes each call as an array in the order its `call_fields` name, and
// `args_hash` for builtin calls only; a user call's hash is derived here from its
// stored arguments (argshash.js). Everything downstream (merge.js, the views) reads
// the /1 shape, so the page expands a base once, as it loads it.

import { argsHash } from "./argshash.js";
import { isObject } from "./exact.js";

export const FORMAT_1 = "strata.trace/1";
export const FORMAT_2 = "strata.trace/2";
export const CALL_FIELDS = [
  "id", "parent", "function", "kind", "args", "result", "started_us", "duration_us",
  "kwargs", "error", "args_hash",
];
// Fields whose null in a call array means "absent" in the Call object.
const ABSENT_WHEN_NULL = new Set(["args", "kwargs", "error", "args_hash"]);

/** Whether `doc`'s calls are /2 arrays. */
export function isCompact(doc) {
  return isObject(doc) && doc.format === FORMAT_2;
}

/**
 * The Call objects of a /1 or /2 document (a /1 one's own list). A malformed /2 call
 * (not an array, or longer than the named fields) is kept as an empty object, as the
 * Python reader keeps it, so the views skip it as they skip a malformed /1 call; the
 * fields a shorter row leaves out are null.
 */
export async function callObjects(doc) {
  const calls = isObject(doc) ? doc.calls : undefined;
  if (!Array.isArray(calls)) return [];
  if (!isCompact(doc)) return calls;
  const named = doc.call_fields;
  const names = Array.isArray(named) && named.every((n) => typeof n === "string") ? named : CALL_FIELDS;
  return Promise.all(calls.map((row) => callObject(names, row)));
}

async function callObject(names, row) {
  if (!Array.isArray(row) || row.length > names.length) return {};
  const call = {};
  names.forEach((name, i) => {
    const value = i < row.length ? row[i] : null; // a row may end early: the rest is null
    if (!(value === null && ABSENT_WHEN_NULL.has(name))) call[name] = value;
  });
  if (Object.hasOwn(call, "error")) delete call.result;
  if (isObject(call.kwargs) && Object.keys(call.kwargs).length === 0) delete call.kwargs;
  const kwargs = call.kwargs;
  if (!Object.hasOwn(call, "args_hash") && call.kind !== "builtin" && Array.isArray(call.args) && (kwargs === undefined || isObject(kwargs))) {
    // Without WebCrypto (a page not in a secure context) the hash stays unknown: the call
    // shows, but a function run is not matched to it.
    const hash = await argsHash(call.args, kwargs || {});
    if (hash !== null) call.args_hash = hash;
  }
  return call;
}

/**
 * The /1 document a /2 one stands for (a shallow copy: calls as Call objects, every
 * user call's args_hash derived); a /1 document itself.
 */
export async function expanded(doc) {
  if (!isCompact(doc)) return doc;
  const { call_fields: _names, ...rest } = doc;
  return { ...rest, format: FORMAT_1, calls: await callObjects(doc) };
}
