// Jobs: the list (zone and next fire time, paged by the gateway — 10,000 jobs are 200 pages of 50),
// a job's detail (next five fire times, route preview, run history with the three outcomes), run
// now with live progress from `cron` events, create and edit with the gateway's own validation
// messages shown at the field they name, enable, disable and delete.

import { h, fill, badge, timeEl, fmtDuration, fmtRelative, pager, table, throttle, errorText, field, confirmAction, cmd } from "/console/ui.js";

const PAGE = 50;

export function mount(ctx, main, route) {
  const [id] = route.rest;
  if (id === "new") return editor(ctx, main, null);
  if (id && route.rest[1] === "edit") return editor(ctx, main, id);
  if (id) return detail(ctx, main, id);
  return list(ctx, main, route);
}

function scheduleText(s) {
  if (!s) return "—";
  if (s.kind === "cron") return `cron ${s.expr}`;
  if (s.kind === "every") return `every ${fmtDuration(s.everyMs)}`;
  if (s.kind === "at") return `once at ${s.at}`;
  return s.kind;
}

function list(ctx, main, route) {
  const { gw } = ctx;
  let offset = Number(route.query.get("offset")) || 0;
  let query = route.query.get("q") || "";
  let enabled = route.query.get("enabled") || "all";
  const search = h("input", { id: "job-search", type: "search", value: query, placeholder: "name, id or description" });
  const filter = h("select", { id: "job-enabled" },
    ["all", "enabled", "disabled"].map((v) => h("option", { value: v, selected: v === enabled }, v)));
  const body = h("div", { "aria-live": "polite", "aria-busy": "true" }, h("p", { class: "muted" }, "Loading…"));
  main.append(
    h("h1", {}, "Jobs"),
    h("div", { class: "toolbar" },
      h("div", { class: "grow" }, field("Search", search)),
      field("Show", filter),
      h("button", { type: "button", class: "primary", onclick: () => ctx.go("#/jobs/new") }, "New job")),
    body);
  let alive = true;
  let serial = 0;

  async function load() {
    const mine = ++serial;
    body.setAttribute("aria-busy", "true");
    let page;
    try {
      page = await gw.request("cron.list", { enabled, query: query || undefined, limit: PAGE, offset, compact: true });
    } catch (e) {
      if (alive && mine === serial) fill(body, h("p", { class: "alert", role: "alert" }, errorText(e)));
      return;
    }
    if (!alive || mine !== serial) return;
    if (page.jobs.length === 0 && offset > 0 && page.total > 0) {
      offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
      load();
      return;
    }
    const rows = page.jobs.map((j) => [
      h("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.name || j.id),
      h("span", { class: "mono" }, scheduleText(j.schedule)),
      j.schedule?.tz || page.timezone || "—",
      j.state?.nextRunAtMs ? h("span", {}, timeEl(j.state.nextRunAtMs), h("span", { class: "muted wide" }, ` (${fmtRelative(j.state.nextRunAtMs)})`)) : "—",
      badge(j.state?.lastRunStatus || (j.state?.runningAtMs ? "running" : null)),
      badge(j.enabled ? "enabled" : "disabled"),
    ]);
    const pg = { total: page.total, offset: page.offset, limit: PAGE, count: page.jobs.length };
    fill(body,
      page.total === 0 ? h("p", { class: "muted" }, query ? "No job matches." : "No jobs yet. Create one with New job, or ", query ? null : cmd("pincer cron add …")) :
        [table("Jobs", ["Name", "Schedule", "Zone", "Next fire", "Last run", "State"], rows, { class: "jobs" }),
          pager(pg, (o) => { offset = o; load(); }, "jobs")]);
    body.setAttribute("aria-busy", "false");
  }

  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { query = search.value.trim(); offset = 0; load(); }, 250);
  });
  filter.addEventListener("change", () => { enabled = filter.value; offset = 0; load(); });
  const refresh = throttle(load, 1000);
  const off = gw.on("cron", (ev) => {
    if (["added", "updated", "removed", "finished", "started"].includes(ev.action)) refresh();
  });
  load();
  return () => { alive = false; off(); refresh.cancel(); clearTimeout(typing); };
}

function detail(ctx, main, id) {
  const { gw } = ctx;
  const head = h("div", {}, h("h1", {}, "Job"), h("p", { class: "muted" }, "Loading…"));
  const progress = h("div", { id: "run-progress", class: "progress", role: "status", "aria-live": "polite" });
  const upcoming = h("section", { class: "card", "aria-labelledby": "upcoming-title" }, h("h2", { id: "upcoming-title" }, "Next fire times"));
  const runs = h("section", { class: "card", "aria-labelledby": "runs-title" }, h("h2", { id: "runs-title" }, "Run history"));
  main.append(head, progress, upcoming, runs);
  let alive = true;
  let job = null;
  let watching = null;

  async function loadJob() {
    try {
      job = await gw.request("cron.get", { id });
    } catch (e) {
      if (alive) fill(head, h("h1", {}, "Job"), h("p", { class: "alert", role: "alert" }, errorText(e)), h("p", {}, h("a", { href: "#/jobs" }, "All jobs")));
      return false;
    }
    if (!alive) return false;
    const p = job.payload || {};
    const d = job.delivery || {};
    const what = p.kind === "agentTurn" ? `agent turn: ${p.message}` : p.kind === "systemEvent" ? `system event: ${p.text}` :
      p.kind === "command" ? `command: ${(p.argv || []).join(" ")}` : p.kind;
    fill(head,
      h("p", {}, h("a", { href: "#/jobs" }, "← All jobs")),
      h("h1", {}, job.name || job.id),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", id: "run-now", onclick: runNow }, "Run now"),
        h("button", { type: "button", onclick: () => ctx.go(`#/jobs/${encodeURIComponent(id)}/edit`) }, "Edit"),
        h("button", { type: "button", onclick: toggle }, job.enabled ? "Disable" : "Enable"),
        h("button", { type: "button", class: "danger", onclick: remove }, "Delete")),
      h("section", { class: "card", "aria-label": "Definition" },
        h("dl", { class: "props" },
          h("dt", {}, "State"), h("dd", {}, badge(job.enabled ? "enabled" : "disabled"), job.state?.autoDisabled ? ` ${job.state.autoDisabled.reason || ""}` : ""),
          h("dt", {}, "Id"), h("dd", { class: "mono" }, job.id),
          job.description ? [h("dt", {}, "Description"), h("dd", {}, job.description)] : null,
          h("dt", {}, "Schedule"), h("dd", { class: "mono" }, scheduleText(job.schedule)),
          h("dt", {}, "Session"), h("dd", {}, job.sessionTarget || "—"),
          h("dt", {}, "Does"), h("dd", {}, what),
          h("dt", {}, "Delivery"), h("dd", {}, d.mode || "none", d.channel ? ` via ${d.channel}` : "", d.to ? ` to ${d.to}` : ""),
          h("dt", {}, "Last run"), h("dd", {}, badge(job.state?.lastRunStatus), " ", job.state?.lastRunAtMs ? timeEl(job.state.lastRunAtMs) : ""),
          job.state?.lastError ? [h("dt", {}, "Last error"), h("dd", {}, job.state.lastError)] : null)));
    return true;
  }

  async function loadPreview() {
    let pv;
    try {
      pv = await gw.request("cron.preview", { id, count: 5 });
    } catch (e) {
      if (alive) fill(upcoming, h("h2", { id: "upcoming-title" }, "Next fire times"), h("p", { class: "alert" }, errorText(e)));
      return;
    }
    if (!alive) return;
    fill(upcoming, h("h2", { id: "upcoming-title" }, "Next fire times"),
      h("p", {}, "Zone ", h("strong", {}, pv.tz || "—"), ". Route: ", h("strong", {}, pv.deliveryPreview?.label || "—"),
        pv.deliveryPreview?.detail ? h("span", { class: "muted" }, ` (${pv.deliveryPreview.detail})`) : null),
      (pv.upcoming || []).length === 0 ? h("p", { class: "muted" }, "No upcoming fire time (disabled, or a one-shot that has run).") :
        h("ol", { id: "upcoming" }, pv.upcoming.map((t) => h("li", {}, timeEl(t), h("span", { class: "muted" }, ` (${fmtRelative(t)})`)))));
  }

  async function loadRuns() {
    let page;
    try {
      page = await gw.request("cron.runs", { id, limit: 20, sortDir: "desc" });
    } catch (e) {
      if (alive) fill(runs, h("h2", { id: "runs-title" }, "Run history"), h("p", { class: "alert" }, errorText(e)));
      return;
    }
    if (!alive) return;
    const rows = (page.entries || []).map((r) => h("tr", { dataset: { run: r.runId } },
      h("td", {}, timeEl(r.runAtMs || r.startedAtMs || r.ts)),
      h("td", {}, r.trigger || "—"),
      h("td", {}, badge(r.status || r.phase)),
      h("td", {}, badge(r.deliveryStatus)),
      h("td", {}, badge(r.completionStatus)),
      h("td", {}, r.error || r.deliveryError || ""),
      h("td", {}, fmtDuration(r.durationMs))));
    fill(runs, h("h2", { id: "runs-title" }, "Run history"),
      rows.length === 0 ? h("p", { class: "muted" }, "This job has not run yet.") :
        table("Runs of this job", ["Started", "Trigger", "Status", "Delivery", "Completion", "Error", "Duration"], rows, { class: "runs" }),
      page.total > rows.length ? h("p", { class: "muted" }, `Showing the newest ${rows.length} of ${page.total}; all of them: `, cmd(`pincer cron runs --id ${id}`)) : null);
  }

  function note(text) {
    progress.append(h("p", {}, text));
  }

  async function runNow(e) {
    const button = e.target;
    button.disabled = true;
    fill(progress);
    note("Starting…");
    try {
      const res = await gw.request("cron.run", { id });
      watching = res.runId || null;
      if (res.ran === false || res.enqueued === false) note(`Not started: ${res.reason || "the job is already running"}`);
      else note(`Run ${res.runId || ""} queued.`);
    } catch (err) {
      note(`Could not start: ${errorText(err)}`);
    }
    button.disabled = false;
  }

  async function toggle() {
    try {
      await gw.request("cron.update", { id, patch: { enabled: !job.enabled } });
      ctx.toast(job.enabled ? "Job disabled" : "Job enabled", "good");
    } catch (e) {
      ctx.toast(errorText(e), "bad");
    }
    await loadJob();
    loadPreview();
  }

  async function remove() {
    if (!(await confirmAction(`Delete the job “${job.name}”? Its run history goes with it.`, "Delete job"))) return;
    try {
      await gw.request("cron.remove", { id });
      ctx.toast("Job deleted", "good");
      ctx.go("#/jobs");
    } catch (e) {
      ctx.toast(errorText(e), "bad");
    }
  }

  const refresh = throttle(() => { loadJob(); loadPreview(); loadRuns(); }, 500);
  const off = gw.on("cron", (ev) => {
    if (ev.jobId !== id) return;
    if (watching && ev.runId === watching) {
      if (ev.action === "started") note("Running…");
      const status = ev.status || ev.executionStatus || "—";
      if (ev.action === "executed") note(`Executed: ${status}${ev.error ? ` — ${ev.error}` : ""}; delivering…`);
      if (ev.action === "finished") {
        note(`Finished: status ${status}, delivery ${ev.deliveryStatus || "—"}, completion ${ev.completionStatus || "—"}${ev.error ? ` — ${ev.error}` : ""}`);
        watching = null;
      }
    }
    if (ev.action === "removed") {
      ctx.toast("This job was deleted", "info");
      ctx.go("#/jobs");
      return;
    }
    refresh();
  });
  loadJob().then((ok) => {
    if (ok) {
      loadPreview();
      loadRuns();
    }
  });
  return () => { alive = false; off(); refresh.cancel(); };
}

/** Parses `30s`, `5m`, `1h`, `1d`, `250ms`; a number as milliseconds; else the text as typed. */
function durationMs(text) {
  const t = text.trim();
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?$/i.exec(t);
  if (!m) return t;
  const n = Number(m[1]);
  const unit = (m[2] || "ms").toLowerCase();
  return Math.round(n * { ms: 1, s: 1000, m: 60000, min: 60000, h: 3600000, d: 86400000 }[unit]);
}

function editor(ctx, main, id) {
  const { gw } = ctx;
  const input = (fid, attrs = {}) => h("input", { id: fid, type: "text", ...attrs });
  const el = {
    name: input("f-name", { required: true, autocomplete: "off" }),
    description: input("f-description"),
    kind: h("select", { id: "f-kind" }, [["cron", "Cron expression"], ["every", "Every (interval)"], ["at", "Once, at a time"]].map(([v, t]) => h("option", { value: v }, t))),
    expr: input("f-expr", { placeholder: "0 7 * * *", class: "mono" }),
    tz: input("f-tz", { placeholder: "the gateway's default zone" }),
    every: input("f-every", { placeholder: "1h" }),
    at: input("f-at", { placeholder: "2026-03-01T07:00:00+01:00" }),
    session: h("select", { id: "f-session" }, [["isolated", "Isolated (a fresh session per run)"], ["main", "Main session"]].map(([v, t]) => h("option", { value: v }, t))),
    payload: h("select", { id: "f-payload" }, [["agentTurn", "Agent turn (a message to the model)"], ["systemEvent", "System event (main session)"], ["command", "Shell command"]].map(([v, t]) => h("option", { value: v }, t))),
    body: h("textarea", { id: "f-body", rows: 3 }),
    mode: h("select", { id: "f-mode" }, [["announce", "Announce to a channel"], ["none", "Keep the result (no delivery)"], ["webhook", "POST to a webhook"]].map(([v, t]) => h("option", { value: v }, t))),
    channel: input("f-channel", { placeholder: "inbox, telegram, discord, slack…" }),
    to: input("f-to", { placeholder: "chat id, channel:123, or a URL for webhooks" }),
    enabled: h("input", { id: "f-enabled", type: "checkbox", checked: true }),
  };
  const summary = h("div", { id: "form-errors", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, id ? "Save changes" : "Create job");
  const sched = {
    cron: [field("Cron expression", el.expr, "5 fields (or 6 with seconds), e.g. 0 7 * * *"), field("Time zone", el.tz, "IANA name, e.g. Europe/Berlin")],
    every: [field("Every", el.every, "a duration: 30s, 15m, 1h, 1d")],
    at: [field("At", el.at, "an ISO time, e.g. 2026-03-01T07:00:00+01:00")],
  };
  const schedBox = h("div", { class: "form-grid" });
  const showSched = () => fill(schedBox, sched[el.kind.value]);
  el.kind.addEventListener("change", showSched);
  const bodyLabel = h("label", { for: "f-body" }, "Message");
  const showBody = () => { bodyLabel.textContent = { agentTurn: "Message", systemEvent: "Event text", command: "Command (run with sh -c)" }[el.payload.value]; };
  el.payload.addEventListener("change", showBody);
  const routeBox = h("div", { class: "form-grid" }, field("Channel", el.channel), field("To", el.to));
  const showRoute = () => { routeBox.hidden = el.mode.value === "none"; el.channel.disabled = el.mode.value !== "announce"; };
  el.mode.addEventListener("change", showRoute);

  const form = h("form", { class: "card", novalidate: true, onsubmit: save },
    summary,
    h("div", { class: "form-grid" }, field("Name", el.name), field("Description", el.description)),
    h("fieldset", {}, h("legend", {}, "Schedule"), field("Kind", el.kind), schedBox),
    h("fieldset", {}, h("legend", {}, "What runs"), h("div", { class: "form-grid" }, field("Payload", el.payload), field("Session", el.session)),
      h("div", { class: "field" }, bodyLabel, el.body)),
    h("fieldset", {}, h("legend", {}, "Result"), field("Delivery", el.mode), routeBox),
    h("div", { class: "check" }, el.enabled, h("label", { for: "f-enabled" }, "Enabled")),
    h("div", { class: "actions" }, submit,
      h("button", { type: "button", onclick: () => ctx.go(id ? `#/jobs/${encodeURIComponent(id)}` : "#/jobs") }, "Cancel")));
  main.append(h("p", {}, h("a", { href: id ? `#/jobs/${encodeURIComponent(id)}` : "#/jobs" }, "← Back")), h("h1", {}, id ? "Edit job" : "New job"), form);
  showSched();
  showBody();
  showRoute();

  if (id) {
    gw.request("cron.get", { id }).then((job) => {
      el.name.value = job.name || "";
      el.description.value = job.description || "";
      const s = job.schedule || {};
      el.kind.value = s.kind || "cron";
      el.expr.value = s.expr || "";
      el.tz.value = s.tz || "";
      el.every.value = s.everyMs ? `${s.everyMs}` : "";
      el.at.value = s.at || "";
      el.session.value = job.sessionTarget === "main" ? "main" : "isolated";
      const p = job.payload || {};
      el.payload.value = p.kind || "agentTurn";
      el.body.value = p.kind === "command" ? (p.argv?.[0] === "sh" && p.argv?.[1] === "-c" ? p.argv[2] : (p.argv || []).join(" ")) : (p.message || p.text || "");
      const d = job.delivery || {};
      el.mode.value = d.mode || "none";
      el.channel.value = d.channel || "";
      el.to.value = d.to || "";
      el.enabled.checked = job.enabled;
      showSched();
      showBody();
      showRoute();
    }).catch((e) => fill(summary, h("p", { class: "alert" }, errorText(e))));
  }

  function definition() {
    const kind = el.kind.value;
    const schedule = kind === "cron" ? { kind, expr: el.expr.value.trim(), ...(el.tz.value.trim() ? { tz: el.tz.value.trim() } : {}) } :
      kind === "every" ? { kind, everyMs: durationMs(el.every.value) } : { kind, at: el.at.value.trim() };
    const text = el.body.value;
    const payload = el.payload.value === "agentTurn" ? { kind: "agentTurn", message: text } :
      el.payload.value === "systemEvent" ? { kind: "systemEvent", text } : { kind: "command", argv: ["sh", "-c", text] };
    const mode = el.mode.value;
    const delivery = mode === "none" ? { mode } : mode === "webhook" ? { mode, to: el.to.value.trim() } :
      { mode, ...(el.channel.value.trim() ? { channel: el.channel.value.trim() } : {}), ...(el.to.value.trim() ? { to: el.to.value.trim() } : {}) };
    const sessionTarget = el.payload.value === "systemEvent" ? "main" : el.session.value;
    return { name: el.name.value.trim(), ...(el.description.value.trim() ? { description: el.description.value.trim() } : {}),
      schedule, sessionTarget, payload, delivery, enabled: el.enabled.checked };
  }

  function clearErrors() {
    fill(summary);
    for (const e of form.querySelectorAll(".field .error")) e.remove();
    for (const c of form.querySelectorAll("[aria-invalid]")) {
      c.removeAttribute("aria-invalid");
      const hint = c.id && document.getElementById(`${c.id}-hint`);
      if (hint) c.setAttribute("aria-describedby", hint.id);
      else c.removeAttribute("aria-describedby");
    }
  }

  /** The control a server message is about: `invalid cron.add params: schedule.expr: …` → expr. */
  function controlFor(message) {
    const m = /params: ([A-Za-z.[\]0-9]+):/.exec(message) || /^([a-z][A-Za-z.]+): /.exec(message);
    const path = m ? m[1] : "";
    const table = [
      ["schedule.expr", el.expr], ["schedule.tz", el.tz], ["schedule.everyMs", el.every], ["schedule.at", el.at],
      ["schedule", { cron: el.expr, every: el.every, at: el.at }[el.kind.value]],
      ["name", el.name], ["description", el.description], ["payload", el.body], ["sessionTarget", el.session],
      ["delivery.channel", el.channel], ["delivery.to", el.to], ["delivery", el.mode],
    ];
    for (const [prefix, control] of table) if (path === prefix || path.startsWith(`${prefix}.`) || path.startsWith(`${prefix}[`)) return control;
    return null;
  }

  async function save(e) {
    e.preventDefault();
    clearErrors();
    submit.disabled = true;
    try {
      const def = definition();
      const job = id ? await gw.request("cron.update", { id, patch: def }) : await gw.request("cron.add", def);
      ctx.toast(id ? "Saved" : "Job created", "good");
      ctx.go(`#/jobs/${encodeURIComponent(job.id || id)}`);
    } catch (err) {
      const message = errorText(err);
      fill(summary, h("p", { class: "alert" }, message));
      const control = controlFor(message);
      if (control) {
        const errId = `${control.id}-error`;
        control.setAttribute("aria-invalid", "true");
        control.setAttribute("aria-describedby", [control.getAttribute("aria-describedby"), errId].filter(Boolean).join(" "));
        control.closest(".field")?.append(h("p", { class: "error", id: errId }, message.replace(/^invalid cron\.(add|update) params: /, "")));
        control.focus();
      }
    }
    submit.disabled = false;
  }
  el.name.focus();
  return null;
}
