// Sessions: every agent session (main, named, isolated cron runs), paged, and a session's
// transcript — text, and tool calls and results where a turn made them.

import { h, fill, badge, timeEl, pager, table, errorText, field, fmtDuration } from "/console/ui.js";

const PAGE = 50;

export function mount(ctx, main, route) {
  const key = route.rest.join("/");
  return key ? transcript(ctx, main, key) : list(ctx, main, route);
}

function list(ctx, main, route) {
  const { gw } = ctx;
  let offset = 0;
  let kind = ["main", "named", "isolated"].includes(route.query.get("kind")) ? route.query.get("kind") : "";
  const sel = h("select", { id: "s-kind" }, [["", "all"], ["main", "main"], ["named", "named"], ["isolated", "isolated (cron runs)"]]
    .map(([v, t]) => h("option", { value: v, selected: v === kind }, t)));
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Sessions"), h("div", { class: "toolbar" }, field("Kind", sel)), body);
  let alive = true;

  async function load() {
    let page;
    try {
      page = await gw.request("sessions.list", { limit: PAGE, offset, ...(kind ? { kind } : {}) });
    } catch (e) {
      if (alive) fill(body, h("p", { class: "alert", role: "alert" }, errorText(e)));
      return;
    }
    if (!alive) return;
    fill(body, page.total === 0 ? h("p", { class: "muted" }, "No sessions yet.") : [
      table("Sessions", ["Session", "Kind", "Updated", "Messages", "Tokens", "Model"], page.sessions.map((s) => [
        h("a", { href: `#/sessions/${encodeURIComponent(s.key)}` }, s.key),
        badge(s.kind), timeEl(s.updatedAt), String(s.messageCount ?? 0), String(s.totalTokens ?? 0), s.model || "—",
      ])),
      pager({ total: page.total, offset, limit: PAGE, count: page.sessions.length }, (o) => { offset = o; load(); }, "sessions")]);
  }
  sel.addEventListener("change", () => { kind = sel.value; offset = 0; load(); });
  load();
  return () => { alive = false; };
}

/** Arguments as the model wrote them (JSON text), indented when they parse. */
function pretty(args) {
  if (typeof args !== "string") return JSON.stringify(args ?? {}, null, 2);
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args;
  }
}

/** A tool call an assistant entry made: its name, arguments folded away. */
function toolCallEl(c) {
  return h("details", { class: "tool call", dataset: { callId: c.id || "" } },
    h("summary", {}, "Tool call ", h("code", {}, c.name || "?")),
    h("pre", { class: "args" }, pretty(c.arguments ?? c.input)));
}

/** A tool result entry (`toolResult`): the tool, ok or error with its class, the time; text folded away. */
function toolResultEl(m, text) {
  const failed = m.isError === true;
  return h("article", { class: `msg tool${failed ? " failed" : ""}`, dataset: { seq: m.seq !== undefined ? String(m.seq) : "", callId: m.toolCallId || "" } },
    h("details", { class: "tool result" },
      h("summary", {}, failed ? "Tool error" : "Tool result", m.toolName ? [" ", h("code", {}, m.toolName)] : null,
        failed && m.errorClass ? ` (${m.errorClass})` : "", Number.isFinite(m.durationMs) ? ` · ${fmtDuration(m.durationMs)}` : ""),
      h("pre", { class: "result" }, text || "(empty)")));
}

/** One transcript entry as a chat bubble; tool calls and results collapsed, opened on demand. */
export function messageEl(m) {
  const role = m.role || "assistant";
  const parts = Array.isArray(m.content) ? m.content : [];
  const texts = parts.filter((p) => p.type === "text").map((p) => p.text).join("\n") || (typeof m.text === "string" ? m.text : "");
  if (role === "toolResult" || role === "tool") return toolResultEl(m, texts);
  const calls = Array.isArray(m.toolCalls) ? m.toolCalls : [];
  const label = role === "user" ? "You" : role === "assistant" ? "Agent" : role;
  return h("article", { class: `msg ${role}${m.aborted ? " aborted" : ""}`, dataset: { seq: m.seq !== undefined ? String(m.seq) : "" } },
    h("p", { class: "who" }, label, m.timestamp ? [" · ", timeEl(m.timestamp)] : null, m.model ? ` · ${m.model}` : "", m.aborted ? " · aborted" : ""),
    texts ? h("p", { class: "body" }, texts) : null,
    calls.map(toolCallEl));
}

function transcript(ctx, main, key) {
  const { gw } = ctx;
  const body = h("div", { class: "transcript" }, h("p", { class: "muted" }, "Loading…"));
  const head = h("div", {}, h("p", {}, h("a", { href: "#/sessions" }, "← All sessions")), h("h1", {}, "Session"), h("p", { class: "mono" }, key));
  const more = h("div");
  main.append(head, more, body);
  let alive = true;
  let before = null;

  async function load(older) {
    let page;
    try {
      page = await gw.request("chat.history", { sessionKey: key, limit: 200, ...(older && before ? { beforeSeq: before } : {}) });
    } catch (e) {
      if (alive) fill(body, h("p", { class: "alert", role: "alert" }, errorText(e)));
      return;
    }
    if (!alive) return;
    const els = (page.messages || []).map(messageEl);
    if (older) body.prepend(...els);
    else fill(body, els.length ? els : h("p", { class: "muted" }, "No messages."));
    before = page.nextBeforeSeq ?? null;
    fill(more, page.hasMore ? h("button", { type: "button", onclick: () => load(true) }, "Older messages") : null);
    const s = page.session || {};
    if (!older) head.append(h("p", { class: "muted" }, `${s.kind || ""} · ${s.messageCount ?? 0} messages · ${s.totalTokens ?? 0} tokens`, s.jobId ? [" · job ", h("a", { href: `#/jobs/${encodeURIComponent(s.jobId)}` }, s.jobId)] : null));
  }
  load(false);
  return () => { alive = false; };
}
