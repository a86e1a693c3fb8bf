/* Mend staff pages: DOM building shared by the console and the trainer page.
 * Every string becomes a text node; URLs become links only through safeLink (http/https). */
(function () {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg";

  function h(tag, attrs) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    for (var i = 2; i < arguments.length; i++) appendChild(node, arguments[i]);
    return node;
  }

  function s(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    for (var i = 2; i < arguments.length; i++) appendChild(node, arguments[i]);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.setAttribute("class", String(value));
      else if (key.slice(0, 2) === "on" && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "href" || key === "src" || key === "action" || key === "formaction") {
        throw new Error("URL attributes must go through safeLink()");
      } else node.setAttribute(key, value === true ? "" : String(value));
    });
  }

  function appendChild(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { appendChild(node, c); }); return; }
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function safeUrl(raw) {
    try {
      var url = new URL(raw);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function safeLink(raw) {
    var href = safeUrl(raw);
    if (!href) return document.createTextNode(String(raw));
    var a = document.createElement("a");
    a.href = href;
    a.textContent = String(raw);
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    return a;
  }

  /** Text with http(s) URLs turned into links (DOM only). */
  function linkified(text) {
    var frag = document.createDocumentFragment();
    var str = String(text == null ? "" : text);
    var re = /https?:\/\/[^\s<>"'`]+/gi;
    var last = 0;
    var m;
    while ((m = re.exec(str)) !== null) {
      var url = m[0].replace(/[.,;:!?)\]}]+$/, "");
      if (!url) continue;
      frag.appendChild(document.createTextNode(str.slice(last, m.index)));
      frag.appendChild(safeLink(url));
      last = m.index + url.length;
      re.lastIndex = last;
    }
    frag.appendChild(document.createTextNode(str.slice(last)));
    return frag;
  }

  window.MendDom = { h: h, s: s, setAttrs: setAttrs, appendChild: appendChild, clear: clear,
                     safeUrl: safeUrl, safeLink: safeLink, linkified: linkified };
})();
