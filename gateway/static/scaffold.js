// A handler scaffold for an unmatched (404) request, SPEC §14: the method, a route with
// `:name` segments where the path looks like ids, and a stub reading the request's params,
// as Python a developer pastes into their canvas module. Pure, dependency-free ES module.
//
// Everything taken from the request is untrusted. It reaches the generated code only as
// a Python string literal built by pyString (printable text kept, everything else
// escaped, so no quote, backslash, newline or invisible character survives raw) or as an
// identifier reduced to [a-z0-9_]. Comments never carry request text.
//
// A path segment becomes a `:name` parameter when it looks like an id:
// - digits with optional `.`, `-`, `_` separators: `42`, `2024-01-15`, `1.5`;
// - a UUID: `3f2a...-....-....-....-............` (any case);
// - hex of 8 or more characters with at least one digit: `5f2b9c1e`, `deadbeef01`
//   (`deadbeef`, `facade` are words);
// - a token of 6 or more `[A-Za-z0-9_-]` characters with letters and digits, where a
//   letter follows a digit (`a1b2c3`, `usr_42x9`, `cus_9s6XKzkN`, a ULID) or digits run
//   four long (`ord12345`); so `oauth2`, `base64`, `sha256`, `x86_64` stay literal;
// - any segment a route literal should not hold: outside the URL-unreserved set
//   [A-Za-z0-9._~-] (quotes, spaces, `:`, `*`, `%`, `@`, non-ASCII...) or only dots.
// Other segments stay literal: words (`users`, `new`), short version markers (`v1`, `v2`,
// too short to be tokens), `index.html`. Empty segments are dropped, as the router does.
//
// A parameter is named after the literal segment just before it, singular, plus `_id`
// (`/orders/7/items/3` -> `:order_id`, `:item_id`); with no literal before it, or when
// that name is taken, or the literal is a version marker (`/v2/a1b2c3`), it is `id`, then
// `id2`, `id3`...

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const PY_KEYWORDS = new Set(
  ("False None True and as assert async await break class continue def del elif else except " +
    "finally for from global if import in is lambda nonlocal not or pass raise return try " +
    "while with yield").split(" "),
);
// Names the stub itself uses: a query key must not rebind them.
const RESERVED = new Set(["request", "payload", "body", "Request"]);
const MAX_NAME = 64;
const MAX_QUERY_KEYS = 10;
const LINE = 88;
const INDENT = "    ";

const SAFE_LITERAL = /^[A-Za-z0-9._~-]+$/;
const NUMERIC = /^[0-9._-]*[0-9][0-9._-]*$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX = /^[0-9a-f]{8,}$/i;
const TOKEN = /^[A-Za-z0-9_-]{6,}$/;
const VERSION = /^v[0-9]+$/i;
const IRREGULAR = { people: "person", children: "child", men: "man", women: "woman", data: "data", media: "media" };

/** Whether a path segment looks like an id (or cannot be a route literal); see the header. */
export function looksLikeId(segment) {
  if (!SAFE_LITERAL.test(segment) || /^\.+$/.test(segment)) return true;
  if (NUMERIC.test(segment) || UUID.test(segment)) return true;
  if (HEX.test(segment) && /[0-9]/.test(segment)) return true;
  if (TOKEN.test(segment) && /[A-Za-z]/.test(segment) && /[0-9]/.test(segment)) {
    return /[0-9][^A-Za-z]*[A-Za-z]/.test(segment) || /[0-9]{4}/.test(segment);
  }
  return false;
}

/** A word's singular form, by a few English rules (`categories` -> `category`). */
export function singular(word) {
  if (Object.hasOwn(IRREGULAR, word)) return IRREGULAR[word];
  if (word.length > 4 && word.endsWith("ies")) return word.slice(0, -3) + "y";
  if (/(?:ss|x|ch|sh|zz)es$/.test(word)) return word.slice(0, -2);
  if (word.length > 3 && word.endsWith("s") && !/(?:ss|us|is)$/.test(word)) return word.slice(0, -1);
  return word;
}

/** `text` reduced to lower-case `[a-z0-9_]` with single underscores, trimmed ("" if none). */
function snake(text) {
  return String(text)
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "");
}

/** Cut an identifier to `max` characters without leaving a trailing underscore. */
function clip(name, max = MAX_NAME) {
  return name.length <= max ? name : name.slice(0, max).replace(/_+$/, "");
}

/** The path's segments as the router matches them: split on `/`, empty ones dropped. */
function segmentsOf(path) {
  return String(path ?? "").split("/").filter((s) => s !== "");
}

/** The route for a request path and the params it captures: `{route, params: [{name, value}]}`. */
export function routeFor(path) {
  const segments = segmentsOf(path);
  const params = [];
  const taken = new Set();
  const parts = segments.map((segment, i) => {
    if (!looksLikeId(segment)) return segment;
    const before = i > 0 ? segments[i - 1] : null;
    let name = "";
    if (before !== null && !looksLikeId(before) && !VERSION.test(before)) {
      const base = clip(singular(snake(before)), MAX_NAME - 3);
      if (/^[a-z_]/.test(base)) name = `${base}_id`;
    }
    if (name === "" || taken.has(name)) {
      name = "id";
      for (let n = 2; taken.has(name); n++) name = `id${n}`;
    }
    taken.add(name);
    params.push({ name, value: segment });
    return `:${name}`;
  });
  return { route: "/" + parts.join("/"), params };
}

/** Make `name` a usable Python identifier: never empty, digit-leading or a keyword. */
function identifier(name, fallback) {
  let out = name === "" ? fallback : name;
  if (/^[0-9]/.test(out)) out = `${fallback}_${out}`;
  out = clip(out);
  if (PY_KEYWORDS.has(out)) out = `${out}_`;
  return out;
}

/** The handler function's name for `method` and `route`: `get_user`, `get_order_item`, `index`. */
export function functionName(method, route) {
  const verb = snake(method) || "handle";
  const segments = segmentsOf(route);
  if (segments.length === 0) return identifier(verb === "get" ? "index" : `${verb}_index`, "handle");
  const words = [];
  const params = [];
  segments.forEach((segment, i) => {
    if (segment[0] === ":" || segment[0] === "*") {
      params.push(snake(segment.slice(1)));
      return;
    }
    const word = snake(segment);
    if (word === "") return;
    const next = segments[i + 1];
    words.push(next !== undefined && (next[0] === ":" || next[0] === "*") ? singular(word) : word);
  });
  if (words.length === 0) words.push("by", ...params.filter((p) => p !== ""));
  return identifier(snake([verb, ...words].join("_")), "handle");
}

/**
 * A Python string literal for `text`, in double quotes. Printable characters (letters,
 * marks, digits, punctuation, symbols, the ASCII space) are kept; quotes and backslashes
 * are escaped; everything else (controls, line and paragraph separators, bidi and other
 * format characters, lone surrogates, unassigned code points) becomes \x, \u or \U.
 */
export function pyString(text) {
  let out = '"';
  for (const ch of String(text)) {
    const code = ch.codePointAt(0);
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code >= 0x20 && code < 0x7f) out += ch;
    else if (code >= 0x80 && /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch)) out += ch;
    else if (code < 0x100) out += "\\x" + code.toString(16).padStart(2, "0");
    else if (code < 0x10000) out += "\\u" + code.toString(16).padStart(4, "0");
    else out += "\\U" + code.toString(16).padStart(8, "0");
  }
  return out + '"';
}

/** Query names in order with their value counts, from a `{name: [values]}` map, pairs or a string. */
function queryEntries(query) {
  const counts = new Map();
  const add = (name, n = 1) => counts.set(String(name), (counts.get(String(name)) ?? 0) + n);
  if (query == null) return [];
  if (typeof query === "string") {
    for (const [name] of new URLSearchParams(query.replace(/^\?/, ""))) add(name);
  } else if (typeof query[Symbol.iterator] === "function") {
    for (const [name] of query) add(name);
  } else if (typeof query === "object") {
    for (const [name, value] of Object.entries(query)) add(name, Array.isArray(value) ? value.length : 1);
  }
  return [...counts].map(([name, count]) => ({ name, count }));
}

/** The request's Content-Type (lower-case, parameters dropped), from header pairs or a mapping. */
function contentType(headers) {
  if (headers == null) return "";
  let pairs = [];
  if (typeof headers.get === "function" && !(headers instanceof Map)) pairs = [["content-type", headers.get("content-type")]];
  else if (typeof headers[Symbol.iterator] === "function") pairs = [...headers];
  else if (typeof headers === "object") pairs = Object.entries(headers);
  const found = pairs.find((pair) => Array.isArray(pair) && String(pair[0]).toLowerCase() === "content-type");
  return found && found[1] != null ? String(found[1]).split(";")[0].trim().toLowerCase() : "";
}

/** What the stub reads from the body: "json", "text", "bytes" or null (no body). */
function bodyKind(body, headers) {
  let text = null;
  let binary = false;
  if (typeof body === "string") text = body;
  else if (body && typeof body === "object" && typeof body.data === "string") {
    if (body.data === "") return null;
    if (body.encoding === "base64") binary = true;
    else text = body.data;
  } else if (body instanceof Uint8Array) binary = body.length > 0;
  else if (body != null && typeof body === "object" && !("encoding" in body)) return "json";
  if (!binary && !text) return null;
  const type = contentType(headers);
  if (type === "application/json" || type.endsWith("+json")) return "json";
  if (type === "" && text !== null) {
    try {
      const value = JSON.parse(text);
      if (value !== null && typeof value === "object") return "json";
    } catch {
      // Not JSON: read as text below.
    }
  }
  return binary ? "bytes" : "text";
}

/**
 * The scaffold of a handler for one unmatched request.
 *
 * `query` is a trace input's `{name: [value, ...]}` (or name/value pairs, or a query
 * string), `headers` its `[[name, value], ...]`, `body` its Body (`{encoding, data, ...}`)
 * or a string. `canvasVar` is the name the canvas module gives its Canvas.
 *
 * @returns {{route: string, functionName: string, code: string}}
 */
export function scaffold({ method = "GET", path = "/", query, headers, body, canvasVar = "app" } = {}) {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(canvasVar) || PY_KEYWORDS.has(canvasVar)) {
    throw new TypeError(`canvasVar must be a Python identifier, got ${JSON.stringify(canvasVar)}`);
  }
  const verb = String(method ?? "GET").toUpperCase();
  const { route, params } = routeFor(path);
  const name = functionName(verb, route);
  const lines = [];
  if (!METHODS.includes(verb)) lines.push(`# strata routes only ${METHODS.join(", ")}: change the method.`);
  lines.push(`@${canvasVar}.http(${pyString(verb)}, ${pyString(route)})`);
  // No annotations: the stub must run in any canvas module, whatever it imports.
  lines.push(`def ${name}(request):`);

  const echoed = [];
  const used = new Set(RESERVED);
  for (const param of params) {
    used.add(param.name);
    lines.push(`${INDENT}${param.name} = request.params[${pyString(param.name)}]`);
    echoed.push(param.name);
  }

  const keys = queryEntries(query);
  for (const { name: key, count } of keys.slice(0, MAX_QUERY_KEYS)) {
    let variable = identifier(snake(key), "q");
    for (let n = 2; used.has(variable); n++) variable = `${clip(identifier(snake(key), "q"), MAX_NAME - 4)}_${n}`;
    used.add(variable);
    const read = count > 1 ? `getall(${pyString(key)}, [])` : `get(${pyString(key)})`;
    lines.push(`${INDENT}${variable} = request.query.${read}`);
    echoed.push(variable);
  }
  if (keys.length > MAX_QUERY_KEYS) {
    lines.push(`${INDENT}# ${keys.length - MAX_QUERY_KEYS} more query parameters are not read here.`);
  }

  const kind = bodyKind(body, headers);
  if (kind === "json") {
    lines.push(`${INDENT}payload = request.json()`);
    echoed.push("payload");
  } else if (kind === "text") {
    lines.push(`${INDENT}body = request.text()`);
    echoed.push("body");
  } else if (kind === "bytes") {
    lines.push(`${INDENT}body = request.body`);
  }

  const items = echoed.map((v) => `${pyString(v)}: ${v}`);
  if (kind === "bytes") items.push(`"body_bytes": len(body)`);
  lines.push(`${INDENT}# TODO: the handler's work; this stub echoes what it read.`);
  const oneLine = `${INDENT}return {${items.join(", ")}}`;
  if (oneLine.length <= LINE) lines.push(oneLine);
  else lines.push(`${INDENT}return {`, ...items.map((item) => `${INDENT}${INDENT}${item},`), `${INDENT}}`);

  return { route, functionName: name, code: lines.join("\n") + "\n" };
}
