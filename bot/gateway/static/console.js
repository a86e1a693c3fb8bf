/* Mend agent console.
 *
 * Follows bot/gateway/PROTOCOL.md. Every string that comes from the server (customer text,
 * bot/agent text, names, summaries, history) is rendered with textContent / DOM APIs only;
 * links are built with DOM APIs after an http:/https: check. Never use innerHTML here.
 */
(function () {
  "use strict";

  // ---------------------------------------------------------------- constants

  var THRESHOLDS = { annoyed: 0.35, angry: 0.62 };
  var LEVELS = ["calm", "annoyed", "angry"];
  var PLAYBOOK_STEPS = [
    "acknowledge", "apologize", "explain", "resolve_options",
    "compensate", "keep_informed", "close_loop", "learn"
  ];
  var STEP_LABELS = {
    acknowledge: "Acknowledge",
    apologize: "Apologize",
    explain: "Explain",
    resolve_options: "Offer options",
    compensate: "Compensate",
    keep_informed: "Keep informed",
    close_loop: "Close the loop",
    learn: "Learn"
  };
  var REASON_LABELS = {
    frustration: "Frustration stayed high",
    customer_request: "Customer asked for a person",
    resolution_rejected: "Customer rejected the options offered",
    bot_failed: "The bot did not understand",
    verification_failed: "Identity could not be verified",
    returning_customer: "Returning customer"
  };
  var STATUS_LABELS = {
    bot: "With the bot",
    waiting: "Waiting for a person",
    agent: "With an agent",
    closed: "Closed"
  };
  var DEFAULT_ERRORS = {
    0: "Could not reach the server. Check your connection and try again.",
    400: "The request was not accepted.",
    403: "You are not allowed to do that.",
    404: "This conversation no longer exists.",
    409: "This conversation was taken by another agent.",
    413: "The message is too long.",
    429: "Too many requests. Wait a moment and try again."
  };
  var BACKOFF_MIN_MS = 1000;
  var BACKOFF_MAX_MS = 30000;

  // ---------------------------------------------------------------- state

  var body = document.body;
  var me = {
    username: body.getAttribute("data-username") || "",
    name: body.getAttribute("data-name") || "",
    role: body.getAttribute("data-role") || ""
  };

  var state = {
    queue: { waiting: [], mine: [], live: [] },
    currentId: null,
    conv: null,          // {summary, handoff_summary, messages: Map, trend, playbook, history, suggestions}
    loadSeq: 0,
    loading: false,
    buffered: [],        // WebSocket events for the current conversation received while it loads
    drafts: new Map(),   // conversation_id -> {text, action, step}
    pending: null,       // {action, step, text} of the suggestion being edited in the composer
    unread: new Set(),
    sending: false,
    ws: null,
    wsAttempt: 0,
    wsTimer: null,
    wsCountdown: null,
    redirecting: false
  };

  // ---------------------------------------------------------------- DOM refs

  function $(selector, root) { return (root || document).querySelector(selector); }
  function byTestId(id, root) { return $('[data-testid="' + id + '"]', root); }

  var dom = {
    connection: byTestId("connection"),
    connectionText: $(".connection-text"),
    queueError: $(".queue-error"),
    lists: {
      waiting: byTestId("queue-waiting"),
      mine: byTestId("queue-mine"),
      live: byTestId("queue-live")
    },
    placeholder: $(".conversation-placeholder"),
    view: $(".conversation-view"),
    heading: $(".conversation-customer"),
    meta: $(".conversation-meta"),
    take: byTestId("take-over"),
    handBack: byTestId("hand-back"),
    handoff: byTestId("handoff-summary"),
    handoffReason: $(".handoff-reason"),
    handoffText: $(".handoff-text"),
    chart: byTestId("frustration-chart"),
    chartCanvas: $(".chart-canvas"),
    chartSummary: $(".chart-summary"),
    transcript: byTestId("transcript"),
    composer: $(".composer"),
    input: byTestId("composer-input"),
    send: byTestId("composer-send"),
    hint: $(".composer-hint"),
    error: byTestId("error"),
    origin: $(".composer-origin"),
    originText: $(".composer-origin-text"),
    originClear: $(".composer-origin-clear"),
    suggestions: $(".suggestions"),
    playbook: $(".playbook"),
    history: $(".history"),
    activity: $(".activity"),
    activityNote: $(".activity-note"),
    toasts: $(".toasts")
  };

  // ---------------------------------------------------------------- helpers

  var h = MendDom.h, s = MendDom.s, setAttrs = MendDom.setAttrs, appendChild = MendDom.appendChild,
    clear = MendDom.clear, safeUrl = MendDom.safeUrl, safeLink = MendDom.safeLink, linkified = MendDom.linkified;

  function levelOf(x) {
    var level = x && typeof x === "object" ? x.level : x;
    return LEVELS.indexOf(level) >= 0 ? level : null;
  }

  function levelForScore(score) {
    if (typeof score !== "number") return null;
    if (score >= THRESHOLDS.angry) return "angry";
    if (score >= THRESHOLDS.annoyed) return "annoyed";
    return "calm";
  }

  function scoreText(score) {
    return typeof score === "number" && isFinite(score) ? score.toFixed(2) : null;
  }

  function issueName(issue) {
    if (!issue) return null;
    if (typeof issue === "string") return issue;
    return typeof issue.name === "string" ? issue.name : null;
  }

  function customerName(summary) {
    var c = summary && summary.customer;
    return (c && c.name) ? String(c.name) : "Guest";
  }

  function humanize(code) {
    return String(code == null ? "" : code).replace(/_/g, " ");
  }

  function reasonLabel(reason) {
    if (!reason) return null;
    return REASON_LABELS[reason] || (humanize(reason).charAt(0).toUpperCase() + humanize(reason).slice(1));
  }

  function stepLabel(step) {
    if (!step) return null;
    return STEP_LABELS[step] || humanize(step);
  }

  function parseDate(value) {
    if (!value) return null;
    var d = new Date(value);
    return isNaN(d.getTime()) ? null : d;
  }

  var dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
  var timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

  function fmtDateTime(value) {
    var d = parseDate(value);
    return d ? dateTimeFormat.format(d) : (value ? String(value) : "");
  }

  function timeEl(value, format) {
    var d = parseDate(value);
    if (!d) return value ? h("span", { text: String(value) }) : null;
    return h("time", { datetime: d.toISOString(), title: dateTimeFormat.format(d) }, (format || dateTimeFormat).format(d));
  }

  /** "<1 min", "4 min", "1 h 5 min" since an ISO timestamp. */
  function elapsed(since) {
    var d = parseDate(since);
    if (!d) return null;
    var minutes = Math.max(0, Math.floor((Date.now() - d.getTime()) / 60000));
    if (minutes < 1) return "<1 min";
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    if (hours < 24) return hours + " h " + (minutes % 60) + " min";
    var days = Math.floor(hours / 24);
    return days + " d " + (hours % 24) + " h";
  }

  function fmtMoney(amount, currency) {
    if (amount === null || amount === undefined || amount === "") return "";
    var n = typeof amount === "number" ? amount : parseFloat(amount);
    if (!isFinite(n)) return String(amount);
    if (currency && /^[A-Z]{3}$/.test(currency)) {
      try {
        return new Intl.NumberFormat(undefined, { style: "currency", currency: currency }).format(n);
      } catch (e) { /* fall through */ }
    }
    return n.toFixed(2);
  }

  function truncate(text, max) {
    var str = String(text == null ? "" : text).replace(/\s+/g, " ").trim();
    return str.length > max ? str.slice(0, max - 1) + "…" : str;
  }

  function levelBadge(level, opts) {
    opts = opts || {};
    var lvl = levelOf(level) || "unknown";
    var attrs = { class: "badge level level-" + lvl, "data-level": lvl };
    if (opts.testid !== false) attrs["data-testid"] = "frustration-badge";
    if (opts.title) attrs.title = opts.title;
    return h("span", attrs, lvl === "unknown" ? "not rated" : lvl);
  }

  // ---------------------------------------------------------------- HTTP API

  function ApiError(status, message) {
    this.status = status;
    this.message = message;
  }

  function redirectToLogin() {
    if (state.redirecting) return;
    state.redirecting = true;
    var next = location.pathname + location.search;
    location.assign("/login?next=" + encodeURIComponent(next));
  }

  function api(method, path, payload) {
    var opts = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (payload !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(payload);
    }
    return fetch(path, opts).then(function (res) {
      if (res.status === 401 || (res.redirected && new URL(res.url).pathname === "/login")) {
        redirectToLogin();
        throw new ApiError(401, "Your session has ended. Please sign in again.");
      }
      return res.text().then(function (text) {
        var data = null;
        if (text) {
          try { data = JSON.parse(text); } catch (e) { data = null; }
        }
        if (!res.ok) {
          var msg = data && typeof data.error === "string" && data.error ? data.error
            : (DEFAULT_ERRORS[res.status] || "Something went wrong (HTTP " + res.status + ").");
          throw new ApiError(res.status, msg);
        }
        return data;
      });
    }, function () {
      throw new ApiError(0, DEFAULT_ERRORS[0]);
    });
  }

  function convPath(id, suffix) {
    return "/api/conversations/" + encodeURIComponent(id) + (suffix ? "/" + suffix : "");
  }

  // ---------------------------------------------------------------- errors and toasts

  function showError(message) {
    dom.error.textContent = message || "";
    dom.error.classList.toggle("is-visible", !!message);
  }

  function clearError() { showError(""); }

  function toast(text, conversationId) {
    var node = h("div", { class: "toast", "data-testid": "toast" });
    var dismiss = function () { if (node.parentNode) node.parentNode.removeChild(node); };
    node.appendChild(h("p", { class: "toast-text" }, text));
    var actions = h("div", { class: "toast-actions" });
    if (conversationId) {
      actions.appendChild(h("button", {
        type: "button", class: "btn btn-small btn-primary",
        onclick: function () { dismiss(); openConversation(conversationId, { focus: true }); }
      }, "Open"));
    }
    actions.appendChild(h("button", { type: "button", class: "btn btn-small btn-quiet", onclick: dismiss }, "Dismiss"));
    node.appendChild(actions);
    dom.toasts.appendChild(node);
    var timer = null;
    var arm = function () { timer = setTimeout(dismiss, 12000); };
    var disarm = function () { clearTimeout(timer); };
    node.addEventListener("mouseenter", disarm);
    node.addEventListener("mouseleave", arm);
    node.addEventListener("focusin", disarm);
    node.addEventListener("focusout", arm);
    arm();
  }

  // ---------------------------------------------------------------- queue

  function asList(x) { return Array.isArray(x) ? x.filter(function (i) { return i && i.conversation_id; }) : []; }

  // Guest conversations from one address beyond a few arrive folded (a flood must not bury the real ones).
  var expandedFolds = new Set();

  function asFolds(x) {
    return Array.isArray(x) ? x.filter(function (f) { return f && f.client && f.count > 0; }).map(function (f) {
      return { client: String(f.client), count: Number(f.count) || 0, conversations: asList(f.conversations) };
    }) : [];
  }

  function foldEntry(fold) {
    var open = expandedFolds.has(fold.client);
    var more = fold.count + " more guest conversation" + (fold.count === 1 ? "" : "s") + " from one address";
    var toggle = h("button", {
      type: "button", class: "queue-fold-toggle", "data-testid": "queue-fold", "data-client": fold.client,
      "aria-expanded": open ? "true" : "false",
      onclick: function () {
        if (expandedFolds.has(fold.client)) expandedFolds.delete(fold.client); else expandedFolds.add(fold.client);
        renderQueue();
      }
    }, (open ? "Hide " : "Show ") + more);
    var entry = h("li", { class: "queue-fold" }, toggle);
    if (open) {
      var inner = h("ul", { class: "queue-list queue-fold-list" });
      fold.conversations.forEach(function (summary) { inner.appendChild(queueItem(summary, "live")); });
      if (fold.conversations.length < fold.count) {
        inner.appendChild(h("li", { class: "queue-empty" }, "… and " + (fold.count - fold.conversations.length) + " older"));
      }
      entry.appendChild(inner);
    }
    return entry;
  }

  function setQueue(queue) {
    queue = queue || {};
    state.queue = { waiting: asList(queue.waiting), mine: asList(queue.mine), live: asList(queue.live),
                    folded: asFolds(queue.live_folded) };
    dom.queueError.hidden = true;
    renderQueue();
  }

  function refreshQueue() {
    return api("GET", "/api/queue").then(setQueue, function (err) {
      if (err.status === 401) return;
      dom.queueError.textContent = "Could not load the queue: " + err.message;
      dom.queueError.hidden = false;
    });
  }

  function findSummary(id) {
    var all = state.queue.waiting.concat(state.queue.mine, state.queue.live);
    (state.queue.folded || []).forEach(function (f) { all = all.concat(f.conversations); });
    for (var i = 0; i < all.length; i++) if (all[i].conversation_id === id) return all[i];
    return null;
  }

  function renderQueue() {
    var active = document.activeElement;
    var focusedId = active && active.getAttribute && active.getAttribute("data-testid") === "queue-item"
      ? active.getAttribute("data-conversation-id") : null;
    var focusedSection = focusedId ? active.getAttribute("data-section") : null;

    ["waiting", "mine", "live"].forEach(function (section) {
      var list = dom.lists[section];
      var items = state.queue[section];
      clear(list);
      items.forEach(function (summary) { list.appendChild(queueItem(summary, section)); });
      var total = items.length;
      if (section === "live") {
        (state.queue.folded || []).forEach(function (fold) { list.appendChild(foldEntry(fold)); total += fold.count; });
      }
      $('[data-count="' + section + '"]').textContent = String(total);
      $('[data-empty="' + section + '"]').hidden = total > 0;
    });

    if (focusedId) {
      var again = $('[data-testid="queue-item"][data-section="' + focusedSection + '"][data-conversation-id="' + cssEscape(focusedId) + '"]') ||
        $('[data-testid="queue-item"][data-conversation-id="' + cssEscape(focusedId) + '"]');
      if (again) again.focus();
    }
  }

  function cssEscape(value) {
    return window.CSS && CSS.escape ? CSS.escape(value) : String(value).replace(/["\\]/g, "\\$&");
  }

  function queueItem(summary, section) {
    var id = String(summary.conversation_id);
    var level = levelOf(summary.frustration);
    var score = summary.frustration ? scoreText(summary.frustration.score) : null;
    var issue = issueName(summary.issue_type);

    var btn = h("button", {
      type: "button",
      class: "queue-item" + (id === state.currentId ? " is-current" : ""),
      "data-testid": "queue-item",
      "data-conversation-id": id,
      "data-section": section,
      "data-level": level || "unknown",
      // for the queue filters (console_canned.js)
      "data-status": summary.status || "", "data-issue": issue || "", "data-guest": summary.customer ? "false" : "true",
      "data-has-messages": summary.last_message ? "true" : "false", "data-assigned": summary.assigned_agent || "",
      "aria-current": id === state.currentId ? "true" : null,
      onclick: function () { openConversation(id, { focus: true }); }
    });

    var top = h("span", { class: "qi-top" },
      h("span", { class: "qi-name" }, customerName(summary)),
      levelBadge(level, { title: score ? "Frustration score " + score : null }));
    btn.appendChild(top);

    var meta = h("span", { class: "qi-meta" });
    if (issue) meta.appendChild(h("span", { class: "chip issue", "data-issue": issue }, issue));
    if (summary.waiting_since && (section === "waiting" || summary.status === "waiting")) {
      var w = elapsed(summary.waiting_since);
      meta.appendChild(h("span", { class: "qi-wait" },
        h("span", { class: "visually-hidden" }, "waiting "),
        h("span", { class: "qi-elapsed", "data-since": summary.waiting_since }, w || "")));
    }
    if (section !== "waiting" && summary.status && summary.status !== "bot" && !(section === "mine" && summary.status === "agent")) {
      meta.appendChild(h("span", { class: "qi-status" }, STATUS_LABELS[summary.status] || humanize(summary.status)));
    }
    if (state.unread.has(id)) meta.appendChild(h("span", { class: "chip unread" }, "new message"));
    btn.appendChild(meta);

    if (summary.handoff_reason) {
      btn.appendChild(h("span", { class: "qi-reason" }, reasonLabel(summary.handoff_reason)));
    }
    if (summary.last_message) {
      btn.appendChild(h("span", { class: "qi-last" }, truncate(summary.last_message, 140)));
    }
    if (summary.preferred_agent) {
      var mine = summary.preferred_agent === me.username;
      btn.appendChild(h("span", { class: "qi-preferred" + (mine ? " is-me" : "") },
        mine ? "Returning customer: prefers you" : "Returning customer: prefers " + summary.preferred_agent));
    }
    if (section !== "mine" && summary.assigned_agent && summary.assigned_agent !== me.username) {
      btn.appendChild(h("span", { class: "qi-assigned" }, "Handled by " + summary.assigned_agent));
    }
    return h("li", { class: "queue-entry" }, btn);
  }

  function tickTimes() {
    var nodes = document.querySelectorAll("[data-since]");
    for (var i = 0; i < nodes.length; i++) {
      var txt = elapsed(nodes[i].getAttribute("data-since"));
      if (txt && nodes[i].textContent !== txt) nodes[i].textContent = txt;
    }
  }

  // ---------------------------------------------------------------- conversation loading

  function normalizeConversation(data) {
    data = data || {};
    var messages = new Map();
    (Array.isArray(data.messages) ? data.messages : []).forEach(function (m) {
      if (m && m.id !== undefined && m.id !== null) messages.set(String(m.id), m);
    });
    return {
      summary: data.summary || null,
      handoff_summary: data.handoff_summary || null,
      messages: messages,
      trend: Array.isArray(data.frustration_trend) ? data.frustration_trend : [],
      playbook: Array.isArray(data.playbook) ? data.playbook : [],
      history: data.history || null,
      suggestions: Array.isArray(data.suggestions) ? data.suggestions : [],
      activity: mergeActivity(new Map(), data.activity),
      activityLive: data.activity_live === true,
      activityError: typeof data.activity_error === "string" ? data.activity_error : ""
    };
  }

  function isMine(summary) {
    return !!summary && !!me.username && summary.assigned_agent === me.username && summary.status !== "closed";
  }

  function currentSummary() { return state.conv && state.conv.summary; }

  function saveDraft() {
    if (!state.currentId) return;
    var text = dom.input.value;
    if (text || state.pending) {
      state.drafts.set(state.currentId, { text: text, pending: state.pending });
    } else {
      state.drafts.delete(state.currentId);
    }
  }

  function restoreDraft(id) {
    var draft = state.drafts.get(id);
    dom.input.value = draft ? draft.text : "";
    setPending(draft ? draft.pending : null);
  }

  function openConversation(id, opts) {
    opts = opts || {};
    id = String(id);
    if (state.currentId !== id) {
      saveDraft();
      state.currentId = id;
      state.conv = null;
      state.unread.delete(id);
      clearError();
      restoreDraft(id);
      showLoading(id);
      try { history.replaceState(null, "", "#conversation=" + encodeURIComponent(id)); } catch (e) { /* ignore */ }
      renderQueue();
    }
    sendWatch(id);
    var done = loadConversation(id);
    if (opts.focus && window.matchMedia && window.matchMedia("(max-width: 760px)").matches) {
      done.then(function () { if (state.currentId === id) dom.heading.focus(); });
    }
    return done;
  }

  function showLoading(id) {
    dom.placeholder.hidden = true;
    dom.view.hidden = false;
    var summary = findSummary(id);
    dom.heading.textContent = summary ? customerName(summary) : "Loading…";
    dom.meta.textContent = "Loading conversation…";
    clear(dom.transcript);
    clear(dom.chartCanvas);
    dom.chartSummary.textContent = "";
    dom.handoff.hidden = true;
    dom.take.hidden = true;
    dom.handBack.hidden = true;
    setComposerEnabled(false, "Loading…");
    renderSuggestions([]);
    renderPlaybook([]);
    renderActivity(null);
    clear(dom.history);
  }

  function loadConversation(id) {
    var seq = ++state.loadSeq;
    state.loading = true;
    state.buffered = [];
    return api("GET", convPath(id)).then(function (data) {
      if (seq !== state.loadSeq || state.currentId !== id) return;
      state.conv = normalizeConversation(data);
      state.loading = false;
      renderConversation();
      var buffered = state.buffered;
      state.buffered = [];
      buffered.forEach(function (item) { item[0](item[1]); });
    }, function (err) {
      if (seq !== state.loadSeq || state.currentId !== id) return;
      state.loading = false;
      state.buffered = [];
      if (err.status === 401) return;
      if (!state.conv) {
        dom.meta.textContent = "Could not load this conversation.";
      }
      showError(err.message);
    });
  }

  // ---------------------------------------------------------------- conversation rendering

  function renderConversation() {
    var conv = state.conv;
    if (!conv) return;
    dom.placeholder.hidden = true;
    dom.view.hidden = false;
    renderHeader();
    renderHandoff();
    renderChart();
    renderTranscript();
    renderControls();
    renderSuggestions(conv.suggestions);
    renderPlaybook(conv.playbook);
    renderActivity(conv);
    renderHistory(conv.history);
    emit("conversation", { id: state.currentId, summary: conv.summary });
  }

  function renderHeader() {
    var summary = currentSummary() || findSummary(state.currentId) || {};
    dom.heading.textContent = customerName(summary);
    clear(dom.meta);
    var status = summary.status;
    var statusText = STATUS_LABELS[status] || (status ? humanize(status) : "Unknown status");
    if (status === "agent" && summary.assigned_agent) {
      statusText = summary.assigned_agent === me.username ? "With you" : "With " + summary.assigned_agent;
    }
    dom.meta.appendChild(h("span", { class: "chip status status-" + (status || "unknown"), "data-status": status || "" }, statusText));
    var issue = issueName(summary.issue_type);
    if (issue) {
      var conf = summary.issue_type && typeof summary.issue_type.confidence === "number"
        ? " (" + Math.round(summary.issue_type.confidence * 100) + "%)" : "";
      dom.meta.appendChild(h("span", { class: "chip issue", "data-issue": issue }, "Issue: " + issue + conf));
    }
    if (summary.frustration && levelOf(summary.frustration)) {
      dom.meta.appendChild(h("span", { class: "meta-level" }, "Frustration ",
        levelBadge(summary.frustration, { testid: false }),
        scoreText(summary.frustration.score) ? " " + scoreText(summary.frustration.score) : ""));
    }
    if (summary.status === "waiting" && summary.waiting_since) {
      dom.meta.appendChild(h("span", { class: "meta-wait" }, "waiting ",
        h("span", { "data-since": summary.waiting_since }, elapsed(summary.waiting_since) || "")));
    }
    if (summary.customer && summary.customer.id) {
      dom.meta.appendChild(h("span", { class: "meta-id" }, "Customer " + summary.customer.id));
    }
  }

  function renderHandoff() {
    var conv = state.conv;
    var summary = conv.summary || {};
    var text = conv.handoff_summary;
    if (!text) { dom.handoff.hidden = true; return; }
    dom.handoff.hidden = false;
    dom.handoffReason.textContent = summary.handoff_reason ? "Reason: " + reasonLabel(summary.handoff_reason) : "";
    dom.handoffReason.hidden = !summary.handoff_reason;
    dom.handoffText.textContent = String(text);
  }

  function renderControls() {
    var summary = currentSummary();
    if (!summary) {
      dom.take.hidden = true;
      dom.handBack.hidden = true;
      setComposerEnabled(false, "Loading…");
      return;
    }
    var mine = isMine(summary);
    dom.take.hidden = mine || !(summary.status === "bot" || summary.status === "waiting");
    dom.handBack.hidden = !mine;
    var hint;
    if (mine) hint = "Ctrl+Enter sends. The customer sees your name.";
    else if (summary.status === "closed") hint = "This conversation is closed.";
    else if (summary.assigned_agent) hint = "Handled by " + summary.assigned_agent + ". Only they can reply.";
    else hint = "Take over the conversation to reply.";
    setComposerEnabled(mine, hint);
    updateSuggestionButtons();
  }

  function setComposerEnabled(enabled, hint) {
    dom.input.disabled = !enabled;
    dom.send.disabled = !enabled || state.sending;
    dom.hint.textContent = hint || "";
    dom.composer.classList.toggle("is-disabled", !enabled);
  }

  // ---- transcript

  function senderLabel(msg) {
    switch (msg.sender) {
      case "customer": return customerName(currentSummary());
      case "bot": return "Mend bot";
      case "agent": return msg.agent_name ? String(msg.agent_name) : "Agent";
      case "system": return "System";
      default: return humanize(msg.sender || "unknown");
    }
  }

  function messageNode(msg) {
    var sender = ["customer", "bot", "agent", "system"].indexOf(msg.sender) >= 0 ? msg.sender : "system";
    var li = h("li", {
      class: "message message-" + sender,
      "data-testid": "message",
      "data-sender": sender,
      "data-message-id": String(msg.id)
    });
    var head = h("p", { class: "message-head" },
      h("span", { class: "message-sender" }, senderLabel(msg)),
      msg.created_at ? timeEl(msg.created_at, timeFormat) : null);
    li.appendChild(head);

    var text = h("p", { class: "message-text" });
    if (sender === "customer") text.textContent = String(msg.text == null ? "" : msg.text);
    else text.appendChild(linkified(msg.text));
    li.appendChild(text);

    if (Array.isArray(msg.buttons) && msg.buttons.length) {
      var offered = h("ul", { class: "message-buttons", "aria-label": "Quick replies offered" });
      msg.buttons.forEach(function (b) {
        if (b && b.title) offered.appendChild(h("li", { class: "chip quick-reply" }, String(b.title)));
      });
      li.appendChild(offered);
    }

    if (sender === "customer") {
      var f = msg.frustration;
      var info = h("div", { class: "message-frustration" });
      if (f && levelOf(f)) {
        info.appendChild(levelBadge(f));
        var sc = scoreText(f.score);
        if (sc) info.appendChild(h("span", { class: "score", "data-testid": "frustration-score" }, "score " + sc));
        if (f.source === "tap") {
          // A tapped button has no tone of voice: the reading comes from the words on the button.
          info.appendChild(h("span", { class: "reading-source", "data-testid": "tap-reading",
            title: "Read from the button the customer tapped" }, "(tapped button)"));
        }
        if (Array.isArray(f.cues) && f.cues.length) {
          var cues = h("ul", { class: "cues", "aria-label": "Frustration cues" });
          f.cues.forEach(function (cue) {
            var txt = String(cue);
            var kind = txt.split(":")[0].trim().replace(/\s+/g, "_").toLowerCase();
            cues.appendChild(h("li", { class: "chip cue", "data-testid": "cue", "data-cue": kind }, txt));
          });
          info.appendChild(cues);
        }
        if (Array.isArray(f.calm_cues) && f.calm_cues.length) {
          // Evidence of calm (thanks, please, a "Yes, all good" tap): never a reason for frustration.
          var calm = h("ul", { class: "cues calm-cues", "aria-label": "Signs of calm" });
          f.calm_cues.forEach(function (cue) {
            var txt = String(cue);
            var kind = txt.split(":")[0].trim().replace(/\s+/g, "_").toLowerCase();
            calm.appendChild(h("li", { class: "chip cue calm-cue", "data-testid": "calm-cue", "data-cue": kind },
              "calm \u00b7 " + txt));
          });
          info.appendChild(calm);
        }
      } else {
        info.appendChild(h("span", { class: "pending-analysis" }, "frustration not rated yet"));
      }
      var issue = issueName(msg.issue_type);
      if (issue) info.appendChild(h("span", { class: "chip issue", "data-issue": issue }, issue));
      li.appendChild(info);
    }
    return li;
  }

  function compareIds(a, b) {
    var na = Number(a), nb = Number(b);
    if (isFinite(na) && isFinite(nb)) return na - nb;
    return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
  }

  function nearBottom(node) {
    return node.scrollHeight - node.scrollTop - node.clientHeight < 80;
  }

  function scrollTranscriptToEnd() {
    var scroller = dom.transcript;
    scroller.scrollTop = scroller.scrollHeight;
    // once more after layout settles (chart, composer and panels render in the same turn)
    requestAnimationFrame(function () { scroller.scrollTop = scroller.scrollHeight; });
  }

  function renderTranscript() {
    var conv = state.conv;
    dom.transcript.setAttribute("aria-busy", "true");
    clear(dom.transcript);
    var ids = Array.from(conv.messages.keys()).sort(compareIds);
    if (!ids.length) {
      dom.transcript.appendChild(h("li", { class: "transcript-empty" }, "No messages yet."));
    }
    ids.forEach(function (id) { dom.transcript.appendChild(messageNode(conv.messages.get(id))); });
    dom.transcript.removeAttribute("aria-busy");
    scrollTranscriptToEnd();
  }

  function upsertMessage(msg) {
    if (!msg || msg.id === undefined || msg.id === null) return;
    var conv = state.conv;
    var id = String(msg.id);
    var stick = nearBottom(dom.transcript);
    conv.messages.set(id, msg);
    var empty = $(".transcript-empty", dom.transcript);
    if (empty) empty.parentNode.removeChild(empty);
    var node = messageNode(msg);
    var existing = dom.transcript.querySelector('[data-message-id="' + cssEscape(id) + '"]');
    if (existing) {
      dom.transcript.replaceChild(node, existing);
      if (stick) scrollTranscriptToEnd();  // e.g. the rating arrived: the message grew
      return;
    }
    var after = null;
    var children = dom.transcript.children;
    for (var i = 0; i < children.length; i++) {
      var other = children[i].getAttribute("data-message-id");
      if (other !== null && compareIds(other, id) > 0) { after = children[i]; break; }
    }
    dom.transcript.insertBefore(node, after);
    if (stick || msg.sender === "agent") scrollTranscriptToEnd();
  }

  // ---- frustration chart

  function trendDirection(trend) {
    if (trend.length < 2) return "steady";
    var last = trend[trend.length - 1].score;
    var prev = trend[trend.length - 2].score;
    if (typeof last !== "number" || typeof prev !== "number") return "steady";
    var delta = last - prev;
    if (delta > 0.05) return "rising";
    if (delta < -0.05) return "falling";
    return "steady";
  }

  function renderChart() {
    var conv = state.conv;
    var trend = conv.trend.filter(function (p) { return p && typeof p.score === "number" && isFinite(p.score); });
    clear(dom.chartCanvas);
    clear(dom.chartSummary);

    var summary = conv.summary || {};
    var last = trend.length ? trend[trend.length - 1] : null;
    // The conversation's level (the tracker's, as in the header and the queue); the dots are each
    // message's own reading, so the two never disagree in front of the agent.
    var level = levelOf(summary.frustration) || (last && (levelOf(last) || levelForScore(last.score)));

    if (!trend.length) {
      dom.chart.setAttribute("data-level", level || "unknown");
      dom.chartSummary.appendChild(h("span", { class: "chart-summary-main" },
        level ? "Frustration: " + level + ", no trend yet" : "Frustration: no customer messages rated yet"));
      return;
    }

    var direction = trendDirection(trend);
    dom.chart.setAttribute("data-level", level || "unknown");
    dom.chart.setAttribute("data-direction", direction);
    var peak = trend.reduce(function (m, p) { return Math.max(m, p.score); }, 0);
    dom.chartSummary.appendChild(h("span", { class: "chart-summary-main" }, "Frustration: " + (level || "unknown") + ", " + direction));
    dom.chartSummary.appendChild(h("span", { class: "chart-summary-detail" },
      " · last message " + scoreText(last.score) + ", peak " + scoreText(peak) + " over " + trend.length +
      (trend.length === 1 ? " rated message" : " rated messages") +
      " (annoyed from " + THRESHOLDS.annoyed + ", angry from " + THRESHOLDS.angry + ")"));

    // drawn at the canvas' pixel width so text and dots keep their size; redrawn on resize
    var W = Math.max(320, Math.round(dom.chartCanvas.clientWidth || 560)), H = 104;
    var m = { l: 22, r: 84, t: 6, b: 8 };
    var pw = W - m.l - m.r, ph = H - m.t - m.b;
    var n = trend.length;
    var x = function (i) { return n === 1 ? m.l + pw / 2 : m.l + (i * pw) / (n - 1); };
    var y = function (v) { return m.t + (1 - Math.min(1, Math.max(0, v))) * ph; };
    var r = function (v) { return Math.round(v * 10) / 10; };

    var svg = s("svg", {
      class: "chart-svg", viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-labelledby": "chart-summary", focusable: "false"
    });
    // zones
    svg.appendChild(s("rect", { class: "zone zone-angry", x: m.l, y: y(1), width: pw, height: r(y(THRESHOLDS.angry) - y(1)) }));
    svg.appendChild(s("rect", { class: "zone zone-annoyed", x: m.l, y: r(y(THRESHOLDS.angry)), width: pw, height: r(y(THRESHOLDS.annoyed) - y(THRESHOLDS.angry)) }));
    svg.appendChild(s("rect", { class: "zone zone-calm", x: m.l, y: r(y(THRESHOLDS.annoyed)), width: pw, height: r(y(0) - y(THRESHOLDS.annoyed)) }));
    // axis
    svg.appendChild(s("line", { class: "axis", x1: m.l, x2: m.l + pw, y1: y(0), y2: y(0) }));
    svg.appendChild(s("line", { class: "axis", x1: m.l, x2: m.l, y1: y(0), y2: y(1) }));
    svg.appendChild(s("text", { class: "tick", x: m.l - 4, y: y(0) + 4, "text-anchor": "end" }, "0"));
    svg.appendChild(s("text", { class: "tick", x: m.l - 4, y: y(1) + 8, "text-anchor": "end" }, "1"));
    // thresholds
    [["annoyed", THRESHOLDS.annoyed], ["angry", THRESHOLDS.angry]].forEach(function (t) {
      svg.appendChild(s("line", {
        class: "threshold threshold-" + t[0], "data-threshold": t[1],
        x1: m.l, x2: m.l + pw, y1: r(y(t[1])), y2: r(y(t[1])), "stroke-dasharray": "5 4"
      }));
      svg.appendChild(s("text", { class: "threshold-label", x: m.l + pw + 6, y: r(y(t[1])) + 4 }, t[0] + " " + t[1]));
    });
    // step line
    var d = "M" + r(x(0)) + " " + r(y(trend[0].score));
    if (n === 1) {
      d = "M" + r(x(0) - 12) + " " + r(y(trend[0].score)) + " H" + r(x(0) + 12);
    } else {
      for (var i = 1; i < n; i++) d += " H" + r(x(i)) + " V" + r(y(trend[i].score));
    }
    svg.appendChild(s("path", { class: "trend-line", d: d, fill: "none" }));
    // points
    trend.forEach(function (p, i) {
      var lvl = levelOf(p) || levelForScore(p.score);
      svg.appendChild(s("circle", {
        class: "point level-" + lvl, cx: r(x(i)), cy: r(y(p.score)), r: i === n - 1 ? 5 : 3.5,
        "data-message-id": p.message_id
      }, s("title", null, "Message " + (p.message_id != null ? p.message_id : i + 1) + ": " + lvl + " " + scoreText(p.score))));
    });
    dom.chartCanvas.appendChild(svg);
  }

  // ---- suggestions

  function renderSuggestions(list) {
    clear(dom.suggestions);
    if (!state.currentId) {
      dom.suggestions.appendChild(h("p", { class: "panel-empty" }, "Open a conversation to see suggestions."));
      return;
    }
    var top = (Array.isArray(list) ? list : [])
      .filter(function (sg) { return sg && typeof sg.text === "string" && sg.text; })
      .slice(0, 3);  // already ranked for the moment by the server (bot/assist/ranker.py)

    if (!top.length) {
      dom.suggestions.appendChild(h("p", { class: "panel-empty" }, "No suggestions right now."));
      return;
    }
    var ol = h("ol", { class: "suggestion-list" });
    top.forEach(function (sg, i) { ol.appendChild(suggestionNode(sg, i)); });
    dom.suggestions.appendChild(ol);
    var hint = h("p", { class: "suggestion-hint", hidden: isMine(currentSummary()) ? true : null },
      "Take over the conversation to use a suggestion.");
    dom.suggestions.appendChild(hint);
    updateSuggestionButtons();
  }

  function suggestionNode(sg, index) {
    var textId = "suggestion-text-" + index;
    var li = h("li", { class: "suggestion", "data-testid": "suggestion", "data-action": sg.action || "" });
    li.appendChild(h("p", { class: "suggestion-text", id: textId }, sg.text));
    var meta = h("p", { class: "suggestion-meta" });
    if (sg.step) meta.appendChild(h("span", { class: "chip step", "data-step": sg.step }, stepLabel(sg.step)));
    if (typeof sg.confidence === "number" && isFinite(sg.confidence)) {
      meta.appendChild(h("span", { class: "confidence" }, Math.round(sg.confidence * 100) + "%",
        h("span", { class: "visually-hidden" }, " confidence")));
    }
    var SOURCES = { policy: "from the policy", library: "from the reply library", learned: "sent by agents before" };
    if (SOURCES[sg.source]) meta.appendChild(h("span", { class: "chip source", "data-source": sg.source }, SOURCES[sg.source]));
    li.appendChild(meta);
    if (typeof sg.why === "string" && sg.why) {
      li.appendChild(h("p", { class: "suggestion-why", "data-testid": "suggestion-why" }, "Why: " + sg.why));
    }
    if (Array.isArray(sg.buttons) && sg.buttons.length) {
      var titles = sg.buttons.map(function (b) { return b && b.title ? String(b.title) : null; }).filter(Boolean);
      if (titles.length) li.appendChild(h("p", { class: "suggestion-buttons" }, "The bot would also offer: " + titles.join(" · ")));
    }
    var actions = h("div", { class: "suggestion-actions" });
    var send = h("button", {
      type: "button", class: "btn btn-small btn-primary", "data-testid": "suggestion-send",
      "aria-describedby": textId
    }, "Send");
    var edit = h("button", {
      type: "button", class: "btn btn-small", "data-testid": "suggestion-edit",
      "aria-describedby": textId
    }, "Edit");
    send.addEventListener("click", function () {
      sendReply(sg.text, sg.action || null, [send, edit], sg.id);
    });
    edit.addEventListener("click", function () {
      dom.input.value = sg.text;
      setPending({ action: sg.action || null, step: sg.step || null, text: sg.text, id: sg.id });
      clearError();
      dom.input.focus();
      dom.input.setSelectionRange(dom.input.value.length, dom.input.value.length);
    });
    actions.appendChild(send);
    actions.appendChild(edit);
    li.appendChild(actions);
    return li;
  }

  function updateSuggestionButtons() {
    var mine = isMine(currentSummary());
    var buttons = dom.suggestions.querySelectorAll('[data-testid="suggestion-send"], [data-testid="suggestion-edit"]');
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = !mine || state.sending;
    var hint = $(".suggestion-hint", dom.suggestions);
    if (hint) hint.hidden = mine;
  }

  function setPending(pending) {
    state.pending = pending && (pending.action || typeof pending.id === "number") ? pending : null;
    dom.origin.hidden = !state.pending;
    if (state.pending && !state.pending.action) {
      dom.originText.textContent = "Based on a suggestion" +
        (state.pending.step ? " (" + stepLabel(state.pending.step) + ")" : "") + ": edit it freely before sending.";
    } else if (state.pending) {
      dom.originText.textContent = "Based on a suggestion" +
        (state.pending.step ? " (" + stepLabel(state.pending.step) + ")" : "") +
        ": the bot will record the “" + state.pending.action + "” step even if you change the text.";
    } else {
      dom.originText.textContent = "";
    }
  }

  // ---- sending

  function sendReply(text, action, extraButtons, suggestionId) {
    var id = state.currentId;
    if (!id || state.sending) return Promise.resolve(false);
    text = String(text || "").trim();
    if (!text) {
      showError("Write a message before sending.");
      dom.input.focus();
      return Promise.resolve(false);
    }
    state.sending = true;
    dom.send.disabled = true;
    updateSuggestionButtons();
    (extraButtons || []).forEach(function (b) { b.disabled = true; });
    clearError();
    var body = { text: text, action: action || null };
    if (typeof suggestionId === "number") body.suggestion_id = suggestionId;
    return api("POST", convPath(id, "send"), body).then(function (data) {
      var msg = data && data.message && typeof data.message === "object" ? data.message
        : (data && data.id !== undefined && data.sender ? data : null);
      if (msg && state.currentId === id && state.conv && !state.loading) upsertMessage(msg);
      return true;
    }, function (err) {
      if (state.currentId === id) showError(err.message);
      if (err.status === 409 || err.status === 403) {
        refreshQueue();
        if (state.currentId === id) loadConversation(id);
      }
      return false;
    }).then(function (ok) {
      state.sending = false;
      renderControls();
      return ok;
    });
  }

  function onComposerSubmit(ev) {
    ev.preventDefault();
    if (dom.input.disabled) return;
    var id = state.currentId;
    var action = state.pending ? state.pending.action : null;
    sendReply(dom.input.value, action, null, state.pending ? state.pending.id : null).then(function (ok) {
      if (ok && state.currentId === id) {
        dom.input.value = "";
        setPending(null);
        state.drafts.delete(id);
        dom.input.focus();
      }
    });
  }

  // ---- take over / hand back

  function applySummaryFromResponse(data) {
    var summary = data && (data.summary || (data.conversation_id && data.status ? data : null));
    if (summary && state.conv && summary.conversation_id === state.currentId) state.conv.summary = summary;
  }

  function takeOver() {
    var id = state.currentId;
    if (!id) return;
    dom.take.disabled = true;
    clearError();
    api("POST", convPath(id, "take")).then(function (data) {
      if (state.currentId !== id || !state.conv) return;
      applySummaryFromResponse(data);
      var summary = state.conv.summary || {};
      if (!isMine(summary)) {
        summary.assigned_agent = me.username;
        summary.status = "agent";
        state.conv.summary = summary;
      }
      renderHeader();
      renderControls();
      dom.input.focus();
      refreshQueue();
      loadConversation(id);
    }, function (err) {
      if (state.currentId === id) showError(err.message);
      if (err.status === 409 || err.status === 404) {
        refreshQueue();
        if (state.currentId === id) loadConversation(id);
      }
    }).then(function () { dom.take.disabled = false; });
  }

  function handBack() {
    var id = state.currentId;
    if (!id) return;
    dom.handBack.disabled = true;
    clearError();
    api("POST", convPath(id, "handback")).then(function (data) {
      if (state.currentId !== id || !state.conv) return;
      applySummaryFromResponse(data);
      var summary = state.conv.summary || {};
      if (isMine(summary)) {
        summary.assigned_agent = null;
        summary.status = "bot";
      }
      setPending(null);
      renderHeader();
      renderControls();
      (dom.take.hidden ? dom.heading : dom.take).focus();
      refreshQueue();
      loadConversation(id);
    }, function (err) {
      if (state.currentId === id) showError(err.message);
    }).then(function () { dom.handBack.disabled = false; });
  }

  // ---- playbook

  function renderPlaybook(playbook) {
    clear(dom.playbook);
    // always the whole playbook in its canonical order; the server's list says which are done
    var done = {};
    var extra = [];
    (Array.isArray(playbook) ? playbook : []).forEach(function (p) {
      if (!p || !p.step) return;
      done[p.step] = p.done === true;
      if (PLAYBOOK_STEPS.indexOf(p.step) < 0 && extra.indexOf(p.step) < 0) extra.push(p.step);
    });
    var steps = PLAYBOOK_STEPS.concat(extra).map(function (step) { return { step: step, done: done[step] === true }; });
    steps.forEach(function (p) {
      var done = p.done === true;
      dom.playbook.appendChild(h("li", {
        class: "playbook-step" + (done ? " is-done" : ""),
        "data-testid": "playbook-step",
        "data-step": p.step,
        "data-done": done ? "true" : "false"
      },
        h("span", { class: "check", "aria-hidden": "true" }, done ? "✓" : ""),
        h("span", { class: "step-label" }, stepLabel(p.step)),
        h("span", { class: "visually-hidden" }, done ? " (done)" : " (not yet)")));
    });
  }

  // ---- what the bot did (Rasa's events: from the tracker on open, then pushed from the event broker)

  var ACTIVITY_SHOWN = 100;

  function mergeActivity(map, items) {
    (Array.isArray(items) ? items : []).forEach(function (item) {
      if (!item || typeof item.key !== "string" || typeof item.text !== "string" || typeof item.at !== "number") return;
      map.set(item.key, item);  // a line the stream delivers twice is shown once
    });
    return map;
  }

  function renderActivity(conv) {
    clear(dom.activity);
    var note = conv ? conv.activityError : "";
    var items = conv ? Array.from(conv.activity.values()) : [];
    items.sort(function (a, b) { return a.at - b.at; });
    // A slot set again to the value it had (an action confirming the tracking) says nothing new.
    var lastSlot = {};
    items = items.filter(function (item) {
      if (item.kind !== "slot" || !item.name) return true;
      var repeat = lastSlot[item.name] === item.text;
      lastSlot[item.name] = item.text;
      return !repeat;
    });
    items.reverse();  // newest first
    items.slice(0, ACTIVITY_SHOWN).forEach(function (item) {
      var kind = String(item.kind || "").replace(/[^a-z_-]/gi, "");
      var when = new Date(item.at * 1000);
      dom.activity.appendChild(h("li", { class: "activity-item kind-" + kind, "data-testid": "activity-item",
                                          "data-kind": kind, "data-name": item.name ? String(item.name) : "" },
        h("time", { datetime: when.toISOString(), title: dateTimeFormat.format(when) }, timeFormat.format(when)),
        h("span", { class: "what" }, item.text),
        item.why ? h("span", { class: "why" }, "chosen by " + String(item.why)) : null));
    });
    if (conv && !items.length && !note) note = "Nothing yet.";
    dom.activityNote.textContent = note || "";
    dom.activityNote.hidden = !note;
  }

  function applyActivity(ev) {
    mergeActivity(state.conv.activity, ev.items);
    renderActivity(state.conv);
  }

  var activityReload = null;

  function reloadActivity() {
    // No broker feed on this gateway (one process, or RabbitMQ down): read the list from the tracker again.
    var id = state.currentId;
    if (activityReload) clearTimeout(activityReload);
    activityReload = setTimeout(function () {
      activityReload = null;
      api("GET", convPath(id, "activity")).then(function (data) {
        if (state.currentId !== id || !state.conv) return;
        mergeActivity(state.conv.activity, data && data.activity);
        state.conv.activityLive = !!(data && data.activity_live === true);
        state.conv.activityError = data && typeof data.activity_error === "string" ? data.activity_error : "";
        renderActivity(state.conv);
      }, function () { /* the next state change tries again */ });
    }, 300);
  }

  // ---- customer history

  var SHIPMENT_LABELS = {
    carrier: "Carrier", tracking_number: "Tracking", status: "Status", status_detail: "Detail",
    shipped_at: "Shipped", promised_at: "Promised", delivered_at: "Delivered", eta: "Expected"
  };

  function dl(pairs, cls) {
    var list = h("dl", { class: "kv" + (cls ? " " + cls : "") });
    pairs.forEach(function (pair) {
      if (pair[1] === null || pair[1] === undefined || pair[1] === "") return;
      list.appendChild(h("dt", null, pair[0]));
      list.appendChild(h("dd", null, pair[1]));
    });
    return list;
  }

  function shipmentNode(shipment) {
    if (!shipment || typeof shipment !== "object") return null;
    var pairs = [];
    Object.keys(shipment).forEach(function (key) {
      var value = shipment[key];
      if (value === null || value === undefined || value === "" || typeof value === "object") return;
      var label = SHIPMENT_LABELS[key] || humanize(key);
      var rendered;
      if (/_at$/.test(key) || key === "eta") rendered = timeEl(value);
      else if (typeof value === "string" && /^https?:\/\//i.test(value)) rendered = safeLink(value);
      else rendered = String(value);
      pairs.push([label, rendered]);
    });
    if (!pairs.length) return null;
    return h("div", { class: "shipment" }, h("p", { class: "sub" }, "Shipment"), dl(pairs));
  }

  function renderHistory(history) {
    clear(dom.history);
    if (!history) {
      dom.history.appendChild(h("p", { class: "panel-empty" },
        "No case history: the customer is not identified (guest) or has no record yet."));
      return;
    }
    var c = history.customer || {};
    dom.history.appendChild(h("h3", null, "Customer"));
    dom.history.appendChild(dl([
      ["Name", c.name ? String(c.name) : null],
      ["ID", c.id ? String(c.id) : null],
      ["Email", c.email ? String(c.email) : null],
      ["Account", c.account_status ? h("span", { class: "chip account account-" + String(c.account_status).replace(/[^a-z_-]/gi, "") }, String(c.account_status)) : null]
    ]));

    var orders = Array.isArray(history.orders) ? history.orders : [];
    dom.history.appendChild(h("h3", null, "Orders (" + orders.length + ")"));
    if (!orders.length) dom.history.appendChild(h("p", { class: "panel-empty" }, "No orders."));
    else {
      var ol = h("ul", { class: "orders" });
      orders.forEach(function (o) {
        if (!o) return;
        ol.appendChild(h("li", { class: "order", "data-order-id": o.id || "" },
          h("p", { class: "order-title" },
            h("strong", null, String(o.id || "order")), " · ", String(o.item || ""),
            o.total !== undefined && o.total !== null ? " · " + fmtMoney(o.total, o.currency) : ""),
          h("p", { class: "order-meta" },
            o.status ? h("span", { class: "chip order-status" }, humanize(o.status)) : null,
            o.placed_at ? [" placed ", timeEl(o.placed_at, dateFormat)] : null),
          shipmentNode(o.shipment)));
      });
      dom.history.appendChild(ol);
    }

    var cases = Array.isArray(history.cases) ? history.cases : [];
    dom.history.appendChild(h("h3", null, "Earlier cases (" + cases.length + ")"));
    if (!cases.length) dom.history.appendChild(h("p", { class: "panel-empty" }, "No earlier cases."));
    cases.forEach(function (cs) {
      if (cs) dom.history.appendChild(caseNode(cs));
    });
  }

  function caseNode(cs) {
    var open = cs.status !== "resolved" && cs.status !== "closed";
    var details = h("details", { class: "case", "data-case-id": cs.id || "", open: open ? true : null });
    details.appendChild(h("summary", null,
      h("strong", null, String(cs.id || "case")),
      cs.issue_type ? " · " + issueName(cs.issue_type) : "",
      " · ", h("span", { class: "chip case-status case-" + String(cs.status || "").replace(/[^a-z_-]/gi, "") }, humanize(cs.status || "unknown"))));
    if (cs.summary) details.appendChild(h("p", { class: "case-summary" }, String(cs.summary)));
    if (cs.opened_at) details.appendChild(h("p", { class: "case-opened" }, "Opened ", timeEl(cs.opened_at)));

    var contacts = Array.isArray(cs.contacts) ? cs.contacts : [];
    if (contacts.length) {
      details.appendChild(h("p", { class: "sub" }, "Contacts (" + contacts.length + ")"));
      var ol = h("ol", { class: "contacts" });
      contacts.forEach(function (ct) {
        if (!ct) return;
        ol.appendChild(h("li", { class: "contact" },
          h("p", { class: "contact-meta" },
            ct.at ? timeEl(ct.at) : null,
            ct.channel ? " · " + humanize(ct.channel) : "",
            ct.handled_by ? " · by " + ct.handled_by : "",
            ct.frustration_level ? [" · ", levelBadge(ct.frustration_level, { testid: false })] : null),
          ct.summary ? h("p", { class: "contact-summary" }, String(ct.summary)) : null));
      });
      details.appendChild(ol);
    }

    var resolutions = Array.isArray(cs.resolutions) ? cs.resolutions : [];
    if (resolutions.length) {
      details.appendChild(h("p", { class: "sub" }, "Resolutions"));
      var rl = h("ul", { class: "resolutions" });
      resolutions.forEach(function (r) {
        if (!r) return;
        rl.appendChild(h("li", null,
          h("strong", null, humanize(r.kind || "resolution")),
          r.detail ? " — " + r.detail : "",
          r.at ? [" (", timeEl(r.at, dateFormat), ")"] : null));
      });
      details.appendChild(rl);
    }

    var comps = Array.isArray(cs.compensations) ? cs.compensations : [];
    if (comps.length) {
      details.appendChild(h("p", { class: "sub" }, "Compensations"));
      var cl = h("ul", { class: "compensations" });
      comps.forEach(function (cp) {
        if (!cp) return;
        cl.appendChild(h("li", null,
          h("strong", null, humanize(cp.kind || "compensation")),
          cp.amount !== undefined && cp.amount !== null ? " " + fmtMoney(cp.amount, cp.currency) : "",
          cp.at ? [" (", timeEl(cp.at, dateFormat), ")"] : null));
      });
      details.appendChild(cl);
    }

    var promises = Array.isArray(cs.follow_ups) ? cs.follow_ups : [];
    if (promises.length) {
      details.appendChild(h("p", { class: "sub" }, "Promised check-ins"));
      var pl = h("ul", { class: "promises" });
      promises.forEach(function (p) { if (p) pl.appendChild(promiseNode(p)); });
      details.appendChild(pl);
    }
    return details;
  }

  // A promised check-in and where it stands (see PROTOCOL.md, "Promise").
  var PROMISE_STATES = {
    scheduled: "Scheduled", overdue: "Overdue", sent: "Sent, no answer yet",
    answered: "Answered", with_agent: "Due while with an agent"
  };
  var PROMISE_OUTCOMES = { fixed: "customer says it's fixed", not_fixed: "customer says not yet" };

  function promiseNode(p) {
    var st = PROMISE_STATES.hasOwnProperty(p.state) ? p.state : "scheduled";
    return h("li", { class: "promise", "data-state": st, "data-testid": "promise" },
      h("span", { class: "chip promise-state promise-" + st }, PROMISE_STATES[st]),
      " due ", p.due_at ? timeEl(p.due_at) : "—",
      p.sent_at ? [" · sent ", timeEl(p.sent_at)] : null,
      PROMISE_OUTCOMES.hasOwnProperty(p.outcome) ? " · " + PROMISE_OUTCOMES[p.outcome] : null,
      st === "overdue" && p.attempts ? " · " + p.attempts + " failed attempt" + (p.attempts === 1 ? "" : "s") : null,
      p.note ? h("span", { class: "promise-note" }, " — " + String(p.note)) : null);
  }

  // A check-in fell due while a person has (or is about to have) the conversation: the bot stayed quiet.
  var promisesShown = new Set();

  function onFollowUpDue(ev) {
    var id = ev.conversation_id == null ? null : String(ev.conversation_id);
    var promise = ev.follow_up && typeof ev.follow_up === "object" ? ev.follow_up : {};
    if (!id || promisesShown.has(String(promise.id))) return;
    promisesShown.add(String(promise.id));
    var summary = findSummary(id);
    var who = summary ? customerName(summary) : null;
    toast("Check-in due" + (ev.case_id ? " on " + String(ev.case_id) : "") + (who ? " for " + who : "") +
      ": " + (promise.note ? String(promise.note) : "ask whether the fix worked.") +
      " The bot did not send it; please ask them yourself.", id);
    if (id === state.currentId && !state.loading) loadConversation(id);
  }

  // ---------------------------------------------------------------- live events

  function applyMessage(ev) { upsertMessage(ev.message); }

  function applyState(ev) {
    var conv = state.conv;
    if (ev.summary) conv.summary = ev.summary;
    if (Array.isArray(ev.frustration_trend)) conv.trend = ev.frustration_trend;
    if (Array.isArray(ev.playbook)) conv.playbook = ev.playbook;
    if (typeof ev.handoff_summary === "string") conv.handoff_summary = ev.handoff_summary;
    renderHeader();
    renderHandoff();
    renderChart();
    renderControls();
    renderPlaybook(conv.playbook);
    if (typeof ev.activity_live === "boolean") conv.activityLive = ev.activity_live;
    if (!conv.activityLive) reloadActivity();
  }

  function applySuggestions(ev) {
    state.conv.suggestions = Array.isArray(ev.suggestions) ? ev.suggestions : [];
    renderSuggestions(state.conv.suggestions);
  }

  function routeConversationEvent(ev, apply) {
    var id = ev.conversation_id == null ? null : String(ev.conversation_id);
    if (!id) return;
    if (id !== state.currentId) {
      if (ev.type === "message" && ev.message && ev.message.sender === "customer") {
        var summary = findSummary(id);
        if (summary && summary.assigned_agent === me.username) {
          state.unread.add(id);
          renderQueue();
        }
      }
      return;
    }
    if (state.loading) { state.buffered.push([apply, ev]); return; }
    if (!state.conv) return;
    apply(ev);
  }

  function onAssigned(ev) {
    var id = ev.conversation_id == null ? null : String(ev.conversation_id);
    if (!id) return;
    var summary = findSummary(id);
    var who = summary ? customerName(summary) : null;
    toast((who ? who + "’s conversation" : "A conversation") + " was assigned to you.", id);
    refreshQueue();
    if (id === state.currentId) loadConversation(id);
  }

  function onSocketMessage(event) {
    var ev;
    try { ev = JSON.parse(event.data); } catch (e) { return; }
    if (!ev || typeof ev !== "object") return;
    emit("socket", ev);
    switch (ev.type) {
      case "queue": setQueue(ev.queue); break;
      case "message": routeConversationEvent(ev, applyMessage); break;
      case "state": routeConversationEvent(ev, applyState); break;
      case "suggestions": routeConversationEvent(ev, applySuggestions); break;
      case "activity": routeConversationEvent(ev, applyActivity); break;
      case "assigned": onAssigned(ev); break;
      case "follow_up_due": onFollowUpDue(ev); break;
      case "error": if (ev.message) toast(String(ev.message), null); break;
      default: break;
    }
  }

  // ---------------------------------------------------------------- extension events

  var listeners = {};
  function emit(name, payload) {
    (listeners[name] || []).forEach(function (fn) {
      try { fn(payload); } catch (e) { if (window.console) console.error(e); }
    });
  }

  // ---------------------------------------------------------------- WebSocket

  function setConnection(kind, text) {
    dom.connection.setAttribute("data-state", kind);
    dom.connectionText.textContent = text;
  }

  function sendWatch(id) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN && id) {
      state.ws.send(JSON.stringify({ type: "watch", conversation_id: id }));
    }
  }

  function connect() {
    clearTimeout(state.wsTimer);
    clearInterval(state.wsCountdown);
    state.wsTimer = null;
    if (state.redirecting) return;
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var ws;
    try {
      ws = new WebSocket(scheme + "//" + location.host + "/ws/console");
    } catch (e) {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    setConnection(state.wsAttempt ? "reconnecting" : "connecting", state.wsAttempt ? "Reconnecting…" : "Connecting…");

    ws.addEventListener("open", function () {
      if (state.ws !== ws) return;
      state.wsAttempt = 0;
      setConnection("open", "Live");
      if (state.currentId) sendWatch(state.currentId);
      // Catch up on anything missed while disconnected (or before the first connection).
      refreshQueue();
      if (state.currentId) loadConversation(state.currentId);
    });
    ws.addEventListener("message", onSocketMessage);
    ws.addEventListener("close", function () {
      if (state.ws !== ws) return;
      state.ws = null;
      // A closed socket may mean the session ended: /api/me answers 401 and we go to /login.
      api("GET", "/api/me").catch(function () { /* offline or signed out; handled */ });
      scheduleReconnect();
    });
    ws.addEventListener("error", function () { /* a close event follows */ });
  }

  function scheduleReconnect() {
    if (state.redirecting || state.wsTimer) return;
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, state.wsAttempt));
    var delay = Math.round(Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, base * (0.8 + Math.random() * 0.4))));
    state.wsAttempt += 1;
    var due = Date.now() + delay;
    var show = function () {
      var secs = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      setConnection("offline", "Offline, reconnecting in " + secs + " s");
    };
    show();
    clearInterval(state.wsCountdown);
    state.wsCountdown = setInterval(show, 1000);
    state.wsTimer = setTimeout(connect, delay);
  }

  // ---------------------------------------------------------------- wiring

  dom.take.addEventListener("click", takeOver);
  dom.handBack.addEventListener("click", handBack);
  dom.composer.addEventListener("submit", onComposerSubmit);
  dom.input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      if (typeof dom.composer.requestSubmit === "function") dom.composer.requestSubmit();
      else onComposerSubmit(ev);
    }
  });
  dom.originClear.addEventListener("click", function () {
    setPending(null);
    dom.input.focus();
  });
  window.addEventListener("online", function () {
    if (!state.ws) { state.wsAttempt = 0; connect(); }
  });

  // keep the transcript pinned to the newest message while the agent has not scrolled up,
  // also when the panels around it change size (error shown, composer resized…)
  var transcriptPinned = true;
  dom.transcript.addEventListener("scroll", function () { transcriptPinned = nearBottom(dom.transcript); });
  if (window.ResizeObserver) {
    new ResizeObserver(function () {
      if (transcriptPinned) dom.transcript.scrollTop = dom.transcript.scrollHeight;
    }).observe(dom.transcript);
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { if (state.conv && !state.loading) renderChart(); }, 150);
  });

  setInterval(tickTimes, 10000);
  renderPlaybook([]);

  if (!me.username) {
    api("GET", "/api/me").then(function (data) {
      if (data && data.username) { me.username = data.username; me.name = data.name; me.role = data.role; renderQueue(); }
    }, function () { /* 401 redirects */ });
  }

  // Extensions (console_*.js: notes, canned replies, ...) plug in here instead of growing this file.
  window.MendConsole = {
    me: me,
    api: api,
    on: function (name, fn) { (listeners[name] = listeners[name] || []).push(fn); },
    currentId: function () { return state.currentId; },
    currentSummary: function () { return currentSummary() || findSummary(state.currentId); },
    isMine: function () { var s = currentSummary(); return !!(s && isMine(s)); },
    composer: function () { return dom.input; },
    openConversation: function (id) { openConversation(id, { focus: true }); },
    refreshQueue: refreshQueue,
    queueItem: function (summary, section) { return queueItem(summary, section); },
    showError: showError,
    toast: toast
  };
  emit("ready", {});

  refreshQueue();
  var hash = /^#conversation=(.+)$/.exec(location.hash);
  if (hash) {
    try { openConversation(decodeURIComponent(hash[1])); } catch (e) { /* malformed hash */ }
  }
  connect();
})();
