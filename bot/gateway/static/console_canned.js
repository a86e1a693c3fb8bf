/* Mend agent console: canned replies ("/" shortcut picker, admin dialog), queue filters,
 * folding of the handoff summary and chart, and the phone layout's pane tabs.
 *
 * Plugs into window.MendConsole (end of console.js). Server strings are rendered with
 * textContent / DOM APIs only (MendDom.h); never innerHTML.
 */
(function () {
  "use strict";
  var C = window.MendConsole;
  if (!C || !window.MendDom) return;
  var h = MendDom.h, clear = MendDom.clear;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function byTestId(id, root) { return $('[data-testid="' + id + '"]', root); }
  function store(key, value) {
    try { if (value === undefined) return sessionStorage.getItem(key); sessionStorage.setItem(key, value); }
    catch (e) { /* private mode */ }
    return null;
  }

  // ------------------------------------------------------------ canned replies: data

  var canned = { replies: [], placeholders: [], limits: {}, loaded: 0, loading: null };

  function loadCanned(force) {
    if (!force && canned.loading) return canned.loading;
    if (!force && canned.loaded && Date.now() - canned.loaded < 60000) return Promise.resolve(canned.replies);
    canned.loading = C.api("GET", "/api/canned").then(function (data) {
      canned.replies = data && Array.isArray(data.replies) ? data.replies : [];
      canned.placeholders = data && Array.isArray(data.placeholders) ? data.placeholders : [];
      canned.limits = (data && data.limits) || {};
      canned.loaded = Date.now();
      canned.loading = null;
      return canned.replies;
    }, function (err) { canned.loading = null; throw err; });
    return canned.loading;
  }

  // ------------------------------------------------------------ canned replies: "/" picker

  var input = C.composer();
  var composer = input.closest("form");
  var picker = h("ul", { class: "canned-picker", "data-testid": "canned-picker", role: "listbox",
                         id: "canned-picker", "aria-label": "Canned replies", hidden: true });
  var missingNote = h("p", { class: "canned-missing", "data-testid": "canned-missing", role: "status", hidden: true });
  input.parentNode.insertBefore(picker, input);
  input.parentNode.insertBefore(missingNote, input.nextSibling);
  input.setAttribute("aria-controls", "canned-picker");
  input.setAttribute("placeholder", "Type a reply, or / for canned replies");
  var pick = { open: false, matches: [], index: 0, prefix: "" };

  function slashPrefix() {
    var before = input.value.slice(0, input.selectionStart == null ? input.value.length : input.selectionStart);
    var m = /^\/([a-z0-9_-]{0,40})$/i.exec(before);
    return m ? m[1].toLowerCase() : null;
  }

  function closePicker() {
    pick.open = false;
    picker.hidden = true;
    input.removeAttribute("aria-activedescendant");
    input.setAttribute("aria-expanded", "false");
  }

  function renderPicker() {
    clear(picker);
    if (!pick.matches.length) {
      picker.appendChild(h("li", { class: "canned-empty" },
        canned.replies.length ? "No canned reply starts with /" + pick.prefix : "No canned replies yet."));
    }
    pick.matches.forEach(function (reply, i) {
      var li = h("li", {
        class: "canned-option" + (i === pick.index ? " is-active" : ""), role: "option",
        id: "canned-option-" + i, "data-testid": "canned-option", "data-shortcut": reply.shortcut,
        "aria-selected": i === pick.index ? "true" : "false",
        onmousedown: function (ev) { ev.preventDefault(); },  // keep the focus in the composer
        onclick: function () { insert(reply); }
      }, h("span", { class: "canned-shortcut" }, "/" + reply.shortcut), " ",
        h("span", { class: "canned-title" }, String(reply.title || "")),
        h("span", { class: "canned-preview" }, String(reply.text || "").slice(0, 90)));
      picker.appendChild(li);
    });
    picker.hidden = false;
    pick.open = true;
    input.setAttribute("aria-expanded", "true");
    if (pick.matches.length) input.setAttribute("aria-activedescendant", "canned-option-" + pick.index);
  }

  function updatePicker() {
    var prefix = slashPrefix();
    if (prefix === null || input.disabled) { closePicker(); return; }
    loadCanned().then(function () {
      if (slashPrefix() !== prefix) return;
      pick.prefix = prefix;
      pick.matches = canned.replies.filter(function (r) { return r.shortcut.indexOf(prefix) === 0; }).slice(0, 8);
      pick.index = 0;
      renderPicker();
    }, function (err) { C.showError("Could not load the canned replies: " + err.message); });
  }

  function insert(reply) {
    var id = C.currentId();
    closePicker();
    if (!id) return;
    C.api("GET", "/api/conversations/" + encodeURIComponent(id) + "/canned/" + encodeURIComponent(reply.id))
      .then(function (data) {
        if (C.currentId() !== id || !data || typeof data.text !== "string") return;
        var caret = input.selectionStart == null ? input.value.length : input.selectionStart;
        var rest = input.value.slice(caret);
        if (slashPrefix() === null) rest = input.value;  // the agent moved on: keep what they typed after it
        input.value = data.text + (rest ? (/^\s/.test(rest) ? "" : " ") + rest : "");
        input.dispatchEvent(new Event("input", { bubbles: true }));
        var missing = Array.isArray(data.missing) ? data.missing : [];
        if (missing.length) {
          missingNote.textContent = "Fill in before sending: " + missing.map(function (m) {
            return "[" + String(m).replace(/_/g, " ") + "]";
          }).join(", ");
          missingNote.hidden = false;
          var first = input.value.indexOf("[" + String(missing[0]).replace(/_/g, " ") + "]");
          input.focus();
          if (first >= 0) input.setSelectionRange(first, first + String(missing[0]).length + 2);
        } else {
          missingNote.hidden = true;
          input.focus();
          input.setSelectionRange(data.text.length, data.text.length);
        }
      }, function (err) { C.showError(err.message); });
  }

  input.addEventListener("input", function () {
    if (!missingNote.hidden && !/\[[a-z ]+\]/.test(input.value)) missingNote.hidden = true;
    updatePicker();
  });
  input.addEventListener("click", updatePicker);
  input.addEventListener("blur", function () { setTimeout(closePicker, 150); });
  input.addEventListener("keydown", function (ev) {
    if (!pick.open) return;
    if (ev.key === "Escape") { ev.preventDefault(); closePicker(); return; }
    if (!pick.matches.length) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      var n = pick.matches.length;
      pick.index = (pick.index + (ev.key === "ArrowDown" ? 1 : n - 1)) % n;
      renderPicker();
    } else if ((ev.key === "Enter" && !ev.ctrlKey && !ev.metaKey && !ev.shiftKey) || ev.key === "Tab") {
      ev.preventDefault();
      ev.stopImmediatePropagation();
      insert(pick.matches[pick.index]);
    }
  });
  if (composer) composer.addEventListener("submit", function () { missingNote.hidden = true; closePicker(); });
  var pickerFor = C.currentId();
  C.on("conversation", function (ev) {  // a re-render of the same conversation keeps the picker open
    if (ev && ev.id === pickerFor) return;
    pickerFor = ev ? ev.id : null;
    closePicker();
    missingNote.hidden = true;
  });

  // ------------------------------------------------------------ canned replies: admin dialog

  var isAdmin = C.me && C.me.role === "admin";
  if (isAdmin) {
    var topbar = $(".topbar");
    var openBtn = h("button", { type: "button", class: "btn btn-quiet topbar-btn", "data-testid": "canned-admin-open",
                                "aria-haspopup": "dialog" }, "Canned replies");
    topbar.insertBefore(openBtn, $(".whoami", topbar));
    var dialog = buildAdminDialog();
    document.body.appendChild(dialog.node);
    openBtn.addEventListener("click", function () { dialog.open(); });
  }

  function buildAdminDialog() {
    var node = h("dialog", { class: "canned-admin", "data-testid": "canned-admin", "aria-labelledby": "canned-admin-heading" });
    var error = h("p", { class: "alert canned-admin-error", "data-testid": "canned-admin-error", role: "alert", hidden: true });
    var list = h("ul", { class: "canned-admin-list", "data-testid": "canned-admin-list" });
    var editing = null;  // id of the reply in the form, or null for a new one
    var shortcut = h("input", { id: "canned-shortcut", name: "shortcut", "data-testid": "canned-shortcut",
                                required: true, maxlength: "40", autocomplete: "off", spellcheck: "false" });
    var title = h("input", { id: "canned-title", name: "title", "data-testid": "canned-title", required: true,
                             maxlength: "120", autocomplete: "off" });
    var text = h("textarea", { id: "canned-text", name: "text", "data-testid": "canned-text", rows: "5", required: true });
    var formHeading = h("h3", { class: "canned-form-heading" }, "New canned reply");
    var help = h("p", { class: "canned-help" });
    var save = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "canned-save" }, "Save");
    var cancel = h("button", { type: "button", class: "btn", onclick: function () { resetForm(); } }, "New / clear");
    var form = h("form", { class: "canned-form", novalidate: true },
      formHeading,
      h("div", { class: "field" }, h("label", { for: "canned-shortcut" }, "Shortcut (agents type /shortcut)"), shortcut),
      h("div", { class: "field" }, h("label", { for: "canned-title" }, "Title"), title),
      h("div", { class: "field" }, h("label", { for: "canned-text" }, "Text"), text),
      help, h("div", { class: "canned-form-actions" }, cancel, save));
    node.appendChild(h("div", { class: "canned-admin-head" },
      h("h2", { id: "canned-admin-heading" }, "Canned replies"),
      h("button", { type: "button", class: "btn btn-quiet", "data-testid": "canned-admin-close",
                    onclick: function () { node.close(); } }, "Close")));
    node.appendChild(error);
    node.appendChild(h("div", { class: "canned-admin-body" }, list, form));

    function showAdminError(message) { error.textContent = message || ""; error.hidden = !message; }

    function resetForm() {
      editing = null;
      formHeading.textContent = "New canned reply";
      shortcut.value = title.value = text.value = "";
      showAdminError("");
    }

    function renderList() {
      clear(list);
      if (!canned.replies.length) list.appendChild(h("li", { class: "panel-empty" }, "No canned replies yet."));
      canned.replies.forEach(function (reply) {
        var del = h("button", { type: "button", class: "btn btn-small", "data-testid": "canned-delete" }, "Delete");
        del.addEventListener("click", function () {
          if (del.getAttribute("data-confirm") !== "1") {
            del.setAttribute("data-confirm", "1");
            del.textContent = "Really delete?";
            return;
          }
          C.api("DELETE", "/api/canned/" + encodeURIComponent(reply.id)).then(function () {
            if (editing === reply.id) resetForm();
            return refresh();
          }, function (err) { showAdminError(err.message); });
        });
        list.appendChild(h("li", { class: "canned-admin-item", "data-testid": "canned-admin-item", "data-shortcut": reply.shortcut },
          h("p", null, h("strong", null, "/" + reply.shortcut), " · ", String(reply.title || "")),
          h("p", { class: "canned-preview" }, String(reply.text || "")),
          h("div", { class: "canned-item-actions" },
            h("button", { type: "button", class: "btn btn-small", "data-testid": "canned-edit", onclick: function () {
              editing = reply.id;
              formHeading.textContent = "Edit /" + reply.shortcut;
              shortcut.value = reply.shortcut; title.value = reply.title; text.value = reply.text;
              showAdminError("");
              shortcut.focus();
            } }, "Edit"), del)));
      });
      help.textContent = "Placeholders filled from the open case: " +
        canned.placeholders.map(function (p) { return "{" + p + "}"; }).join(" ") +
        (canned.limits.text_chars ? ". Text up to " + canned.limits.text_chars + " characters." : "");
    }

    function refresh() {
      return loadCanned(true).then(renderList, function (err) { showAdminError(err.message); });
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      showAdminError("");
      var body = { shortcut: shortcut.value.trim(), title: title.value, text: text.value };
      var request = editing === null ? C.api("POST", "/api/canned", body)
        : C.api("PUT", "/api/canned/" + encodeURIComponent(editing), body);
      save.disabled = true;
      request.then(function () {
        save.disabled = false;
        resetForm();
        C.toast("Canned reply /" + body.shortcut + " saved.", null);
        return refresh();
      }, function (err) { save.disabled = false; showAdminError(err.message); });
    });

    return {
      node: node,
      open: function () {
        resetForm();
        if (typeof node.showModal === "function") node.showModal(); else node.setAttribute("open", "");
        refresh();
      }
    };
  }

  // ------------------------------------------------------------ folding: handoff summary and chart

  function setFold(kind, folded) {
    var target = kind === "chart" ? byTestId("frustration-chart") : byTestId("handoff-summary");
    var toggle = byTestId(kind + "-toggle");
    if (!target || !toggle) return;
    target.classList.toggle("is-folded", folded);
    toggle.setAttribute("aria-expanded", folded ? "false" : "true");
    toggle.textContent = folded ? (kind === "chart" ? "Show chart" : "Show") : (kind === "chart" ? "Hide chart" : "Hide");
    store("mend.fold." + kind, folded ? "1" : "0");
  }

  ["chart", "handoff"].forEach(function (kind) {
    var toggle = byTestId(kind + "-toggle");
    if (!toggle) return;
    toggle.addEventListener("click", function () { setFold(kind, toggle.getAttribute("aria-expanded") === "true"); });
    var saved = store("mend.fold." + kind);
    // By default chart and handoff summary fold to one line on short screens: the transcript gets the height.
    setFold(kind, saved === null ? window.innerHeight < 960 : saved === "1");
  });

  // ------------------------------------------------------------ queue filters

  var queueNav = $("nav.queue");
  var ISSUES = ["delivery", "billing", "product", "account", "technical", "other"];
  var show = h("select", { id: "queue-show", "data-testid": "queue-filter-show" },
    h("option", { value: "all" }, "Everything"),
    h("option", { value: "angry" }, "Angry only"),
    h("option", { value: "upset" }, "Annoyed or angry"),
    h("option", { value: "waiting" }, "Waiting for a person"),
    h("option", { value: "mine" }, "Mine"));
  var issueSelect = h("select", { id: "queue-issue", "data-testid": "queue-filter-issue" },
    h("option", { value: "" }, "Any issue"),
    ISSUES.map(function (i) { return h("option", { value: i }, i); }));
  var hideEmpty = h("input", { type: "checkbox", id: "queue-hide-empty", "data-testid": "queue-filter-hide-empty" });
  var filterStatus = h("p", { class: "queue-filter-status", "data-testid": "queue-filter-status", role: "status" });
  var filterBar = h("div", { class: "queue-filter", "data-testid": "queue-filter", role: "group",
                             "aria-label": "Filter the queue" },
    h("div", { class: "queue-filter-row" },
      h("label", { for: "queue-show" }, "Show"), show,
      h("label", { for: "queue-issue", class: "visually-hidden" }, "Issue type"), issueSelect),
    h("label", { class: "queue-filter-check", for: "queue-hide-empty" }, hideEmpty,
      " Hide guest chats with no messages"),
    filterStatus);
  if (queueNav) queueNav.insertBefore(filterBar, $(".queue-section", queueNav));
  show.value = store("mend.filter.show") || "all";
  issueSelect.value = store("mend.filter.issue") || "";
  hideEmpty.checked = store("mend.filter.hideEmpty") === "1";

  function matches(item) {
    var level = item.getAttribute("data-level");
    var status = item.getAttribute("data-status");
    var section = item.getAttribute("data-section");
    switch (show.value) {
      case "angry": if (level !== "angry") return false; break;
      case "upset": if (level !== "angry" && level !== "annoyed") return false; break;
      case "waiting": if (status !== "waiting") return false; break;
      case "mine":
        if (section !== "mine" && item.getAttribute("data-assigned") !== (C.me && C.me.username)) return false;
        break;
      default: break;
    }
    if (issueSelect.value && item.getAttribute("data-issue") !== issueSelect.value) return false;
    if (hideEmpty.checked && item.getAttribute("data-guest") === "true" &&
        item.getAttribute("data-has-messages") !== "true") return false;
    return true;
  }

  var applying = false;
  function applyFilters() {
    if (!queueNav || applying) return;
    applying = true;
    var active = show.value !== "all" || !!issueSelect.value || hideEmpty.checked;
    var items = queueNav.querySelectorAll('[data-testid="queue-item"]');
    var shown = 0;
    for (var i = 0; i < items.length; i++) {
      var ok = !active || matches(items[i]);
      var entry = items[i].closest("li") || items[i];
      if (entry.hidden === ok) entry.hidden = !ok;
      if (ok) shown++;
    }
    filterBar.classList.toggle("is-active", active);
    var status = active ? "Showing " + shown + " of " + items.length + " listed" : "";
    if (filterStatus.textContent !== status) filterStatus.textContent = status;
    applying = false;
  }

  [show, issueSelect, hideEmpty].forEach(function (control) {
    control.addEventListener("change", function () {
      store("mend.filter.show", show.value);
      store("mend.filter.issue", issueSelect.value);
      store("mend.filter.hideEmpty", hideEmpty.checked ? "1" : "0");
      applyFilters();
    });
  });
  if (queueNav && window.MutationObserver) {  // the lists only: the filter bar's own changes must not loop
    var observer = new MutationObserver(applyFilters);
    Array.prototype.forEach.call(queueNav.querySelectorAll(".queue-list"), function (list) {
      observer.observe(list, { childList: true, subtree: true });
    });
  }
  applyFilters();

  // A conversation's level changes with each rated message: the queue's cards (and so the filters) follow.
  var queueTimer = null;
  C.on("socket", function (ev) {
    if (!ev || ev.type !== "state" || queueTimer) return;
    queueTimer = setTimeout(function () { queueTimer = null; C.refreshQueue(); }, 1500);
  });

  // ------------------------------------------------------------ phone layout: one pane at a time

  var panes = { queue: queueNav, conversation: $("main.conversation"), side: $("aside.side") };
  var tabs = h("nav", { class: "pane-tabs", "data-testid": "pane-tabs", "aria-label": "Console sections" });
  ["queue", "conversation", "side"].forEach(function (pane) {
    tabs.appendChild(h("button", { type: "button", class: "pane-tab", "data-pane": pane, "data-testid": "pane-tab-" + pane,
                                   onclick: function () { showPane(pane, true); } },
      { queue: "Queue", conversation: "Conversation", side: "Assist" }[pane]));
  });
  var layout = $(".layout");
  if (layout) layout.parentNode.insertBefore(tabs, layout);

  function showPane(pane, focus) {
    document.body.setAttribute("data-pane", pane);
    Array.prototype.forEach.call(tabs.children, function (tab) {
      tab.setAttribute("aria-pressed", tab.getAttribute("data-pane") === pane ? "true" : "false");
    });
    if (focus && window.matchMedia("(max-width: 760px)").matches && panes[pane]) window.scrollTo(0, 0);
  }
  showPane(C.currentId() ? "conversation" : "queue", false);
  var lastId = C.currentId();
  C.on("conversation", function (ev) {
    if (ev && ev.id !== lastId) { lastId = ev.id; showPane("conversation", true); }
  });

  loadCanned().catch(function () { /* shown when the picker opens */ });
})();
