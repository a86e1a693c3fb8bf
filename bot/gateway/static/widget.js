/*
 * Mend customer chat widget (vanilla JS, ES2018, no dependencies, no build step).
 *
 * Embed with one tag:
 *   <script src="https://GATEWAY/widget.js" data-token="JWT-or-empty" defer></script>
 * Optional attributes: data-title="Support" (header title), data-open="true" (start open).
 * Elements anywhere on the host page with a `data-mend-open` attribute open the chat on click.
 *
 * Protocol: bot/gateway/PROTOCOL.md ("Widget WebSocket"). Every text coming from the server is
 * plain text and is rendered with textContent / text nodes only; links in bot and agent text are
 * built with DOM APIs and only for http: and https: URLs.
 *
 * Host page API: window.MendWidget = {open(), close(), isOpen()}.
 * Test hooks (inside the open shadow root of <div id="mend-widget">): data-testid = launcher,
 * panel, close, status, connection, log, message (data-sender, data-state), quick-reply, typing,
 * input, send, input-error.
 */
(function () {
  "use strict";

  if (window.MendWidget && window.MendWidget.__mend) return;

  // Captured while this script runs: document.currentScript is null afterwards.
  var SCRIPT = document.currentScript;
  if (!SCRIPT || !SCRIPT.src) {
    var candidates = document.querySelectorAll("script[src]");
    SCRIPT = null;
    for (var i = candidates.length - 1; i >= 0; i--) {
      if (/\/widget\.js(?:[?#]|$)/.test(candidates[i].src)) { SCRIPT = candidates[i]; break; }
    }
  }
  if (!SCRIPT) {
    if (window.console) console.warn("Mend widget: cannot find its own <script> tag; not starting.");
    return;
  }

  const SCRIPT_URL = new URL(SCRIPT.src, window.location.href);
  const ORIGIN = SCRIPT_URL.origin;
  const WS_URL = (SCRIPT_URL.protocol === "https:" ? "wss:" : "ws:") + "//" + SCRIPT_URL.host + "/ws/widget";
  const TOKEN = (SCRIPT.getAttribute("data-token") || "").trim() || null;
  const TITLE = (SCRIPT.getAttribute("data-title") || "").trim() || "Support";
  const START_OPEN = (SCRIPT.getAttribute("data-open") || "").trim().toLowerCase() === "true";

  const MAX_CHARS = 2000;
  const AUTO_TYPING_MS = 15000;    // typing dots after the customer sends, until a reply
  const SERVER_TYPING_MS = 30000;  // safety net if a typing "off" never arrives
  const WELCOME_TIMEOUT_MS = 15000;
  const OPEN_TIMEOUT_MS = 5000;    // a socket that neither opens nor fails by then is dropped and retried
  const BACKOFF_MAX_MS = 30000;
  const RESEND_MAX_MS = 15000;     // slowest resend of a message the server could not store yet
  // Heartbeat defaults; the server's welcome.heartbeat (settings: gateway.faults) overrides them.
  const HEARTBEAT = { ping_ms: 1000, timeout_ms: 1500, retry_ms: 2000 };
  const HIDDEN_TIMEOUT_MS = 10000; // background tabs run timers late: judge them on unanswered pings only
  const NOTICE_MERGE_MS = 10000;

  const KEY_RESUME = "mend:resume:" + ORIGIN;
  const KEY_PENDING = "mend:pending:" + ORIGIN;
  const KEY_OWNER = "mend:owner:" + ORIGIN;
  const KEY_OPEN = "mend:open:" + ORIGIN;

  const TEXT = {
    launcher: "Open support chat",
    close: "Close chat",
    statusBot: "Mend assistant",
    statusWaiting: "Waiting for a person\u2026",
    statusAgent: "You're chatting with ",
    statusClosed: "Conversation closed",
    connecting: "Connecting\u2026",
    reconnecting: "Reconnecting\u2026",
    lost: "Connection lost. Reconnecting\u2026",
    notStored: "We can't send your message right now. It is kept here and will be sent automatically as soon as we can.",
    retryNow: "Try now",
    reload: "Reload page",
    disconnected: "Chat disconnected.",
    typing: "Support is typing",
    tooLong: "That message is too long (max " + MAX_CHARS + " characters).",
    expired: "Your session has expired. Please reload the page.",
    forbidden: "Chat is not available on this page.",
    inputLabel: "Type your message",
    placeholder: "Type your message\u2026",
    send: "Send",
    suggested: "Suggested replies",
    conversation: "Conversation",
  };

  /* ------------------------------------------------------------------ storage */

  const memory = {};
  function storage(kind) {
    try { return kind === "session" ? window.sessionStorage : window.localStorage; } catch (e) { return null; }
  }
  function sGet(kind, key) {
    const mk = kind + "|" + key;
    if (Object.prototype.hasOwnProperty.call(memory, mk)) return memory[mk];
    const s = storage(kind);
    try { return s ? s.getItem(key) : null; } catch (e) { return null; }
  }
  function sSet(kind, key, value) {
    const mk = kind + "|" + key;
    const s = storage(kind);
    try {
      if (!s) throw new Error("no storage");
      s.setItem(key, value);
      delete memory[mk];
    } catch (e) {
      memory[mk] = value;  // private mode or quota: keep it for this page at least
    }
  }
  function sRemove(kind, key) {
    delete memory[kind + "|" + key];
    const s = storage(kind);
    try { if (s) s.removeItem(key); } catch (e) { /* ignore */ }
  }
  const lsGet = (k) => sGet("local", k);
  const lsSet = (k, v) => sSet("local", k, v);
  const lsRemove = (k) => sRemove("local", k);

  function loadPending() {
    let list;
    try { list = JSON.parse(lsGet(KEY_PENDING) || "[]"); } catch (e) { list = []; }
    if (!Array.isArray(list)) return [];
    return list.filter((p) => p && typeof p.client_id === "string" && typeof p.text === "string");
  }
  function savePending(list) {
    if (list.length) lsSet(KEY_PENDING, JSON.stringify(list));
    else lsRemove(KEY_PENDING);
  }
  function addPending(entry) {
    const list = loadPending();
    list.push(entry);
    savePending(list);
  }
  function removePending(clientId) {
    const list = loadPending();
    const kept = list.filter((p) => p.client_id !== clientId);
    if (kept.length !== list.length) savePending(kept);
  }

  // Who the host page says this visitor is ("customer:<sub>", "guest", or null if unreadable).
  // The signature is the server's business; this only keeps one customer's conversation and
  // unsent messages from following a different customer on a shared browser.
  function tokenIdentity(token) {
    if (!token) return "guest";
    try {
      let b64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (b64.length % 4) b64 += "=";
      const bytes = window.atob(b64);
      let escaped = "";
      for (let i = 0; i < bytes.length; i++) escaped += "%" + ("0" + bytes.charCodeAt(i).toString(16)).slice(-2);
      const claims = JSON.parse(decodeURIComponent(escaped));
      const sub = claims && (claims.sub || claims.customer_id);
      return sub ? "customer:" + String(sub) : null;
    } catch (e) {
      return null;
    }
  }
  (function guardOwner() {
    const me = tokenIdentity(TOKEN);
    if (!me) return;
    const previous = lsGet(KEY_OWNER);
    if (previous && previous.indexOf("customer:") === 0 && previous !== me) {
      lsRemove(KEY_RESUME);
      lsRemove(KEY_PENDING);
    }
    lsSet(KEY_OWNER, me);
  })();

  /* ------------------------------------------------------------------ helpers */

  function newClientId() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try { return "c-" + c.randomUUID(); } catch (e) { /* insecure context */ }
    }
    let hex = "";
    if (c && typeof c.getRandomValues === "function") {
      const bytes = new Uint8Array(16);
      c.getRandomValues(bytes);
      for (let i = 0; i < bytes.length; i++) hex += ("0" + bytes[i].toString(16)).slice(-2);
    } else {
      for (let i = 0; i < 32; i++) hex += Math.floor(Math.random() * 16).toString(16);
    }
    return "c-" + hex + "-" + Date.now().toString(36);
  }

  function charCount(text) {
    let n = 0;
    for (const _ of text) n++;  // code points, like the server's len()
    return n;
  }

  function h(tag, attrs, children) {
    const el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach((key) => {
        const value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "class") el.className = value;
        else if (key === "text") el.textContent = value;
        else if (key === "hidden") el.hidden = true;
        else el.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach((child) => {
      if (child === null || child === undefined) return;
      el.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return el;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function icon(paths, cls, viewBox) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", viewBox || "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("fill", "none");
    svg.setAttribute("stroke", "currentColor");
    svg.setAttribute("stroke-width", "2");
    svg.setAttribute("stroke-linecap", "round");
    svg.setAttribute("stroke-linejoin", "round");
    if (cls) svg.setAttribute("class", cls);
    paths.forEach((d) => {
      const p = document.createElementNS(SVG_NS, "path");
      p.setAttribute("d", d);
      svg.appendChild(p);
    });
    return svg;
  }
  const ICON_CHAT = ["M21 12a8 8 0 0 1-11.8 7L4 20.5l1.5-4.6A8 8 0 1 1 21 12z", "M8.5 12h.01", "M12 12h.01", "M15.5 12h.01"];
  const ICON_CLOSE = ["M6 6l12 12", "M18 6L6 18"];
  const ICON_DOWN = ["M6 9l6 6 6-6"];
  const ICON_SEND = ["M4 12l16-8-6 16-2.5-6.5z", "M11.5 13.5L20 4"];
  const ICON_CLOCK = ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "M12 7v5l3 2"];
  const ICON_ALERT = ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "M12 8v5", "M12 16h.01"];
  const ICON_SUPPORT = ["M4 14v-2a8 8 0 0 1 16 0v2", "M4 14a2 2 0 0 0 2 2h1v-5H6a2 2 0 0 0-2 2z",
    "M20 14a2 2 0 0 1-2 2h-1v-5h1a2 2 0 0 1 2 2z", "M17 16v1a3 3 0 0 1-3 3h-2"];

  // http(s) URLs in bot/agent text; trailing punctuation is left out of the link.
  const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  function safeHref(candidate) {
    try {
      const url = new URL(candidate);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }
  function appendLinkified(parent, text) {
    let last = 0;
    let match;
    URL_RE.lastIndex = 0;
    while ((match = URL_RE.exec(text)) !== null) {
      let url = match[0];
      while (/[.,;:!?)\]}'"\u00bb\u2026]$/.test(url)) {
        if (url.slice(-1) === ")" && url.split("(").length > url.split(")").length - 1) break;  // balanced (...)
        url = url.slice(0, -1);
      }
      const start = match.index;
      if (start > last) parent.appendChild(document.createTextNode(text.slice(last, start)));
      const href = safeHref(url);
      if (href) {
        const a = document.createElement("a");
        a.href = href;
        a.textContent = url;
        a.rel = "noopener noreferrer";
        a.target = "_blank";
        parent.appendChild(a);
      } else {
        parent.appendChild(document.createTextNode(url));
      }
      last = start + url.length;
      URL_RE.lastIndex = Math.max(last, start + 1);
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function formatTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    try {
      return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
    }
  }

  /* ------------------------------------------------------------------ styles */

  const CSS = `
:host { all: initial; }
.mw, .mw *, .mw *::before, .mw *::after { box-sizing: border-box; }
.mw {
  --accent: #1d4ed8; --accent-hover: #1e40af; --accent-soft: #eff6ff; --ink: #0f172a; --muted: #475569;
  --line: #e2e8f0; --focus: #1d4ed8;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 15px; line-height: 1.45; color: var(--ink); color-scheme: light;
  -webkit-font-smoothing: antialiased; text-align: left; letter-spacing: normal; direction: ltr;
}
[hidden] { display: none !important; }
.sr-only {
  position: absolute !important; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap; border: 0;
}
button, textarea { font: inherit; color: inherit; margin: 0; }
button { cursor: pointer; }
:focus { outline: none; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }

.launcher {
  position: fixed; right: 20px; bottom: 20px;
  right: max(20px, env(safe-area-inset-right)); bottom: max(20px, env(safe-area-inset-bottom));
  width: 60px; height: 60px; padding: 0; border: 0; border-radius: 50%;
  background: var(--accent); color: #fff; display: grid; place-items: center;
  box-shadow: 0 8px 24px rgba(15, 23, 42, .3), 0 0 0 1px rgba(255, 255, 255, .25) inset;
  transition: transform .15s ease, background-color .15s ease;
}
.launcher:hover { background: var(--accent-hover); transform: translateY(-2px); }
.launcher:focus-visible { outline: 3px solid var(--focus); outline-offset: 3px; box-shadow: 0 0 0 3px #fff, 0 8px 24px rgba(15, 23, 42, .3); }
.launcher svg { width: 28px; height: 28px; }
.launcher .ic-down { display: none; }
.mw[data-open="true"] .launcher .ic-chat { display: none; }
.mw[data-open="true"] .launcher .ic-down { display: block; }
.badge {
  position: absolute; top: -4px; right: -4px; min-width: 22px; height: 22px; padding: 0 6px;
  border-radius: 11px; border: 2px solid #fff; background: #b91c1c; color: #fff;
  font-size: 12px; font-weight: 700; line-height: 18px; text-align: center;
}

.panel {
  position: fixed; right: 20px; bottom: 92px;
  right: max(20px, env(safe-area-inset-right)); bottom: calc(max(20px, env(safe-area-inset-bottom)) + 72px);
  width: 384px; max-width: calc(100vw - 40px);
  height: 620px; max-height: calc(100vh - 120px); max-height: calc(100dvh - 120px);
  display: flex; flex-direction: column; overflow: hidden;
  background: #fff; border-radius: 16px;
  box-shadow: 0 18px 50px rgba(15, 23, 42, .28), 0 0 0 1px rgba(15, 23, 42, .08);
  animation: mw-in .18s ease-out;
}
@keyframes mw-in { from { opacity: 0; transform: translateY(12px) scale(.98); } to { opacity: 1; transform: none; } }

.header { display: flex; align-items: center; gap: 12px; padding: 14px 10px 14px 16px; background: var(--accent); color: #fff; flex: none; }
.avatar { width: 38px; height: 38px; border-radius: 50%; background: rgba(255, 255, 255, .18); display: grid; place-items: center; flex: none; }
.avatar svg { width: 22px; height: 22px; }
.titles { flex: 1; min-width: 0; }
.title { margin: 0; font-size: 16px; font-weight: 650; line-height: 1.25; color: #fff; }
.status { margin: 2px 0 0; font-size: 13px; line-height: 1.3; color: #dbeafe; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.status::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px; background: #4ade80; vertical-align: 1px; }
.status[data-status="waiting"]::before { background: #fbbf24; }
.status[data-status="closed"]::before { background: #cbd5e1; }
.close { flex: none; width: 40px; height: 40px; padding: 0; border: 0; border-radius: 10px; background: transparent; color: #fff; display: grid; place-items: center; }
.close:hover { background: rgba(255, 255, 255, .16); }
.close:focus-visible { outline: 3px solid #fff; outline-offset: -3px; }
.close svg { width: 22px; height: 22px; }

.conn { flex: none; display: flex; align-items: center; gap: 10px; padding: 6px 16px; font-size: 13px; background: #fef3c7; color: #78350f; border-bottom: 1px solid #fde68a; }
.conn[data-kind="error"] { background: #fee2e2; color: #7f1d1d; border-bottom-color: #fecaca; }
.conn-text { flex: 1; }
.conn-btn { border: 0; background: none; padding: 2px 4px; font-size: 13px; font-weight: 600; color: inherit; text-decoration: underline; text-underline-offset: 2px; border-radius: 4px; }
.conn-btn:focus-visible { outline: 2px solid currentColor; outline-offset: 1px; }

.scroller { flex: 1; min-height: 0; overflow-y: auto; overscroll-behavior: contain; padding: 16px 14px 10px; background: #f8fafc; }
.intro { text-align: center; color: var(--muted); padding: 18px 8px 10px; }
.intro-title { display: block; margin-bottom: 4px; font-size: 16px; font-weight: 650; color: var(--ink); }
.log { display: flex; flex-direction: column; gap: 6px; }

.msg { display: flex; flex-direction: column; max-width: 86%; }
.msg--customer { align-self: flex-end; align-items: flex-end; }
.msg--bot, .msg--agent { align-self: flex-start; align-items: flex-start; }
.msg--system { align-self: center; align-items: center; max-width: 94%; text-align: center; margin: 4px 0; }
.bubble { padding: 9px 13px; border-radius: 16px; white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word; }
.msg--customer .bubble { background: var(--accent); color: #fff; border-bottom-right-radius: 4px; }
.msg--bot .bubble { background: #fff; color: var(--ink); border: 1px solid var(--line); border-bottom-left-radius: 4px; }
.msg--agent .bubble { background: #ecfdf5; color: #064e3b; border: 1px solid #a7f3d0; border-bottom-left-radius: 4px; }
.msg--system .bubble { padding: 4px 10px; font-size: 13px; color: var(--muted); background: transparent; }
.msg--system[data-kind="error"] .bubble { color: #991b1b; background: #fef2f2; border: 1px solid #fecaca; border-radius: 10px; }
.bubble a { color: #1d4ed8; text-decoration: underline; text-underline-offset: 2px; overflow-wrap: anywhere; }
.msg--agent .bubble a { color: #065f46; }
.bubble a:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; border-radius: 2px; }
.who { margin: 4px 0 2px 4px; font-size: 12px; font-weight: 650; color: #065f46; }
.meta { display: flex; align-items: center; gap: 4px; margin: 2px 6px 0; font-size: 11.5px; line-height: 1.3; color: #64748b; }
.meta::after { content: attr(data-time); }
.meta:not([data-time]), .meta[data-time=""] { display: none; }
.meta svg { width: 12px; height: 12px; display: none; }
.msg--system .meta { display: none; }
.msg[data-state="sending"] .bubble { opacity: .6; }
.msg[data-state="sending"] .meta { display: flex; }
.msg[data-state="sending"] .meta::after { content: "Sending\\2026"; }
.msg[data-state="sending"] .meta .ic-clock { display: inline-block; }
.msg[data-state="retrying"] .bubble { opacity: .6; }
.msg[data-state="retrying"] .meta { display: flex; color: #92400e; }
.msg[data-state="retrying"] .meta::after { content: "Not sent yet, retrying\\2026"; }
.msg[data-state="retrying"] .meta .ic-clock { display: inline-block; }
.msg[data-state="failed"] .bubble { background: #fff; color: #991b1b; border: 1px dashed #dc2626; }
.msg[data-state="failed"] .meta { display: flex; color: #b91c1c; }
.msg[data-state="failed"] .meta::after { content: "Not sent"; }
.msg[data-state="failed"] .meta .ic-alert { display: inline-block; }

.qr { display: flex; flex-wrap: wrap; gap: 6px; align-self: flex-start; max-width: 94%; margin: 2px 0 6px; }
.qr-btn { min-height: 36px; padding: 6px 13px; border: 1.5px solid var(--accent); border-radius: 999px; background: #fff; color: var(--accent); font-size: 14px; font-weight: 550; line-height: 1.25; text-align: left; }
.qr-btn:hover:not(:disabled) { background: var(--accent-soft); }
.qr-btn:disabled { cursor: default; border-color: #cbd5e1; background: #f1f5f9; color: var(--muted); }
.qr-btn.chosen:disabled { border-color: #93c5fd; background: #dbeafe; color: #1e3a8a; }

.typing { display: inline-flex; align-items: center; gap: 4px; margin-top: 8px; padding: 11px 14px; background: #fff; border: 1px solid var(--line); border-radius: 16px; border-bottom-left-radius: 4px; }
.dot { width: 7px; height: 7px; border-radius: 50%; background: #64748b; animation: mw-dot 1.2s infinite ease-in-out both; }
.dot:nth-child(3) { animation-delay: .15s; }
.dot:nth-child(4) { animation-delay: .3s; }
@keyframes mw-dot { 0%, 80%, 100% { opacity: .35; transform: translateY(0); } 40% { opacity: 1; transform: translateY(-3px); } }

.composer { flex: none; padding: 10px 10px 12px; border-top: 1px solid var(--line); background: #fff; }
.row { display: flex; align-items: flex-end; gap: 8px; }
.input {
  flex: 1; min-width: 0; min-height: 44px; max-height: 140px; padding: 10px 12px; resize: none;
  font-size: 16px; line-height: 1.4; color: var(--ink); background: #fff;
  border: 1.5px solid #64748b; border-radius: 12px;
}
.input::placeholder { color: #64748b; opacity: 1; }
.input:focus-visible { outline: 2px solid var(--focus); outline-offset: 1px; border-color: var(--focus); }
.input:disabled { background: #f1f5f9; cursor: not-allowed; }
.send { flex: none; display: inline-flex; align-items: center; gap: 6px; height: 44px; padding: 0 14px; border: 0; border-radius: 12px; background: var(--accent); color: #fff; font-size: 15px; font-weight: 650; }
.send:hover:not(:disabled) { background: var(--accent-hover); }
.send:disabled { background: #94a3b8; color: #0f172a; cursor: not-allowed; }
.send svg { width: 18px; height: 18px; }
.input-error { margin: 6px 2px 0; font-size: 13px; color: #b91c1c; }
.input-error:empty { display: none; }
.counter { margin: 4px 2px 0; font-size: 12px; color: var(--muted); text-align: right; }
.counter[data-over="true"] { color: #b91c1c; font-weight: 650; }

@media (max-width: 479.98px) {
  .panel {
    top: 0; right: 0; bottom: 0; left: 0; width: 100vw; max-width: none;
    height: 100vh; height: 100dvh; max-height: none; border-radius: 0;
  }
  .mw[data-open="true"] .launcher { display: none; }
  .header { padding-top: max(14px, env(safe-area-inset-top)); }
  .composer { padding-bottom: max(12px, env(safe-area-inset-bottom)); }
  .msg { max-width: 90%; }
}
@media (prefers-reduced-motion: reduce) {
  .mw *, .mw *::before, .mw *::after { animation: none !important; transition: none !important; scroll-behavior: auto !important; }
  .dot { opacity: .75; }
}
@media (forced-colors: active) {
  .launcher, .send, .close, .bubble, .typing, .qr-btn { border: 1px solid CanvasText; }
  .dot { background: CanvasText; }
}
`;

  /* ------------------------------------------------------------------ state */

  let mounted = false;
  let openState = false;
  let root = null;
  let wrap, launcher, badge, panel, statusEl, connEl, connText, connBtn, scroller, intro, introTitle, introText;
  let logEl, typingEl, form, input, sendBtn, inputError, counter;

  let ws = null;
  let ready = false;           // welcome received on the current socket
  let started = false;         // a connection has been asked for
  let everWelcomed = false;
  let terminal = false;        // 4401 (or origin refused): no automatic reconnect
  let attempt = 0;
  let reconnectTimer = null;
  let welcomeTimer = null;
  let connectingTimer = null;
  let openTimer = null;
  let heartbeatTimer = null;
  let heartbeat = HEARTBEAT;
  let lastHeard = 0;           // when the current socket last brought anything
  let lastPing = 0;
  let pingOutstanding = 0;     // when the oldest unanswered ping was sent (0: none)
  let resendTimer = null;
  let resendDelay = 0;         // grows while the server keeps answering "not stored"
  let typingTimer = null;

  let status = "bot";
  let agentName = null;
  let customerName = null;
  let unread = 0;
  let byClientId = new Map();
  let renderedIds = new Set();
  let lastAgentNotice = null;  // {el, name, at}: local agent joined/left notice, merged with a server one
  let lastServerSystem = null; // {text, at}

  /* ------------------------------------------------------------------ UI */

  function mount() {
    if (mounted || document.getElementById("mend-widget")) return;
    mounted = true;

    const host = document.createElement("div");
    host.id = "mend-widget";
    [["all", "initial"], ["display", "block"], ["position", "fixed"], ["right", "0"], ["bottom", "0"],
      ["width", "0"], ["height", "0"], ["overflow", "visible"], ["z-index", "2147483000"]]
      .forEach((p) => host.style.setProperty(p[0], p[1], "important"));
    root = host.attachShadow({ mode: "open" });
    root.appendChild(h("style", { text: CSS }));

    wrap = h("div", { class: "mw", "data-open": "false" });

    badge = h("span", { class: "badge", "aria-hidden": "true", hidden: true });
    launcher = h("button", {
      type: "button", class: "launcher", "data-testid": "launcher", "aria-label": TEXT.launcher,
      "aria-expanded": "false", "aria-controls": "mend-panel",
    }, [icon(ICON_CHAT, "ic-chat"), icon(ICON_DOWN, "ic-down"), badge]);

    statusEl = h("p", { class: "status", "data-testid": "status", "data-status": "bot", text: TEXT.statusBot });
    const closeBtn = h("button", { type: "button", class: "close", "data-testid": "close", "aria-label": TEXT.close },
      [icon(ICON_CLOSE)]);
    const header = h("div", { class: "header" }, [
      h("div", { class: "avatar" }, [icon(ICON_SUPPORT)]),
      h("div", { class: "titles" }, [h("h2", { class: "title", id: "mend-title", text: TITLE }), statusEl]),
      closeBtn,
    ]);

    connText = h("span", { class: "conn-text" });
    connBtn = h("button", { type: "button", class: "conn-btn", hidden: true });
    connEl = h("div", { class: "conn", role: "status", "data-testid": "connection", hidden: true }, [connText, connBtn]);

    introTitle = h("strong", { class: "intro-title" });
    introText = h("span", { text: "Ask about an order, a delivery, a refund or your account." });
    intro = h("div", { class: "intro", "data-testid": "intro", hidden: true }, [introTitle, introText]);
    logEl = h("div", {
      class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
      "aria-label": TEXT.conversation, "data-testid": "log",
    });
    typingEl = h("div", { class: "typing", role: "status", "data-testid": "typing", hidden: true }, [
      h("span", { class: "sr-only", text: TEXT.typing }),
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "dot", "aria-hidden": "true" }),
    ]);
    scroller = h("div", { class: "scroller" }, [intro, logEl, typingEl]);

    input = h("textarea", {
      id: "mend-input", class: "input", rows: "1", "data-testid": "input", placeholder: TEXT.placeholder,
      autocomplete: "off", enterkeyhint: "send", "aria-describedby": "mend-input-error",
    });
    sendBtn = h("button", { type: "submit", class: "send", "data-testid": "send" }, [icon(ICON_SEND), TEXT.send]);
    inputError = h("p", { id: "mend-input-error", class: "input-error", role: "alert", "data-testid": "input-error" });
    counter = h("p", { class: "counter", "aria-hidden": "true", hidden: true });
    form = h("form", { class: "composer", novalidate: true }, [
      h("label", { class: "sr-only", for: "mend-input", text: TEXT.inputLabel }),
      h("div", { class: "row" }, [input, sendBtn]),
      counter,
      inputError,
    ]);

    panel = h("div", {
      id: "mend-panel", class: "panel", role: "dialog", "aria-label": TITLE + " chat",
      "data-testid": "panel", hidden: true,
    }, [header, connEl, scroller, form]);

    wrap.appendChild(panel);
    wrap.appendChild(launcher);
    root.appendChild(wrap);
    document.body.appendChild(host);

    launcher.addEventListener("click", () => (openState ? setOpen(false, { focusLauncher: true }) : setOpen(true, { focus: true })));
    closeBtn.addEventListener("click", () => setOpen(false, { focusLauncher: true }));
    wrap.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && openState) {
        event.preventDefault();
        event.stopPropagation();
        setOpen(false, { focusLauncher: true });
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (submit(input.value, null)) {
        input.value = "";
        autosize();
        updateCounter();
      }
      input.focus();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        if (typeof form.requestSubmit === "function") form.requestSubmit();
        else form.dispatchEvent(new Event("submit", { cancelable: true }));
      }
    });
    input.addEventListener("input", () => {
      autosize();
      updateCounter();
      if (inputError.textContent && charCount(input.value.trim()) <= MAX_CHARS) inputError.textContent = "";
    });
    connBtn.addEventListener("click", () => {
      if (terminal) window.location.reload();
      else connect();
    });

    // Host page elements with data-mend-open open the chat.
    document.addEventListener("click", (event) => {
      const target = event.target && event.target.closest ? event.target.closest("[data-mend-open]") : null;
      if (target) {
        event.preventDefault();
        setOpen(true, { focus: true });
      }
    });
    window.addEventListener("online", () => {
      if (started && !ws && !terminal) { attempt = 0; connect(); }
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && started && !ws && !terminal) connect();
      if (!document.hidden && ws && ready) { lastHeard = Date.now(); lastPing = 0; beat(); }  // timers ran late meanwhile
    });

    // Unsent messages from an earlier visit are shown right away, then resent after welcome.
    loadPending().forEach(renderPendingEntry);
    updateIntro();

    const saved = sGet("session", KEY_OPEN);
    const startOpen = saved === null ? START_OPEN : saved === "1";
    if (startOpen) setOpen(true, { focus: false });
    if (lsGet(KEY_RESUME) || loadPending().length) ensureConnected();
  }

  function setOpen(open, opts) {
    if (!mounted) return;
    opts = opts || {};
    openState = !!open;
    panel.hidden = !openState;
    wrap.setAttribute("data-open", String(openState));
    launcher.setAttribute("aria-expanded", String(openState));
    sSet("session", KEY_OPEN, openState ? "1" : "0");
    if (openState) {
      unread = 0;
      updateBadge();
      ensureConnected();
      scrollToBottom(true);
      if (opts.focus && !input.disabled) input.focus();
      else if (opts.focus) panel.querySelector(".close").focus();
    } else {
      const active = root.activeElement;
      if (opts.focusLauncher || (active && panel.contains(active))) launcher.focus();
    }
  }

  function updateBadge() {
    badge.hidden = unread === 0;
    badge.textContent = unread > 9 ? "9+" : String(unread);
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 3, 140) + "px";
  }

  function updateCounter() {
    const n = charCount(input.value.trim());
    counter.hidden = n < MAX_CHARS - 200;
    counter.textContent = n + " / " + MAX_CHARS;
    counter.setAttribute("data-over", String(n > MAX_CHARS));
  }

  function showInputError(text) {
    if (inputError.textContent === text) {
      // Same error again: clear and refill so screen readers announce it again.
      inputError.textContent = "";
      window.setTimeout(() => { inputError.textContent = text; }, 50);
    } else {
      inputError.textContent = text;
    }
  }

  function setStatus(next) {
    status = ["bot", "waiting", "agent", "closed"].indexOf(next) >= 0 ? next : "bot";
    let text = TEXT.statusBot;
    if (status === "waiting") text = TEXT.statusWaiting;
    else if (status === "agent") text = TEXT.statusAgent + (agentName || "a support agent");
    else if (status === "closed") text = TEXT.statusClosed;
    statusEl.textContent = text;
    statusEl.setAttribute("data-status", status);
  }

  function showConn(text, kind, button) {
    connText.textContent = text;
    connEl.setAttribute("data-kind", kind || "info");
    connBtn.hidden = !button;
    connBtn.textContent = button || "";
    connEl.hidden = false;
  }
  function hideConn() {
    connEl.hidden = true;
    window.clearTimeout(connectingTimer);
  }

  function updateIntro() {
    const hasMessages = !!logEl.querySelector('[data-testid="message"]');
    const waitingForHistory = !everWelcomed && !!lsGet(KEY_RESUME);
    intro.hidden = hasMessages || waitingForHistory;
    const first = customerName ? String(customerName).trim().split(/\s+/)[0] : "";
    introTitle.textContent = first ? "Hi " + first + "! How can we help?" : "Hi there! How can we help?";
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 96;
  }
  function scrollToBottom(force) {
    if (force || nearBottom()) scroller.scrollTop = scroller.scrollHeight;
  }
  function appendWithScroll(fn, force) {
    const stick = force || nearBottom();
    fn();
    updateIntro();
    if (stick) scroller.scrollTop = scroller.scrollHeight;
  }

  /* ------------------------------------------------------------------ messages */

  function setState(el, state) {
    el.setAttribute("data-state", state);
  }

  function buildMessage(m, opts) {
    opts = opts || {};
    const sender = ["customer", "bot", "agent", "system"].indexOf(m.sender) >= 0 ? m.sender : "bot";
    const text = m.text === null || m.text === undefined ? "" : String(m.text);
    const el = h("div", { class: "msg msg--" + sender, "data-testid": "message", "data-sender": sender });
    if (m.id !== null && m.id !== undefined) {
      el.setAttribute("data-id", String(m.id));
      renderedIds.add(String(m.id));
    }
    if (sender === "customer") {
      el.setAttribute("data-state", opts.state || "sent");
      if (m.client_id) {
        el.setAttribute("data-client-id", String(m.client_id));
        byClientId.set(String(m.client_id), el);
      }
    }
    if (sender === "agent") {
      el.appendChild(h("div", { class: "who", text: m.agent_name ? String(m.agent_name) : "Support agent" }));
    }
    if (sender === "system" && opts.alert) {
      el.setAttribute("role", "alert");
      el.setAttribute("data-kind", "error");
    }
    const bubble = h("div", { class: "bubble" });
    if (sender === "bot" || sender === "agent") appendLinkified(bubble, text);
    else bubble.textContent = text;
    el.appendChild(bubble);
    const meta = h("div", { class: "meta", "aria-hidden": "true" }, [icon(ICON_CLOCK, "ic-clock"), icon(ICON_ALERT, "ic-alert")]);
    const time = formatTime(m.created_at);
    if (time) meta.setAttribute("data-time", time);
    el.appendChild(meta);
    return el;
  }

  // A customer message ends every open quick-reply group; the one matching its text is marked chosen.
  function closeQuickReplies(chosenText) {
    logEl.querySelectorAll('.qr:not([data-used="true"])').forEach((group) => {
      if (chosenText !== undefined && chosenText !== null) {
        group.querySelectorAll("button").forEach((b) => {
          if (b.textContent === chosenText) { b.classList.add("chosen"); b.setAttribute("aria-pressed", "true"); }
        });
      }
      disableGroup(group);
    });
  }
  function disableGroup(group) {
    group.setAttribute("data-used", "true");
    group.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  }

  function buildQuickReplies(buttons) {
    const group = h("div", { class: "qr", role: "group", "aria-label": TEXT.suggested, "data-testid": "quick-replies" });
    buttons.forEach((b) => {
      if (!b || b.title === null || b.title === undefined || String(b.title).trim() === "") return;
      const title = String(b.title);
      const btn = h("button", { type: "button", class: "qr-btn", "data-testid": "quick-reply", text: title });
      btn.addEventListener("click", () => {
        if (btn.disabled || group.getAttribute("data-used") === "true") return;
        const payload = b.payload === null || b.payload === undefined ? null : String(b.payload);
        if (submit(title, payload)) {
          btn.classList.add("chosen");
          btn.setAttribute("aria-pressed", "true");
          disableGroup(group);
          if (!input.disabled) input.focus();
        }
      });
      group.appendChild(btn);
    });
    return group.childNodes.length ? group : null;
  }

  function appendMessage(m, opts) {
    opts = opts || {};
    const el = buildMessage(m, opts);
    if (m.sender === "customer") closeQuickReplies(String(m.text === null || m.text === undefined ? "" : m.text));
    logEl.appendChild(el);
    if ((m.sender === "bot" || m.sender === "agent") && Array.isArray(m.buttons) && m.buttons.length) {
      const group = buildQuickReplies(m.buttons);
      if (group) {
        if (terminal) disableGroup(group);
        logEl.appendChild(group);
      }
    }
    return el;
  }

  function appendNotice(text, opts) {
    opts = opts || {};
    let el;
    appendWithScroll(() => {
      el = buildMessage({ sender: "system", text: text }, { alert: !!opts.alert });
      if (opts.local) el.setAttribute("data-local", "true");
      logEl.appendChild(el);
    }, true);
    return el;
  }

  function renderPendingEntry(p) {
    return appendMessage({ sender: "customer", client_id: p.client_id, text: p.text, created_at: p.at }, { state: "sending" });
  }

  function clearLog() {
    while (logEl.firstChild) logEl.removeChild(logEl.firstChild);
    byClientId = new Map();
    renderedIds = new Set();
    lastAgentNotice = null;
  }

  /* ------------------------------------------------------------------ typing */

  function showTyping(ms) {
    const stick = nearBottom();
    typingEl.hidden = false;
    window.clearTimeout(typingTimer);
    typingTimer = window.setTimeout(hideTyping, ms);
    if (stick) scroller.scrollTop = scroller.scrollHeight;
  }
  function hideTyping() {
    window.clearTimeout(typingTimer);
    typingEl.hidden = true;
  }

  /* ------------------------------------------------------------------ sending */

  function sendFrame(frame) {
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }
  function sendEntry(p) {
    const frame = { type: "message", client_id: p.client_id, text: p.text };
    if (p.payload !== null && p.payload !== undefined) frame.payload = p.payload;
    return sendFrame(frame);
  }

  // Returns true when the text was accepted (shown and queued); the caller then clears the input.
  function submit(raw, payload) {
    if (terminal) return false;
    const text = String(raw === null || raw === undefined ? "" : raw).trim();
    if (!text) return false;
    if (charCount(text) > MAX_CHARS) {
      showInputError(TEXT.tooLong);
      return false;
    }
    inputError.textContent = "";
    const entry = { client_id: newClientId(), text: text, payload: payload, at: new Date().toISOString() };
    addPending(entry);
    appendWithScroll(() => renderPendingEntry(entry), true);
    if (ready) {
      if (sendEntry(entry) && status === "bot") showTyping(AUTO_TYPING_MS);
    } else {
      ensureConnected();
    }
    return true;
  }

  /* ------------------------------------------------------------------ connection */

  function ensureConnected() {
    if (started) return;
    started = true;
    connect();
  }

  function connect() {
    window.clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (terminal) return;
    if (ws && (ws.readyState === 0 || ws.readyState === 1)) return;
    ready = false;
    if (everWelcomed || attempt > 0) {
      showConn(everWelcomed ? TEXT.lost : TEXT.reconnecting, everWelcomed ? "error" : "info", null);
    } else {
      window.clearTimeout(connectingTimer);
      connectingTimer = window.setTimeout(() => { if (!ready && !terminal) showConn(TEXT.connecting, "info", null); }, 700);
    }
    let sock;
    try {
      sock = new WebSocket(WS_URL);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    window.clearTimeout(openTimer);
    openTimer = window.setTimeout(() => {
      if (ws === sock && sock.readyState !== 1) dropSocket(TEXT.lost);  // the server accepts but never answers
    }, OPEN_TIMEOUT_MS);
    sock.onopen = () => {
      if (ws !== sock) return;
      sendFrame({ type: "hello", token: TOKEN, resume: lsGet(KEY_RESUME) || null });
      window.clearTimeout(welcomeTimer);
      welcomeTimer = window.setTimeout(() => {
        if (ws === sock && !ready) { try { sock.close(4000, "no welcome"); } catch (e) { /* ignore */ } }
      }, WELCOME_TIMEOUT_MS);
    };
    sock.onmessage = (event) => {
      if (ws !== sock) return;
      lastHeard = Date.now();
      let data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data && typeof data === "object") handle(data);
    };
    sock.onerror = () => { /* a close event follows */ };
    sock.onclose = (event) => {
      if (ws !== sock) return;
      ws = null;
      ready = false;
      window.clearTimeout(welcomeTimer);
      window.clearTimeout(openTimer);
      stopHeartbeat();
      hideTyping();
      if (event.code === 4401) {
        expire(null);
        return;
      }
      if (event.code === 4403) {
        refuse(null);
        return;
      }
      if (terminal) return;
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (terminal) return;
    window.clearTimeout(reconnectTimer);
    const base = Math.min(BACKOFF_MAX_MS, 1000 * Math.pow(2, attempt));
    attempt += 1;
    const delay = base + Math.floor(Math.random() * Math.min(base * 0.25, 5000));
    showConn(everWelcomed ? TEXT.lost : TEXT.reconnecting, everWelcomed ? "error" : "info", TEXT.retryNow);
    reconnectTimer = window.setTimeout(connect, delay);
  }

  // A socket that went quiet (no pong) or never opened: stop listening to it and reconnect.
  function dropSocket(text) {
    const sock = ws;
    ws = null;
    ready = false;
    stopHeartbeat();
    window.clearTimeout(welcomeTimer);
    window.clearTimeout(openTimer);
    hideTyping();
    if (sock) {
      sock.onopen = null; sock.onmessage = null; sock.onerror = null; sock.onclose = null;
      try { sock.close(4000, "no answer"); } catch (e) { /* ignore */ }
    }
    if (terminal) return;
    scheduleReconnect();
    if (text) showConn(text, "error", TEXT.retryNow);
  }

  /* ------------------------------------------------------------------ heartbeat */

  // The widget pings; any frame from the server counts as an answer. No answer for heartbeat.timeout_ms
  // (a dead server, a dropped network, a suspended process) shows the lost connection and reconnects.
  function startHeartbeat() {
    stopHeartbeat();
    lastHeard = Date.now();
    lastPing = 0;
    pingOutstanding = 0;
    heartbeatTimer = window.setInterval(beat, 250);
  }
  function stopHeartbeat() {
    window.clearInterval(heartbeatTimer);
    heartbeatTimer = null;
    pingOutstanding = 0;
  }
  function beat() {
    if (!ws || !ready) return;
    const now = Date.now();
    const silent = document.hidden ? (pingOutstanding && now - pingOutstanding > HIDDEN_TIMEOUT_MS)
      : now - lastHeard > heartbeat.timeout_ms;
    if (silent) {
      dropSocket(TEXT.lost);
      return;
    }
    if (now - lastPing >= heartbeat.ping_ms && sendFrame({ type: "ping" })) {
      lastPing = now;
      if (!pingOutstanding) pingOutstanding = now;
    }
  }

  function stopForGood(text, connLine) {
    const first = !terminal;
    terminal = true;
    ready = false;
    window.clearTimeout(reconnectTimer);
    window.clearTimeout(welcomeTimer);
    hideTyping();
    input.disabled = true;
    sendBtn.disabled = true;
    logEl.querySelectorAll('.qr:not([data-used="true"])').forEach(disableGroup);
    showConn(connLine, "error", TEXT.reload);
    if (first && text) appendNotice(text, { alert: true });
    stopHeartbeat();
    window.clearTimeout(resendTimer);
    if (ws) { try { ws.close(1000); } catch (e) { /* ignore */ } }
  }
  function expire(message) {
    // Unsent messages stay in localStorage: they are sent after the reload.
    stopForGood(message || TEXT.expired, TEXT.disconnected);
  }
  function refuse(message) {
    stopForGood(message || TEXT.forbidden, TEXT.disconnected);
  }

  /* ------------------------------------------------------------------ server events */

  function handle(d) {
    switch (d.type) {
      case "welcome": onWelcome(d); break;
      case "ack": onAck(d); break;
      case "message": if (d.message && typeof d.message === "object") onMessage(d.message); break;
      case "typing": if (d.on) showTyping(SERVER_TYPING_MS); else hideTyping(); break;
      case "pong": pingOutstanding = 0; break;
      case "status": onStatus(d); break;
      case "notice": if (typeof d.message === "string" && d.message.trim()) appendNotice(d.message, { local: true }); break;
      case "agent_joined": onAgent(true, d.name); break;
      case "agent_left": onAgent(false, d.name); break;
      case "error": onError(d); break;
      case "resume": if (typeof d.resume === "string" && d.resume) lsSet(KEY_RESUME, d.resume); break;
      default: break;
    }
  }

  function onWelcome(d) {
    window.clearTimeout(welcomeTimer);
    ready = true;
    everWelcomed = true;
    attempt = 0;
    hideConn();
    hideTyping();
    const hb = d.heartbeat && typeof d.heartbeat === "object" ? d.heartbeat : {};
    heartbeat = {
      ping_ms: Number(hb.ping_ms) >= 100 ? Number(hb.ping_ms) : HEARTBEAT.ping_ms,
      timeout_ms: Number(hb.timeout_ms) >= 200 ? Number(hb.timeout_ms) : HEARTBEAT.timeout_ms,
      retry_ms: Number(hb.retry_ms) >= 100 ? Number(hb.retry_ms) : HEARTBEAT.retry_ms,
    };
    startHeartbeat();
    if (typeof d.resume === "string" && d.resume) lsSet(KEY_RESUME, d.resume);
    customerName = d.customer && d.customer.name ? String(d.customer.name) : null;
    agentName = d.agent && d.agent.name ? String(d.agent.name) : null;
    setStatus(d.status);

    // The server is the source of truth: the log becomes exactly its history, plus what is unsent.
    const history = Array.isArray(d.history) ? d.history : [];
    const stored = new Set();
    history.forEach((m) => { if (m && m.client_id) stored.add(String(m.client_id)); });
    clearLog();
    history.forEach((m) => { if (m && typeof m === "object") appendMessage(m, {}); });
    const pending = loadPending();
    const unsent = pending.filter((p) => !stored.has(p.client_id));
    if (unsent.length !== pending.length) savePending(unsent);
    unsent.forEach(renderPendingEntry);
    updateIntro();
    scrollToBottom(true);

    let resent = 0;
    unsent.forEach((p) => { if (sendEntry(p)) resent += 1; });
    if (resent && status === "bot") showTyping(AUTO_TYPING_MS);
  }

  function onAck(d) {
    if (!d.client_id) return;
    const clientId = String(d.client_id);
    removePending(clientId);
    if (!loadPending().length) {
      // Everything the customer wrote is stored again: the outage notice goes.
      window.clearTimeout(resendTimer);
      resendTimer = null;
      resendDelay = 0;
      if (connText.textContent === TEXT.notStored || connText.textContent === notStoredText) hideConn();
    }
    const el = byClientId.get(clientId);
    if (el) {
      setState(el, "sent");
      if (d.id !== null && d.id !== undefined) {
        el.setAttribute("data-id", String(d.id));
        renderedIds.add(String(d.id));
      }
    }
  }

  function onMessage(m) {
    if (m.id !== null && m.id !== undefined && renderedIds.has(String(m.id))) return;
    const sender = m.sender;
    if (sender === "customer" && m.client_id && byClientId.has(String(m.client_id))) {
      // Our own message (echo or another tab's copy of a shared pending one).
      onAck({ client_id: m.client_id, id: m.id });
      return;
    }
    if (sender === "bot" || sender === "agent") hideTyping();
    if (sender === "system") {
      const text = String(m.text || "");
      // The server announced the agent change itself: keep its wording, drop our local notice.
      if (lastAgentNotice && Date.now() - lastAgentNotice.at < NOTICE_MERGE_MS && lastAgentNotice.name &&
          text.indexOf(lastAgentNotice.name) >= 0 && lastAgentNotice.el.parentNode) {
        lastAgentNotice.el.parentNode.removeChild(lastAgentNotice.el);
        lastAgentNotice = null;
      }
      lastServerSystem = { text: text, at: Date.now() };
    }
    appendWithScroll(() => appendMessage(m, {}), sender === "customer");
    if (!openState && sender !== "customer") {
      unread += 1;
      updateBadge();
    }
  }

  function onAgent(joined, rawName) {
    const name = typeof rawName === "string" && rawName.trim() ? rawName.trim() : null;
    hideTyping();
    let text;
    if (joined) {
      agentName = name;
      setStatus("agent");
      text = (name || "Someone") + " from our team has joined the conversation";
    } else {
      const who = name || agentName || "Our support agent";
      agentName = null;
      setStatus("bot");
      text = who + " has left; the assistant is back";
    }
    // If the server already posted its own notice about this agent, don't say it twice.
    if (name && lastServerSystem && Date.now() - lastServerSystem.at < NOTICE_MERGE_MS &&
        lastServerSystem.text.indexOf(name) >= 0) {
      lastServerSystem = null;
      return;
    }
    const el = appendNotice(text, { local: true });
    lastAgentNotice = { el: el, name: name, at: Date.now() };
    if (!openState) {
      unread += 1;
      updateBadge();
    }
  }

  function onError(d) {
    const code = d.code;
    const message = typeof d.message === "string" && d.message.trim() ? d.message : null;
    if (code === "token_expired" || code === "token_invalid") {
      expire(message);
      return;
    }
    if (code === "origin_forbidden" || code === "too_many_conversations") {
      refuse(message);
      return;
    }
    if (code === "not_stored") {
      notStored(d, message);
      return;
    }
    if (d.client_id) {
      const clientId = String(d.client_id);
      removePending(clientId);  // never resend a message the server refused
      const el = byClientId.get(clientId);
      if (el) setState(el, "failed");
      hideTyping();
    }
    appendNotice(message || "Something went wrong. Please try again.", { alert: true });
  }

  // The server could not store a message (its database is down): keep it, say so, resend it with backoff.
  let notStoredText = null;
  function notStored(d, message) {
    hideTyping();
    const el = d.client_id ? byClientId.get(String(d.client_id)) : null;
    if (el) setState(el, "retrying");
    notStoredText = message || TEXT.notStored;
    showConn(notStoredText, "error", null);
    const first = Number(d.retry_ms) >= 100 ? Number(d.retry_ms) : heartbeat.retry_ms;
    resendDelay = resendDelay ? Math.min(RESEND_MAX_MS, Math.round(resendDelay * 1.5)) : first;
    if (resendTimer) return;  // one resend round for all the messages waiting
    resendTimer = window.setTimeout(() => {
      resendTimer = null;
      if (ready) loadPending().forEach(sendEntry);
    }, resendDelay);
  }

  function onStatus(d) {
    const name = d.agent && typeof d.agent.name === "string" && d.agent.name.trim() ? d.agent.name.trim() : null;
    if (d.status === "agent") agentName = name || agentName;
    else agentName = null;
    setStatus(d.status);
  }

  /* ------------------------------------------------------------------ public API */

  const api = {
    __mend: true,
    open: function () { setOpen(true, { focus: true }); },
    close: function () { setOpen(false, {}); },
    isOpen: function () { return openState; },
  };
  window.MendWidget = api;

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
