/* The registry page: "run now" of a run type that waits for approval asks first, in a
 * native <dialog>. Without JavaScript its link leads to the run type's page, which is the
 * confirmation step. A refused run (toast) closes the dialog so the message shows. */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    var opener = target.closest("[data-confirm]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-confirm") || "");
      if (dialog && typeof dialog.showModal === "function") {
        event.preventDefault();
        dialog.showModal();
        var confirm = dialog.querySelector("[data-action=confirm]");
        if (confirm) {
          confirm.focus();
        }
      }
      return;
    }
    var closer = target.closest("[data-close]");
    if (closer) {
      var open = closer.closest("dialog");
      if (open) {
        open.close();
      }
    }
  });

  function closeDialogOf(event) {
    var elt = event.detail && event.detail.elt;
    var dialog = elt && elt.closest ? elt.closest("dialog") : null;
    if (dialog && dialog.open) {
      dialog.close();
    }
  }

  document.addEventListener("htmx:responseError", closeDialogOf);
  document.addEventListener("htmx:sendError", closeDialogOf);
})();
