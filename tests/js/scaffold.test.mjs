// The 404 handler scaffold (gateway/static/scaffold.js): routes with `:name` segments where
// the path looks like ids, function names, and Python stubs that stay valid and safe on
// hostile requests. python3 parses every generated stub; where the repository's .venv has
// the runtime, the stubs are also registered on a Canvas and run. Run: node --test tests/js/
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { functionName, looksLikeId, pyString, routeFor, scaffold } from "../../gateway/static/scaffold.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const VENV_PYTHON = fileURLToPath(new URL("../../.venv/bin/python", import.meta.url));
const SAFE_SEGMENT = /^(?::[a-z_][a-z0-9_]{0,63}|[A-Za-z0-9._~-]+)$/;

// Parses each stub with ast and reports what it does: the top-level statements, every
// call's dotted name, the decorator's arguments and the keys the stub reads.
const INSPECT = String.raw`
import ast, json, sys

def dotted(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return dotted(node.value) + "." + node.attr
    return "?"

out = []
for code in json.load(sys.stdin):
    tree = ast.parse(code)
    fn = tree.body[0]
    deco = fn.decorator_list[0]
    calls, params, query = [], [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            calls.append(dotted(node.func))
            if dotted(node.func) in ("request.query.get", "request.query.getall"):
                query.append(node.args[0].value)
        if isinstance(node, ast.Subscript) and dotted(node.value) == "request.params":
            params.append(node.slice.value)
    ret = fn.body[-1]
    out.append({
        "top": [type(n).__name__ for n in tree.body],
        "name": fn.name,
        "args": [a.arg for a in fn.args.args],
        "decorator": [dotted(deco.func)] + [a.value for a in deco.args],
        "calls": sorted(set(calls)),
        "params": params,
        "query": query,
        "returns": [k.value for k in ret.value.keys] if isinstance(ret, ast.Return) else None,
    })
json.dump(out, sys.stdout)
`;

// Registers each stub on a fresh Canvas, routes the request's own path and runs the handler.
const RUN = String.raw`
import base64, json, sys
from runtime import Canvas, Request

out = []
for case in json.load(sys.stdin):
    namespace = {}
    exec(compile('from runtime import Canvas, Request\napp = Canvas("shop")\n' + case["code"], "<scaffold>", "exec"), namespace)
    app = namespace["app"]
    found = app.router.match(case["method"], case["path"])
    if found is None:
        out.append(None)
        continue
    handler, params = found
    request = Request(case["method"], case["path"], params=params, query=case["query"],
                      headers=case["headers"], body=case["body"].encode())
    result = handler.function(request)
    out.append({"id": handler.id, "params": params, "result": result})
json.dump(out, sys.stdout)
`;

function python(executable, script, input) {
  const run = spawnSync(executable, ["-c", script], { input: JSON.stringify(input), cwd: ROOT, encoding: "utf8" });
  assert.equal(run.status, 0, `${executable} failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

const inspect = (codes) => python("python3", INSPECT, codes);

const runtimePython = (() => {
  if (!existsSync(VENV_PYTHON)) return null;
  const probe = spawnSync(VENV_PYTHON, ["-c", "import runtime"], { cwd: ROOT });
  return probe.status === 0 ? VENV_PYTHON : null;
})();

const pairs = (query) => Object.entries(query).flatMap(([name, values]) => values.map((v) => [name, v]));

test("GET /users/42 becomes /users/:user_id and get_user", () => {
  assert.deepEqual(routeFor("/users/42"), { route: "/users/:user_id", params: [{ name: "user_id", value: "42" }] });
  const out = scaffold({ method: "GET", path: "/users/42" });
  assert.equal(out.route, "/users/:user_id");
  assert.equal(out.functionName, "get_user");
  assert.equal(
    out.code,
    [
      '@app.http("GET", "/users/:user_id")',
      "def get_user(request):",
      '    user_id = request.params["user_id"]',
      "    # TODO: the handler's work; this stub echoes what it read.",
      '    return {"user_id": user_id}',
      "",
    ].join("\n"),
  );
});

test("nested resources name each param after the literal before it", () => {
  const { route, params } = routeFor("/orders/7/items/3");
  assert.equal(route, "/orders/:order_id/items/:item_id");
  assert.deepEqual(params, [
    { name: "order_id", value: "7" },
    { name: "item_id", value: "3" },
  ]);
  assert.equal(functionName("GET", route), "get_order_item");
  assert.equal(functionName("POST", "/orders"), "post_orders");
  assert.equal(functionName("GET", "/orders/:order_id/items"), "get_order_items");
  assert.equal(routeFor("/categories/9").route, "/categories/:category_id");
  assert.equal(routeFor("/addresses/9").route, "/addresses/:address_id");
  assert.equal(routeFor("/line-items/9").route, "/line-items/:line_item_id");
});

test("UUID segments are ids, in any case", () => {
  const uuid = "3f2a9c1e-1b2c-4d5e-8f90-123456789abc";
  assert.equal(routeFor(`/sessions/${uuid}`).route, "/sessions/:session_id");
  assert.equal(routeFor(`/sessions/${uuid.toUpperCase()}`).route, "/sessions/:session_id");
  assert.equal(routeFor(`/sessions/${uuid}`).params[0].value, uuid);
});

test("hex and mixed tokens are ids; words, versions and digit-suffixed words are not", () => {
  for (const id of ["5f2b9c1e", "deadbeef01", "a1b2c3", "usr_42x9", "cus_9s6XKzkNRiz8i3", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "ord12345", "2024-01-15", "1.5"]) {
    assert.ok(looksLikeId(id), id);
  }
  for (const word of ["users", "new", "thing", "v1", "v2", "v10", "deadbeef", "facade", "oauth2", "base64", "sha256", "x86_64", "item123", "index.html", ".well-known", "2fa"]) {
    assert.ok(!looksLikeId(word), word);
  }
  assert.equal(routeFor("/commits/9fceb02d0ae598e95dc970b74767f19372d61af8").route, "/commits/:commit_id");
  assert.equal(routeFor("/api/v2/users/a1b2c3").route, "/api/v2/users/:user_id");
  // A version marker does not name the id after it.
  assert.equal(routeFor("/v2/a1b2c3").route, "/v2/:id");
});

test("an all-literal path keeps its route", () => {
  const out = scaffold({ method: "GET", path: "/new/thing" });
  assert.equal(out.route, "/new/thing");
  assert.equal(out.functionName, "get_new_thing");
  assert.match(out.code, /^    return \{\}$/m);
});

test("/ is index; empty segments are dropped as the router drops them", () => {
  assert.deepEqual(routeFor("/"), { route: "/", params: [] });
  assert.deepEqual(routeFor(""), { route: "/", params: [] });
  assert.equal(functionName("GET", "/"), "index");
  assert.equal(functionName("POST", "/"), "post_index");
  assert.equal(scaffold({ path: "/" }).functionName, "index");
  assert.equal(routeFor("//users//42/").route, "/users/:user_id");
});

test("repeated or missing names fall back to id, id2, ...", () => {
  assert.equal(routeFor("/users/1/users/2").route, "/users/:user_id/users/:id");
  assert.equal(routeFor("/a/1/2/3").route, "/a/:a_id/:id/:id2");
  assert.equal(routeFor("/42").route, "/:id");
  assert.equal(routeFor("/1/2").route, "/:id/:id2");
  assert.equal(functionName("GET", "/:id"), "get_by_id");
  assert.equal(routeFor("/2fa/123").route, "/2fa/:id"); // `2fa_id` is not a name
  for (const path of ["/users/1/users/2", "/a/1/2/3", "/1/2/3/4"]) {
    const names = routeFor(path).params.map((p) => p.name);
    assert.equal(new Set(names).size, names.length, path);
  }
});

test("function names are identifiers: lower-case, never a keyword, at most 64 chars", () => {
  assert.equal(functionName("GET", "/2fa"), "get_2fa");
  assert.equal(functionName("DELETE", "/Users/:user_id"), "delete_user");
  assert.equal(functionName("class", "/"), "class_index");
  assert.equal(functionName("", "/"), "handle_index");
  assert.equal(functionName("1x", "/a"), "handle_1x_a");
  assert.equal(functionName("GET", "/index.html"), "get_index_html");
  const long = functionName("GET", "/" + "segment".repeat(20));
  assert.ok(long.length <= 64, long);
  assert.match(long, /^[a-z_][a-z0-9_]*$/);
  assert.ok(!long.endsWith("_"));
});

test("query keys become sanitised variables; keys stay exact in literals; at most 10", () => {
  const query = { page: ["2"], "1-2": ["x"], class: ["c"], "a-b": ["1"], a_b: ["2"], request: ["r"], tag: ["a", "b"], "": ["e"] };
  const out = scaffold({ method: "GET", path: "/items", query });
  assert.match(out.code, /^    page = request\.query\.get\("page"\)$/m);
  assert.match(out.code, /^    q_1_2 = request\.query\.get\("1-2"\)$/m);
  assert.match(out.code, /^    class_ = request\.query\.get\("class"\)$/m);
  assert.match(out.code, /^    a_b = request\.query\.get\("a-b"\)$/m);
  assert.match(out.code, /^    a_b_2 = request\.query\.get\("a_b"\)$/m);
  assert.match(out.code, /^    request_2 = request\.query\.get\("request"\)$/m);
  assert.match(out.code, /^    tag = request\.query\.getall\("tag", \[\]\)$/m);
  assert.match(out.code, /^    q = request\.query\.get\(""\)$/m);
  const [info] = inspect([out.code]);
  assert.deepEqual(info.query, Object.keys(query));

  const many = Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`k${i}`, ["v"]]));
  const big = scaffold({ path: "/items", query: many });
  assert.equal(big.code.match(/request\.query\.get\(/g).length, 10);
  assert.match(big.code, /# 4 more query parameters/);
  // Pairs and query strings work too.
  assert.match(scaffold({ path: "/s", query: [["q", "x"]] }).code, /q = request\.query\.get\("q"\)/);
  assert.match(scaffold({ path: "/s", query: "?q=x&q=y" }).code, /q = request\.query\.getall\("q", \[\]\)/);
});

test("bodies: JSON is read with request.json(), text with request.text(), bytes counted", () => {
  const json = { encoding: "utf-8", data: '{"sku": "a"}', bytes: 12, truncated: false };
  const typed = scaffold({ method: "POST", path: "/orders", headers: [["Content-Type", "application/json; charset=utf-8"]], body: json });
  assert.match(typed.code, /^    payload = request\.json\(\)$/m);
  assert.match(typed.code, /return \{"payload": payload\}/);
  assert.match(scaffold({ method: "POST", path: "/o", body: json }).code, /payload = request\.json\(\)/);
  const text = scaffold({ method: "POST", path: "/o", headers: [["content-type", "text/plain"]], body: { ...json, data: "hi" } });
  assert.match(text.code, /^    body = request\.text\(\)$/m);
  const binary = scaffold({ method: "PUT", path: "/o", body: { encoding: "base64", data: "AAE=", bytes: 2, truncated: false } });
  assert.match(binary.code, /^    body = request\.body$/m);
  assert.match(binary.code, /"body_bytes": len\(body\)/);
  const none = scaffold({ method: "POST", path: "/o", body: { encoding: "utf-8", data: "", bytes: 0, truncated: false } });
  assert.doesNotMatch(none.code, /request\.(json|text|body)/);
  assert.deepEqual(inspect([typed.code, text.code, binary.code]).map((i) => i.calls), [
    ["app.http", "request.json"],
    ["app.http", "request.text"],
    ["app.http", "len"],
  ]);
});

test("pyString escapes everything that is not plainly printable", () => {
  assert.equal(pyString('a"b\\c'), String.raw`"a\"b\\c"`);
  assert.equal(pyString("x\ny\r\t\0"), String.raw`"x\ny\r\t\x00"`);
  assert.equal(pyString("\u2028\u202e\u200b\ud800"), String.raw`"\u2028\u202e\u200b\ud800"`);
  assert.equal(pyString("café 🙂"), '"café 🙂"');
  assert.equal(pyString("\u{e0001}"), String.raw`"\U000e0001"`);
});

const HOSTILE_PATHS = [
  '/files/"; import os\n#',
  "/files/'''\"\"\"/x",
  "/a\\b/c\\",
  "/users/\n\r\t\u0000",
  "/café/naïve/🙂",
  "/users/\u202egnp.exe",
  "/x/\u2028\u2029\u0085",
  "/x/\ud800",
  "/:id/*rest/%2e%2e",
  "/users/bob@example.com/{x}",
  "/../.",
];
const HOSTILE_KEYS = ['"; __import__("os").system("x")#', "a\nb", "\\", "ünï", "__import__", "def", "None", "\u202e", "9lives"];

test("hostile paths give safe routes that still describe the original path", () => {
  for (const path of HOSTILE_PATHS) {
    const { route, params } = routeFor(path);
    const routeSegments = route.split("/").filter(Boolean);
    const pathSegments = path.split("/").filter(Boolean);
    assert.equal(routeSegments.length, pathSegments.length, path);
    const values = [...params];
    routeSegments.forEach((segment, i) => {
      assert.match(segment, SAFE_SEGMENT, `${JSON.stringify(path)} -> ${route}`);
      if (segment.startsWith(":")) assert.deepEqual(values.shift(), { name: segment.slice(1), value: pathSegments[i] });
      else assert.equal(segment, pathSegments[i]);
    });
    assert.equal(values.length, 0);
    // Anything a route literal should not hold became a parameter.
    for (const segment of pathSegments) if (!/^[A-Za-z0-9._~-]+$/.test(segment)) assert.ok(looksLikeId(segment), segment);
  }
});

test("hostile requests give stubs that parse, import nothing and keep every key exact", () => {
  const outs = HOSTILE_PATHS.map((path, i) =>
    scaffold({
      method: i === 0 ? 'GET")\nimport os\n#' : "POST",
      path,
      query: Object.fromEntries(HOSTILE_KEYS.map((k) => [k, ["v"]])),
      headers: [["Content-Type", "application/json"]],
      body: { encoding: "utf-8", data: "{}", bytes: 2, truncated: false },
    }),
  );
  const infos = inspect(outs.map((o) => o.code));
  outs.forEach((out, i) => {
    const info = infos[i];
    assert.deepEqual(info.top, ["FunctionDef"], out.code);
    assert.equal(info.name, out.functionName);
    assert.match(info.name, /^[a-z_][a-z0-9_]{0,63}$/);
    assert.deepEqual(info.args, ["request"]);
    assert.equal(info.decorator[0], "app.http");
    assert.equal(info.decorator[2], out.route);
    assert.deepEqual(info.calls, ["app.http", "request.json", "request.query.get"]);
    assert.deepEqual(info.params, routeFor(HOSTILE_PATHS[i]).params.map((p) => p.name));
    assert.deepEqual(info.query, HOSTILE_KEYS);
    for (const line of out.code.split("\n")) {
      // No control or invisible character reaches the source, inside a literal or not.
      assert.doesNotMatch(line, /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u, JSON.stringify(line));
    }
  });
  assert.equal(infos[0].decorator[1], 'GET")\nIMPORT OS\n#');
  assert.match(outs[0].code, /^# strata routes only GET, HEAD/m);
});

test("canvasVar must be an identifier", () => {
  assert.match(scaffold({ path: "/a", canvasVar: "shop" }).code, /^@shop\.http\(/);
  assert.throws(() => scaffold({ path: "/a", canvasVar: "app)\nimport os" }), TypeError);
  assert.throws(() => scaffold({ path: "/a", canvasVar: "class" }), TypeError);
});

test("stubs register on a Canvas, route their request and echo it", { skip: runtimePython ? false : "no .venv with the runtime" }, () => {
  const cases = [
    { method: "GET", path: "/users/42", query: {}, body: "" },
    { method: "GET", path: "/orders/7/items/3", query: { page: ["2"], tag: ["a", "b"], "1-2": ["x"] }, body: "" },
    { method: "POST", path: "/orders", query: {}, body: '{"sku": "a1", "n": 2}', type: "application/json" },
    { method: "PUT", path: '/files/"; import os\n#/v', query: { class: ["c"], '"\\': ["q"] }, body: "note", type: "text/plain" },
    { method: "GET", path: "/café/3f2a9c1e-1b2c-4d5e-8f90-123456789abc/🙂", query: {}, body: "" },
    { method: "GET", path: "/", query: {}, body: "" },
  ];
  const generated = cases.map((c) => {
    const headers = c.type ? [["Content-Type", c.type]] : [];
    const out = scaffold({ ...c, headers, body: { encoding: "utf-8", data: c.body, bytes: c.body.length, truncated: false } });
    return { ...c, headers, query: pairs(c.query), code: out.code, out };
  });
  const results = python(runtimePython, RUN, generated);
  generated.forEach(({ out, path, query, body }, i) => {
    const got = results[i];
    assert.ok(got, `${path}: ${out.route} did not match`);
    assert.equal(got.id, out.functionName);
    const expected = Object.fromEntries(routeFor(path).params.map((p) => [p.name, p.value]));
    assert.deepEqual(got.params, expected);
    for (const [name, value] of Object.entries(expected)) assert.equal(got.result[name], value);
    if (body.startsWith("{")) assert.deepEqual(got.result.payload, JSON.parse(body));
    else if (body) assert.equal(got.result.body, body);
    assert.equal(Object.keys(got.result).length, Object.keys(expected).length + new Set(query.map(([k]) => k)).size + (body ? 1 : 0));
  });
  assert.deepEqual(results[1].result, { order_id: "7", item_id: "3", page: "2", tag: ["a", "b"], q_1_2: "x" });
  assert.deepEqual(results[3].result.class_, "c");
});
