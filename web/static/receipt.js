// Polls the receipt's JSON until the submission is stored (or failed), so the
// visitor sees it change without reloading.
(function () {
  var list = document.querySelector("[data-status-url]");
  var state = document.getElementById("state");
  if (!list || !state) return;
  var delay = 500;
  function poll() {
    fetch(list.getAttribute("data-status-url"), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (s && s.state !== state.getAttribute("data-state")) {
          state.textContent = s.state_text;
          state.setAttribute("data-state", s.state);
          state.className = "state state-" + s.state;
        }
        if (s && s.state === "stored") { window.location.reload(); return; }
        delay = Math.min(delay * 1.5, 5000);
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, delay);
})();
