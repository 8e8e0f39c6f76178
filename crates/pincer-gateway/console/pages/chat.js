// Chat: talk to the agent in a session (the main one by default) over `chat.send`; the reply
// streams in from the gateway's `chat` events (`delta` with the text so far, then `final`,
// `aborted` or `error`). While a reply streams, Abort (or Escape) calls `chat.abort`: the gateway
// keeps the partial reply in the transcript, marked aborted.

import { h, fill, errorText, field, toast } from "/console/ui.js";
import { messageEl } from "/console/pages/sessions.js";

const textOf = (message) => (message?.content || []).filter((p) => p.type === "text").map((p) => p.text).join("");

/**
 * Sends one message and streams the reply: `onText(textSoFar)` for each piece; `onStarted(runId)`
 * once the gateway took it. `done` resolves with `{state: "final"|"aborted", text, tools}`
 * (`tools`: how many tool events the run had), or rejects with the gateway's error (a refused
 * send, or the turn's `error` event). `off()` removes the event listeners; the caller calls it
 * however the turn ended (the reconnect path settles it without a `chat` event).
 */
function sendTurn(gw, sessionKey, message, onText, onStarted) {
  const runId = crypto.randomUUID();
  let tools = 0;
  let off = () => {};
  const done = new Promise((resolve, reject) => {
    const offTools = gw.on("agent", (ev) => {
      if (ev.runId === runId && ev.stream === "tool") tools += 1;
    });
    const offChat = gw.on("chat", (ev) => {
      if (ev.runId !== runId) return;
      if (ev.state === "delta") onText(textOf(ev.message));
      else if (ev.state === "final" || ev.state === "aborted") {
        off();
        resolve({ state: ev.state, text: textOf(ev.message), tools });
      } else if (ev.state === "error") {
        off();
        reject(new Error(ev.errorMessage || "the turn failed"));
      }
    });
    off = () => { offTools(); offChat(); };
    gw.request("chat.send", { sessionKey, message, idempotencyKey: runId })
      .then(() => onStarted(runId), (e) => { off(); reject(e); });
  });
  return { done, off: () => off() };
}

export function mount(ctx, main, route) {
  const { gw } = ctx;
  const sessionKey = route.query.get("session") || "main";
  const log = h("div", { class: "transcript", id: "chat-log", "aria-live": "polite" });
  const input = h("textarea", { id: "chat-input", rows: 3, placeholder: "Ask the agent…" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const abort = h("button", { type: "button", id: "chat-abort", class: "danger", hidden: true, onclick: stop }, "Abort");
  const form = h("form", { class: "composer", onsubmit: submit }, field("Message", input), h("div", { class: "actions" }, send, abort));
  main.append(h("h1", {}, "Chat"), h("p", { class: "muted" }, `Session ${sessionKey}. Enter sends; Shift+Enter starts a new line; Escape aborts a reply.`), log, form);
  let alive = true;
  /** The run streaming now: `{runId, settle(result)}`; `runId` is null until the gateway took it. */
  let current = null;

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.key === "Escape" && current) {
      e.preventDefault();
      stop();
    }
  });

  async function load() {
    try {
      const page = await gw.request("chat.history", { sessionKey, limit: 50 });
      if (alive) fill(log, (page.messages || []).map(messageEl));
    } catch (e) {
      // A session that does not exist yet is simply empty.
      if (alive && e.detailCode !== "SESSION_NOT_FOUND") fill(log, h("p", { class: "alert" }, errorText(e)));
    }
    log.lastElementChild?.scrollIntoView({ block: "end" });
  }

  async function stop() {
    if (!current?.runId) return;
    abort.disabled = true;
    abort.textContent = "Aborting…";
    try {
      await gw.request("chat.abort", { sessionKey, runId: current.runId });
    } catch (err) {
      toast(errorText(err), "bad");
      abort.disabled = false;
      abort.textContent = "Abort";
    }
  }

  // Events missed while the connection was down: ask how the run ended, then show the transcript.
  const offResync = (() => {
    const onResync = async () => {
      const run = current;
      if (!run?.runId) return;
      try {
        const res = await gw.request("agent.wait", { runId: run.runId, timeoutMs: 600_000 }, { timeoutMs: 660_000 });
        if (res.status === "timeout") return;
        if (res.status === "error") run.settle(Promise.reject(new Error(res.error || "the turn failed")));
        else run.settle({ state: res.stopReason === "rpc" ? "aborted" : "final", reload: true });
      } catch { /* the next resync asks again */ }
    };
    gw.addEventListener("resync", onResync);
    return () => gw.removeEventListener("resync", onResync);
  })();

  async function submit(e) {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || current) return;
    input.value = "";
    send.disabled = true;
    log.append(messageEl({ role: "user", content: [{ type: "text", text }], timestamp: Date.now() }));
    const body = h("p", { class: "body" }, "…");
    const who = h("p", { class: "who" }, "Agent");
    const reply = h("article", { class: "msg assistant streaming", "aria-busy": "true" }, who, body);
    log.append(reply);
    reply.scrollIntoView({ block: "end" });
    let settle;
    const settled = new Promise((resolve) => { settle = resolve; });
    const turn = sendTurn(gw, sessionKey, text, (soFar) => {
      body.textContent = soFar;
      reply.scrollIntoView({ block: "end" });
    }, (runId) => {
      if (current) current.runId = runId;
      abort.hidden = false;
    });
    current = { runId: null, settle, off: turn.off };
    try {
      const done = await Promise.race([turn.done, settled]);
      // A turn that called tools: the transcript shows the calls and results in their place.
      if (done.reload || done.tools) await load();
      else if (done.state === "aborted") {
        if (done.text) body.textContent = done.text;
        else body.remove();
        reply.classList.add("aborted");
        who.textContent = "Agent · aborted";
        reply.append(h("p", { class: "note", role: "status" }, done.text ? "Aborted: the reply stops here (kept in the transcript)." : "Aborted before the model answered."));
      } else body.textContent = done.text || "(no reply)";
    } catch (err) {
      reply.classList.add("failed");
      reply.append(h("p", { class: "alert", role: "alert" }, errorText(err)));
    }
    turn.off();
    current = null;
    reply.classList.remove("streaming");
    reply.setAttribute("aria-busy", "false");
    send.disabled = false;
    abort.hidden = true;
    abort.disabled = false;
    abort.textContent = "Abort";
    if (alive) input.focus();
  }

  load();
  input.focus();
  return () => { alive = false; offResync(); current?.off(); };
}
