// Redraws the tallies from /results.json every few seconds, so the owner
// watches answers arrive without reloading.  The page works without it.
(function () {
  var root = document.getElementById("tallies");
  var total = document.getElementById("total");
  var noun = document.getElementById("total-noun");
  if (!root || !total || !window.fetch) return;
  var SVG = "http://www.w3.org/2000/svg";
  var INTERVAL = 3000;
  document.getElementById("live-note").hidden = false;

  function newRow(item) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-value", item.value);
    var th = document.createElement("th");
    th.setAttribute("scope", "row");
    th.textContent = item.label;
    var cats = document.createElement("td");
    var share = document.createElement("td");
    share.className = "share";
    var pct = document.createElement("span");
    pct.className = "pct";
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "bar");
    svg.setAttribute("viewBox", "0 0 100 10");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    [["bar-track", 100], ["bar-fill", 0]].forEach(function (spec) {
      var rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("class", spec[0]);
      rect.setAttribute("width", spec[1]);
      rect.setAttribute("height", "10");
      svg.appendChild(rect);
    });
    share.appendChild(pct);
    share.appendChild(svg);
    tr.appendChild(th);
    tr.appendChild(cats);
    tr.appendChild(share);
    return tr;
  }

  function redraw(key, items) {
    var body = root.querySelector('table[data-tally="' + key + '"] tbody');
    if (!body) return;
    var rows = {};
    Array.prototype.forEach.call(body.rows, function (tr) { rows[tr.getAttribute("data-value")] = tr; });
    items.forEach(function (item) {
      var tr = rows[item.value] || newRow(item);
      tr.cells[1].textContent = String(item.cats);
      tr.querySelector(".pct").textContent = item.percent + "%";
      tr.querySelector(".bar-fill").setAttribute("width", item.percent);
      body.appendChild(tr);  // in the server's order: most cats first
    });
  }

  function poll() {
    fetch(root.getAttribute("data-results-url"), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data && data.status === "ok") {
          if (String(data.total) !== total.getAttribute("data-total")) {
            total.textContent = String(data.total);
            total.setAttribute("data-total", String(data.total));
            noun.textContent = noun.getAttribute(data.total === 1 ? "data-one" : "data-many");
          }
          Array.prototype.forEach.call(root.querySelectorAll("table[data-tally]"), function (table) {
            var key = table.getAttribute("data-tally");
            if (data[key]) redraw(key, data[key]);
          });
          Object.keys(data.figures || {}).forEach(function (key) {
            var box = root.querySelector('[data-figures="' + key + '"]');
            if (!box) return;
            Object.keys(data.figures[key]).forEach(function (name) {
              var span = box.querySelector('[data-figure="' + name + '"]');
              var value = data.figures[key][name];
              if (span && value !== null && value !== undefined) span.textContent = String(value);
            });
          });
        }
        setTimeout(poll, data ? INTERVAL : INTERVAL * 3);
      })
      .catch(function () { setTimeout(poll, INTERVAL * 3); });
  }
  setTimeout(poll, INTERVAL);
})();
