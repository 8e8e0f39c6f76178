// Audit log: connects, failed sign-ins, pairing decisions and token changes, newest first, paged
// by the gateway. Pairing events bring new entries in; the log has no event of its own, so
// "Newest" reloads the first page.

import { h, fill, timeEl, pager, table, errorText, field, throttle } from "/console/ui.js";

const PAGE = 50;

export function mount(ctx, main) {
  const { gw } = ctx;
  let offset = 0;
  let action = "";
  const actionIn = h("input", { id: "a-action", type: "text", placeholder: "e.g. gateway.auth.failed" });
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Audit log"),
    h("div", { class: "toolbar" }, field("Action", actionIn), h("button", { type: "button", onclick: () => { offset = 0; load(); } }, "Newest")),
    body);
  let alive = true;

  const summary = (detail) => {
    if (!detail || typeof detail !== "object") return "";
    return Object.entries(detail).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ");
  };

  async function load() {
    let page;
    try {
      page = await gw.request("audit.query", { limit: PAGE, offset, ...(action ? { action } : {}) });
    } catch (e) {
      if (alive) fill(body, h("p", { class: "alert", role: "alert" }, errorText(e)));
      return;
    }
    if (!alive) return;
    fill(body, page.total === 0 ? h("p", { class: "muted" }, "No entries.") : [
      table("Audit entries", ["When", "Action", "Device", "Address", "Detail"], page.entries.map((e) => [
        timeEl(e.atMs), h("span", { class: "mono" }, e.action), e.deviceId ? h("span", { class: "mono" }, e.deviceId.slice(0, 12)) : "—",
        e.remoteIp || "—", summary(e.detail),
      ])),
      pager({ total: page.total, offset, limit: PAGE, count: page.entries.length }, (o) => { offset = o; load(); }, "audit entries")]);
  }
  let typing = null;
  actionIn.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { action = actionIn.value.trim(); offset = 0; load(); }, 300);
  });
  const refresh = throttle(() => { if (offset === 0) load(); }, 1000);
  const offs = [gw.on("device.pair.requested", refresh), gw.on("device.pair.resolved", refresh)];
  load();
  return () => { alive = false; offs.forEach((o) => o()); refresh.cancel(); clearTimeout(typing); };
}
