// The geographic view: the same warning colours as the tiles, on a Leaflet map. The children's
// boundaries are drawn as shapes on a blank background, so no tile server is needed; map tiles
// go underneath only when the deployment sets TILE_URL (then nodes with a point only get a dot).
(function () {
  "use strict";
  var el = document.getElementById("geo");
  if (!el || typeof L === "undefined") { return; }
  var colours = { green: "#2e9d5b", yellow: "#e8b00f", orange: "#ec7a1c", red: "#d93a34" };
  var points = JSON.parse(el.dataset.points || "[]");
  var shapes = JSON.parse(el.dataset.shapes || '{"type":"FeatureCollection","features":[]}');
  var map = L.map(el, { zoomSnap: 0.25, attributionControl: !!el.dataset.tiles });
  if (el.dataset.tiles) {
    // The tile server learns our origin only, never the page's address (tokens live in paths).
    L.tileLayer(el.dataset.tiles, { maxZoom: 19, referrerPolicy: "strict-origin" }).addTo(map);
  }
  var bounds = L.latLngBounds([]);
  // A string given to Leaflet is HTML; names are only ever text, so tooltips get DOM nodes.
  function label(p) {
    var box = document.createElement("span");
    var name = document.createElement("b");
    name.textContent = p.name;
    var nums = document.createElement("span");
    nums.textContent = "未办结 " + p.unresolved + "，超时 " + p.overdue;
    box.appendChild(name);
    box.appendChild(document.createElement("br"));
    box.appendChild(nums);
    return box;
  }
  function cls(p) { return "geo-node geo-" + p.level + " geo-code-" + p.code; }
  var few = shapes.features.length <= 40;  // names on the shapes while they stay readable
  var layer = L.geoJSON(shapes, {
    style: function (f) {
      var p = f.properties;
      return { color: "#ffffff", weight: 2, fillColor: colours[p.level], fillOpacity: 0.78,
               className: cls(p) };
    },
    onEachFeature: function (f, shape) {
      var p = f.properties;
      shape.bindTooltip(label(p), few ? { permanent: true, direction: "center",
                                          className: "geo-label" } : { sticky: true });
      shape.on("click", function () { window.location = p.href; });
    }
  }).addTo(map);
  if (shapes.features.length) { bounds.extend(layer.getBounds()); }
  points.forEach(function (p) {
    var m = L.circleMarker([p.lat, p.lon], { radius: 12, color: "#fff", weight: 2,
      fillColor: colours[p.level], fillOpacity: 0.9, className: cls(p) }).addTo(map);
    m.bindTooltip(label(p));
    m.on("click", function () { window.location = p.href; });
    bounds.extend([p.lat, p.lon]);
  });
  if (bounds.isValid()) { map.fitBounds(bounds, { padding: [20, 20], maxZoom: 17 }); }
}());
