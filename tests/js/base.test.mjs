// The page's base download (gateway/static/base.js): zstd magic detection, the fzstd
// fallback, and readable failures. Run: node --test tests/js/
import assert from "node:assert/strict";
import { test } from "node:test";

import { BaseError, decodeBytes, describeFailure, isZstd, loadBase, MAX_BASE_BYTES } from "../../gateway/static/base.js";

// zstandard level 3 of a 1261-byte trace-like document (compressed blocks, not raw).
const FRAME = Buffer.from(
  "28b52ffd60ed03a50700124a1e1b70673a6ee2ef5389658bb089500b00400c85ff9650f4bef47f0d01b1890df3ffffffffffffffb66ddbb66ddb36c32c8ba22409821c8761fc368b4d417059d6ea99a8083a93059515bd02ad4f92d2298bfd413cf73c8b686b0166d5ab155ad51495f5d0d6412428ab89c749070109d3c1d75698064741bd023e2030230946e1014c6c87319b64b7314c6c87b19bb0b3314c6c97b14db0b331994cda4e72c622db0432768f36e63893c6b6638cb1459b28ce2eb18d21c6e4d076863356d82684b11bb485e017028b0f30638508476382d42eb09a084763836827309a08576341680781a5c25caa716edac7640b52c13b01",
  "hex",
);

const manifest = (extra = {}) => ({
  trace_id: "t",
  base: { url: "http://127.0.0.1:9/objects/k?sig=x", expires_at: "2099-01-01T00:00:00.000000Z", bytes: FRAME.length, ...extra },
  patches: [],
});

const respond = (status, body) => async () => new Response(body, { status });

test("zstd magic is recognised and only at the start", () => {
  assert.ok(isZstd(new Uint8Array(FRAME)));
  assert.ok(!isZstd(new TextEncoder().encode('{"format":1}')));
  assert.ok(!isZstd(new Uint8Array([0x28, 0xb5, 0x2f])));
});

test("bytes still compressed are decoded by the vendored fzstd", async () => {
  const { bytes, decoder } = await decodeBytes(new Uint8Array(FRAME));
  assert.equal(decoder, "fzstd");
  const doc = JSON.parse(new TextDecoder().decode(bytes));
  assert.equal(doc.input.path, "/users/42");
  assert.equal(doc.calls.length, 30);
});

test("loadBase: native-decoded JSON and raw zstd give the same document", async () => {
  const plain = await loadBase(manifest(), { fetchImpl: respond(200, '{"input":{"path":"/users/42"}}') });
  assert.equal(plain.decoder, "native");
  const raw = await loadBase(manifest(), { fetchImpl: respond(200, FRAME) });
  assert.equal(raw.decoder, "fzstd");
  assert.equal(raw.doc.input.path, plain.doc.input.path);
});

test("loadBase sends no credentials and no referrer", async () => {
  let seen;
  await loadBase(manifest(), {
    fetchImpl: async (url, init) => {
      seen = { url, init };
      return new Response("{}");
    },
  });
  assert.equal(seen.init.credentials, "omit");
  assert.equal(seen.init.referrerPolicy, "no-referrer");
  assert.equal(seen.init.headers, undefined);
});

test("an expired signed URL reads as expired", async () => {
  const s3 = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>";
  await assert.rejects(loadBase(manifest(), { fetchImpl: respond(403, s3) }), (err) => {
    assert.ok(err instanceof BaseError);
    assert.equal(err.kind, "expired");
    assert.match(err.message, /expired/);
    return true;
  });
  const past = manifest({ expires_at: "2000-01-01T00:00:00Z" });
  assert.equal(describeFailure(403, "Forbidden", past).kind, "expired");
});

test("a missing object, a refused download and a network failure say so", async () => {
  await assert.rejects(loadBase(manifest(), { fetchImpl: respond(404, "NoSuchKey") }), { kind: "missing" });
  await assert.rejects(loadBase(manifest(), { fetchImpl: respond(403, "SignatureDoesNotMatch") }), {
    kind: "forbidden",
  });
  await assert.rejects(
    loadBase(manifest(), {
      fetchImpl: async () => {
        throw new TypeError("Failed to fetch");
      },
    }),
    (err) => err.kind === "network" && err.message.includes("http://127.0.0.1:9") && /CORS/.test(err.message),
  );
});

test("a base over the viewer's limit is refused before downloading", async () => {
  let fetched = false;
  const big = manifest({ bytes: MAX_BASE_BYTES + 1 });
  await assert.rejects(
    loadBase(big, {
      fetchImpl: async () => {
        fetched = true;
        return new Response("{}");
      },
    }),
    (err) => err.kind === "too_large" && /limit/.test(err.message),
  );
  assert.equal(fetched, false);
});

test("corrupt bytes are a readable error, not a crash", async () => {
  const broken = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]);
  await assert.rejects(loadBase(manifest(), { fetchImpl: respond(200, broken) }), { kind: "corrupt" });
  await assert.rejects(loadBase(manifest(), { fetchImpl: respond(200, "{not json") }), { kind: "corrupt" });
});

// A segment: two frames back to back; the manifest names the second one.
const OTHER = Buffer.from("28b52ffd2002110000", "hex"); // the frame before it (never decoded here)
const SEGMENT = Buffer.concat([OTHER, FRAME]);
const sha256 = async (bytes) =>
  Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)), (b) => b.toString(16).padStart(2, "0")).join("");

const ranged = async (extra = {}) =>
  manifest({ sha256: await sha256(FRAME), range: { offset: OTHER.length, length: FRAME.length }, ...extra });

test("a frame of a segment is fetched with one Range header, checked and decoded", async () => {
  let seen;
  const m = await ranged();
  const loaded = await loadBase(m, {
    fetchImpl: async (url, init) => {
      seen = init.headers;
      return new Response(FRAME, { status: 206 });
    },
  });
  assert.deepEqual(seen, { Range: `bytes=${OTHER.length}-${OTHER.length + FRAME.length - 1}` });
  assert.equal(loaded.doc.input.path, "/users/42");
  assert.equal(loaded.verified, true);
  assert.equal(loaded.decoder, "fzstd"); // no zstd DecompressionStream in Node
});

test("a store that ignores Range sends the whole segment: the frame is cut out of it", async () => {
  const loaded = await loadBase(await ranged(), { fetchImpl: respond(200, SEGMENT) });
  assert.equal(loaded.doc.input.path, "/users/42");
});

test("a tampered frame, range or sha256 is detected, never decoded", async () => {
  const flipped = Buffer.from(FRAME);
  flipped[40] ^= 1;
  await assert.rejects(loadBase(await ranged(), { fetchImpl: respond(206, flipped) }), { kind: "corrupt" });
  await assert.rejects(loadBase(await ranged({ sha256: "0".repeat(64) }), { fetchImpl: respond(206, FRAME) }), {
    kind: "corrupt",
  });
  const shifted = await ranged({ range: { offset: 0, length: FRAME.length } });
  await assert.rejects(loadBase(shifted, { fetchImpl: respond(200, SEGMENT) }), { kind: "corrupt" });
  await assert.rejects(loadBase(await ranged(), { fetchImpl: respond(206, FRAME.subarray(1)) }), /not \d+|bytes of the trace/);
});
