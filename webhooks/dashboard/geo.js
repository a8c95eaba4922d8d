// The geographic view: the same warning colours as the tiles, on a Leaflet map.
// Only loaded when the deployment sets TILE_URL (Leaflet ships with the app, or LEAFLET_URL).
(function () {
  "use strict";
  var el = document.getElementById("geo");
  if (!el || typeof L === "undefined") { return; }
  var colours = { green: "#2e9d5b", yellow: "#e8b00f", orange: "#ec7a1c", red: "#d93a34" };
  var points = JSON.parse(el.dataset.points || "[]");
  var map = L.map(el);
  // The tile server learns our origin only, never the page's address (tokens live in paths).
  L.tileLayer(el.dataset.tiles, { maxZoom: 19, referrerPolicy: "strict-origin" }).addTo(map);
  var bounds = [];
  // A string given to Leaflet is HTML; names are only ever text, so the tooltip gets a node.
  function label(p) {
    var span = document.createElement("span");
    span.textContent = p.name + "：未办结 " + p.unresolved + "，超时 " + p.overdue;
    return span;
  }
  points.forEach(function (p) {
    var m = L.circleMarker([p.lat, p.lon], { radius: 12, color: "#fff", weight: 2,
      fillColor: colours[p.level], fillOpacity: 0.9,
      className: "geo-node geo-" + p.level + " geo-code-" + p.code }).addTo(map);
    m.bindTooltip(label(p));
    m.on("click", function () { window.location = p.href; });
    bounds.push([p.lat, p.lon]);
  });
  if (bounds.length) { map.fitBounds(bounds, { padding: [30, 30], maxZoom: 15 }); }
}());
