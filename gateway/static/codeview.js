// The handler's code with a trace's real values on its lines (SPEC §14).
//
// Input: the `source` of a handler (its lines, with the file's own numbers) and the
// `explain` of a trace (per frame: lines that ran, how often, and the locals each line
// assigned). Lines that ran are marked, lines that did not run are greyed, and each
// line's values are shown at its end; a large value is cut and expands on click.
// Everything from a trace goes in as text nodes, never as HTML.

import { showJson } from "./exact.js";
import { valueText } from "./values.js";
import { h } from "./view.js";

export { valueText };

/** Characters of a value shown on its line before it collapses. */
export const INLINE_CHARS = 60;

function valueNode(name, value) {
  const text = valueText(value);
  if (text.length <= INLINE_CHARS) {
    return h("span", { class: "value", dataset: { name } }, `${name} = ${text}`);
  }
  // Large: a preview that opens into the whole value, pretty-printed.
  return h(
    "details",
    { class: "value value-large", dataset: { name } },
    h("summary", {}, `${name} = ${text.slice(0, INLINE_CHARS)}…`),
    h("pre", {}, showJson(value)),
  );
}

/**
 * The code of `source` (`{first_line, lines}`) with `frame`'s facts on it. The calls
 * this frame made open in place, under the line that made them: `calls` maps a line to
 * the frames called from it, and `renderCall(frame)` renders one.
 */
export function renderCode(source, frame, { id, calls = new Map(), renderCall } = {}) {
  const facts = (frame && frame.lines) || {};
  const notRun = new Set((frame && frame.not_executed) || []);
  const rows = [];
  source.lines.forEach((text, i) => {
    const number = source.first_line + i;
    const fact = facts[String(number)];
    const values = fact ? Object.entries(fact.values || {}) : [];
    let state = "plain";
    if (fact && fact.hits > 0) state = "ran";
    else if (notRun.has(number)) state = "not-run";
    rows.push(
      h(
        "div",
        { class: `code-line ${state}`, dataset: { line: number, hits: fact ? fact.hits : 0 } },
        h("span", { class: "ln" }, number),
        h("code", { class: "src" }, text || " "),
        fact && fact.hits > 1 ? h("span", { class: "hits", title: `ran ${fact.hits} times` }, `×${fact.hits}`) : null,
        values.length ? h("span", { class: "values" }, values.map(([name, value]) => valueNode(name, value))) : null,
      ),
    );
    const made = calls.get(number);
    if (made && renderCall) rows.push(h("div", { class: "calls-here" }, made.map(renderCall)));
  });
  return h("div", { class: "code-view", id }, rows);
}

function callLabel(frame) {
  const args = (frame.lines || {})[String(frame.first_line)];
  const shown = Object.entries((args && args.values) || {})
    .map(([name, value]) => `${name}=${valueText(value)}`)
    .join(", ");
  const label = `${frame.function}(${shown})`;
  return label.length > 160 ? `${label.slice(0, 160)}…)` : label;
}

/** Frames by the frame that called them, then by the line the call came from. */
function callsByCaller(frames) {
  const found = new Map();
  frames.forEach((frame, index) => {
    if (frame.caller === null || frame.caller === undefined) return;
    if (!found.has(frame.caller)) found.set(frame.caller, new Map());
    const lines = found.get(frame.caller);
    if (!lines.has(frame.called_from)) lines.set(frame.called_from, []);
    lines.get(frame.called_from).push({ ...frame, index });
  });
  return found;
}

/**
 * The whole panel: the handler's code with the handler frame's facts, each user-function
 * call expandable in place (its own code and values); `error` (a `canvas` event's
 * `{type, message, file, line, text}`) says the file did not load, and where.
 */
export function renderExplained(source, explained, { error } = {}) {
  const frames = explained ? explained.frames : [];
  const handlerIndex = frames.findIndex((f) => f.kind === "handler");
  const functions = new Map((source.functions || []).map((f) => [f.name, f]));
  const byCaller = callsByCaller(frames);
  const notes = [];
  if (error) {
    notes.push(
      h(
        "div",
        { class: "load-error", id: "load-error" },
        h("p", {}, `${error.file}:${error.line ?? "?"}: ${error.type}: ${error.message}`),
        error.text ? h("pre", {}, `${error.line ?? ""} | ${error.text}`) : null,
        h("p", { class: "muted" }, "The code below is the previous version, which keeps serving."),
      ),
    );
  }
  if (explained && explained.truncated) notes.push(h("p", { class: "warning" }, "Cut short by the explain limits (time or line events): later lines show what ran until then."));
  if (explained && explained.unrecorded && explained.unrecorded.length) {
    notes.push(
      h(
        "p",
        { class: "warning", id: "unrecorded" },
        `The code now calls ${explained.unrecorded.map((u) => u.function).join(", ")} with arguments this trace never recorded; the run stopped there.`,
      ),
    );
  }
  if (explained && explained.differs) notes.push(h("p", { class: "muted", id: "differs" }, "The current code's result or calls differ from the recorded ones."));
  const renderCall = (frame) => {
    const code = functions.get(frame.function);
    return h(
      "details",
      { class: "frame", dataset: { function: frame.function, callId: frame.call_id ?? "", key: `frame-${frame.call_id}` } },
      h("summary", {}, h("code", {}, callLabel(frame))),
      code ? renderCode(code, frame, { calls: byCaller.get(frame.index), renderCall }) : h("p", { class: "muted" }, "Source not available."),
    );
  };
  const where = source.file ? `${source.file}:${source.first_line}` : source.module;
  const calls = frames.filter((f) => f.kind === "user").length;
  return h(
    "section",
    { class: "panel", id: "code-panel", dataset: { codeSha256: source.sha256, explained: explained ? "yes" : "no" } },
    h("h3", {}, "Code ", h("span", { class: "source" }, where), calls ? h("span", { class: "source" }, ` · ${calls} function call(s), open them at their line`) : null),
    notes,
    renderCode(source, frames[handlerIndex], { id: "code", calls: byCaller.get(handlerIndex), renderCall }),
  );
}
