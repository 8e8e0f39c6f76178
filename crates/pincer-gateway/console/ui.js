// Small DOM and formatting helpers shared by every page. Text from the gateway is always set as
// text (never parsed as HTML), so nothing a job, a message or a device name holds can run here.

/** Creates an element: `h("a", {href: "#/jobs", class: "x", onclick: fn}, "text", child, …)`. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const pad = (n) => String(n).padStart(2, "0");

/** `2026-03-01 07:00:00` in the browser's zone, or `—`. */
export function fmtTime(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return "—";
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `1.2 s`, `3 min 4 s`, `2 h 5 min`. */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return "—";
  ms = Math.max(0, Number(ms));
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${m % 60} min`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

/** `in 5 min` / `3 min ago`. */
export function fmtRelative(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return "";
  const diff = Number(ms) - now;
  const text = fmtDuration(Math.abs(diff));
  return diff >= 0 ? `in ${text}` : `${text} ago`;
}

/** A time element with the absolute time and, as its title, how far away it is. */
export function timeEl(ms) {
  const el = h("time", {}, fmtTime(ms));
  if (ms !== null && ms !== undefined) {
    el.dateTime = new Date(Number(ms)).toISOString();
    el.title = fmtRelative(ms);
  }
  return el;
}

const TONES = {
  ok: "good", delivered: "good", succeeded: "good", healthy: "good", enabled: "good", approved: "good",
  error: "bad", dead: "bad", failed: "bad", fail: "bad", "credentials-rejected": "bad", rejected: "bad",
  unknown: "warn", warn: "warn", "rate-limited": "warn", skipped: "warn", "not-delivered": "warn",
  pending: "info", sending: "info", running: "info", delivering: "info", disabled: "muted",
};

/** A state shown as a word with a tone (never colour alone). */
export function badge(state) {
  const text = state === null || state === undefined || state === "" ? "—" : String(state);
  return h("span", { class: `badge ${TONES[text] || "muted"}` }, text);
}

/** The message of a failed call, with its detail code when it has one. */
export function errorText(err) {
  if (!err) return "";
  return err.message || String(err);
}

/** A short-lived note at the bottom of the screen, read out by screen readers. */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const note = h("div", { class: `toast ${kind}` }, message);
  box.append(note);
  setTimeout(() => note.remove(), kind === "bad" ? 8000 : 4000);
}

/** Asks before a destructive step; resolves true when confirmed. Esc and "Cancel" say no. */
export function confirmAction(message, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-text" });
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    dialog.append(
      h("p", { id: "confirm-text" }, message),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "danger", onclick: () => done(true) }, confirmLabel),
        h("button", { type: "button", onclick: () => done(false) }, "Cancel")),
    );
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector("button:last-child").focus();
  });
}

/** `1–50 of 10,000` with Previous/Next; calls `onPage(offset)`. */
export function pager({ total, offset, limit, count }, onPage, label = "items") {
  const nf = new Intl.NumberFormat();
  const from = total === 0 ? 0 : offset + 1;
  const to = offset + count;
  return h("nav", { class: "pager", "aria-label": `Pages of ${label}` },
    h("button", { type: "button", disabled: offset <= 0, onclick: () => onPage(Math.max(0, offset - limit)) }, "Previous"),
    h("span", { class: "range" }, `${nf.format(from)}–${nf.format(to)} of ${nf.format(total)}`),
    h("button", { type: "button", disabled: to >= total, onclick: () => onPage(offset + limit) }, "Next"));
}

/** A command line the owner can copy. */
export function cmd(text) {
  return h("code", { class: "cmd" }, text);
}

/** Runs `fn` at most once per `ms`, trailing: bursts of events cost one refresh. */
export function throttle(fn, ms) {
  let timer = null;
  let again = false;
  const run = () => {
    timer = null;
    if (again) {
      again = false;
      fn();
      timer = setTimeout(run, ms);
    }
  };
  const call = () => {
    if (timer) {
      again = true;
      return;
    }
    fn();
    timer = setTimeout(run, ms);
  };
  call.cancel = () => { clearTimeout(timer); timer = null; again = false; };
  return call;
}

/** A table with a header row; `rows` are arrays of cells (nodes or text). */
export function table(caption, headers, rows, opts = {}) {
  // Focusable, so a table wider than a phone can be scrolled from the keyboard.
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption.text || caption },
    h("table", { class: opts.class || "" },
      h("caption", { class: caption.visible ? "" : "sr-only" }, caption.text || caption),
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((r) => (r instanceof Node ? r : h("tr", {}, r.map((c) => h("td", {}, c))))))));
}

/** A labelled form field. `control` is an input/select/textarea element with an id. */
export function field(label, control, hint) {
  const hintId = hint ? `${control.id}-hint` : null;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" },
    h("label", { for: control.id }, label),
    control,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null);
}
