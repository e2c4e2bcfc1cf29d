// The editor API client: every /api/ call carries the bearer token in a header.

import { parseExact } from "./exact.js";

/** An /api/ failure, with strata's `{"error": {code, message}}` when the server sent one. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** Parse an error response into an ApiError with a readable message. */
export async function apiError(response) {
  let code = "http_error";
  let message = `${response.status} ${response.statusText || "error"}`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = String(body.error.code || code);
      message = String(body.error.message || message);
    }
  } catch {
    // Not JSON (a proxy's error page, say): keep the status line.
  }
  return new ApiError(response.status, code, message);
}

export class Api {
  /**
   * @param {string} token bearer token
   * @param {typeof fetch} fetchImpl injectable for tests
   */
  constructor(token, fetchImpl = globalThis.fetch.bind(globalThis)) {
    this.token = token;
    this.fetch = fetchImpl;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, Accept: "application/json", ...extra };
  }

  async request(method, path, body) {
    const init = { method, headers: this.headers(), cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await this.fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network", `cannot reach the editor API: ${err.message || err}`);
    }
    if (!response.ok) throw await apiError(response);
    return parseExact(await response.text());
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body = {}) {
    return this.request("POST", path, body);
  }
}

/** `/api/v1/canvases/{canvas}` + `rest`, with every segment escaped. */
export function canvasPath(canvas, ...rest) {
  return ["/api/v1/canvases", canvas, ...rest].map((s, i) => (i ? encodeURIComponent(s) : s)).join("/");
}
