// Inbox: what was announced to the local inbox channel, newest first; new messages arrive as
// `inbox` events.

import { h, fill, timeEl, pager, errorText } from "/console/ui.js";

const PAGE = 50;

export function mount(ctx, main) {
  const { gw } = ctx;
  let offset = 0;
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const live = h("div", { class: "sr-only", role: "status", "aria-live": "polite" });
  main.append(h("h1", {}, "Inbox"), live, body);
  let alive = true;

  function item(m) {
    return h("article", { class: "card inbox-item", dataset: { id: String(m.id) } },
      h("p", { class: "muted" }, timeEl(m.createdAtMs), ` · to ${m.to}`, m.deliveryId ? ` · delivery ${m.deliveryId}` : ""),
      h("pre", {}, m.text || ""));
  }

  async function load() {
    let page;
    try {
      page = await gw.request("inbox.list", { limit: PAGE, offset });
    } catch (e) {
      if (alive) fill(body, h("p", { class: "alert", role: "alert" }, errorText(e)));
      return;
    }
    if (!alive) return;
    fill(body, page.total === 0 ? h("p", { class: "muted" }, "The inbox is empty. Jobs that announce to the channel inbox land here.") :
      [h("div", { id: "inbox-list" }, page.messages.map(item)),
        pager({ total: page.total, offset, limit: PAGE, count: page.messages.length }, (o) => { offset = o; load(); }, "messages")]);
  }

  const off = gw.on("inbox", (m) => {
    live.textContent = `New message to ${m.to}`;
    if (offset === 0) load();
  });
  load();
  return () => { alive = false; off(); };
}
