// Live updates from GET /v1/stream (Server-Sent Events). EventSource cannot
// send an Authorization header, so the stream is read with fetch() and parsed
// here: "id:", "event:", "data:" fields, a blank line ends an event, lines
// starting with ":" are comments (the server's heartbeats). On any end or
// error it reconnects with Last-Event-ID (the last id seen), after a back-off
// that doubles from 0.5 s to 15 s and starts over once a stream opens.

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 15000;

// One SSE parser: feed it text chunks, it calls onEvent({id, event, data})
// and onComment(text). Keeps the partial line between chunks.
export function sseParser(onEvent, onComment) {
  let buffer = "";
  let id = null;
  let event = "";
  let data = [];
  function line(text) {
    if (text === "") {
      if (data.length) onEvent({ id, event: event || "message", data: data.join("\n") });
      event = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) {
      onComment(text.slice(1).trim());
      return;
    }
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id" && !value.includes("\0")) id = value;
    else if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return {
    feed(chunk) {
      buffer += chunk;
      let match;
      while ((match = /\r\n|\r|\n/.exec(buffer))) {
        // a lone \r at the end may be the first half of \r\n: wait for more
        if (match[0] === "\r" && match.index === buffer.length - 1) break;
        line(buffer.slice(0, match.index));
        buffer = buffer.slice(match.index + match[0].length);
      }
    },
    lastId() {
      return id;
    },
  };
}

// Opens the stream and keeps it open until stop() is called.
//   headers(): the Authorization header (read each time: a new sign-in)
//   onEvent({id, type, body}): a domain event (body: the parsed data)
//   onState("on" | "wait" | "off", why): for the live indicator
//   onRefused(status): 401/403: the stream will not be retried
export function openStream({ headers, onEvent, onState, onRefused }) {
  let stopped = false;
  let controller = null;
  let lastId = null;
  let backoff = MIN_BACKOFF_MS;
  let timer = null;

  async function connect() {
    if (stopped) return;
    controller = new AbortController();
    onState("wait", "connecting");
    try {
      const h = { ...headers(), Accept: "text/event-stream" };
      if (lastId) h["Last-Event-ID"] = lastId;
      const response = await fetch("/v1/stream", {
        headers: h, signal: controller.signal, cache: "no-store", credentials: "omit",
      });
      if (response.status === 401 || response.status === 403) {
        onState("off", "refused (" + response.status + ")");
        onRefused(response.status);
        return;
      }
      if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
      backoff = MIN_BACKOFF_MS;
      onState("on", "live");
      const parser = sseParser((e) => {
        if (e.id) lastId = e.id;
        let body = null;
        try {
          body = JSON.parse(e.data);
        } catch (err) {
          return; // not ours to understand
        }
        onEvent({ id: e.id, type: e.event, body });
      }, () => onState("on", "live"));
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
      throw new Error("the stream ended");
    } catch (err) {
      if (stopped) return;
      onState("wait", "reconnecting: " + (err && err.message ? err.message : err));
      timer = setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (controller) controller.abort();
      onState("off", "offline");
    },
  };
}
