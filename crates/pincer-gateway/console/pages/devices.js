// Devices: paired devices with their scopes and tokens, and pending pairing requests to approve
// or reject; rotate or revoke a device's token, or remove it. `device.pair.*` events keep the
// page current.

import { h, fill, badge, timeEl, table, errorText, confirmAction } from "/console/ui.js";

export function mount(ctx, main) {
  const { gw } = ctx;
  const mine = globalThis.pincerConsole?.identity?.deviceId;
  const pending = h("section", { class: "card", "aria-labelledby": "pending-title" }, h("h2", { id: "pending-title" }, "Pending requests"));
  const paired = h("section", { class: "card", "aria-labelledby": "paired-title" }, h("h2", { id: "paired-title" }, "Paired devices"));
  main.append(h("h1", {}, "Devices"), pending, paired);
  let alive = true;

  const name = (d) => d.label || d.displayName || d.clientId || d.deviceId.slice(0, 12);

  async function load() {
    let list;
    try {
      list = await gw.request("device.pair.list", {});
    } catch (e) {
      if (alive) fill(paired, h("h2", { id: "paired-title" }, "Paired devices"), h("p", { class: "alert", role: "alert" }, errorText(e)));
      return;
    }
    if (!alive) return;
    fill(pending, h("h2", { id: "pending-title" }, "Pending requests"),
      list.pending.length === 0 ? h("p", { class: "muted" }, "No device is waiting for approval.") :
        table("Pending pairing requests", ["Device", "From", "Asks for", "Why", "Since", "Decide"], list.pending.map((r) => h("tr", { dataset: { request: r.requestId } },
          h("td", {}, name(r), h("br"), h("span", { class: "mono muted" }, r.deviceId.slice(0, 16))),
          h("td", {}, r.remoteIp || "—", r.clientId ? ` · ${r.clientId}` : ""),
          h("td", {}, `${r.role || "operator"}: ${(r.scopes || []).join(", ") || "no scopes"}`),
          h("td", {}, r.reason || (r.isRepair ? "repair" : "new device")),
          h("td", {}, timeEl(r.ts)),
          h("td", {}, h("div", { class: "actions" },
            h("button", { type: "button", class: "primary", onclick: (e) => act(e.target, "device.pair.approve", { requestId: r.requestId }, "Approved") }, "Approve"),
            h("button", { type: "button", class: "danger", onclick: (e) => act(e.target, "device.pair.reject", { requestId: r.requestId }, "Rejected") }, "Reject")))))));
    fill(paired, h("h2", { id: "paired-title" }, "Paired devices"),
      list.paired.length === 0 ? h("p", { class: "muted" }, "No paired device.") :
        table("Paired devices", ["Device", "Scopes", "Tokens", "Last seen", "Actions"], list.paired.map((d) => h("tr", { dataset: { device: d.deviceId } },
          h("td", {}, name(d), d.deviceId === mine ? h("strong", {}, " (this browser)") : null, " ", badge(d.connected ? "connected" : "offline"),
            h("br"), h("span", { class: "mono muted" }, d.deviceId.slice(0, 16)), d.platform ? h("span", { class: "muted" }, ` · ${d.platform}`) : null),
          h("td", {}, (d.scopes || []).join(", ") || "none"),
          h("td", {}, (d.tokens || []).map((t) => h("div", {}, `${t.role}: `, t.revokedAtMs ? badge("revoked") : badge("active"),
            t.rotatedAtMs ? h("span", { class: "muted" }, " rotated ", timeEl(t.rotatedAtMs)) : null))),
          h("td", {}, timeEl(d.lastSeenAtMs)),
          h("td", {}, h("div", { class: "actions" },
            h("button", { type: "button", onclick: (e) => rotate(e.target, d) }, "Rotate"),
            h("button", { type: "button", class: "danger", onclick: (e) => revoke(e.target, d) }, "Revoke"),
            h("button", { type: "button", class: "danger", onclick: (e) => removeDevice(e.target, d) }, "Remove")))))));
  }

  async function act(button, method, params, done) {
    button.disabled = true;
    try {
      await gw.request(method, params);
      ctx.toast(done, "good");
    } catch (e) {
      ctx.toast(errorText(e), "bad");
    }
    load();
  }

  async function rotate(button, d) {
    if (!(await confirmAction(`Rotate the operator token of ${name(d)}? Its connections close and it must sign in again.`, "Rotate"))) return;
    button.disabled = true;
    try {
      const r = await gw.request("device.token.rotate", { deviceId: d.deviceId, role: "operator" });
      if (d.deviceId === mine && r.token) localStorage.setItem("pincer.console.deviceToken", r.token);
      ctx.toast("Token rotated", "good");
    } catch (e) {
      ctx.toast(errorText(e), "bad");
    }
    load();
  }

  async function revoke(button, d) {
    const self = d.deviceId === mine ? " This is the browser you are using: it will be signed out." : "";
    if (!(await confirmAction(`Revoke the operator token of ${name(d)}?${self}`, "Revoke"))) return;
    await act(button, "device.token.revoke", { deviceId: d.deviceId, role: "operator" }, "Token revoked");
  }

  async function removeDevice(button, d) {
    if (!(await confirmAction(`Remove ${name(d)}? It must be paired again to connect.`, "Remove device"))) return;
    await act(button, "device.pair.remove", { deviceId: d.deviceId }, "Device removed");
  }

  const offs = [gw.on("device.pair.requested", load), gw.on("device.pair.resolved", load)];
  load();
  return () => { alive = false; offs.forEach((o) => o()); };
}
