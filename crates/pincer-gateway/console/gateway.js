// The console's connection to the gateway: OpenClaw Gateway protocol v4 over the WebSocket on
// this page's own origin, exactly as any client speaks it — challenge, a `connect` signed with this
// browser's device key, then `req`/`res` and pushed `event`s. It reconnects by itself (backoff
// 0.5 s → 30 s) and tells the pages to catch up after a reconnect or a gap in the events' `seq`.
//
// Credentials: the gateway token from the dashboard link is used for the first sign-in only and
// kept nowhere but this tab's memory (sessionStorage while a pairing request waits for approval);
// the device token the gateway then issues is what later visits present.

export const CLIENT = { id: "openclaw-control-ui", mode: "webchat", platform: "web", deviceFamily: "browser" };
/** What the console asks for on first sign-in: every page's methods. */
export const SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.pairing"];
const DEVICE_TOKEN = "pincer.console.deviceToken";
const PENDING_TOKEN = "pincer.console.pendingToken";
const REQUEST_TIMEOUT_MS = 30_000;

/** A refused request or connect: `code`, `message`, `details` as the gateway sent them. */
export class GatewayError extends Error {
  constructor(error) {
    super(error?.message || "request failed");
    this.code = error?.code || "UNAVAILABLE";
    this.details = error?.details || {};
    this.detailCode = this.details.code || null;
  }
}

const AUTH_FAILURES = new Set([
  "AUTH_TOKEN_MISMATCH", "AUTH_TOKEN_MISSING", "AUTH_DEVICE_TOKEN_MISMATCH", "AUTH_SCOPE_MISMATCH",
  "AUTH_RATE_LIMITED", "AUTH_UNAUTHORIZED", "DEVICE_AUTH_SIGNATURE_INVALID", "DEVICE_AUTH_DEVICE_ID_MISMATCH",
  "DEVICE_AUTH_PUBLIC_KEY_INVALID",
]);

export class Gateway extends EventTarget {
  constructor(identity, version) {
    super();
    this.identity = identity;
    this.version = version;
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
    this.state = "idle";
    this.hello = null;
    this.ws = null;
    this.pending = new Map();
    this.listeners = new Map();
    this.nextId = 0;
    this.lastSeq = null;
    this.backoff = 500;
    this.timer = null;
    this.sharedToken = sessionStorage.getItem(PENDING_TOKEN) || null;
    this.everConnected = false;
  }

  /** True when this browser holds a device token from an earlier sign-in. */
  get hasDeviceToken() {
    return Boolean(localStorage.getItem(DEVICE_TOKEN));
  }

  /** Starts (or restarts) with `token` from a dashboard link or the sign-in form, if any. */
  start(token) {
    if (token) {
      this.sharedToken = token;
      sessionStorage.setItem(PENDING_TOKEN, token);
    }
    this.backoff = 500;
    clearTimeout(this.timer);
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.close(1000, "signing in again");
    }
    if (!this.sharedToken && !this.hasDeviceToken) {
      this.setState("signed-out", { reason: "no-credentials" });
      return;
    }
    this.open();
  }

  /** Forgets this browser's sign-in (its key stays; the owner can revoke the device too). */
  signOut() {
    localStorage.removeItem(DEVICE_TOKEN);
    sessionStorage.removeItem(PENDING_TOKEN);
    this.sharedToken = null;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "signed out");
    this.setState("signed-out", { reason: "signed-out" });
  }

  setState(state, detail = {}) {
    this.state = state;
    this.stateDetail = detail;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...detail } }));
  }

  open() {
    clearTimeout(this.timer);
    if (this.state !== "pairing") this.setState(this.everConnected ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.retry(`cannot open the WebSocket: ${e.message}`);
      return;
    }
    this.ws = ws;
    let settled = false;
    ws.onmessage = (msg) => {
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (!settled && frame.type === "event" && frame.event === "connect.challenge") {
        settled = true;
        this.handshake(ws, frame.payload).catch((e) => this.failConnect(ws, e));
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const { reject, timer } of this.pending.values()) {
        clearTimeout(timer);
        reject(new GatewayError({ code: "UNAVAILABLE", message: "the connection to the gateway closed" }));
      }
      this.pending.clear();
      if (this.state === "signed-out") return;
      if (this.state === "connected") this.dispatchEvent(new CustomEvent("disconnected", { detail: { code: ev.code } }));
      this.retry(ev.reason || `closed (${ev.code})`);
    };
  }

  retry(why) {
    if (this.state === "signed-out") return;
    if (this.state === "pairing") {
      // Asking again keeps the request fresh; the approval lets the next attempt in.
      this.timer = setTimeout(() => this.open(), 3000);
      return;
    }
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 30_000);
    if (this.state !== "pairing") this.setState("reconnecting", { why, retryInMs: wait });
    this.timer = setTimeout(() => this.open(), wait);
  }

  async handshake(ws, challenge) {
    const nonce = challenge?.nonce;
    if (!nonce) throw new Error("the gateway sent no challenge nonce");
    const deviceToken = localStorage.getItem(DEVICE_TOKEN);
    const usingShared = Boolean(this.sharedToken);
    const bearer = usingShared ? this.sharedToken : deviceToken;
    const scopes = usingShared ? SCOPES : [];
    // The challenge's `ts` is the gateway's clock: signing with it keeps a wrong browser clock harmless.
    const signedAt = Number.isSafeInteger(challenge.ts) ? challenge.ts : Date.now();
    const payload = ["v3", this.identity.deviceId, CLIENT.id, CLIENT.mode, "operator", scopes.join(","),
      String(signedAt), bearer || "", nonce, CLIENT.platform, CLIENT.deviceFamily].join("|");
    const params = {
      minProtocol: 4, maxProtocol: 4,
      client: { id: CLIENT.id, version: this.version, platform: CLIENT.platform, mode: CLIENT.mode,
        deviceFamily: CLIENT.deviceFamily, displayName: "Pincer console" },
      role: "operator",
      scopes,
      auth: usingShared ? { token: bearer } : { deviceToken: bearer },
      device: { id: this.identity.deviceId, publicKey: this.identity.publicKey,
        signature: await this.identity.sign(payload), signedAt, nonce },
      userAgent: navigator.userAgent.slice(0, 200),
      locale: navigator.language,
    };
    this.credential = usingShared ? "link" : "device";
    const hello = await this.send(ws, "connect", params, REQUEST_TIMEOUT_MS);
    this.hello = hello;
    if (hello?.auth?.deviceToken) localStorage.setItem(DEVICE_TOKEN, hello.auth.deviceToken);
    // Signed in: the gateway token is not kept once a device token stands in for it.
    if (localStorage.getItem(DEVICE_TOKEN)) {
      this.sharedToken = null;
      sessionStorage.removeItem(PENDING_TOKEN);
    }
    this.backoff = 500;
    this.lastSeq = null;
    const again = this.everConnected;
    this.everConnected = true;
    this.setState("connected", { hello });
    if (again) this.dispatchEvent(new CustomEvent("resync", { detail: { why: "reconnected" } }));
  }

  failConnect(ws, err) {
    const code = err.detailCode;
    if (code === "PAIRING_REQUIRED") {
      this.setState("pairing", { requestId: err.details.requestId, reason: err.details.reason, message: err.message });
      ws.close();
      return;
    }
    if (AUTH_FAILURES.has(code) || err.code === "NOT_PAIRED") {
      const usedLink = this.credential === "link";
      if (!usedLink && code !== "AUTH_RATE_LIMITED") localStorage.removeItem(DEVICE_TOKEN);
      if (usedLink) {
        this.sharedToken = null;
        sessionStorage.removeItem(PENDING_TOKEN);
      }
      this.setState("signed-out", { reason: usedLink ? "link-refused" : "device-refused", code, message: err.message });
      ws.close();
      return;
    }
    ws.close();
  }

  /** Sends one request on `ws` and waits for its answer. */
  send(ws, method, params, timeoutMs) {
    const id = `${++this.nextId}:${crypto.randomUUID ? crypto.randomUUID() : Math.random().toString(36).slice(2)}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new GatewayError({ code: "UNAVAILABLE", message: `${method}: no answer within ${Math.round(timeoutMs / 1000)} s` }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ type: "req", id, method, params }));
    });
  }

  /** Calls a method on the live connection. */
  request(method, params = {}, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    if (!this.ws || this.state !== "connected" || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new GatewayError({ code: "UNAVAILABLE", message: "not connected to the gateway; reconnecting…" }));
    }
    return this.send(this.ws, method, params, timeoutMs);
  }

  onFrame(frame) {
    if (frame.type === "res") {
      const p = this.pending.get(frame.id);
      if (!p) return;
      // `agent` answers twice, as OpenClaw's does: an interim `accepted`, then the result.
      if (frame.ok && frame.payload?.status === "accepted") return;
      this.pending.delete(frame.id);
      clearTimeout(p.timer);
      if (frame.ok) p.resolve(frame.payload);
      else p.reject(new GatewayError(frame.error));
      return;
    }
    if (frame.type !== "event") return;
    if (typeof frame.seq === "number") {
      if (this.lastSeq !== null && frame.seq > this.lastSeq + 1) {
        this.dispatchEvent(new CustomEvent("resync", { detail: { why: "gap", missed: frame.seq - this.lastSeq - 1 } }));
      }
      this.lastSeq = frame.seq;
    }
    for (const fn of this.listeners.get(frame.event) || []) {
      try {
        fn(frame.payload, frame);
      } catch (e) {
        console.error(`listener for ${frame.event} failed`, e);
      }
    }
  }

  /** Subscribes to a gateway event; returns the unsubscribe function. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event)?.delete(fn);
  }

  /** Whether the gateway implements `method` (its `features.methods`). */
  has(method) {
    return Boolean(this.hello?.features?.methods?.includes(method));
  }
}
