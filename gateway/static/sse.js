// Server-sent events read with fetch() streaming.
//
// EventSource cannot send an Authorization header, and a token in the URL would land in
// access logs and history, so the page reads the stream with fetch() and parses it here
// (the WHATWG event-stream format), reconnecting with Last-Event-ID itself.

/**
 * An incremental event-stream parser. `push(text)` feeds decoded text in any chunking;
 * complete events go to `onEvent({type, data, id})`, comment lines to `onComment`.
 */
export class SseParser {
  constructor({ onEvent, onComment = () => {}, onRetry = () => {} }) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.onRetry = onRetry;
    this.pending = "";
    this.data = [];
    this.type = "";
    this.lastEventId = "";
    this.idBuffer = "";
  }

  push(text) {
    this.pending += text;
    let start = 0;
    for (;;) {
      const nl = this.pending.slice(start).search(/\r\n|\r|\n/);
      if (nl < 0) break;
      const end = start + nl;
      // A lone "\r" at the very end may be the first half of "\r\n": wait for more.
      if (this.pending[end] === "\r" && end + 1 === this.pending.length) break;
      const width = this.pending.startsWith("\r\n", end) ? 2 : 1;
      this.line(this.pending.slice(start, end));
      start = end + width;
    }
    this.pending = this.pending.slice(start);
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return this.onComment(line.slice(1).trim());
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.idBuffer = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.onRetry(Number(value));
  }

  dispatch() {
    // As in the spec, an id-only block still moves lastEventId (the server's first block).
    this.lastEventId = this.idBuffer;
    const data = this.data;
    const type = this.type || "message";
    this.data = [];
    this.type = "";
    if (data.length === 0) return;
    this.onEvent({ type, data: data.join("\n"), id: this.lastEventId });
  }
}

/**
 * A self-reconnecting event stream over fetch().
 *
 * `onEvent({type, data, id})` gets each event (data already JSON-parsed when it parses),
 * `onState(state, detail)` gets "connecting", "live", "retrying" (detail: ms) and
 * "unauthorized" (the stream stops: the token is bad).
 */
export class EventStream {
  constructor({ url, token, onEvent, onState = () => {}, fetchImpl, watchdogMs = 45000 }) {
    this.url = url;
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState;
    this.fetch = fetchImpl || globalThis.fetch.bind(globalThis);
    this.watchdogMs = watchdogMs;
    this.retryMs = 3000;
    this.lastEventId = "";
    this.controller = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.loop();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async loop() {
    let failures = 0;
    while (!this.stopped) {
      const outcome = await this.connectOnce();
      if (this.stopped || outcome === "unauthorized") return;
      failures = outcome === "was-live" ? 0 : failures + 1;
      // The server's retry: value, backing off while the server keeps refusing.
      const wait = Math.min(this.retryMs * 2 ** Math.min(failures, 4), 30000);
      this.onState("retrying", wait);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  async connectOnce() {
    this.onState("connecting");
    const controller = new AbortController();
    this.controller = controller;
    const headers = { Authorization: `Bearer ${this.token}`, Accept: "text/event-stream" };
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    let timer = null;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(), this.watchdogMs);
    };
    let live = false;
    try {
      arm();
      const response = await this.fetch(this.url, { headers, cache: "no-store", signal: controller.signal });
      if (response.status === 401 || response.status === 403) {
        this.onState("unauthorized", response.status);
        return "unauthorized";
      }
      if (!response.ok || !response.body) return "failed";
      live = true;
      this.onState("live");
      const parser = new SseParser({
        onEvent: (event) => {
          this.lastEventId = event.id;
          let data = event.data;
          try {
            data = JSON.parse(event.data);
          } catch {
            // Leave non-JSON data as text.
          }
          this.onEvent({ ...event, data });
        },
        onRetry: (ms) => {
          this.retryMs = ms;
        },
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        arm(); // heartbeats keep the watchdog from firing on a healthy, idle stream
        parser.push(value);
        // id-only blocks (the stream's first) move the resume point too.
        if (parser.lastEventId) this.lastEventId = parser.lastEventId;
      }
    } catch {
      // Network error, abort by the watchdog or by stop(): reconnect unless stopped.
    } finally {
      clearTimeout(timer);
    }
    return live ? "was-live" : "failed";
  }
}
