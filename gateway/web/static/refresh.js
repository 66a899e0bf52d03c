/* Trygg dashboard: refresh the #live part of the page every few seconds (no libraries). */
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch || !window.DOMParser) {
    return;
  }
  var seconds = parseInt(live.getAttribute("data-refresh"), 10) || 5;
  var banner = document.getElementById("stale");
  var busy = false;

  function selectingInside() {
    var selection = window.getSelection ? window.getSelection() : null;
    return Boolean(selection && !selection.isCollapsed && live.contains(selection.anchorNode));
  }

  // an opened technical detail would snap shut when the part is replaced: hold still meanwhile
  function readingDetails() {
    return live.querySelector("details[open]") !== null;
  }

  function showStale(stale) {
    if (banner) {
      banner.hidden = !stale;
    }
  }

  function refresh() {
    if (busy || document.hidden || selectingInside() || readingDetails()) {
      return;
    }
    busy = true;
    // the header tells the server this is the page refreshing itself, not the person's
    // activity: a page left open does not keep its session alive
    fetch(window.location.href, {
      cache: "no-store",
      credentials: "same-origin",
      headers: { "X-Trygg-Refresh": "1" }
    })
      .then(function (response) {
        if (response.redirected && new URL(response.url).pathname === "/signin") {
          // the session ended (idle, signed out elsewhere): show the sign-in page
          window.location.assign(response.url);
          throw new Error("signed out");
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) {
          live.innerHTML = fresh.innerHTML;
        }
        showStale(false);
      })
      .catch(function () {
        showStale(true);
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      refresh();
    }
  });
})();
