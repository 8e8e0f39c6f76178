// Approvals: the commands the agent asked to run that the exec allowlist does not cover
// (`tools.exec.mode = "ask"`), waiting for an operator. Allow once runs it this time, Always also
// adds it to the allowlist (`<state>/exec-approvals.json`), Deny refuses it; the agent reads the
// decision as the tool's result. `exec.approval.requested` / `exec.approval.resolved` events keep
// the list current; what nobody decides is refused at `tools.exec.approvalTimeoutSec`.

import { h, fill, timeEl, table, errorText, cmd, confirmAction } from "/console/ui.js";

const DECISIONS = [
  ["allow-once", "Allow once", "primary", "Allowed once"],
  ["allow-always", "Always allow", "", "Allowed, and added to the allowlist"],
  ["deny", "Deny", "danger", "Denied"],
];

export function mount(ctx, main) {
  const { gw } = ctx;
  const list = h("section", { class: "card", "aria-labelledby": "approvals-title" }, h("h2", { id: "approvals-title" }, "Waiting for a decision"));
  main.append(h("h1", {}, "Approvals"),
    h("p", { class: "muted" }, "Commands the agent asked to run that the allowlist does not cover (", cmd("tools.exec.mode = \"ask\""),
      "). Allow once runs it this time; Always allow also adds it to the allowlist; Deny refuses it. The agent reads the decision as the command's result."),
    list);
  let alive = true;
  /** Pending approvals by id, oldest first. */
  const pending = new Map();

  function render() {
    const rows = [...pending.values()].sort((a, b) => a.createdAtMs - b.createdAtMs);
    fill(list, h("h2", { id: "approvals-title" }, "Waiting for a decision"),
      rows.length === 0 ? h("p", { class: "muted" }, "No command is waiting for approval.") :
        table("Pending exec approvals", ["Command", "Why", "Session", "Asked", "Refused at", "Decide"], rows.map((a) => {
          const r = a.request || {};
          return h("tr", { dataset: { approval: a.id } },
            h("td", {}, h("code", { class: "command" }, r.command || "?"), r.cwd ? h("div", { class: "muted" }, `in ${r.cwd}`) : null),
            h("td", {}, r.reason || "not on the allowlist"),
            h("td", {}, r.sessionKey ? h("a", { href: `#/sessions/${encodeURIComponent(r.sessionKey)}` }, r.sessionKey) : "—"),
            h("td", {}, timeEl(a.createdAtMs)),
            h("td", {}, timeEl(a.expiresAtMs)),
            h("td", {}, h("div", { class: "actions" }, DECISIONS.map(([decision, label, tone, done]) =>
              h("button", { type: "button", class: tone || null, "aria-label": `${label}: ${r.command || a.id}`, onclick: (e) => decide(e.target, a, decision, done) }, label)))));
        })));
  }

  async function load() {
    let rows;
    try {
      rows = await gw.request("exec.approval.list", {});
    } catch (e) {
      if (alive) fill(list, h("h2", { id: "approvals-title" }, "Waiting for a decision"), h("p", { class: "alert", role: "alert" }, errorText(e)));
      return;
    }
    if (!alive) return;
    pending.clear();
    for (const a of rows || []) pending.set(a.id, a);
    render();
  }

  async function decide(button, a, decision, done) {
    if (decision === "allow-always" && !(await confirmAction(`Always allow ${a.request?.command || "this command"}? It is added to the allowlist and runs without asking from now on.`, "Always allow"))) return;
    for (const b of button.closest("tr").querySelectorAll("button")) b.disabled = true;
    try {
      await gw.request("exec.approval.resolve", { id: a.id, decision });
      ctx.toast(done, "good");
      pending.delete(a.id);
      render();
    } catch (e) {
      ctx.toast(errorText(e), "bad");
      load();
    }
  }

  const offs = [
    gw.on("exec.approval.requested", (a) => {
      if (!a?.id) return;
      pending.set(a.id, a);
      render();
    }),
    gw.on("exec.approval.resolved", (ev) => {
      if (!pending.delete(ev?.id)) return;
      render();
    }),
  ];
  const onResync = () => load();
  gw.addEventListener("resync", onResync);
  load();
  return () => { alive = false; offs.forEach((o) => o()); gw.removeEventListener("resync", onResync); };
}
