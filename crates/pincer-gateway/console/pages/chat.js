// Chat: talk to the agent in a session (the main one by default); the reply streams in as it is
// written. Today this rides the `agent` method and its `agent` events (`assistant` deltas, then
// `lifecycle` end or error). When the gateway offers `chat.send` and `chat` events, only
// `sendTurn` below changes.

import { h, fill, errorText, field } from "/console/ui.js";
import { messageEl } from "/console/pages/sessions.js";

/**
 * Sends one message and streams the reply: `onText(textSoFar)` for each piece, resolves with the
 * final `{text, model}`, rejects with the gateway's error.
 */
async function sendTurn(gw, sessionKey, message, onText) {
  const runId = crypto.randomUUID();
  const off = gw.on("agent", (ev) => {
    if (ev.runId !== runId) return;
    if (ev.stream === "assistant" && typeof ev.data?.text === "string") onText(ev.data.text);
  });
  try {
    const res = await gw.request("agent", { message, sessionKey, idempotencyKey: runId }, { timeoutMs: 660_000 });
    return { text: res.text ?? "", model: res.model };
  } finally {
    off();
  }
}

export function mount(ctx, main, route) {
  const { gw } = ctx;
  const sessionKey = route.query.get("session") || "main";
  const log = h("div", { class: "transcript", id: "chat-log", "aria-live": "polite" });
  const input = h("textarea", { id: "chat-input", rows: 3, placeholder: "Ask the agent…" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const form = h("form", { class: "composer", onsubmit: submit }, field("Message", input), send);
  main.append(h("h1", {}, "Chat"), h("p", { class: "muted" }, `Session ${sessionKey}. Enter sends; Shift+Enter starts a new line.`), log, form);
  let alive = true;

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
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

  async function submit(e) {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send.disabled = true;
    log.append(messageEl({ role: "user", content: [{ type: "text", text }], timestamp: Date.now() }));
    const body = h("p", { class: "body" }, "…");
    const reply = h("article", { class: "msg assistant streaming", "aria-busy": "true" }, h("p", { class: "who" }, "Agent"), body);
    log.append(reply);
    reply.scrollIntoView({ block: "end" });
    try {
      const done = await sendTurn(gw, sessionKey, text, (soFar) => {
        body.textContent = soFar;
        reply.scrollIntoView({ block: "end" });
      });
      body.textContent = done.text || "(no reply)";
      if (done.model) reply.querySelector(".who").textContent = `Agent · ${done.model}`;
    } catch (err) {
      reply.classList.add("failed");
      reply.append(h("p", { class: "alert", role: "alert" }, errorText(err)));
    }
    reply.classList.remove("streaming");
    reply.setAttribute("aria-busy", "false");
    send.disabled = false;
    input.focus();
  }

  load();
  input.focus();
  return () => { alive = false; };
}
