// Polls the receipt's JSON until the submission reaches a final state, so
// the visitor sees it change without reloading.  Final: stored or erased (the
// page reloads to show the row, or its tombstone), failed, erase_failed,
// unknown to the queue, or gone (404).
(function () {
  var list = document.querySelector("[data-status-url]");
  var state = document.getElementById("state");
  if (!list || !state) return;
  var FINAL = { stored: true, failed: true, unknown: true, missing: true, erased: true, erase_failed: true };
  var RELOAD = { stored: true, erased: true };
  var delay = 500;
  function show(s) {
    if (s.state === state.getAttribute("data-state")) return;
    state.textContent = s.state_text;
    state.setAttribute("data-state", s.state);
    state.className = "state state-" + s.state;
  }
  function poll() {
    fetch(list.getAttribute("data-status-url"), { headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 404) return { state: "missing", state_text: "We can't find this submission" };
        return r.ok ? r.json() : null;
      })
      .then(function (s) {
        if (s) show(s);
        if (s && RELOAD[s.state]) { window.location.reload(); return; }
        if (s && FINAL[s.state]) { state.setAttribute("data-polling", "stopped"); return; }
        delay = Math.min(delay * 1.5, 5000);
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, delay);
})();
