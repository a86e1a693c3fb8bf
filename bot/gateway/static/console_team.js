/* Mend agent console: team tools. Private notes (side column), reassigning a conversation
 * (conversation header) and search (above the queue).
 *
 * Plugs into window.MendConsole (end of console.js); see PROTOCOL.md, "Team tools". Every
 * server string is rendered with textContent / DOM APIs only (MendDom.h); never innerHTML.
 * Notes are staff-only: they are fetched from and posted to /api/.../notes and never touch
 * the composer or anything the customer sees.
 */
(function () {
  "use strict";
  var C = window.MendConsole;
  if (!C || !window.MendDom) return;
  var h = MendDom.h, clear = MendDom.clear;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function convPath(id, suffix) { return "/api/conversations/" + encodeURIComponent(id) + "/" + suffix; }

  var dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function timeNode(value) {
    var d = value ? new Date(value) : null;
    if (!d || isNaN(d.getTime())) return null;
    return h("time", { class: "note-time", datetime: d.toISOString() }, dateTime.format(d));
  }

  // Conversation events arrive before console.js applies them: act once it has.
  function later(fn) { setTimeout(fn, 0); }

  // ------------------------------------------------------------ private notes

  var notes = { id: null, items: [], seq: 0, max: 2000, busy: false };
  var notesList = h("ol", { class: "notes-list", "data-testid": "notes-list", "aria-live": "polite" });
  var notesEmpty = h("p", { class: "panel-empty notes-empty" }, "Open a conversation to see its notes.");
  var noteInput = h("textarea", { id: "note-input", class: "note-input", "data-testid": "note-input", rows: "3",
                                  "aria-describedby": "note-help note-count", disabled: true });
  var noteCount = h("span", { id: "note-count", class: "note-count", "aria-live": "polite" });
  var noteError = h("p", { class: "alert note-error", "data-testid": "note-error", role: "alert" });
  var noteAdd = h("button", { type: "submit", class: "btn btn-small btn-primary", "data-testid": "note-add", disabled: true },
    "Add note");
  var noteForm = h("form", { class: "notes-form", novalidate: true },
    h("label", { for: "note-input", class: "note-label" }, "Private note"),
    noteInput,
    h("p", { id: "note-help", class: "note-help" }, "Only your team sees notes; the customer never does. Ctrl+Enter adds."),
    noteError,
    h("div", { class: "notes-row" }, noteCount, noteAdd));
  var notesPanel = h("section", { class: "panel notes-panel", "data-testid": "notes-panel", "aria-labelledby": "notes-heading" },
    h("h2", { id: "notes-heading" }, "Notes ", h("span", { class: "notes-private" }, "staff only")),
    notesEmpty, notesList, noteForm);
  var side = $("aside.side");
  if (side) {
    var after = $(".suggestions-panel", side);
    side.insertBefore(notesPanel, after ? after.nextSibling : side.firstChild);
  }

  function noteNode(note) {
    return h("li", { class: "note", "data-testid": "note", "data-note-id": String(note.id) },
      h("p", { class: "note-head" },
        h("span", { class: "note-author", "data-testid": "note-author" }, String(note.author_name || note.author || "Staff")),
        timeNode(note.created_at)),
      h("p", { class: "note-text", "data-testid": "note-text" }, String(note.text == null ? "" : note.text)));
  }

  function renderNotes() {
    clear(notesList);
    notes.items.forEach(function (n) { notesList.appendChild(noteNode(n)); });
    notesEmpty.hidden = notes.items.length > 0;
    notesEmpty.textContent = notes.id ? "No notes yet. Add what a colleague should know." : "Open a conversation to see its notes.";
    notesList.scrollTop = notesList.scrollHeight;
  }

  function addNoteItem(note) {
    if (!note || note.id == null) return;
    for (var i = 0; i < notes.items.length; i++) if (String(notes.items[i].id) === String(note.id)) return;
    notes.items.push(note);
    notes.items.sort(function (a, b) { return Number(a.id) - Number(b.id); });
    renderNotes();
  }

  function updateNoteCount() {
    var length = noteInput.value.trim().length;
    noteCount.textContent = length ? length + " / " + notes.max : "";
    noteCount.classList.toggle("is-over", length > notes.max);
    noteAdd.disabled = notes.busy || !notes.id || !length;
  }

  function loadNotes(id) {
    var seq = ++notes.seq;
    if (notes.id !== id) {
      notes.id = id;
      notes.items = [];
      noteInput.value = "";
      noteError.textContent = "";
      renderNotes();
    }
    noteInput.disabled = false;
    updateNoteCount();
    C.api("GET", convPath(id, "notes")).then(function (data) {
      if (seq !== notes.seq || notes.id !== id) return;
      notes.max = data && data.max_chars > 0 ? data.max_chars : notes.max;
      notes.items = data && Array.isArray(data.notes) ? data.notes.slice() : [];
      renderNotes();
      updateNoteCount();
    }, function (err) {
      if (seq === notes.seq && notes.id === id) noteError.textContent = "Could not load the notes: " + err.message;
    });
  }

  function submitNote(ev) {
    if (ev) ev.preventDefault();
    var id = notes.id;
    var text = noteInput.value.trim();
    if (!id || notes.busy) return;
    if (!text) { noteError.textContent = "Write the note first."; return; }
    notes.busy = true;
    noteError.textContent = "";
    updateNoteCount();
    C.api("POST", convPath(id, "notes"), { text: text }).then(function (data) {
      if (notes.id !== id) return;
      noteInput.value = "";
      addNoteItem(data && data.note);
    }, function (err) {
      if (notes.id === id) noteError.textContent = err.message;  // the typed note stays in the box
    }).then(function () {
      notes.busy = false;
      updateNoteCount();
    });
  }

  noteForm.addEventListener("submit", submitNote);
  noteInput.addEventListener("input", updateNoteCount);
  noteInput.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) submitNote(ev);
  });
  renderNotes();

  // ------------------------------------------------------------ reassign

  var QUEUE = "__queue__";
  var reassignSelect = h("select", { id: "reassign-select", class: "reassign-select", "data-testid": "reassign-select" });
  var reassignButton = h("button", { type: "button", class: "btn", "data-testid": "reassign-button" }, "Reassign");
  var reassignBox = h("div", { class: "reassign", "data-testid": "reassign", role: "group", "aria-label": "Reassign", hidden: true },
    h("label", { for: "reassign-select", class: "visually-hidden" }, "Pass this conversation to"),
    reassignSelect, reassignButton);
  var actions = $(".conversation-actions");
  if (actions) actions.appendChild(reassignBox);
  var agents = { list: [], loaded: 0, loading: null };

  function loadAgents(force) {
    if (agents.loading) return agents.loading;
    if (!force && agents.loaded && Date.now() - agents.loaded < 30000) return Promise.resolve(agents.list);
    agents.loading = C.api("GET", "/api/agents").then(function (data) {
      agents.list = data && Array.isArray(data.agents) ? data.agents : [];
      agents.loaded = Date.now();
      agents.loading = null;
      renderAgentOptions();
      return agents.list;
    }, function (err) { agents.loading = null; throw err; });
    return agents.loading;
  }

  function renderAgentOptions() {
    var chosen = reassignSelect.value;
    var summary = C.currentSummary() || {};
    clear(reassignSelect);
    reassignSelect.appendChild(h("option", { value: "" }, "Pass to…"));
    if (summary.status === "agent") reassignSelect.appendChild(h("option", { value: QUEUE }, "Back to the queue"));
    agents.list.forEach(function (a) {
      if (!a || !a.username || a.username === summary.assigned_agent) return;
      var label = String(a.name || a.username) + (a.username === C.me.username ? " (me)" : "") +
        (a.online ? "" : " (offline)");
      reassignSelect.appendChild(h("option", { value: String(a.username) }, label));
    });
    reassignSelect.value = chosen;
    if (reassignSelect.value !== chosen) reassignSelect.value = "";
    reassignButton.disabled = !reassignSelect.value;
  }

  function mayReassign() {
    var summary = C.currentSummary();
    if (!summary || !C.currentId()) return false;
    if (C.isMine()) return true;
    return C.me.role === "admin" && (summary.status === "agent" || summary.status === "waiting");
  }

  function renderReassign() {
    var show = mayReassign();
    reassignBox.hidden = !show;
    if (show) {
      renderAgentOptions();
      loadAgents(false).catch(function () { /* tried again when the list is opened */ });
    }
  }

  function reassign() {
    var id = C.currentId();
    var value = reassignSelect.value;
    if (!id || !value) return;
    var to = value === QUEUE ? null : value;
    var option = reassignSelect.options[reassignSelect.selectedIndex];
    var who = option ? option.textContent.replace(/ \((offline|me)\)$/, "") : value;
    reassignButton.disabled = true;
    C.api("POST", convPath(id, "reassign"), { to: to }).then(function () {
      C.toast(to ? "Passed to " + who + "." : "Back in the queue for the next available person.", null);
      reassignSelect.value = "";
      C.refreshQueue();
      if (C.currentId() === id) C.openConversation(id);
    }, function (err) {
      if (C.currentId() === id) C.showError(err.message);
      loadAgents(true).catch(function () { /* the error above says enough */ });
    }).then(function () { reassignButton.disabled = !reassignSelect.value; });
  }

  reassignSelect.addEventListener("change", function () { reassignButton.disabled = !reassignSelect.value; });
  reassignSelect.addEventListener("focus", function () { loadAgents(false).catch(function () {}); });
  reassignButton.addEventListener("click", reassign);

  // ------------------------------------------------------------ search

  var queueNav = $("nav.queue");
  var searchInput = h("input", { type: "search", id: "search-input", class: "search-input", "data-testid": "search-input",
                                 placeholder: "Search name, email, order, case…", autocomplete: "off", spellcheck: "false",
                                 maxlength: "100", "aria-describedby": "search-status" });
  var searchStatus = h("p", { id: "search-status", class: "search-status", "data-testid": "search-status", role: "status" });
  var searchResults = h("ul", { class: "queue-list search-results", "data-testid": "search-results", hidden: true,
                                "aria-label": "Search results" });
  var searchBox = h("div", { class: "search", role: "search" },
    h("label", { for: "search-input", class: "visually-hidden" }, "Search conversations"),
    searchInput, searchStatus, searchResults);
  if (queueNav) queueNav.insertBefore(searchBox, $(".queue-filter, .queue-section", queueNav));
  var search = { seq: 0, timer: null, query: "", results: [] };
  var MIN = 2;

  function renderResults() {
    clear(searchResults);
    search.results.forEach(function (summary) {
      var entry = C.queueItem(summary, "search");
      var button = $(".queue-item", entry);
      if (button) {  // not a queue item: the queue's filters leave search results alone
        button.setAttribute("data-testid", "search-result");
        if (summary.conversation_id === C.currentId()) button.classList.add("is-current");
      }
      searchResults.appendChild(entry);
    });
  }

  function setSearching(on) {
    if (queueNav) queueNav.classList.toggle("is-searching", on);
    searchResults.hidden = !on;
    if (!on) { clear(searchResults); searchStatus.textContent = ""; search.results = []; }
  }

  function runSearch() {
    var query = searchInput.value.trim();
    search.query = query;
    clearTimeout(search.timer);
    if (!query) { search.seq++; setSearching(false); return; }
    setSearching(true);
    if (query.length < MIN) {
      search.seq++;
      search.results = [];
      renderResults();
      searchStatus.textContent = "Type at least " + MIN + " characters.";
      return;
    }
    searchStatus.textContent = "Searching…";
    search.timer = setTimeout(function () {
      var seq = ++search.seq;
      C.api("GET", "/api/search?q=" + encodeURIComponent(query)).then(function (data) {
        if (seq !== search.seq) return;
        search.results = data && Array.isArray(data.results) ? data.results : [];
        renderResults();
        var n = search.results.length;
        searchStatus.textContent = n ? n + (data.truncated ? "+" : "") + " conversation" + (n === 1 ? "" : "s") +
          " found. Esc clears." : "No conversation matches “" + query + "”.";
      }, function (err) {
        if (seq === search.seq) searchStatus.textContent = err.message;
      });
    }, 250);
  }

  function clearSearch() {
    searchInput.value = "";
    runSearch();
  }

  searchInput.addEventListener("input", runSearch);
  searchInput.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { ev.preventDefault(); clearSearch(); }
  });
  searchResults.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { ev.preventDefault(); clearSearch(); searchInput.focus(); }
  });

  // ------------------------------------------------------------ following the console

  C.on("conversation", function (ev) {
    if (!ev || !ev.id) return;
    loadNotes(String(ev.id));
    renderReassign();
    if (search.results.length) renderResults();
  });
  C.on("socket", function (ev) {
    if (!ev || typeof ev !== "object") return;
    var id = ev.conversation_id == null ? null : String(ev.conversation_id);
    if (ev.type === "note" && id && id === notes.id) addNoteItem(ev.note);
    else if (ev.type === "state" && id && id === C.currentId()) later(renderReassign);
    else if (ev.type === "queue") later(function () { if (!reassignBox.hidden) renderAgentOptions(); });
  });
})();
