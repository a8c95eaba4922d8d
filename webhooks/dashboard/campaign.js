// The campaign board refreshes itself: the same numbers from the JSON API every 15 s
// (a file of its own: the pages' CSP allows no inline script).
(function () {
  var board = document.getElementById("campaign-board");
  if (!board) return;
  var api = board.getAttribute("data-api");
  function set(key, value) {
    var el = board.querySelector('[data-k="' + key + '"]');
    if (el && el.textContent !== String(value)) el.textContent = value;
  }
  function row(r) {
    var k = r.node.id;
    set(k + ":total", r.total);
    set(k + ":done", r.done);
    set(k + ":not_yet", r.not_yet);
    set(k + ":pct", r.pct === null ? "—" : r.pct.toFixed(1) + "%");
    var i = 0;
    for (var name in r.by_outcome) { set(k + ":o" + i, r.by_outcome[name]); i++; }
    var sw = board.querySelector('[data-k="' + k + ':colour"]');
    if (sw) sw.className = "sw " + r.colour;
  }
  function refresh() {
    fetch(api, { credentials: "same-origin" }).then(function (res) {
      return res.ok ? res.json() : null;
    }).then(function (p) {
      if (!p) return;
      row(p.node);
      p.children.forEach(row);
      p.items.forEach(function (it) {
        var el = board.querySelector('[data-item="' + it.id + '"]');
        if (el) el.textContent = it.outcome || "未登记";
      });
      document.getElementById("as-of").textContent = p.as_of;
      board.setAttribute("data-refreshed", String(Date.now()));
    }).catch(function () {});
  }
  setInterval(refresh, Number(board.getAttribute("data-every")) || 15000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refresh();
  });
})();
