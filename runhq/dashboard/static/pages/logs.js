/* The logs page (/logs): the live tail's pause/resume button, and a bounded list.
 * The tail itself is htmx: #logs-tail polls /logs/tail and each answer puts the new lines on
 * top of #log-lines (see runhq/dashboard/logs_page.py). Without this file the tail still runs;
 * without JavaScript the page is a plain list with its filters and pages.
 */
(function () {
  "use strict";

  var paused = false;

  function tailBox() {
    return document.querySelector("[data-tail]");
  }

  function render(box) {
    var toggle = box.querySelector("[data-tail-toggle]");
    var text = box.querySelector("[data-tail-state-text]");
    box.classList.toggle("logs-tail--paused", paused);
    if (toggle) {
      toggle.textContent = paused ? box.dataset.labelResume : box.dataset.labelPause;
    }
    if (text) {
      text.textContent = paused ? box.dataset.statePaused : box.dataset.stateLive;
    }
  }

  function setUp() {
    var box = tailBox();
    if (!box) {
      return;
    }
    var toggle = box.querySelector("[data-tail-toggle]");
    if (toggle) {
      toggle.hidden = false;
      toggle.addEventListener("click", function () {
        paused = !paused;
        render(box);
      });
    }
    render(box);
  }

  // While paused, the poller keeps its rhythm but sends nothing.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.id === "logs-tail" && paused) {
      event.preventDefault();
    }
  });

  // Keep at most data-max-lines lines: drop the oldest, and let "Older lines" start after
  // the last line still shown.
  document.addEventListener("htmx:afterSwap", function (event) {
    var list = event.detail && event.detail.target;
    var box = tailBox();
    if (!list || list.id !== "log-lines" || !box) {
      return;
    }
    var max = parseInt(box.dataset.maxLines || "0", 10);
    var lines = list.querySelectorAll(":scope > li");
    if (!max || lines.length <= max) {
      return;
    }
    for (var i = lines.length - 1; i >= max; i -= 1) {
      lines[i].remove();
    }
    var last = lines[max - 1];
    var older = document.querySelector('[data-page-link="older"]');
    if (older && last && last.dataset.cursor) {
      var url = new URL(older.dataset.base || "/logs", window.location.href);
      url.searchParams.set("cursor", last.dataset.cursor);
      older.setAttribute("href", url.pathname + url.search);
      older.hidden = false;
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
