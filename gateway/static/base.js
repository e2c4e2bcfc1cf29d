// Download a trace's base object straight from its signed URL and decode it.
//
// A single-trace object is stored with `Content-Encoding: zstd`; browsers that support
// it hand the page plain JSON. When the bytes arrive still compressed (an older
// browser, or a store or proxy that drops the header) they start with the zstd magic
// number and are decoded here with the vendored fzstd, loaded only then.
//
// A trace in a segment (the manifest's `base.range`) is one zstd frame of a larger
// object, fetched with a `Range` header. Segments are stored without a
// Content-Encoding: Chromium fails a ranged response that has one. The frame arrives
// as stored, so its sha256 is checked before it is decoded: by the browser
// (`DecompressionStream("zstd")`) where it can, by fzstd otherwise (Chromium 156 has
// no zstd DecompressionStream).

import { parseExact } from "./exact.js";
import { expanded } from "./compact.js";
import { sha256Hex } from "./digest.js";

export const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
/** The largest base (compressed bytes, from the manifest) the viewer downloads. */
export const MAX_BASE_BYTES = 64 * 1024 * 1024;

/** A base that could not be loaded, with a message meant for the developer. */
export class BaseError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "BaseError";
    this.kind = kind; // "expired" | "missing" | "too_large" | "network" | "corrupt" | "http"
  }
}

export function isZstd(bytes) {
  return bytes.length >= 4 && ZSTD_MAGIC.every((b, i) => bytes[i] === b);
}

function megabytes(n) {
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** The readable error for a failed download (`status` 0: the request itself failed). */
export function describeFailure(status, bodyText, manifest, now = Date.now()) {
  const expiresAt = Date.parse(manifest?.base?.expires_at ?? "");
  const expired = /expired/i.test(bodyText || "") || (Number.isFinite(expiresAt) && now >= expiresAt);
  if (status === 403 && expired) {
    return new BaseError(
      "expired",
      `The trace's download link expired${Number.isFinite(expiresAt) ? ` at ${new Date(expiresAt).toISOString()}` : ""}. ` +
        "Open the trace again to get a fresh link.",
    );
  }
  if (status === 404) {
    return new BaseError(
      "missing",
      "The trace's base object is missing from the store: it may have expired under the " +
        "retention policy, or the bucket was changed.",
    );
  }
  if (status === 413) return tooLarge(manifest?.base?.bytes);
  if (status === 0) {
    let origin = "the store";
    try {
      origin = new URL(manifest.base.url).origin;
    } catch {
      // keep the generic name
    }
    return new BaseError(
      "network",
      `Could not download the trace from ${origin}: the store is unreachable, or its CORS ` +
        `rules do not allow this page's origin (set them with \`strata store cors --origin <editor origin>\`).`,
    );
  }
  const detail = (bodyText || "").replace(/\s+/g, " ").slice(0, 200);
  return new BaseError(
    status === 403 ? "forbidden" : "http",
    `The store refused the trace download (HTTP ${status})${detail ? `: ${detail}` : ""}.`,
  );
}

function tooLarge(bytes) {
  return new BaseError(
    "too_large",
    `This trace is ${megabytes(bytes || 0)} compressed, over the viewer's limit of ` +
      `${megabytes(MAX_BASE_BYTES)}. Use \`strata traces show\` from a terminal instead.`,
  );
}

function nativeZstd() {
  try {
    new DecompressionStream("zstd");
    return true;
  } catch {
    return false;
  }
}

/** Decode one zstd frame: natively where the browser can, else with fzstd. */
export async function decodeFrame(frame, { native = nativeZstd() } = {}) {
  try {
    if (native) {
      const stream = new Blob([frame]).stream().pipeThrough(new DecompressionStream("zstd"));
      return { bytes: new Uint8Array(await new Response(stream).arrayBuffer()), decoder: "native" };
    }
    const { decompress } = await import("./vendor/fzstd.js");
    return { bytes: decompress(frame), decoder: "fzstd" };
  } catch (err) {
    throw new BaseError("corrupt", `The trace's bytes are not valid zstd: ${err.message || err}`);
  }
}

/** The frame `range` of a download: a 206 is the frame; a 200 is the whole object. */
export async function checkedFrame(response, base) {
  const { offset, length } = base.range;
  let raw = new Uint8Array(await response.arrayBuffer());
  if (response.status === 200) raw = raw.subarray(offset, offset + length); // Range ignored
  if (raw.length !== length) {
    throw new BaseError("corrupt", `The store sent ${raw.length} bytes of the trace, not ${length}.`);
  }
  const digest = await sha256Hex(raw);
  if (digest !== null && digest !== base.sha256) {
    throw new BaseError(
      "corrupt",
      `The trace's bytes do not match its sha256 (got ${digest}, the index has ${base.sha256}).`,
    );
  }
  return { frame: raw, verified: digest !== null };
}

/** zstd-decode `bytes` when they are still compressed; plain bytes pass through. */
export async function decodeBytes(bytes) {
  if (!isZstd(bytes)) return { bytes, decoder: "native" };
  const { decompress } = await import("./vendor/fzstd.js");
  try {
    return { bytes: decompress(bytes), decoder: "fzstd" };
  } catch (err) {
    throw new BaseError("corrupt", `The trace's bytes are not valid zstd: ${err.message || err}`);
  }
}

/**
 * Fetch and parse the base document named by `manifest`.
 * Returns `{doc, decoder, bytes, verified}` (`doc` as /1, see compact.js; `verified`: the frame's sha256 was checked);
 * throws BaseError with a readable message.
 */
export async function loadBase(manifest, { fetchImpl, maxBytes = MAX_BASE_BYTES, now } = {}) {
  const doFetch = fetchImpl || globalThis.fetch.bind(globalThis);
  if ((manifest.base.bytes || 0) > maxBytes) throw tooLarge(manifest.base.bytes);
  const range = manifest.base.range;
  let response;
  try {
    // A plain GET: the signature is the credential. No cookies, no Referer carrying the URL.
    // One `bytes=a-b` range is CORS-safelisted: no preflight.
    response = await doFetch(manifest.base.url, {
      credentials: "omit",
      mode: "cors",
      referrerPolicy: "no-referrer",
      cache: "no-store",
      ...(range ? { headers: { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } } : {}),
    });
  } catch {
    throw describeFailure(0, "", manifest, now);
  }
  if (!response.ok) {
    let text = "";
    try {
      text = await response.text();
    } catch {
      // the body is only for the message
    }
    throw describeFailure(response.status, text, manifest, now);
  }
  let decoded;
  let verified = false;
  if (range) {
    const checked = await checkedFrame(response, manifest.base);
    verified = checked.verified;
    decoded = await decodeFrame(checked.frame);
  } else {
    decoded = await decodeBytes(new Uint8Array(await response.arrayBuffer()));
  }
  const { bytes, decoder } = decoded;
  let doc;
  try {
    doc = parseExact(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new BaseError("corrupt", `The trace is not valid JSON after decoding: ${err.message || err}`);
  }
  try {
    // A strata.trace/2 base is read as /1 Call objects: what merge.js and the views take.
    doc = await expanded(doc);
  } catch (err) {
    throw new BaseError("corrupt", `The trace's calls cannot be read: ${err.message || err}`);
  }
  return { doc, decoder, bytes: bytes.length, verified };
}
