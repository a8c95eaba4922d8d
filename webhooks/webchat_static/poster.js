// The poster's print button (no inline handler: the page's policy allows no inline script).
(function () {
  "use strict";
  var button = document.getElementById("print");
  if (button) { button.addEventListener("click", function () { window.print(); }); }
}());
