// Herald console: progressive enhancement only. Every page works without this script;
// with it, the overview and a bulk action's progress refresh themselves, the one-click
// sign-in link of `herald dev` signs in, and the resolve page answers to D, F and S.
// Loaded from the console's own origin (its Content-Security-Policy allows nothing else).
(function () {
  "use strict";

  // Sign-in: `#token=...` in the fragment, which no server ever sees. Take it out of the
  // address bar and the history entry first, then post it with the form.
  function signInFromFragment() {
    var form = document.getElementById("sign-in");
    if (!form || location.hash.indexOf("#token=") !== 0) return;
    var token = decodeURIComponent(location.hash.slice("#token=".length));
    history.replaceState(null, "", location.pathname + location.search);
    if (!token) return;
    form.elements.token.value = token;
    form.submit();
  }

  // Parts of a page marked data-live-url are fetched again every data-live-seconds and
  // swapped in, until the new part says data-live-final (a finished bulk action).
  function live(region) {
    var url = region.getAttribute("data-live-url");
    var seconds = Number(region.getAttribute("data-live-seconds")) || 5;
    var timer = null;
    function schedule() {
      timer = setTimeout(refresh, seconds * 1000);
    }
    function refresh() {
      if (document.hidden) return schedule();
      fetch(url, { headers: { "X-Console-Fragment": "1" }, credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) {
            location.assign("/console/sign-in?next=" + encodeURIComponent(location.pathname));
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html === null) return schedule();
          region.innerHTML = html;
          var stamp = document.getElementById("refreshed");
          if (stamp) stamp.textContent = "Updated " + new Date().toLocaleTimeString();
          if (!region.querySelector("[data-live-final]")) schedule();
        })
        .catch(schedule);
    }
    if (!region.querySelector("[data-live-final]")) schedule();
  }

  // The task list: one box ticks or clears every row's box.
  function selectAll(box) {
    box.addEventListener("change", function () {
      var boxes = document.querySelectorAll("input[name=id]");
      for (var i = 0; i < boxes.length; i++) boxes[i].checked = box.checked;
    });
  }

  // Resolve uncertain: D (delivered), F (failed), S (skip), unless typing in a field.
  function shortcuts() {
    var page = document.getElementById("resolve");
    if (!page) return;
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      var tag = (event.target.tagName || "").toLowerCase();
      if (tag === "input" || tag === "textarea" || tag === "select") return;
      var key = event.key.toLowerCase();
      var target = page.querySelector("[data-key='" + key + "']");
      if (!target) return;
      event.preventDefault();
      if (target.tagName.toLowerCase() === "a") location.assign(target.href);
      else target.click();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    signInFromFragment();
    var regions = document.querySelectorAll("[data-live-url]");
    for (var i = 0; i < regions.length; i++) live(regions[i]);
    var all = document.querySelector("[data-select-all]");
    if (all) selectAll(all);
    shortcuts();
  });
})();
