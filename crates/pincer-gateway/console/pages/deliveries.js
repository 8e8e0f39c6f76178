// Deliveries: the outbox, filtered by state and channel and paged by the gateway (100,000 rows are
// 2,000 pages of 50), each with the reason it is where it is; retry a dead or unknown one, cancel
// a pending one, purge settled ones. Updated by `delivery` events as rows settle.

import { h, fill, badge, timeEl, pager, table, throttle, errorText, field, confirmAction } from "/console/ui.js";

const PAGE = 50;
const STATES = ["all", "pending", "sending", "delivered", "unknown", "dead"];

export function mount(ctx, main, route) {
  const { gw } = ctx;
  let state = STATES.includes(route.query.get("state")) ? route.query.get("state") : "all";
  let channel = route.query.get("channel") || "";
  let offset = 0;
  const stateSel = h("select", { id: "d-state" }, STATES.map((s) => h("option", { value: s, selected: s === state }, s)));
  const chanIn = h("input", { id: "d-channel", type: "text", value: channel, placeholder: "any" });
  const body = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  main.append(h("h1", {}, "Deliveries"),
    h("div", { class: "toolbar" }, field("State", stateSel), field("Channel", chanIn),
      h("button", { type: "button", onclick: () => purge(["delivered"]) }, "Purge delivered"),
      h("button", { type: "button", class: "danger", onclick: () => purge(["dead"]) }, "Purge dead")),
    body);
  let alive = true;
  let serial = 0;

  async function load() {
    const mine = ++serial;
    let page;
    try {
      page = await gw.request("deliveries.list", { ...(state === "all" ? {} : { state }), ...(channel ? { channel } : {}), limit: PAGE, offset });
    } catch (e) {
      if (alive && mine === serial) fill(body, h("p", { class: "alert", role: "alert" }, errorText(e)));
      return;
    }
    if (!alive || mine !== serial) return;
    const rows = page.deliveries.map((d) => h("tr", { dataset: { id: d.id, state: d.state } },
      h("td", {}, timeEl(d.createdAtMs)),
      h("td", {}, d.channel),
      h("td", {}, d.to),
      h("td", {}, badge(d.state)),
      h("td", { class: "wide" }, `${d.attempts}/${d.maxAttempts}`),
      h("td", { class: "reason" }, reason(d)),
      h("td", { class: "wide" }, d.text || ""),
      h("td", {}, actions(d))));
    fill(body,
      page.total === 0 ? h("p", { class: "muted" }, "No delivery matches.") :
        [table("Deliveries", ["Created", "Channel", "To", "State", "Attempts", "Reason", "Text", "Actions"], rows, { class: "deliveries" }),
          pager({ total: page.total, offset, limit: PAGE, count: page.deliveries.length }, (o) => { offset = o; load(); }, "deliveries")]);
  }

  function reason(d) {
    if (d.state === "delivered") return d.settledAtMs ? h("span", {}, "delivered ", timeEl(d.settledAtMs)) : "delivered";
    if (d.state === "pending" && d.nextAttemptAtMs) return h("span", {}, d.lastError ? `${d.lastError}; ` : "", "next try ", timeEl(d.nextAttemptAtMs));
    const cls = d.lastErrorClass ? h("strong", {}, `${d.lastErrorClass}: `) : null;
    return h("span", {}, cls, d.lastError || (d.state === "sending" ? "being sent" : ""));
  }

  function actions(d) {
    const buttons = [];
    if (d.state === "dead" || d.state === "unknown") {
      buttons.push(h("button", { type: "button", onclick: (e) => act(e.target, "deliveries.retry", d.id, "Queued again") }, "Retry"));
    }
    if (d.state === "pending" || d.state === "sending") {
      buttons.push(h("button", { type: "button", onclick: (e) => act(e.target, "deliveries.cancel", d.id, "Cancelled") }, "Cancel"));
    }
    return h("div", { class: "actions" }, buttons);
  }

  async function act(button, method, id, done) {
    button.disabled = true;
    try {
      await gw.request(method, { id });
      ctx.toast(done, "good");
      load();
    } catch (e) {
      ctx.toast(errorText(e), "bad");
      button.disabled = false;
    }
  }

  async function purge(states) {
    if (!(await confirmAction(`Delete every ${states.join(" and ")} delivery from the outbox? This cannot be undone.`, "Purge"))) return;
    try {
      const r = await gw.request("deliveries.purge", { states });
      ctx.toast(`Purged ${r.purged}`, "good");
      offset = 0;
      load();
    } catch (e) {
      ctx.toast(errorText(e), "bad");
    }
  }

  let typing = null;
  stateSel.addEventListener("change", () => { state = stateSel.value; offset = 0; load(); });
  chanIn.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { channel = chanIn.value.trim(); offset = 0; load(); }, 250);
  });
  const refresh = throttle(load, 1000);
  const offs = [gw.on("delivery", refresh), gw.on("cron", (ev) => { if (ev.action === "executed" || ev.action === "finished") refresh(); })];
  load();
  return () => { alive = false; offs.forEach((o) => o()); refresh.cancel(); clearTimeout(typing); };
}
