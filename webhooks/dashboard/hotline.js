// The hotline console's keyboard: the focus goes where the next keystroke belongs (the number
// on a fresh call, the words once a caller is found), Ctrl+Enter files, Esc starts over.
(function () {
  "use strict";
  function ready() {
    var target = document.querySelector("[data-focus]") || document.getElementById("hl-phone");
    if (target) {
      target.focus();
      if (target.value && target.setSelectionRange) {
        var n = target.value.length;
        target.setSelectionRange(n, n);
      }
    }
    var form = document.getElementById("hl-file");
    if (form) {
      form.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
          ev.preventDefault();
          if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
        }
      });
      // One press files once: a second Ctrl+Enter while the answer comes is not a second case.
      form.addEventListener("submit", function () {
        var button = form.querySelector("button.hl-submit");
        if (button) { button.disabled = true; }
      });
    }
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape") {
        var phone = document.getElementById("hl-phone");
        if (phone) { phone.focus(); phone.select(); }
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
