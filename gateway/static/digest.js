// SHA-256 for the page: WebCrypto's, which a page has only in a secure context (https,
// or localhost). Shared by the base's integrity check (base.js) and the args hash
// (argshash.js).

/** Hex sha256 of `bytes`, or null where the page has no WebCrypto (not a secure context). */
export async function sha256Hex(bytes) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return null;
  const digest = new Uint8Array(await subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
