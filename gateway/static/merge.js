// The merge fold of SPEC §9 for the browser: a base trace plus its patches -> the
// merged view. ES module, no build step.
//
// This is the twin of trace_store/document/merge.py; the view's shape and every rule of the fold
// are documented in that module's docstring. Both are pinned by the JSON vectors in
// tests/vectors/merge/ and must agree on every input, malformed ones included.

import { compareCodePoints, isObject } from "./exact.js";

export const MERGED_FORMAT = "strata.merged/1";
export const PATCH_FORMAT = "strata.patch/1";

const BASE_SOURCE = "base";
const RERUN_FIELDS = ["result", "error", "calls", "duration_ms", "started_at"];

/**
 * Fold `patches` over the trace document `base` and return the merged view.
 *
 * Pure and deterministic. Malformed patches, unknown kinds, patches of another trace
 * and repeated patch ids are skipped, never fatal. Neither argument is modified and
 * the result shares no mutable object with them.
 *
 * @param {object} base a decoded "strata.trace/1" document
 * @param {object[]} patches "strata.patch/1" documents, in any order
 * @returns {object} the "strata.merged/1" view
 */
export function merge(base, patches) {
  const traceId = get(base, "trace_id");
  const calls = get(base, "calls");
  const baseExecution = {
    result: clone(get(base, "result")),
    error: clone(get(base, "error")),
    calls: Array.isArray(calls) ? clone(calls) : [],
    duration_ms: clone(get(base, "duration_ms")),
    started_at: clone(get(base, "started_at")),
  };
  let execution = { ...clone(baseExecution), source: BASE_SOURCE };
  let functionResults = resultsFromCalls(execution.calls, BASE_SOURCE);
  const applied = [];
  const seen = new Set();

  for (const patch of foldOrder(patches, traceId)) {
    const patchId = patch.patch_id;
    if (seen.has(patchId)) continue;
    const kind = get(patch, "kind");
    if (kind === "rerun" && isRerun(patch)) {
      execution = {};
      for (const field of RERUN_FIELDS) execution[field] = clone(patch[field]);
      execution.source = patchId;
      functionResults = resultsFromCalls(execution.calls, patchId);
    } else if (kind === "function_run" && isFunctionRun(patch)) {
      functionResults[key(patch.function, patch.args_hash)] = {
        function: patch.function,
        kind: "user",
        args_hash: patch.args_hash,
        ...argumentsOf(patch),
        ...outcome(patch),
        source: patchId,
        calls: clone(patch.calls),
        duration_ms: clone(patch.duration_ms),
      };
    } else {
      continue;
    }
    seen.add(patchId);
    applied.push(patchId);
  }

  return {
    format: MERGED_FORMAT,
    trace_id: clone(traceId),
    canvas: clone(get(base, "canvas")),
    handler: clone(get(base, "handler")),
    input: clone(get(base, "input")),
    truncated: has(base, "truncated") ? clone(base.truncated) : false,
    limits: clone(get(base, "limits")),
    sampled: has(base, "sampled") ? clone(base.sampled) : true,
    adopted_from: clone(get(base, "adopted_from")),
    base_execution: baseExecution,
    execution,
    function_results: functionResults,
    applied_patches: applied,
  };
}

function foldOrder(patches, traceId) {
  const eligible = (Array.isArray(patches) ? patches : []).filter(
    (patch) =>
      isObject(patch) &&
      get(patch, "format") === PATCH_FORMAT &&
      typeof get(patch, "patch_id") === "string" &&
      typeof traceId === "string" &&
      get(patch, "trace_id") === traceId &&
      isSeq(get(patch, "seq")),
  );
  // Array.prototype.sort is stable (ES2019), like Python's sorted(): exact
  // (seq, patch_id) twins keep their input order.
  return eligible.sort(
    (a, b) => a.seq - b.seq || compareCodePoints(a.patch_id, b.patch_id),
  );
}

function isSeq(value) {
  return Number.isInteger(value) && value >= 1;
}

function isRerun(patch) {
  return RERUN_FIELDS.every((field) => has(patch, field)) && Array.isArray(patch.calls);
}

function isFunctionRun(patch) {
  return (
    typeof get(patch, "function") === "string" &&
    typeof get(patch, "args_hash") === "string" &&
    Array.isArray(get(patch, "args")) &&
    Array.isArray(get(patch, "calls")) &&
    has(patch, "duration_ms") &&
    (has(patch, "result") || has(patch, "error"))
  );
}

function resultsFromCalls(calls, source) {
  // Plain assignment is safe: every key contains ":", so none is "__proto__".
  const results = {};
  for (const call of calls) {
    if (!isObject(call)) continue;
    const fn = get(call, "function");
    const argsHash = get(call, "args_hash");
    if (typeof fn !== "string" || typeof argsHash !== "string") continue;
    const entry = { function: fn, kind: clone(get(call, "kind")), args_hash: argsHash };
    Object.assign(entry, argumentsOf(call), outcome(call));
    entry.source = source;
    results[key(fn, argsHash)] = entry;
  }
  return results;
}

function argumentsOf(record) {
  const out = {};
  for (const name of ["args", "kwargs"]) {
    if (has(record, name)) out[name] = clone(record[name]);
  }
  return out;
}

function outcome(record) {
  const error = get(record, "error");
  if (error !== null) return { error: clone(error) };
  return { result: clone(get(record, "result")) };
}

function key(fn, argsHash) {
  return `${fn}:${argsHash}`;
}


// Own properties only: a key inherited from Object.prototype ("constructor",
// "toString") must read as absent, as it does in a Python dict.
function has(object, name) {
  return Object.prototype.hasOwnProperty.call(object, name);
}

// The Python fold's dict.get(name): null when the key is absent.
function get(object, name) {
  return has(object, name) ? object[name] : null;
}

// Decoded JSON only holds plain objects, arrays and immutable scalars.
function clone(value) {
  if (Array.isArray(value)) return value.map(clone);
  if (isObject(value)) {
    const copy = {};
    for (const name of Object.keys(value)) {
      // defineProperty, not assignment: a "__proto__" key must stay an own property.
      Object.defineProperty(copy, name, {
        value: clone(value[name]),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return copy;
  }
  return value;
}
