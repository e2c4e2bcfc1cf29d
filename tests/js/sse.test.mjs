// The page's event-stream reader (gateway/static/sse.js). Run: node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { EventStream, SseParser } from "../../gateway/static/sse.js";

function collect() {
  const events = [];
  const comments = [];
  const retries = [];
  const parser = new SseParser({
    onEvent: (e) => events.push(e),
    onComment: (c) => comments.push(c),
    onRetry: (ms) => retries.push(ms),
  });
  return { parser, events, comments, retries };
}

test("events, ids, comments and retry, in any chunking", () => {
  const text =
    "retry: 3000\nid: ab-0\n\n: keep-alive\n\nid: ab-1\nevent: trace\ndata: {\"trace_id\":\"t1\"}\n\n" +
    "id: ab-2\r\nevent: patch\r\ndata: line1\r\ndata: line2\r\n\r\n";
  for (const size of [1, 2, 3, 7, text.length]) {
    const { parser, events, comments, retries } = collect();
    for (let i = 0; i < text.length; i += size) parser.push(text.slice(i, i + size));
    assert.deepEqual(events, [
      { type: "trace", data: '{"trace_id":"t1"}', id: "ab-1" },
      { type: "patch", data: "line1\nline2", id: "ab-2" },
    ]);
    assert.deepEqual(comments, ["keep-alive"]);
    assert.deepEqual(retries, [3000]);
    assert.equal(parser.lastEventId, "ab-2");
  }
});

test("an id-only block moves the resume point without dispatching", () => {
  const { parser, events } = collect();
  parser.push("retry: 10\nid: ep-41\n\n");
  assert.equal(events.length, 0);
  assert.equal(parser.lastEventId, "ep-41");
});

test("a field without a value, unknown fields and an event type default", () => {
  const { parser, events } = collect();
  parser.push("foo: bar\ndata\ndata: x\n\n");
  assert.deepEqual(events, [{ type: "message", data: "\nx", id: "" }]);
});

function streamOf(...chunks) {
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(new TextEncoder().encode(c));
      controller.close();
    },
  });
}

test("EventStream sends the token in a header and resumes with Last-Event-ID", async () => {
  const calls = [];
  const got = [];
  let stream;
  const done = new Promise((resolve) => {
    stream = new EventStream({
      url: "/api/v1/canvases/shop/events",
      token: "strata_x",
      fetchImpl: async (url, init) => {
        calls.push({ url, headers: { ...init.headers } });
        if (calls.length === 1) {
          return new Response(streamOf("retry: 1\nid: e-5\n\n", 'id: e-6\nevent: trace\ndata: {"trace_id":"a"}\n\n'));
        }
        resolve();
        return new Response(null, { status: 401 });
      },
      onEvent: (e) => got.push(e),
    });
    stream.start();
  });
  await done;
  stream.stop();
  assert.equal(calls[0].url, "/api/v1/canvases/shop/events");
  assert.equal(calls[0].headers.Authorization, "Bearer strata_x");
  assert.equal(calls[0].headers["Last-Event-ID"], undefined);
  assert.equal(calls[1].headers["Last-Event-ID"], "e-6");
  assert.deepEqual(got, [{ type: "trace", data: { trace_id: "a" }, id: "e-6" }]);
});

test("EventStream stops on 401 and reports it", async () => {
  const states = [];
  let calls = 0;
  const stream = new EventStream({
    url: "/e",
    token: "bad",
    fetchImpl: async () => {
      calls += 1;
      return new Response(null, { status: 401 });
    },
    onEvent: () => {},
    onState: (s) => states.push(s),
  });
  await stream.connectOnce().then((outcome) => assert.equal(outcome, "unauthorized"));
  assert.deepEqual(states, ["connecting", "unauthorized"]);
  assert.equal(calls, 1);
});
