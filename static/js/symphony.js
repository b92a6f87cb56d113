// Symphony's small additions to htmx's websocket pages.
(function () {
  "use strict";

  // A reconnecting page socket replays the log after the id the page was rendered with, so
  // lines it already appended can come again. Ids come from event and execution ids: an
  // element the page already has is replaced where it stands instead of added twice.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var fragment = event.detail.fragment;
    if (!fragment || !fragment.children) return;
    Array.prototype.slice.call(fragment.children).forEach(function (child) {
      if (!child.id) return;
      var existing = document.getElementById(child.id);
      if (existing && existing !== event.detail.target) {
        existing.replaceWith(child);
      }
    });
  });

  // Keep a log scrolled to its end while the reader is at the end; leave it alone otherwise.
  // Lines are appended to their attempt's section inside the log: the log is what scrolls.
  var pinned = new WeakMap();
  function logOf(target) {
    return target && target.closest ? target.closest(".log") : null;
  }
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var log = logOf(event.detail.target);
    if (log) {
      pinned.set(log, log.scrollHeight - log.scrollTop - log.clientHeight < 24);
    }
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var log = logOf(event.detail.target);
    if (log && pinned.get(log)) {
      log.scrollTop = log.scrollHeight;
    }
  });

  function showLive(state) {
    var badge = document.getElementById("live-status");
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = state === "open" ? "live" : state === "connecting" ? "connecting…" : "offline";
  }
  document.addEventListener("htmx:wsConnecting", function () { showLive("connecting"); });
  document.addEventListener("htmx:wsOpen", function () { showLive("open"); });
  document.addEventListener("htmx:wsClose", function () { showLive("closed"); });

  // On a phone the top bar's menu folds behind a "Menu" button (the CSS decides the width);
  // without this script it is never folded, and wraps instead.
  function foldMenu() {
    var bar = document.getElementById("topbar");
    var toggle = bar && bar.querySelector(".menu-toggle");
    if (!toggle) return;
    bar.classList.add("foldable");
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var open = bar.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && bar.classList.contains("open")) {
        bar.classList.remove("open");
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".log").forEach(function (log) { log.scrollTop = log.scrollHeight; });
    if (!document.querySelector("[ws-connect]")) showLive("none");
    foldMenu();
  });
})();
