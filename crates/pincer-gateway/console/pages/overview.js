// Overview: is the gateway healthy, what does `doctor` find (with each fix), how is each channel,
// how deep is the outbox, and what failed lately — each failure with the button or command that
// fixes it. Refreshed by the gateway's `cron`, `delivery` and `tick` events, never by a timer.

import { h, fill, badge, timeEl, fmtDuration, cmd, table, throttle, errorText } from "/console/ui.js";

export function mount(ctx, main) {
  const { gw } = ctx;
  const health = h("section", { class: "card", "aria-labelledby": "health-title" }, h("h2", { id: "health-title" }, "Gateway"), h("p", { class: "muted" }, "Loading…"));
  const channels = h("section", { class: "card", "aria-labelledby": "channels-title" }, h("h2", { id: "channels-title" }, "Channels and outbox"));
  const failures = h("section", { class: "card", "aria-labelledby": "failures-title" }, h("h2", { id: "failures-title" }, "Recent failures"), h("p", { class: "muted" }, "Loading…"));
  const doctor = h("section", { class: "card", "aria-labelledby": "doctor-title" }, h("h2", { id: "doctor-title" }, "Doctor"), h("p", { class: "muted" }, "Running checks…"));
  main.append(h("h1", {}, "Overview"), health, channels, failures, doctor);
  let alive = true;

  async function loadHealth(snapshot) {
    let hl = snapshot;
    if (!hl) {
      try {
        hl = await gw.request("health");
      } catch (e) {
        fill(health, h("h2", { id: "health-title" }, "Gateway"), h("p", { class: "alert", role: "alert" }, errorText(e)));
        return;
      }
    }
    if (!alive) return;
    const p = hl.pincer || {};
    const store = p.store || {};
    const c = p.connections || {};
    const chans = Object.entries(hl.channels || {});
    const depth = chans.reduce((n, [, ch]) => n + (ch.pending || 0), 0);
    const dead = chans.reduce((n, [, ch]) => n + (ch.dead || 0), 0);
    fill(health,
      h("h2", { id: "health-title" }, "Gateway"),
      h("dl", { class: "stats", id: "health-stats" },
        stat("Health", badge(hl.ok ? "healthy" : "failing")),
        stat("Version", p.version || "—"),
        stat("Up for", fmtDuration(p.uptimeMs)),
        stat("Store", badge(store.writable === false ? "fail" : "ok")),
        stat("Outbox depth", String(depth)),
        stat("Dead deliveries", String(dead)),
        stat("Connections", c.open !== undefined ? `${c.open} of ${c.max}` : "—")),
      store.writable === false ? h("p", { class: "alert", role: "alert" }, `Store: ${store.error}. Fix: ${store.fix}`) : null);
    fill(channels,
      h("h2", { id: "channels-title" }, "Channels and outbox"),
      chans.length === 0 ? h("p", { class: "muted" }, "No channel is configured.") :
        table("Channel states", ["Channel", "State", "Pending", "Oldest pending", "Dead", "Unknown", "Delivered"],
          chans.map(([name, ch]) => [
            (hl.channelLabels || {})[name] || name,
            h("span", {}, badge(ch.healthState), ch.lastError ? h("span", { class: "muted" }, ` ${ch.lastError}`) : null),
            String(ch.pending ?? 0),
            ch.oldestPendingAgeMs ? fmtDuration(ch.oldestPendingAgeMs) : "—",
            ch.dead ? h("a", { href: "#/deliveries?state=dead" }, String(ch.dead)) : "0",
            ch.unknown ? h("a", { href: "#/deliveries?state=unknown" }, String(ch.unknown)) : "0",
            String(ch.delivered ?? 0),
          ])));
    if (!performance.getEntriesByName("pincer:overview-ready").length) performance.mark("pincer:overview-ready");
  }

  async function loadFailures() {
    let runs, dels;
    try {
      [runs, dels] = await Promise.all([
        gw.request("cron.runs", { scope: "all", statuses: ["error"], limit: 10, sortDir: "desc" }),
        gw.request("deliveries.list", { states: ["dead", "unknown"], limit: 10 }),
      ]);
    } catch (e) {
      fill(failures, h("h2", { id: "failures-title" }, "Recent failures"), h("p", { class: "alert", role: "alert" }, errorText(e)));
      return;
    }
    if (!alive) return;
    const runRows = (runs.entries || []).map((r) => [
      h("a", { href: `#/jobs/${encodeURIComponent(r.jobId)}` }, r.jobName || r.jobId),
      timeEl(r.runAtMs || r.ts),
      h("span", {}, r.error || "failed"),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: (e) => runAgain(e.target, r.jobId) }, "Run again"),
        cmd(`pincer cron runs --id ${r.jobId}`)),
    ]);
    const delRows = (dels.deliveries || []).map((d) => [
      h("a", { href: `#/deliveries?state=${d.state}` }, `${d.channel} → ${d.to}`),
      badge(d.state),
      h("span", {}, d.lastErrorClass ? `${d.lastErrorClass}: ` : "", d.lastError || ""),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: (e) => retry(e.target, d.id) }, "Retry"),
        cmd(`pincer deliveries retry ${d.id}`)),
    ]);
    fill(failures, h("h2", { id: "failures-title" }, "Recent failures"),
      runRows.length === 0 && delRows.length === 0 ? h("p", { class: "muted" }, "Nothing failed recently.") : null,
      runRows.length ? table("Failed runs", ["Job", "When", "Error", "Fix"], runRows) : null,
      delRows.length ? table("Dead and unknown deliveries", ["Delivery", "State", "Reason", "Fix"], delRows) : null);
  }

  async function runAgain(button, id) {
    button.disabled = true;
    try {
      await gw.request("cron.run", { id });
      ctx.toast("Run started", "good");
    } catch (e) {
      ctx.toast(errorText(e), "bad");
    }
    button.disabled = false;
  }

  async function retry(button, id) {
    button.disabled = true;
    try {
      await gw.request("deliveries.retry", { id });
      ctx.toast("Delivery queued again", "good");
    } catch (e) {
      ctx.toast(errorText(e), "bad");
      button.disabled = false;
    }
  }

  async function loadDoctor() {
    let d;
    try {
      d = await gw.request("doctor.run", {}, { timeoutMs: 60_000 });
    } catch (e) {
      if (alive) fill(doctor, h("h2", { id: "doctor-title" }, "Doctor"), h("p", { class: "alert", role: "alert" }, errorText(e)));
      return;
    }
    if (!alive) return;
    fill(doctor, h("h2", { id: "doctor-title" }, "Doctor"),
      h("p", {}, d.ok ? "Every check passed" : `${d.failing} failing`, d.warnings ? `, ${d.warnings} warnings` : "", ". ",
        h("button", { type: "button", onclick: () => { fill(doctor, h("h2", { id: "doctor-title" }, "Doctor"), h("p", { class: "muted" }, "Running checks…")); loadDoctor(); } }, "Check again")),
      table("Doctor checks", ["Check", "Status", "Finding", "Fix"], (d.findings || []).map((f) => [
        f.check, badge(f.status), f.message, f.fix ? h("span", { class: "fix" }, f.fix) : "—",
      ])));
  }

  const refresh = throttle(() => { loadHealth(); loadFailures(); }, 1000);
  const offs = [
    gw.on("cron", (ev) => { if (ev.action === "finished" || ev.action === "executed") refresh(); }),
    gw.on("delivery", refresh),
    gw.on("tick", () => loadHealth()),
  ];
  // The health in `hello-ok` is seconds old at most: show it at once, then ask again.
  const fresh = gw.hello?.snapshot?.health;
  if (fresh && fresh.pincer) loadHealth(fresh).then(() => loadHealth());
  else loadHealth();
  loadFailures();
  loadDoctor();
  return () => {
    alive = false;
    refresh.cancel();
    offs.forEach((off) => off());
  };
}

function stat(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}
