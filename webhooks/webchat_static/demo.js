// The demo switcher: each pane's menu picks whom that pane's chat is.
(function () {
  "use strict";
  document.querySelectorAll(".pane").forEach(function (pane) {
    var sel = pane.querySelector("select"), frame = pane.querySelector("iframe");
    sel.value = frame.dataset.person;
    sel.addEventListener("change", function () { frame.src = "/chat?as=" + sel.value; });
  });
}());
