// Polls the receipt's JSON until the submission reaches a final state, so
// the visitor sees it change without reloading.  Final: stored (the answer
// brings the stored receipt, shown in the page's place), erased (the page
// reloads to show its tombstone), failed, erase_failed, unknown to the
// queue, or gone (404).
(function () {
  var list = document.querySelector("[data-status-url]");
  var state = document.getElementById("state");
  var receipt = document.getElementById("receipt");
  if (!list || !state || !receipt) return;
  var FINAL = { stored: true, failed: true, unknown: true, missing: true, erased: true, erase_failed: true };
  var RELOAD = { stored: true, erased: true };
  // The stored receipt in place of this one; the live region stays the same
  // element, so a screen reader has already read out its new state.
  function replace(html) {
    var fresh = document.createElement("div");
    fresh.innerHTML = html;
    var live = fresh.querySelector("#state");
    if (live) live.replaceWith(state);
    receipt.replaceChildren.apply(receipt, Array.prototype.slice.call(fresh.childNodes));
  }
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
        if (s && s.html) { replace(s.html); state.setAttribute("data-polling", "stopped"); return; }
        if (s && RELOAD[s.state]) { window.location.reload(); return; }
        if (s && FINAL[s.state]) { state.setAttribute("data-polling", "stopped"); return; }
        delay = Math.min(delay * 1.5, 5000);
        setTimeout(poll, delay);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, delay);
})();
