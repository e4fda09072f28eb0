/* runhq dashboard: the little JavaScript the pages need (they work without it).
 * - HTMX requests carry the page's CSRF token (header X-CSRF-Token, from <meta name="csrf-token">).
 * - A failed HTMX request shows a toast: the server's message (HX-Trigger "runhq:toast"),
 *   or a generic one for an error without it (proxy, network).
 */
(function () {
  "use strict";

  var TOAST_EVENT = "runhq:toast";
  var TOAST_MS = 8000;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  function region() {
    return document.getElementById("toasts");
  }

  function toast(level, title, message) {
    var box = region();
    if (!box) {
      return;
    }
    var item = document.createElement("div");
    item.className = "toast toast--" + (level === "error" ? "error" : "info");
    // An error interrupts (alert); anything else waits its turn (status).
    item.setAttribute("role", level === "error" ? "alert" : "status");
    var text = document.createElement("div");
    text.className = "toast__text";
    if (title) {
      var strong = document.createElement("strong");
      strong.textContent = title;
      text.appendChild(strong);
    }
    if (message) {
      var p = document.createElement("p");
      p.textContent = message;
      text.appendChild(p);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast__close";
    close.setAttribute("aria-label", box.dataset.close || "Close");
    close.textContent = "×";
    close.addEventListener("click", function () {
      item.remove();
    });
    item.appendChild(text);
    item.appendChild(close);
    box.appendChild(item);
    window.setTimeout(function () {
      item.remove();
    }, TOAST_MS);
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token) {
      event.detail.headers["X-CSRF-Token"] = token;
    }
  });

  document.addEventListener(TOAST_EVENT, function (event) {
    var detail = event.detail || {};
    toast(detail.level, detail.title, detail.message);
  });

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var trigger = (xhr && xhr.getResponseHeader("HX-Trigger")) || "";
    if (trigger.indexOf(TOAST_EVENT) !== -1) {
      return; // the server's own message is already shown
    }
    var box = region();
    var template = (box && box.dataset.failed) || "Error {status}";
    toast("error", template.replace("{status}", xhr ? String(xhr.status) : "?"), "");
  });

  document.addEventListener("htmx:sendError", function () {
    var box = region();
    toast("error", (box && box.dataset.network) || "Network error", "");
  });
})();
