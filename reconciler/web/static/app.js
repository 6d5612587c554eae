// The web view's only script: it keeps an open page current and filters the overview as you type.
// Pages are rendered on the server; this swaps in the server's new HTML for #live, nothing else.
(function () {
  "use strict";
  var body = document.body;
  var root = body.getAttribute("data-root") || "./";
  var poll = parseInt(body.getAttribute("data-poll") || "2000", 10);
  var generation = body.getAttribute("data-generation") || "0";
  var busy = false;

  function openStates(element) {
    return Array.prototype.map.call(element.querySelectorAll("details"), function (d) { return d.open; });
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.getElementById("live");
    var live = document.getElementById("live");
    if (!fresh || !live) { return; }
    var opened = openStates(live);
    var node = document.importNode(fresh, true);
    var details = node.querySelectorAll("details");
    if (details.length === opened.length) {
      opened.forEach(function (open, i) { details[i].open = open; });
    }
    live.parentNode.replaceChild(node, live);
    generation = doc.body.getAttribute("data-generation") || generation;
    body.setAttribute("data-generation", generation);
    if (doc.title) { document.title = doc.title; }
  }

  var latest = 0;

  function load(url, remember) {
    var mine = ++latest;
    busy = true;
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        if (mine !== latest) { return; }  // a later request (the next keystroke) answers instead
        swap(html);
        if (remember) { history.replaceState(null, "", url); }
      })
      .catch(function () { /* the next poll tries again */ })
      .then(function () { if (mine === latest) { busy = false; } });
  }

  function check() {
    if (busy || document.hidden) { return; }
    fetch(root + "api/generation", { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && String(data.generation) !== String(generation)) { return load(location.href, false); }
      })
      .catch(function () { /* the server may be restarting */ });
  }
  window.setInterval(check, poll);

  var form = document.getElementById("filters");
  if (form) {
    var timer = null;
    var filter = function () {
      var wanted = new URLSearchParams();
      new FormData(form).forEach(function (value, key) { if (value) { wanted.append(key, value); } });
      var query = wanted.toString();
      load(location.pathname + (query ? "?" + query : ""), true);
    };
    form.addEventListener("input", function () { window.clearTimeout(timer); timer = window.setTimeout(filter, 250); });
    form.addEventListener("change", function () { window.clearTimeout(timer); timer = window.setTimeout(filter, 20); });
    form.addEventListener("submit", function (event) { event.preventDefault(); window.clearTimeout(timer); filter(); });
  }
})();
