// The console's shell: reads the sign-in token from the link's fragment (and removes it from the
// address bar at once), starts the gateway connection, and shows one page at a time. Pages are
// ES modules loaded when first opened; each exports `mount(ctx, main, route)` and returns a
// function that unmounts it. Routes live in the fragment: `#/jobs`, `#/jobs/<id>`,
// `#/deliveries?state=dead`.

import { Gateway } from "/console/gateway.js";
import { loadIdentity } from "/console/identity.js";
import { h, fill, cmd, toast } from "/console/ui.js";

const VERSION = "pincer-console";

const PAGES = {
  overview: { title: "Overview", load: () => import("/console/pages/overview.js") },
  jobs: { title: "Jobs", load: () => import("/console/pages/jobs.js") },
  deliveries: { title: "Deliveries", load: () => import("/console/pages/deliveries.js") },
  inbox: { title: "Inbox", load: () => import("/console/pages/inbox.js") },
  sessions: { title: "Sessions", load: () => import("/console/pages/sessions.js") },
  chat: { title: "Chat", load: () => import("/console/pages/chat.js") },
  approvals: { title: "Approvals", load: () => import("/console/pages/approvals.js") },
  devices: { title: "Devices", load: () => import("/console/pages/devices.js") },
  audit: { title: "Audit log", load: () => import("/console/pages/audit.js") },
};

/** `#/jobs/abc?x=1` → `{page: "jobs", rest: ["abc"], query: URLSearchParams}`. */
export function parseRoute(hash) {
  const text = hash.startsWith("#/") ? hash.slice(2) : "overview";
  const [path, search = ""] = text.split("?");
  const [page, ...rest] = path.split("/").map(decodeURIComponent);
  return { page: PAGES[page] ? page : "overview", rest, query: new URLSearchParams(search) };
}

/** The token of a dashboard link (`#token=…`), taken out of the address bar before anything else. */
function takeLinkToken() {
  const hash = location.hash.startsWith("#") ? location.hash.slice(1) : "";
  if (!hash || hash.startsWith("/")) return null;
  const params = new URLSearchParams(hash);
  const token = params.get("token");
  if (token === null) return null;
  history.replaceState(null, "", `${location.pathname}${location.search}#/overview`);
  return token.trim() || null;
}

const main = document.getElementById("main");
const conn = document.getElementById("conn");
let gw = null;
let unmount = null;
let shown = null;

function setConn(text, tone) {
  conn.textContent = text;
  conn.className = `conn ${tone}`;
}

function signInPanel(detail) {
  const reasons = {
    "link-refused": "The gateway refused the token in that link: it is mistyped, or the gateway's token has changed since the link was made.",
    "device-refused": "This browser's sign-in is no longer valid: its device was revoked or removed, or its token was rotated.",
    "signed-out": "You signed out of this browser.",
    "no-credentials": "This browser is not signed in to the gateway yet.",
  };
  const input = h("input", { id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  const form = h("form", { class: "card signin", onsubmit: (e) => {
    e.preventDefault();
    if (input.value.trim()) gw.start(input.value.trim());
  } },
  h("h1", {}, "Sign in to Pincer"),
  detail.reason ? h("p", { class: "alert", role: "alert" }, reasons[detail.reason] || detail.message || "") : null,
  detail.message && detail.reason !== "no-credentials" ? h("p", { class: "muted" }, `Gateway: ${detail.message}`) : null,
  h("p", {}, "On the gateway's host, run ", cmd("pincer dashboard"), " and open the link it prints — it signs this browser in once, then the browser keeps a device key of its own."),
  h("p", {}, "Or paste the gateway token (", cmd("gateway.auth.token"), " in pincer.json):"),
  h("div", { class: "field" }, h("label", { for: "token" }, "Gateway token"), input),
  h("button", { type: "submit", class: "primary" }, "Sign in"));
  return form;
}

function pairingPanel(detail) {
  return h("section", { class: "card", "aria-labelledby": "pairing-title" },
    h("h1", { id: "pairing-title" }, "Waiting for approval"),
    h("p", {}, "This browser is not on the gateway's machine, so its owner must approve it once, like any new device."),
    h("p", {}, "On the gateway host run ", cmd(`pincer devices approve ${detail.requestId || "<requestId>"}`),
      " (or approve it on the Devices page of a console that is signed in). This page connects by itself once approved."),
    h("p", { class: "muted" }, `Request ${detail.requestId || ""} (${detail.reason || "not-paired"})`));
}

function renderState(detail) {
  const { state } = detail;
  if (state === "connected") {
    setConn("Connected", "good");
    if (!shown) route();
    return;
  }
  if (state === "connecting") setConn("Connecting…", "info");
  if (state === "reconnecting") {
    setConn(`Reconnecting${detail.retryInMs ? ` in ${Math.ceil(detail.retryInMs / 1000)} s` : "…"}`, "warn");
    return; // Keep the page: it catches up once connected again.
  }
  if (state === "pairing") {
    setConn("Waiting for approval", "warn");
    leave();
    fill(main, pairingPanel(detail));
  }
  if (state === "signed-out") {
    setConn("Signed out", "bad");
    leave();
    fill(main, signInPanel(detail));
    main.querySelector("input")?.focus();
  }
}

function leave() {
  if (unmount) {
    try {
      unmount();
    } catch (e) {
      console.error(e);
    }
  }
  unmount = null;
  shown = null;
}

let routeSerial = 0;

async function route() {
  if (!gw || gw.state !== "connected") return;
  const r = parseRoute(location.hash);
  const serial = ++routeSerial;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${r.page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${PAGES[r.page].title} · Pincer`;
  let mod;
  try {
    mod = await PAGES[r.page].load();
  } catch (e) {
    fill(main, h("p", { class: "alert", role: "alert" }, `Cannot load this page: ${e.message}`));
    return;
  }
  if (serial !== routeSerial) return;
  leave();
  shown = r;
  main.replaceChildren();
  const ctx = {
    gw,
    go: (hash) => { location.hash = hash; },
    toast,
  };
  unmount = mod.mount(ctx, main, r) || null;
}

async function boot() {
  const linkToken = takeLinkToken();
  // Fetch the first page's module while the key loads and the socket signs in.
  PAGES[parseRoute(location.hash).page].load().catch(() => {});
  let identity;
  try {
    identity = await loadIdentity();
  } catch (e) {
    setConn("Cannot start", "bad");
    fill(main, h("p", { class: "alert", role: "alert" }, `The console cannot keep a device key in this browser: ${e.message}.`));
    return;
  }
  gw = new Gateway(identity, VERSION);
  globalThis.pincerConsole = { gateway: gw, identity: { deviceId: identity.deviceId, kind: identity.kind } };
  gw.addEventListener("state", (e) => renderState(e.detail));
  gw.addEventListener("resync", () => {
    if (shown) route();
  });
  window.addEventListener("hashchange", () => {
    // A new dashboard link opened in this tab changes only the fragment: no page load.
    const token = takeLinkToken();
    if (token) {
      gw.start(token);
      return;
    }
    if (location.hash.startsWith("#/") || !location.hash) route();
  });
  document.getElementById("signout").addEventListener("click", () => gw.signOut());
  gw.start(linkToken);
}

boot();
