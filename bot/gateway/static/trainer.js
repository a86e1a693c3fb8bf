/* Mend trainer page.
 *
 * Follows the "Trainer API" section of bot/gateway/PROTOCOL.md. Every string that comes from
 * the server (names, customer and bot text, intents, actions, messages) is rendered with
 * textContent / DOM APIs only; links are built with DOM APIs after an http:/https: check.
 * Never use innerHTML here. The page runs under `script-src 'self'`: no inline handlers.
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
  var OUTCOMES = ["passed", "failed", "handoff", "resolved", "open", "unknown"];
  var OUTCOME_ICONS = { passed: "✓", failed: "✕", handoff: "⇄", resolved: "✓", open: "○", unknown: "?" };
  var KIND_LABELS = { story: "story", conversation: "conversation" };
  var DEFAULT_ERRORS = {
    0: "Could not reach the server. Check your connection and try again.",
    400: "The request was not accepted.",
    403: "You are not allowed to do that.",
    404: "This item no longer exists.",
    409: "That file already exists.",
    413: "The request is too large."
  };
  var LOGIN_URL = "/login?next=/trainer";
  var PLAY_INTERVAL_MS = 1200;

  // ---------------------------------------------------------------- DOM refs

  function $(selector, root) { return (root || document).querySelector(selector); }
  function byTestId(id, root) { return $('[data-testid="' + id + '"]', root); }

  var dom = {
    error: byTestId("error"),
    filters: byTestId("filters"),
    fKind: byTestId("filter-kind"),
    fIssue: byTestId("filter-issue"),
    fFrustration: byTestId("filter-frustration"),
    fOutcome: byTestId("filter-outcome"),
    fHandoff: byTestId("filter-handoff"),
    fFrom: byTestId("filter-from"),
    fTo: byTestId("filter-to"),
    dateError: $("#filter-date-error"),
    replayAll: byTestId("replay-all"),
    replayAllStop: $(".replay-all-stop"),
    replayAllProgress: byTestId("replay-all-progress"),
    replaySummary: byTestId("replay-summary"),
    count: byTestId("item-count"),
    list: byTestId("item-list"),
    listEmpty: $(".items-empty"),
    main: $("#replay"),
    heading: $("#replay-heading"),
    meta: $(".replay-meta"),
    status: byTestId("replay-status"),
    jump: byTestId("jump-divergence"),
    body: $(".replay-body"),
    play: byTestId("play"),
    pause: byTestId("pause"),
    back: byTestId("step-back"),
    forward: byTestId("step-forward"),
    indicator: byTestId("turn-indicator"),
    chart: byTestId("frustration-chart"),
    chartCanvas: $(".chart-canvas"),
    chartSummary: $("#chart-summary"),
    turns: $(".turns"),
    turnsEmpty: $(".turns-empty"),
    conformance: $(".conformance"),
    exportForm: $(".export-form"),
    exportName: byTestId("export-name"),
    exportCorrections: $("#export-corrections"),
    exportDownload: byTestId("export-download"),
    exportSave: byTestId("export-save"),
    exportResult: byTestId("export-result"),
    exportPreview: $(".export-preview"),
    exportYaml: $(".export-yaml")
  };

  // ---------------------------------------------------------------- state

  var state = {
    items: [],              // items from the last GET /api/trainer/items
    itemNodes: new Map(),   // item id -> button in the list
    listSeq: 0,
    selectedId: null,
    selectedItem: null,
    replay: null,           // the Replay shown in the centre
    replaySeq: 0,
    turnNodes: [],          // one <li> per turn, built once per replay
    current: -1,            // index into replay.turns of the last shown turn
    firstDivergence: -1,
    playing: false,
    timer: null,
    corrections: new Map(), // item id -> {"<step>": "<action>"}
    exportNames: new Map(), // item id -> story name typed by the trainer
    exporting: false,
    actions: null,
    actionsPromise: null,
    runAll: null,           // {cancelled: bool} while "Replay all stories" runs
    redirecting: false
  };

  var reduceMotionQuery = window.matchMedia ? window.matchMedia("(prefers-reduced-motion: reduce)") : null;
  function reduceMotion() { return !!(reduceMotionQuery && reduceMotionQuery.matches); }
  // the width at which trainer.css stacks the page into one column
  var narrowQuery = window.matchMedia ? window.matchMedia("(max-width: 760px)") : null;

  // ---------------------------------------------------------------- helpers

  var h = MendDom.h, s = MendDom.s, setAttrs = MendDom.setAttrs, appendChild = MendDom.appendChild,
    clear = MendDom.clear, safeUrl = MendDom.safeUrl, safeLink = MendDom.safeLink, linkified = MendDom.linkified;

  function isNum(x) { return typeof x === "number" && isFinite(x); }
  function isStr(x) { return typeof x === "string" && x !== ""; }

  function levelOf(x) {
    var level = x && typeof x === "object" ? x.level : x;
    return LEVELS.indexOf(level) >= 0 ? level : null;
  }

  function levelForScore(score) {
    if (!isNum(score)) return null;
    if (score >= THRESHOLDS.angry) return "angry";
    if (score >= THRESHOLDS.annoyed) return "annoyed";
    return "calm";
  }

  function scoreText(score) { return isNum(score) ? score.toFixed(2) : null; }

  function pct(conf) {
    if (!isNum(conf)) return null;
    var p = conf * 100;
    if (p > 0 && p < 1) return "<1%";
    return Math.round(p) + "%";
  }

  function humanize(code) { return String(code == null ? "" : code).replace(/_/g, " "); }

  function stepLabel(step) {
    if (!step) return null;
    return STEP_LABELS[step] || humanize(step);
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function parseDate(value) {
    if (!value) return null;
    var d = new Date(value);
    return isNaN(d.getTime()) ? null : d;
  }

  var dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function timeEl(value) {
    var d = parseDate(value);
    if (!d) return value ? h("span", { text: String(value) }) : null;
    return h("time", { datetime: d.toISOString() }, dateTimeFormat.format(d));
  }

  function code(text) { return h("code", { class: "action-name" }, text == null ? "" : String(text)); }

  function levelBadge(level, score) {
    var lvl = levelOf(level) || "unknown";
    var attrs = { class: "badge level level-" + lvl, "data-level": lvl };
    var label = lvl === "unknown" ? "not rated" : lvl;
    if (isNum(score)) attrs.title = "Frustration score " + scoreText(score);
    return h("span", attrs, h("span", { class: "visually-hidden" }, "frustration "), label);
  }

  function outcomeBadge(outcome) {
    var o = OUTCOMES.indexOf(outcome) >= 0 ? outcome : "unknown";
    return h("span", { class: "badge outcome outcome-" + o, "data-outcome": o },
      h("span", { class: "badge-icon", "aria-hidden": "true" }, OUTCOME_ICONS[o]),
      h("span", { class: "visually-hidden" }, "outcome "), o);
  }

  function kindBadge(kind) {
    var k = KIND_LABELS[kind] ? kind : "story";
    return h("span", { class: "badge kind kind-" + k }, KIND_LABELS[k]);
  }

  function slug(name) {
    var out = String(name || "").toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
    return out.slice(0, 80) || "story";
  }

  var idCounter = 0;
  function uid(prefix) { idCounter += 1; return prefix + "-" + idCounter; }

  // ---------------------------------------------------------------- HTTP API

  function ApiError(status, message) {
    this.status = status;
    this.message = message;
  }

  function redirectToLogin() {
    if (state.redirecting) return;
    state.redirecting = true;
    stopPlaying();
    if (state.runAll) state.runAll.cancelled = true;
    location.assign(LOGIN_URL);
  }

  function api(method, path, payload) {
    var opts = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (payload !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(payload);
    }
    return fetch(path, opts).then(function (res) {
      var redirectedToLogin = false;
      if (res.redirected) {
        try { redirectedToLogin = new URL(res.url).pathname === "/login"; } catch (e) { redirectedToLogin = false; }
      }
      if (res.status === 401 || redirectedToLogin) {
        redirectToLogin();
        throw new ApiError(401, "Your session has ended. Please sign in again.");
      }
      return res.text().then(function (text) {
        var data = null;
        if (text) {
          try { data = JSON.parse(text); } catch (e) { data = null; }
        }
        if (!res.ok) {
          var msg = data && isStr(data.error) ? data.error
            : (DEFAULT_ERRORS[res.status] || "Something went wrong (HTTP " + res.status + ").");
          throw new ApiError(res.status, msg);
        }
        if (data === null || typeof data !== "object") {
          throw new ApiError(res.status, "The server sent an answer this page does not understand.");
        }
        return data;
      });
    }, function () {
      throw new ApiError(0, DEFAULT_ERRORS[0]);
    });
  }

  function showError(message) {
    dom.error.textContent = message || "";
  }

  function clearError() { showError(""); }

  /** Shows an API error in the alert region (a 401 has already redirected to the login page). */
  function reportError(err) {
    if (!err || err.status === 401) return;
    showError(err.message || String(err));
  }

  // ---------------------------------------------------------------- item list and filters

  function filterQuery() {
    var params = new URLSearchParams();
    params.set("kind", dom.fKind.value || "all");
    if (dom.fIssue.value) params.set("issue_type", dom.fIssue.value);
    if (dom.fFrustration.value) params.set("min_frustration", dom.fFrustration.value);
    if (dom.fOutcome.value) params.set("outcome", dom.fOutcome.value);
    if (dom.fFrom.value) params.set("date_from", dom.fFrom.value);
    if (dom.fTo.value) params.set("date_to", dom.fTo.value);
    return params.toString();
  }

  function datesValid() {
    var from = dom.fFrom.value, to = dom.fTo.value;
    dom.fTo.min = from || "";
    dom.fFrom.max = to || "";
    var bad = !!(from && to && from > to);
    dom.fFrom.setAttribute("aria-invalid", bad ? "true" : "false");
    dom.fTo.setAttribute("aria-invalid", bad ? "true" : "false");
    dom.dateError.textContent = bad ? "The from date is after the to date." : "";
    dom.dateError.hidden = !bad;
    return !bad;
  }

  function normalizeItems(data) {
    var list = data && Array.isArray(data.items) ? data.items : [];
    return list.filter(function (item) {
      return item && (isStr(item.id) || isNum(item.id));
    }).map(function (item) {
      var copy = {};
      Object.keys(item).forEach(function (k) { copy[k] = item[k]; });
      copy.id = String(item.id);
      return copy;
    });
  }

  function loadItems() {
    if (!datesValid()) return Promise.resolve();
    var seq = ++state.listSeq;
    dom.list.setAttribute("aria-busy", "true");
    dom.count.textContent = "Loading…";
    return api("GET", "/api/trainer/items?" + filterQuery()).then(function (data) {
      if (seq !== state.listSeq) return;
      state.items = normalizeItems(data);
      renderItems();
    }, function (err) {
      if (seq !== state.listSeq) return;
      dom.count.textContent = "Could not load the list.";
      reportError(err);
    }).then(function () {
      if (seq === state.listSeq) dom.list.removeAttribute("aria-busy");
    });
  }

  function handoffMatches(item) {
    var want = dom.fHandoff.value;
    if (want === "yes") return item.handed_off === true;
    if (want === "no") return item.handed_off !== true;
    return true;
  }

  function itemOutcome(item) { return item.outcome; }

  function renderItems() {
    var active = document.activeElement;
    var focusedId = active && active.getAttribute && active.getAttribute("data-testid") === "item"
      ? active.getAttribute("data-item-id") : null;

    var shown = state.items.filter(handoffMatches);
    clear(dom.list);
    state.itemNodes = new Map();
    shown.forEach(function (item) {
      var btn = itemButton(item);
      state.itemNodes.set(item.id, btn);
      dom.list.appendChild(h("li", { class: "item-entry" }, btn));
    });
    var total = state.items.length;
    dom.count.textContent = shown.length === total
      ? plural(total, "item", "items")
      : shown.length + " of " + plural(total, "item", "items") + " (handoff filter)";
    dom.listEmpty.hidden = shown.length > 0;

    if (focusedId && state.itemNodes.has(focusedId)) state.itemNodes.get(focusedId).focus();
  }

  function itemButton(item) {
    var outcome = itemOutcome(item);
    var selected = item.id === state.selectedId;
    var btn = h("button", {
      type: "button",
      class: "item" + (selected ? " is-current" : ""),
      "data-testid": "item",
      "data-item-id": item.id,
      "data-kind": item.kind === "conversation" ? "conversation" : "story",
      "data-outcome": OUTCOMES.indexOf(outcome) >= 0 ? outcome : "unknown",
      "data-level": levelOf(item.max_frustration) || "unknown",
      "aria-current": selected ? "true" : null,
      onclick: function () { selectItem(item.id); }
    });
    btn.appendChild(h("span", { class: "item-top" },
      h("span", { class: "item-name" }, isStr(item.name) ? item.name : "(unnamed)"),
      kindBadge(item.kind)));
    if (isStr(item.source)) btn.appendChild(h("span", { class: "item-source" }, item.source));
    var meta = h("span", { class: "item-meta" });
    if (isStr(item.issue_type)) {
      meta.appendChild(h("span", { class: "chip issue", "data-issue": item.issue_type },
        h("span", { class: "visually-hidden" }, "issue "), item.issue_type));
    }
    meta.appendChild(levelBadge(item.max_frustration));
    var oc = h("span", { class: "item-outcome" }, outcomeBadge(outcome));
    meta.appendChild(oc);
    if (item.handed_off === true && outcome !== "handoff") {
      meta.appendChild(h("span", { class: "chip handed-off" }, "handed off"));
    }
    btn.appendChild(meta);
    var foot = h("span", { class: "item-foot" });
    var when = timeEl(item.date);
    if (when) foot.appendChild(when);
    if (isNum(item.turns)) foot.appendChild(h("span", { class: "item-turns" }, plural(item.turns, "turn", "turns")));
    if (foot.firstChild) btn.appendChild(foot);
    return btn;
  }

  function setItemOutcome(id, outcome) {
    state.items.forEach(function (item) { if (item.id === id) item.outcome = outcome; });
    var btn = state.itemNodes.get(id);
    if (!btn) return;
    btn.setAttribute("data-outcome", outcome);
    var slot = $(".item-outcome", btn);
    if (slot) { clear(slot); slot.appendChild(outcomeBadge(outcome)); }
  }

  function markSelected(id) {
    state.itemNodes.forEach(function (btn, key) {
      var on = key === id;
      btn.classList.toggle("is-current", on);
      if (on) btn.setAttribute("aria-current", "true");
      else btn.removeAttribute("aria-current");
    });
  }

  function findItem(id) {
    for (var i = 0; i < state.items.length; i++) if (state.items[i].id === id) return state.items[i];
    return null;
  }

  // ---------------------------------------------------------------- replay all stories

  function replayAll() {
    if (state.runAll) return;
    clearError();
    var run = { cancelled: false };
    state.runAll = run;
    dom.replayAll.disabled = true;
    dom.replayAll.setAttribute("aria-busy", "true");
    dom.replayAllStop.hidden = false;
    dom.replaySummary.hidden = true;
    clear(dom.replaySummary);
    dom.replayAllProgress.textContent = "Finding the test stories…";

    var results = [];   // {item, replay} or {item, error}
    api("GET", "/api/trainer/items?kind=story").then(function (data) {
      var stories = normalizeItems(data).filter(function (it) { return it.kind !== "conversation"; });
      if (!stories.length) {
        dom.replayAllProgress.textContent = "There are no test stories to replay.";
        return null;
      }
      var i = 0;
      function next() {
        if (run.cancelled || i >= stories.length) return null;
        var item = stories[i];
        dom.replayAllProgress.textContent = "Replaying " + (i + 1) + " of " + stories.length + ": " +
          (isStr(item.name) ? item.name : item.id) + "…";
        return api("POST", "/api/trainer/replay", { id: item.id }).then(function (replay) {
          results.push({ item: item, replay: replay });
          setItemOutcome(item.id, replay.passed === true ? "passed" : "failed");
        }, function (err) {
          if (err.status === 401) { run.cancelled = true; return; }
          results.push({ item: item, error: err });
        }).then(function () { i += 1; return next(); });
      }
      return next().then(function () {
        if (state.redirecting) return;
        var done = results.length;
        dom.replayAllProgress.textContent = run.cancelled
          ? "Stopped after " + plural(done, "story", "stories") + " of " + stories.length + "."
          : "Replayed " + plural(done, "story", "stories") + ".";
        renderReplaySummary(results, stories.length);
      });
    }).catch(function (err) {
      dom.replayAllProgress.textContent = "Could not replay the stories.";
      reportError(err);
    }).then(function () {
      state.runAll = null;
      dom.replayAll.disabled = false;
      dom.replayAll.removeAttribute("aria-busy");
      var stopHadFocus = document.activeElement === dom.replayAllStop;
      dom.replayAllStop.hidden = true;
      if (stopHadFocus) dom.replayAll.focus();
    });
  }

  function renderReplaySummary(results, total) {
    clear(dom.replaySummary);
    var replays = results.filter(function (r) { return r.replay; });
    var passed = replays.filter(function (r) { return r.replay.passed === true; }).length;
    var failed = replays.length - passed;
    var errors = results.length - replays.length;
    var line = passed + " passed, " + failed + " failed";
    if (errors) line += ", " + plural(errors, "error", "errors");
    dom.replaySummary.appendChild(h("p", { class: "summary-line", "data-failed": failed > 0 ? "true" : "false" }, line));
    if (results.length < total) {
      dom.replaySummary.appendChild(h("p", { class: "hint" }, (total - results.length) + " not replayed (stopped)."));
    }

    var failing = results.filter(function (r) { return (r.replay && r.replay.passed !== true) || r.error; });
    if (failing.length) {
      var list = h("ul", { class: "failing-list", "aria-label": "Stories that failed or could not be replayed" });
      failing.forEach(function (r) {
        var label = isStr(r.item.name) ? r.item.name : r.item.id;
        var detail = r.error ? " (error: " + r.error.message + ")"
          : (isNum(r.replay.divergences) ? " (" + plural(r.replay.divergences, "divergence", "divergences") + ")" : "");
        list.appendChild(h("li", null,
          h("button", { type: "button", class: "link-button", onclick: function () { selectItem(r.item.id, { item: r.item }); } }, label),
          detail));
      });
      dom.replaySummary.appendChild(list);
    }

    if (replays.length) dom.replaySummary.appendChild(summedConformance(replays.map(function (r) { return r.replay; })));
    dom.replaySummary.hidden = false;
  }

  /**
   * The playbook over a set of replays, counted as bot/replay/conformance.py ``summed`` counts it:
   * only replays that can be measured (the customer complained, and the playbook steps are known)
   * are in the counts; the others are listed with the reason. "Learn" happens after the
   * conversation (the case review), so it is never expected in one and not counted.
   */
  function summedConformance(replays) {
    var n = replays.length;
    var counted = [];
    var reasons = {};
    replays.forEach(function (r) {
      var c = r.conformance || {};
      if (c.counted === false) {
        var why = isStr(c.not_counted_reason) ? c.not_counted_reason : "it cannot be measured";
        reasons[why] = (reasons[why] || 0) + 1;
      } else {
        counted.push(c);
      }
    });
    var m = counted.length;
    var steps = PLAYBOOK_STEPS.filter(function (st) { return st !== "learn"; });
    var counts = {};
    var byAgent = {};
    steps.forEach(function (st) { counts[st] = 0; byAgent[st] = 0; });
    var reExplanations = 0;
    var ackTurns = [];
    var ackSeconds = [];
    replays.forEach(function (r) {
      var c = r.conformance || {};
      if (Array.isArray(c.re_explanations)) reExplanations += c.re_explanations.length;
    });
    counted.forEach(function (c) {
      var done = Array.isArray(c.steps_done) ? c.steps_done : [];
      var agentDone = Array.isArray(c.steps_by_agent) ? c.steps_by_agent : [];
      steps.forEach(function (st) {
        if (done.indexOf(st) >= 0) counts[st] += 1;
        if (agentDone.indexOf(st) >= 0) byAgent[st] += 1;
      });
      var ca = c.complaint_to_acknowledgement;
      if (ca && isNum(ca.turns)) ackTurns.push(ca.turns);
      if (ca && isNum(ca.seconds)) ackSeconds.push(ca.seconds);
    });

    var box = h("div", { class: "summed-conformance", "data-testid": "summed-conformance" });
    box.appendChild(h("p", { class: "conformance-scope", "data-testid": "conformance-scope", "data-counted": m, "data-total": n },
      m === n
        ? "Counted: all " + plural(n, "replay", "replays") + " (in each one the customer complained and the playbook steps are known)."
        : "Counted: " + m + " of " + plural(n, "replay", "replays") +
          " (those where the customer complained and the playbook steps are known)."));
    var reasonKeys = Object.keys(reasons);
    if (reasonKeys.length) {
      var why = h("ul", { class: "not-counted", "data-testid": "not-counted" });
      reasonKeys.forEach(function (reason) {
        why.appendChild(h("li", null, "Not counted: " + plural(reasons[reason], "replay", "replays") + ", because " + reason + "."));
      });
      box.appendChild(why);
    }
    if (!m) {
      box.appendChild(h("p", { class: "panel-empty" }, "No replay here can be measured against the playbook."));
    } else {
      var table = h("table", { class: "conformance-table" },
        h("caption", null, "Playbook steps done, out of the " + plural(m, "counted replay", "counted replays")),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Step"), h("th", { scope: "col" }, "Done in"))));
      var tbody = h("tbody");
      steps.forEach(function (st) {
        var k = counts[st];
        var note = byAgent[st] ? " (" + byAgent[st] + " by a person)" : "";
        tbody.appendChild(h("tr", { "data-step": st, class: k === 0 ? "is-never" : (k === m ? "is-always" : null) },
          h("th", { scope: "row" }, stepLabel(st)),
          h("td", null, k + " of " + m + note)));
      });
      table.appendChild(tbody);
      box.appendChild(table);
      box.appendChild(h("p", { class: "hint" }, "“Learn” is not counted: it happens after the conversation, in the case review."));
    }

    var avg = function (xs) { return xs.reduce(function (a, b) { return a + b; }, 0) / xs.length; };
    var dl = h("dl", { class: "kv kv-stacked" });
    dl.appendChild(h("dt", null, "Re-explanations"));
    dl.appendChild(h("dd", { "data-total-re-explanations": reExplanations },
      reExplanations + " in " + plural(n, "replay", "replays") + " (times the bot asked for something the case history already held)"));
    dl.appendChild(h("dt", null, "Complaint → acknowledgement"));
    dl.appendChild(h("dd", null, ackTurns.length
      ? avg(ackTurns).toFixed(1) + " turns on average (in the " + ackTurns.length + " of " + m +
        " counted replays where the bot acknowledged the complaint)" +
        (ackSeconds.length ? "; " + avg(ackSeconds).toFixed(1) + " s on average where timed" : "")
      : "not measured in these replays"));
    box.appendChild(dl);
    return box;
  }

  // ---------------------------------------------------------------- selecting and replaying an item

  function setStatus(text, stateName) {
    dom.status.textContent = text;
    dom.status.setAttribute("data-state", stateName);
  }

  function selectItem(id, opts) {
    opts = opts || {};
    id = String(id);
    stopPlaying();
    clearError();
    var item = findItem(id) || opts.item || null;
    state.selectedId = id;
    state.selectedItem = item;
    markSelected(id);
    try { history.replaceState(null, "", "#item=" + encodeURIComponent(id)); } catch (e) { /* ignore */ }

    var seq = ++state.replaySeq;
    resetReplayView();
    var label = item && isStr(item.name) ? item.name : "the selected item";
    dom.heading.textContent = item && isStr(item.name) ? item.name : "Loading…";
    renderMeta(item, null);
    setStatus("Replaying “" + label + "”…", "loading");
    dom.jump.hidden = true;
    dom.main.setAttribute("aria-busy", "true");
    // one column (phones): the replay is below the list; bring it up rather than leave the trainer scrolling
    if (narrowQuery && narrowQuery.matches && opts.scroll !== false) {
      dom.main.scrollIntoView({ block: "start", behavior: reduceMotion() ? "auto" : "smooth" });
    }

    return api("POST", "/api/trainer/replay", { id: id }).then(function (replay) {
      if (seq !== state.replaySeq) return;
      showReplay(replay, item);
    }, function (err) {
      if (seq !== state.replaySeq) return;
      if (err.status === 401) return;
      setStatus("Could not replay “" + label + "”.", "error");
      clear(dom.conformance);
      dom.conformance.appendChild(h("p", { class: "panel-empty" }, "No replay to analyse."));
      reportError(err);
    }).then(function () {
      if (seq === state.replaySeq) dom.main.removeAttribute("aria-busy");
    });
  }

  /** Forgets the replay on show (a new one is loading): nothing stale stays visible or exportable. */
  function resetReplayView() {
    state.replay = null;
    state.turnNodes = [];
    state.current = -1;
    state.firstDivergence = -1;
    clear(dom.turns);
    clear(dom.chartCanvas);
    clear(dom.chartSummary);
    dom.body.hidden = true;
    clear(dom.conformance);
    dom.conformance.appendChild(h("p", { class: "panel-empty" }, "Loading the replay…"));
    dom.exportName.disabled = true;
    dom.exportDownload.disabled = true;
    dom.exportSave.disabled = true;
    setExportResult("", null);
    dom.exportPreview.hidden = true;
    dom.exportYaml.textContent = "";
  }

  function renderMeta(item, replay) {
    clear(dom.meta);
    var kind = (replay && replay.kind) || (item && item.kind);
    var source = (replay && replay.source) || (item && item.source);
    if (kind) dom.meta.appendChild(kindBadge(kind));
    if (isStr(source)) dom.meta.appendChild(h("span", { class: "meta-source" }, source));
    if (item && isStr(item.issue_type)) dom.meta.appendChild(h("span", { class: "chip issue" }, item.issue_type));
    if (item && item.date) dom.meta.appendChild(timeEl(item.date));
  }

  function userDiverged(user) {
    if (!user) return false;
    if (user.diverged === true) return true;
    return isStr(user.expected_intent) && isStr(user.intent) && user.expected_intent !== user.intent;
  }

  /** A person's step (an agent held the conversation) is never the bot's divergence; otherwise the server's verdict. */
  function actionDiverged(action) {
    if (!action || action.by_agent === true) return false;
    if (typeof action.diverged === "boolean") return action.diverged;
    return isStr(action.expected) && isStr(action.predicted) && action.expected !== action.predicted;
  }

  function agentLabel(action) {
    return isStr(action.agent_name) ? action.agent_name : (isStr(action.agent) ? action.agent : "an agent");
  }

  /** The agents who held the conversation in this turn (names, in order). */
  function turnAgents(turn) {
    var names = [];
    (Array.isArray(turn.actions) ? turn.actions : []).forEach(function (a) {
      if (a && a.by_agent === true && names.indexOf(agentLabel(a)) < 0) names.push(agentLabel(a));
    });
    return names;
  }

  function turnDiverged(turn) {
    if (!turn) return false;
    if (userDiverged(turn.user)) return true;
    var acts = Array.isArray(turn.actions) ? turn.actions : [];
    return acts.some(actionDiverged);
  }

  function showReplay(replay, item) {
    var turns = Array.isArray(replay.turns) ? replay.turns.filter(function (t) { return t && typeof t === "object"; }) : [];
    replay.turns = turns;
    state.replay = replay;
    var id = state.selectedId;
    if (!state.corrections.has(id)) state.corrections.set(id, {});

    var name = isStr(replay.name) ? replay.name : (item && isStr(item.name) ? item.name : id);
    dom.heading.textContent = name;
    renderMeta(item, replay);

    // a story replay tells whether the story passes now: the list learns it too
    if ((replay.kind || (item && item.kind)) === "story") setItemOutcome(id, replay.passed === true ? "passed" : "failed");

    var divergences = isNum(replay.divergences) ? replay.divergences
      : turns.reduce(function (n, t) {
        return n + (userDiverged(t.user) ? 1 : 0) + (Array.isArray(t.actions) ? t.actions.filter(actionDiverged).length : 0);
      }, 0);
    var counts = stepCounts(replay, turns);
    if (replay.passed === true && divergences === 0) setStatus("passed" + counts, "passed");
    else if (divergences > 0) setStatus(plural(divergences, "divergence", "divergences") + counts, "diverged");
    else setStatus("failed" + counts, "failed");

    state.firstDivergence = -1;
    for (var i = 0; i < turns.length; i++) { if (turnDiverged(turns[i])) { state.firstDivergence = i; break; } }
    dom.jump.hidden = state.firstDivergence < 0;

    // build every turn once; stepping only attaches and detaches them
    clear(dom.turns);
    state.turnNodes = turns.map(function (t, pos) { return buildTurn(t, pos); });
    state.current = -1;
    dom.turnsEmpty.hidden = turns.length > 0;
    dom.body.hidden = false;

    renderConformance(replay.conformance);
    prepareExport(id, name);
    setCurrent(turns.length ? 0 : -1, { scroll: false });
  }

  /** What the verdict counts, in words: the bot's steps judged, and the steps a person took (not judged). */
  function stepCounts(replay, turns) {
    var acts = [];
    turns.forEach(function (t) { (Array.isArray(t.actions) ? t.actions : []).forEach(function (a) { if (a) acts.push(a); }); });
    var bot = acts.filter(function (a) { return a.by_agent !== true; });
    var expected = bot.filter(function (a) { return !actionDiverged(a); }).length;
    var text = ": " + expected + " of " + plural(bot.length, "bot step", "bot steps") + " as expected";
    var intents = turns.filter(function (t) { return userDiverged(t.user); }).length;
    if (intents) text += "; " + plural(intents, "customer message", "customer messages") + " read as another intent";
    var byAgent = acts.length - bot.length;
    if (byAgent) {
      var names = [];
      turns.forEach(function (t) { turnAgents(t).forEach(function (n) { if (names.indexOf(n) < 0) names.push(n); }); });
      text += "; " + plural(byAgent, "step", "steps") + " by " + names.join(", ") +
        " (a person had the conversation) not judged";
    }
    return text;
  }

  // ---------------------------------------------------------------- turns

  function buildTurn(turn, pos) {
    var headId = uid("turn-heading");
    var index = isNum(turn.index) ? turn.index : pos;
    var diverged = turnDiverged(turn);
    var li = h("li", {
      class: "turn" + (diverged ? " has-divergence" : ""),
      "data-testid": "turn",
      "data-index": index,
      "data-diverged": diverged ? "true" : "false",
      tabindex: "-1",
      "aria-labelledby": headId
    });
    var agents = turnAgents(turn);
    li.appendChild(h("h4", { class: "turn-heading", id: headId }, "Turn " + (pos + 1),
      diverged ? h("span", { class: "visually-hidden" }, " (diverged)") : null,
      agents.length ? h("span", { class: "chip held-by", "data-testid": "held-by" },
        agents.join(", ") + " had the conversation") : null));

    var u = turn.user;
    if (u && typeof u === "object") li.appendChild(buildUser(u));
    else li.appendChild(h("p", { class: "turn-no-user" }, "No customer message in this turn."));

    var acts = Array.isArray(turn.actions) ? turn.actions.filter(function (a) { return a && typeof a === "object"; }) : [];
    if (acts.length) {
      var ol = h("ol", { class: "actions", "aria-label": "Steps in turn " + (pos + 1) });
      acts.forEach(function (a) { ol.appendChild(a.by_agent === true ? buildAgentRow(a) : buildActionRow(a)); });
      li.appendChild(ol);
    } else {
      li.appendChild(h("p", { class: "turn-no-actions" }, "No bot actions in this turn."));
    }
    return li;
  }

  function buildUser(u) {
    var block = h("div", { class: "turn-user" });
    block.appendChild(h("p", { class: "who" }, "Customer"));
    block.appendChild(h("p", { class: "user-text" }, isStr(u.text) ? u.text : "(no text)"));

    var meta = h("div", { class: "user-meta" });
    var intentWrong = isStr(u.expected_intent) && u.expected_intent !== u.intent;
    var intentChip = h("span", { class: "chip intent" + (intentWrong ? " is-wrong" : "") },
      "intent ", code(isStr(u.intent) ? u.intent : "none"),
      isNum(u.intent_confidence) ? " " + pct(u.intent_confidence) : null);
    meta.appendChild(intentChip);
    if (userDiverged(u)) {
      meta.appendChild(h("span", { class: "badge diverged", "data-testid": "diverged" },
        h("span", { class: "badge-icon", "aria-hidden": "true" }, "✕"), "diverged"));
    }
    if (intentWrong) {
      meta.appendChild(h("mark", { class: "expected-intent" }, "expected intent ", code(u.expected_intent)));
    }
    var issue = u.issue_type;
    var issueName = issue && typeof issue === "object" ? issue.name : (isStr(issue) ? issue : null);
    if (isStr(issueName)) {
      meta.appendChild(h("span", { class: "chip issue", "data-issue": issueName },
        "issue ", issueName, issue && isNum(issue.confidence) ? " " + pct(issue.confidence) : null));
    }
    block.appendChild(meta);

    var f = u.frustration;
    if (f && typeof f === "object") {
      var fr = h("div", { class: "user-frustration" });
      fr.appendChild(levelBadge(levelOf(f) || levelForScore(f.score), f.score));
      if (isNum(f.score)) fr.appendChild(h("span", { class: "score" }, "score " + scoreText(f.score)));
      if (f.source === "tap") {
        // A tapped button has no tone of voice: the reading comes from the words on the button.
        fr.appendChild(h("span", { class: "reading-source", title: "Read from the button the customer tapped" },
          "(tapped button)"));
      }
      var cues = Array.isArray(f.cues) ? f.cues.filter(isStr) : [];
      if (cues.length) {
        var ul = h("ul", { class: "cues", "aria-label": "Frustration cues" });
        cues.forEach(function (c) { ul.appendChild(h("li", { class: "chip cue" }, humanize(c))); });
        fr.appendChild(ul);
      }
      var calmCues = Array.isArray(f.calm_cues) ? f.calm_cues.filter(isStr) : [];
      if (calmCues.length) {
        // Evidence of calm (thanks, please, a "Yes, all good" tap): never a reason for frustration.
        var calm = h("ul", { class: "cues calm-cues", "aria-label": "Signs of calm" });
        calmCues.forEach(function (c) { calm.appendChild(h("li", { class: "chip cue calm-cue" }, "calm \u00b7 " + humanize(c))); });
        fr.appendChild(calm);
      }
      block.appendChild(fr);
    }
    return block;
  }

  /** A step a person took while holding the conversation: their words, labelled as theirs; not judged, not markable. */
  function buildAgentRow(a) {
    var who = agentLabel(a);
    var hasStep = isNum(a.step) || isStr(a.step);
    var row = h("li", {
      class: "action-row is-agent",
      "data-testid": "agent-row",
      "data-step": hasStep ? String(a.step) : null,
      "data-actor": "agent",
      "data-diverged": "false"
    });
    var sent = isStr(a.expected) && a.expected !== "action_listen";
    row.appendChild(h("div", { class: "action-main" },
      h("span", { class: "badge by-person" }, "person"),
      h("span", { class: "agent-step" }, sent ? [who + " sent the bot's ", code(a.expected)]
        : (a.agent_text && a.agent_text.length ? who + " replied" : who + " waited for the customer"))));
    var meta = h("div", { class: "action-meta" });
    if (hasStep) meta.appendChild(h("span", { class: "action-step" }, "step " + a.step));
    meta.appendChild(h("span", { class: "chip not-judged", title: "A person had the conversation: the bot is not judged on this step." },
      "not judged: " + who + " had the conversation"));
    if (isStr(a.playbook_step)) {
      meta.appendChild(h("span", { class: "chip step", "data-playbook-step": a.playbook_step }, stepLabel(a.playbook_step)));
    }
    row.appendChild(meta);
    var lines = Array.isArray(a.agent_text) ? a.agent_text.filter(isStr) : [];
    if (lines.length) {
      var said = h("div", { class: "agent-text", "data-testid": "agent-said" },
        h("p", { class: "who" }, "Agent said ", h("span", { class: "who-name" }, "(" + who + ")")));
      lines.forEach(function (line) { said.appendChild(h("p", { class: "bot-line" }, linkified(line))); });
      row.appendChild(said);
    }
    return row;
  }

  function buildActionRow(a) {
    var diverged = actionDiverged(a);
    var hasStep = isNum(a.step) || isStr(a.step);
    var stepKey = hasStep ? String(a.step) : null;
    var row = h("li", {
      class: "action-row" + (diverged ? " is-diverged" : ""),
      "data-testid": "action-row",
      "data-step": hasStep ? stepKey : null,
      "data-diverged": diverged ? "true" : "false"
    });

    var main = h("div", { class: "action-main" });
    if (diverged) {
      main.appendChild(h("span", { class: "badge diverged", "data-testid": "diverged" },
        h("span", { class: "badge-icon", "aria-hidden": "true" }, "✕"), "diverged"));
      main.appendChild(h("span", { class: "action-diff" },
        "expected ", code(isStr(a.expected) ? a.expected : "none"),
        ", predicted ", code(isStr(a.predicted) ? a.predicted : "none")));
    } else {
      main.appendChild(h("span", { class: "badge as-expected" },
        h("span", { class: "badge-icon", "aria-hidden": "true" }, "✓"), isStr(a.expected) ? "as expected" : "predicted"));
      main.appendChild(code(isStr(a.predicted) ? a.predicted : (isStr(a.expected) ? a.expected : "none")));
    }
    row.appendChild(main);

    var meta = h("div", { class: "action-meta" });
    if (hasStep) meta.appendChild(h("span", { class: "action-step" }, "step " + stepKey));
    meta.appendChild(h("span", { class: "chip policy" }, isStr(a.policy) ? a.policy : "no policy"));
    if (isNum(a.confidence)) {
      meta.appendChild(h("span", { class: "confidence" }, h("span", { class: "visually-hidden" }, "confidence "), pct(a.confidence)));
    }
    if (isStr(a.playbook_step)) {
      meta.appendChild(h("span", { class: "chip step", "data-playbook-step": a.playbook_step }, stepLabel(a.playbook_step)));
    }
    row.appendChild(meta);

    var ups = (Array.isArray(a.runner_ups) ? a.runner_ups : [])
      .filter(function (r) { return r && isStr(r.action); })
      .slice()
      .sort(function (x, y) { return (isNum(y.confidence) ? y.confidence : 0) - (isNum(x.confidence) ? x.confidence : 0); })
      .slice(0, 3);
    if (ups.length) {
      var ru = h("p", { class: "runner-ups" }, h("span", { class: "runner-ups-label" }, "runner-ups: "));
      ups.forEach(function (r, i) {
        if (i) ru.appendChild(document.createTextNode(", "));
        ru.appendChild(code(r.action));
        if (isNum(r.confidence)) ru.appendChild(document.createTextNode(" " + pct(r.confidence)));
      });
      row.appendChild(ru);
    }

    var lines = Array.isArray(a.bot_text) ? a.bot_text.filter(isStr) : [];
    if (lines.length) {
      var bt = h("div", { class: "bot-text", "data-testid": "bot-said" }, h("p", { class: "who" }, "Bot said"));
      lines.forEach(function (line) { bt.appendChild(h("p", { class: "bot-line" }, linkified(line))); });
      row.appendChild(bt);
    }

    if (hasStep) row.appendChild(buildMarker(row, stepKey, a));
    return row;
  }

  // ---- marking a wrong action

  function correctionsFor(id) {
    if (!state.corrections.has(id)) state.corrections.set(id, {});
    return state.corrections.get(id);
  }

  function ensureActions() {
    if (state.actions) return Promise.resolve(state.actions);
    if (!state.actionsPromise) {
      state.actionsPromise = api("GET", "/api/trainer/actions").then(function (data) {
        var list = Array.isArray(data.actions) ? data.actions.filter(isStr) : [];
        state.actions = list;
        return list;
      }, function (err) {
        state.actionsPromise = null;
        throw err;
      });
    }
    return state.actionsPromise;
  }

  function buildMarker(row, stepKey, a) {
    var itemId = state.selectedId;
    var pickerId = uid("picker");
    var selectId = uid("correct");
    var box = h("div", { class: "marker" });

    var markBtn = h("button", {
      type: "button", class: "btn btn-small mark-wrong", "data-testid": "mark-wrong",
      "aria-expanded": "false", "aria-controls": pickerId
    }, "Mark wrong", h("span", { class: "visually-hidden" }, " (step " + stepKey + ")"));
    var correction = h("span", { class: "correction", "data-testid": "correction" });
    var unmark = h("button", { type: "button", class: "btn btn-small btn-quiet unmark", "data-testid": "unmark", hidden: true },
      "Unmark", h("span", { class: "visually-hidden" }, " step " + stepKey));
    var select = h("select", { id: selectId, class: "correct-action", "data-testid": "correct-action" });
    var done = h("button", { type: "button", class: "btn btn-small" }, "Done");
    var picker = h("div", { class: "picker", id: pickerId, hidden: true },
      h("label", { for: selectId }, "Correct action for step " + stepKey),
      h("div", { class: "picker-row" }, select, done),
      h("p", { class: "picker-hint" }, "The exported story uses this action instead of the predicted one."));

    box.appendChild(h("div", { class: "marker-row" }, markBtn, correction, unmark));
    box.appendChild(picker);

    function current() { return correctionsFor(itemId)[stepKey] || ""; }

    function fill(actions) {
      var value = current();
      clear(select);
      select.appendChild(h("option", { value: "" }, "Choose the correct action…"));
      var seen = {};
      var add = function (name) {
        if (!isStr(name) || seen[name]) return;
        seen[name] = true;
        select.appendChild(h("option", { value: name }, name));
      };
      actions.forEach(add);
      add(value);
      select.value = value;
    }

    function fallbackActions() {
      var list = [a.expected, a.predicted];
      (Array.isArray(a.runner_ups) ? a.runner_ups : []).forEach(function (r) { if (r) list.push(r.action); });
      return list.filter(isStr);
    }

    function refresh() {
      var value = current();
      row.classList.toggle("is-marked", !!value);
      row.setAttribute("data-marked", value ? "true" : "false");
      if (value) row.setAttribute("data-correct", value); else row.removeAttribute("data-correct");
      clear(correction);
      if (value) correction.appendChild(document.createTextNode("correct: " + value));
      unmark.hidden = !value;
      renderCorrectionsSummary();
    }

    function open() {
      picker.hidden = false;
      markBtn.setAttribute("aria-expanded", "true");
      fill(state.actions || fallbackActions());
      select.focus();
      if (!state.actions) {
        select.setAttribute("aria-busy", "true");
        ensureActions().then(function (actions) {
          var focused = document.activeElement === select;
          fill(actions);
          if (focused) select.focus();
        }, function (err) {
          reportError(err);
        }).then(function () { select.removeAttribute("aria-busy"); });
      }
    }

    function close(focusButton) {
      picker.hidden = true;
      markBtn.setAttribute("aria-expanded", "false");
      if (focusButton) markBtn.focus();
    }

    markBtn.addEventListener("click", function () {
      if (picker.hidden) open(); else close(false);
    });
    select.addEventListener("change", function () {
      var corr = correctionsFor(itemId);
      if (select.value) corr[stepKey] = select.value; else delete corr[stepKey];
      refresh();
    });
    done.addEventListener("click", function () { close(true); });
    picker.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape") { ev.preventDefault(); close(true); }
    });
    unmark.addEventListener("click", function () {
      delete correctionsFor(itemId)[stepKey];
      select.value = "";
      refresh();
      close(true);
    });

    refresh();
    return box;
  }

  // ---------------------------------------------------------------- player

  function setCurrent(pos, opts) {
    opts = opts || {};
    var nodes = state.turnNodes;
    var total = nodes.length;
    if (!total) {
      state.current = -1;
      clear(dom.turns);
    } else {
      pos = Math.max(0, Math.min(total - 1, pos));
      var active = document.activeElement;
      // detach turns after the new position (their state lives on in the detached nodes)
      var lostFocus = false;
      for (var i = total - 1; i > pos; i--) {
        if (nodes[i].parentNode) {
          if (active && nodes[i].contains(active)) lostFocus = true;
          nodes[i].parentNode.removeChild(nodes[i]);
        }
      }
      for (var j = 0; j <= pos; j++) {
        if (!nodes[j].parentNode) dom.turns.appendChild(nodes[j]);
        var isCur = j === pos;
        nodes[j].classList.toggle("is-current", isCur);
        if (isCur) nodes[j].setAttribute("aria-current", "step"); else nodes[j].removeAttribute("aria-current");
        nodes[j].classList.toggle("is-new", j === pos && j > state.current && !reduceMotion() && opts.scroll !== false);
      }
      state.current = pos;
      if (lostFocus) nodes[pos].focus();
      if (opts.scroll) scrollToTurn(pos);
    }
    dom.indicator.textContent = "turn " + (state.current + 1) + " of " + total;
    updatePlayerButtons();
    renderChart();
  }

  /** The element that scrolls the replay: the centre pane, the layout, or the page on small screens. */
  function scrollParent(node) {
    for (var p = node.parentElement; p && p !== document.body && p !== document.documentElement; p = p.parentElement) {
      var oy = window.getComputedStyle(p).overflowY;
      if ((oy === "auto" || oy === "scroll") && p.scrollHeight > p.clientHeight) return p;
    }
    return document.scrollingElement || document.documentElement;
  }

  /**
   * Scrolls only the turn's own scroll container (scrollIntoView would also scroll the page
   * body, which is overflow:hidden on wide screens) and keeps the turn clear of the sticky player.
   * block "start" puts the turn at the top; "nearest" scrolls as little as possible.
   */
  function scrollToTurn(pos, block) {
    var node = state.turnNodes[pos];
    if (!node || !node.parentNode) return;
    var scroller = scrollParent(node);
    var isPage = scroller === document.scrollingElement || scroller === document.documentElement;
    var view = isPage ? { top: 0, bottom: window.innerHeight } : scroller.getBoundingClientRect();
    // the sticky player covers the top of the pane once it scrolls
    var top = view.top + dom.play.parentNode.getBoundingClientRect().height + 8;
    var bottom = view.bottom - 8;
    var rect = node.getBoundingClientRect();
    var delta = 0;
    if (block === "start" || rect.height > bottom - top) delta = rect.top - top;
    else if (rect.bottom > bottom) delta = rect.bottom - bottom;
    else if (rect.top < top) delta = rect.top - top;
    if (Math.abs(delta) < 1) return;
    var target = scroller.scrollTop + delta;
    if (scroller.scrollTo) scroller.scrollTo({ top: target, behavior: reduceMotion() ? "auto" : "smooth" });
    else scroller.scrollTop = target;
  }

  function updatePlayerButtons() {
    var total = state.turnNodes.length;
    var atStart = state.current <= 0;
    var atEnd = state.current >= total - 1;
    var moveFocus = null;
    var active = document.activeElement;

    setDisabled(dom.back, !total || atStart);
    setDisabled(dom.forward, !total || atEnd);
    setDisabled(dom.play, !total || state.playing);
    setDisabled(dom.pause, !state.playing);

    // never leave the keyboard focus on a button that has just been disabled
    if (active && active.disabled) {
      if (active === dom.play) moveFocus = dom.pause;
      else if (active === dom.pause) moveFocus = dom.play;
      else if (active === dom.forward) moveFocus = dom.back.disabled ? dom.play : dom.back;
      else if (active === dom.back) moveFocus = dom.forward.disabled ? dom.play : dom.forward;
      if (moveFocus && moveFocus.disabled) moveFocus = dom.indicator;
      if (moveFocus) {
        if (moveFocus === dom.indicator) moveFocus.setAttribute("tabindex", "-1");
        moveFocus.focus();
      }
    }
  }

  function setDisabled(btn, off) { btn.disabled = !!off; }

  function play() {
    var total = state.turnNodes.length;
    if (!total || state.playing) return;
    if (state.current >= total - 1) setCurrent(0, { scroll: true });
    state.playing = true;
    dom.indicator.setAttribute("aria-live", "off");
    state.timer = setInterval(tick, PLAY_INTERVAL_MS);
    updatePlayerButtons();
  }

  function tick() {
    var total = state.turnNodes.length;
    if (!state.playing) return;
    if (state.current >= total - 1) { stopPlaying(); return; }
    setCurrent(state.current + 1, { scroll: true });
    if (state.current >= total - 1) stopPlaying();
  }

  function stopPlaying() {
    if (state.timer) { clearInterval(state.timer); state.timer = null; }
    if (!state.playing) return;
    state.playing = false;
    dom.indicator.setAttribute("aria-live", "polite");
    updatePlayerButtons();
  }

  function step(delta) {
    stopPlaying();
    if (!state.turnNodes.length) return;
    setCurrent(state.current + delta, { scroll: true });
  }

  function jumpToFirstDivergence() {
    if (state.firstDivergence < 0) return;
    stopPlaying();
    setCurrent(state.firstDivergence, { scroll: false });
    var node = state.turnNodes[state.firstDivergence];
    if (!node) return;
    scrollToTurn(state.firstDivergence, "start");
    node.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- frustration chart

  function frustrationPoints(replay) {
    var turns = replay.turns;
    var posOf = new Map();
    turns.forEach(function (t, pos) { posOf.set(isNum(t.index) ? t.index : pos, pos); });
    var raw = Array.isArray(replay.frustration) ? replay.frustration : null;
    var points = [];
    if (raw) {
      raw.forEach(function (p) {
        if (!p || !isNum(p.score)) return;
        var pos = posOf.has(p.turn) ? posOf.get(p.turn) : (isNum(p.turn) ? p.turn : null);
        if (pos === null || pos < 0) return;
        points.push({ pos: pos, score: Math.min(1, Math.max(0, p.score)), level: levelOf(p) || levelForScore(p.score) });
      });
    } else {
      turns.forEach(function (t, pos) {
        var f = t.user && t.user.frustration;
        if (f && isNum(f.score)) points.push({ pos: pos, score: f.score, level: levelOf(f) || levelForScore(f.score) });
      });
    }
    points.sort(function (x, y) { return x.pos - y.pos; });
    return points;
  }

  function renderChart() {
    var replay = state.replay;
    clear(dom.chartCanvas);
    clear(dom.chartSummary);
    if (!replay) return;
    var points = frustrationPoints(replay);
    var total = Math.max(replay.turns.length, points.length ? points[points.length - 1].pos + 1 : 0);
    var cur = state.current;

    if (!points.length) {
      dom.chart.setAttribute("data-level", "unknown");
      dom.chartSummary.appendChild(h("span", { class: "chart-summary-main" }, "Frustration: no customer turns were rated in this replay."));
      return;
    }

    var peak = points.reduce(function (m, p) { return p.score > m.score ? p : m; }, points[0]);
    var upToNow = points.filter(function (p) { return p.pos <= cur; });
    var latest = upToNow.length ? upToNow[upToNow.length - 1] : null;
    dom.chart.setAttribute("data-level", latest ? latest.level : "unknown");
    dom.chartSummary.appendChild(h("span", { class: "chart-summary-main" },
      latest
        ? "Frustration at turn " + (cur + 1) + ": " + latest.level + " " + scoreText(latest.score) +
          (latest.pos !== cur ? " (last rated at turn " + (latest.pos + 1) + ")" : "")
        : "Frustration at turn " + (cur + 1) + ": not rated yet"));
    dom.chartSummary.appendChild(h("span", { class: "chart-summary-detail" },
      ". Over the whole replay: starts " + points[0].level + " " + scoreText(points[0].score) +
      ", peaks " + peak.level + " " + scoreText(peak.score) + " at turn " + (peak.pos + 1) +
      ", ends " + points[points.length - 1].level + " " + scoreText(points[points.length - 1].score) +
      " (" + plural(points.length, "rated turn", "rated turns") + " of " + total +
      "; annoyed from " + THRESHOLDS.annoyed + ", angry from " + THRESHOLDS.angry + ")."));

    var W = Math.max(320, Math.round(dom.chartCanvas.clientWidth || 560)), H = 120;
    var m = { l: 24, r: 84, t: 8, b: 20 };
    var pw = W - m.l - m.r, ph = H - m.t - m.b;
    var x = function (pos) { return total <= 1 ? m.l + pw / 2 : m.l + (pos * pw) / (total - 1); };
    var y = function (v) { return m.t + (1 - Math.min(1, Math.max(0, v))) * ph; };
    var r = function (v) { return Math.round(v * 10) / 10; };

    var svg = s("svg", {
      class: "chart-svg", viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img",
      "aria-labelledby": "chart-summary", focusable: "false"
    });
    svg.appendChild(s("rect", { class: "zone zone-angry", x: m.l, y: r(y(1)), width: r(pw), height: r(y(THRESHOLDS.angry) - y(1)) }));
    svg.appendChild(s("rect", { class: "zone zone-annoyed", x: m.l, y: r(y(THRESHOLDS.angry)), width: r(pw), height: r(y(THRESHOLDS.annoyed) - y(THRESHOLDS.angry)) }));
    svg.appendChild(s("rect", { class: "zone zone-calm", x: m.l, y: r(y(THRESHOLDS.annoyed)), width: r(pw), height: r(y(0) - y(THRESHOLDS.annoyed)) }));
    svg.appendChild(s("line", { class: "axis", x1: m.l, x2: r(m.l + pw), y1: r(y(0)), y2: r(y(0)) }));
    svg.appendChild(s("line", { class: "axis", x1: m.l, x2: m.l, y1: r(y(0)), y2: r(y(1)) }));
    svg.appendChild(s("text", { class: "tick", x: m.l - 4, y: r(y(0) + 4), "text-anchor": "end" }, "0"));
    svg.appendChild(s("text", { class: "tick", x: m.l - 4, y: r(y(1) + 8), "text-anchor": "end" }, "1"));
    [["annoyed", THRESHOLDS.annoyed], ["angry", THRESHOLDS.angry]].forEach(function (t) {
      svg.appendChild(s("line", {
        class: "threshold threshold-" + t[0], "data-threshold": t[1],
        x1: m.l, x2: r(m.l + pw), y1: r(y(t[1])), y2: r(y(t[1])), "stroke-dasharray": "5 4"
      }));
      svg.appendChild(s("text", { class: "threshold-label", x: r(m.l + pw + 6), y: r(y(t[1]) + 4) }, t[0] + " " + t[1]));
    });
    // turn ticks along the bottom (every turn when few, otherwise a handful)
    var every = total <= 12 ? 1 : Math.ceil(total / 10);
    for (var k = 0; k < total; k += every) {
      svg.appendChild(s("text", { class: "tick", x: r(x(k)), y: H - 4, "text-anchor": "middle" }, String(k + 1)));
    }
    // current-turn marker
    if (cur >= 0) {
      svg.appendChild(s("line", {
        class: "current-marker", "data-turn": cur, x1: r(x(cur)), x2: r(x(cur)), y1: r(y(1)), y2: r(y(0))
      }));
    }
    // line through the rated turns
    if (points.length > 1) {
      var d = points.map(function (p, i) { return (i ? "L" : "M") + r(x(p.pos)) + " " + r(y(p.score)); }).join(" ");
      svg.appendChild(s("path", { class: "trend-line", d: d, fill: "none" }));
    }
    points.forEach(function (p) {
      var future = p.pos > cur;
      svg.appendChild(s("circle", {
        class: "point level-" + p.level + (future ? " is-future" : "") + (p.pos === cur ? " is-current" : ""),
        cx: r(x(p.pos)), cy: r(y(p.score)), r: p.pos === cur ? 6 : 4, "data-turn": p.pos
      }, s("title", null, "Turn " + (p.pos + 1) + ": " + p.level + " " + scoreText(p.score))));
    });
    dom.chartCanvas.appendChild(svg);
  }

  // ---------------------------------------------------------------- playbook conformance

  function renderConformance(c) {
    clear(dom.conformance);
    if (!c || typeof c !== "object") {
      dom.conformance.appendChild(h("p", { class: "panel-empty" }, "This replay has no playbook conformance data."));
      return;
    }
    var done = Array.isArray(c.steps_done) ? c.steps_done.filter(isStr) : [];
    var missing = Array.isArray(c.steps_missing) ? c.steps_missing.filter(isStr) : [];
    var agentDone = Array.isArray(c.steps_by_agent) ? c.steps_by_agent.filter(isStr) : [];

    if (c.counted === false) {
      dom.conformance.appendChild(h("p", { class: "not-counted-note", "data-testid": "not-counted-note" },
        "Not measured against the playbook" + (isStr(c.not_counted_reason) ? ": " + c.not_counted_reason : "") +
        ". It is left out of the playbook counts when all stories are replayed."));
      return;
    }

    dom.conformance.appendChild(h("h3", null, "Steps done, in the order they happened"));
    if (done.length) {
      var ol = h("ol", { class: "steps-done" });
      var highest = -1;
      done.forEach(function (st) {
        var idx = PLAYBOOK_STEPS.indexOf(st);
        var early = idx >= 0 && idx < highest;
        if (idx > highest) highest = idx;
        ol.appendChild(h("li", { class: "step-done" + (early ? " is-out-of-order" : ""), "data-step": st },
          stepLabel(st), early ? h("span", { class: "out-of-order-note" }, " (out of order)") : null,
          agentDone.indexOf(st) >= 0 ? h("span", { class: "by-person-note" }, " (by a person)") : null));
      });
      dom.conformance.appendChild(ol);
    } else {
      dom.conformance.appendChild(h("p", { class: "panel-empty" }, "No playbook step was done."));
    }

    dom.conformance.appendChild(h("h3", null, "Missing steps"));
    dom.conformance.appendChild(h("p", { class: "hint" }, "“Learn” is never missing: it happens after the conversation, in the case review."));
    if (missing.length) {
      var ul = h("ul", { class: "steps-missing" });
      missing.forEach(function (st) { ul.appendChild(h("li", { class: "chip missing", "data-step": st }, stepLabel(st))); });
      dom.conformance.appendChild(ul);
    } else {
      dom.conformance.appendChild(h("p", { class: "panel-empty" }, "None."));
    }

    var dl = h("dl", { class: "kv kv-stacked" });
    dl.appendChild(h("dt", null, "Order"));
    dl.appendChild(h("dd", { class: "in-order", "data-in-order": c.in_order === true ? "true" : "false" },
      h("span", { "aria-hidden": "true" }, c.in_order === true ? "✓ " : "✕ "),
      c.in_order === true ? "in playbook order" : "not in playbook order"));
    dl.appendChild(h("dt", null, "Complaint → acknowledgement"));
    var ca = c.complaint_to_acknowledgement;
    var caText;
    if (ca && typeof ca === "object" && (isNum(ca.turns) || isNum(ca.seconds))) {
      caText = (isNum(ca.turns) ? plural(ca.turns, "turn", "turns") : "") +
        (isNum(ca.seconds) ? (isNum(ca.turns) ? ", " : "") + ca.seconds.toFixed(1) + " s" : "");
    } else {
      caText = "not measured (no complaint, or never acknowledged)";
    }
    dl.appendChild(h("dd", { class: "complaint-ack" }, caText));
    dom.conformance.appendChild(dl);

    var re = Array.isArray(c.re_explanations) ? c.re_explanations.filter(function (x) { return x && typeof x === "object"; }) : [];
    dom.conformance.appendChild(h("h3", null, "Re-explanations (" + re.length + ")"));
    if (!re.length) {
      dom.conformance.appendChild(h("p", { class: "panel-empty" }, "The customer never had to repeat what the bot already knew."));
      return;
    }
    var list = h("ul", { class: "re-explanations" });
    re.forEach(function (x) {
      var pos = turnPosition(x.turn);
      var turnLabel = pos >= 0 ? "Turn " + (pos + 1) : (isNum(x.turn) ? "Turn " + (x.turn + 1) : "Turn ?");
      var head = pos >= 0
        ? h("button", {
          type: "button", class: "link-button",
          onclick: function () { stopPlaying(); setCurrent(pos, { scroll: false }); scrollToTurn(pos, "start"); state.turnNodes[pos].focus({ preventScroll: true }); }
        }, turnLabel)
        : h("span", null, turnLabel);
      list.appendChild(h("li", { class: "re-explanation", "data-testid": "re-explanation", "data-turn": isNum(x.turn) ? x.turn : null },
        h("p", { class: "re-head" }, head),
        h("dl", { class: "kv" },
          h("dt", null, "Asked for"), h("dd", null, isStr(x.asked_for) ? x.asked_for : "—"),
          h("dt", null, "Already known"), h("dd", null, isStr(x.already_known) ? x.already_known : "—"))));
    });
    dom.conformance.appendChild(list);
  }

  function turnPosition(index) {
    if (!state.replay || !isNum(index)) return -1;
    var turns = state.replay.turns;
    for (var i = 0; i < turns.length; i++) if ((isNum(turns[i].index) ? turns[i].index : i) === index) return i;
    return -1;
  }

  // ---------------------------------------------------------------- export

  function prepareExport(id, name) {
    dom.exportName.disabled = false;
    dom.exportName.value = state.exportNames.has(id) ? state.exportNames.get(id) : name;
    dom.exportName.removeAttribute("aria-invalid");
    dom.exportDownload.disabled = false;
    dom.exportSave.disabled = false;
    setExportResult("", null);
    dom.exportPreview.hidden = true;
    dom.exportPreview.open = false;
    dom.exportYaml.textContent = "";
    renderCorrectionsSummary();
  }

  function renderCorrectionsSummary() {
    clear(dom.exportCorrections);
    var id = state.selectedId;
    var corr = id ? correctionsFor(id) : {};
    var steps = Object.keys(corr).sort(function (a, b) { return Number(a) - Number(b); });
    var agentSteps = state.replay && Array.isArray(state.replay.turns) ? state.replay.turns.reduce(function (n, t) {
      return n + (Array.isArray(t.actions) ? t.actions.filter(function (a) { return a && a.by_agent === true; }).length : 0);
    }, 0) : 0;
    if (agentSteps) {
      dom.exportCorrections.appendChild(h("p", { class: "hint", "data-testid": "export-agent-note" },
        "The " + plural(agentSteps, "step", "steps") + " a person took stay in the story as they happened " +
        "(with the handed_off slot), so its replay shows them as the agent's and does not judge them."));
    }
    if (!steps.length) {
      dom.exportCorrections.appendChild(h("p", { class: "panel-empty" },
        "No corrections: the story expects exactly what happened, so it replays as this replay did (green when it passed). " +
        "Use “Mark wrong” on a bot step to correct it: the story then fails at exactly that step until the bot learns it."));
      return;
    }
    dom.exportCorrections.appendChild(h("p", null, plural(steps.length, "correction", "corrections") + " will be exported:"));
    var ul = h("ul", { class: "corrections-list" });
    steps.forEach(function (st) {
      ul.appendChild(h("li", { "data-step": st }, "step " + st + " → ", code(corr[st])));
    });
    dom.exportCorrections.appendChild(ul);
  }

  function setExportResult(text, kind) {
    dom.exportResult.textContent = text || "";
    if (kind) dom.exportResult.setAttribute("data-state", kind); else dom.exportResult.removeAttribute("data-state");
  }

  function exportStory(save) {
    var id = state.selectedId;
    if (!id || !state.replay || state.exporting) return;
    var name = dom.exportName.value.trim();
    if (!name) {
      dom.exportName.setAttribute("aria-invalid", "true");
      setExportResult("Enter a story name first.", "error");
      dom.exportName.focus();
      return;
    }
    dom.exportName.removeAttribute("aria-invalid");
    clearError();
    var corr = correctionsFor(id);
    var corrections = {};
    Object.keys(corr).forEach(function (k) { corrections[String(k)] = corr[k]; });

    state.exporting = true;
    dom.exportDownload.disabled = true;
    dom.exportSave.disabled = true;
    setExportResult(save ? "Saving…" : "Preparing the story…", "busy");

    api("POST", "/api/trainer/export", { id: id, name: name, corrections: corrections, save: !!save }).then(function (data) {
      if (state.selectedId !== id) return;
      var yaml = typeof data.yaml === "string" ? data.yaml : "";
      dom.exportYaml.textContent = yaml;
      dom.exportPreview.hidden = !yaml;
      if (save) {
        setExportResult(isStr(data.saved_to) ? "Saved to " + data.saved_to : "Saved.", "ok");
      } else {
        var file = "test_" + slug(name) + ".yml";
        download(yaml, file);
        setExportResult("Downloaded " + file + ".", "ok");
      }
    }, function (err) {
      if (err.status === 401) return;
      setExportResult(err.message, "error");
      reportError(err);
    }).then(function () {
      state.exporting = false;
      var enabled = !!state.replay && state.selectedId === id;
      dom.exportDownload.disabled = !enabled;
      dom.exportSave.disabled = !enabled;
    });
  }

  function download(text, filename) {
    var blob = new Blob([text], { type: "application/x-yaml;charset=utf-8" });
    var url = URL.createObjectURL(blob);
    var a = document.createElement("a");
    a.href = url;
    a.download = filename;
    a.rel = "noopener";
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    document.body.removeChild(a);
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  // ---------------------------------------------------------------- wiring

  [dom.fKind, dom.fIssue, dom.fFrustration, dom.fOutcome, dom.fFrom, dom.fTo].forEach(function (el) {
    el.addEventListener("change", function () { clearError(); loadItems(); });
  });
  dom.fHandoff.addEventListener("change", function () { renderItems(); });
  dom.filters.addEventListener("submit", function (ev) { ev.preventDefault(); loadItems(); });
  dom.filters.addEventListener("reset", function () {
    // the form resets its controls after this event: reload once they are back to the defaults
    setTimeout(function () { clearError(); loadItems(); }, 0);
  });

  dom.replayAll.addEventListener("click", replayAll);
  dom.replayAllStop.addEventListener("click", function () {
    if (state.runAll) {
      state.runAll.cancelled = true;
      dom.replayAllProgress.textContent = "Stopping after the current story…";
    }
  });

  dom.play.addEventListener("click", play);
  dom.pause.addEventListener("click", stopPlaying);
  dom.back.addEventListener("click", function () { step(-1); });
  dom.forward.addEventListener("click", function () { step(1); });
  dom.jump.addEventListener("click", jumpToFirstDivergence);

  dom.exportForm.addEventListener("submit", function (ev) { ev.preventDefault(); exportStory(false); });
  dom.exportSave.addEventListener("click", function () { exportStory(true); });
  dom.exportName.addEventListener("input", function () {
    if (state.selectedId) state.exportNames.set(state.selectedId, dom.exportName.value);
    if (dom.exportName.value.trim()) dom.exportName.removeAttribute("aria-invalid");
  });

  var resizeFrame = null;
  window.addEventListener("resize", function () {
    if (resizeFrame) return;
    resizeFrame = window.requestAnimationFrame(function () { resizeFrame = null; renderChart(); });
  });

  // the action list for the correction picker is fetched once, up front; a failure is shown when a picker opens
  ensureActions().catch(function () { /* retried when a picker opens */ });

  loadItems().then(function () {
    var m = /^#item=(.+)$/.exec(location.hash || "");
    if (!m) return;
    var id;
    try { id = decodeURIComponent(m[1]); } catch (e) { return; }
    if (id) selectItem(id);
  });
})();
