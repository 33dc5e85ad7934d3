// Shows a question only while the answer it depends on (its show_if) is
// given, as the visitor answers.  The server decides what is stored: a
// hidden question is never required and its answer is dropped.  Without
// this script every question shows, with a note saying when it applies.
(function () {
  var form = document.querySelector("form[data-survey]");
  if (!form) return;
  var dependants = form.querySelectorAll("[data-show-if]");

  function answers(name) {
    var picked = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.name !== name) return;
      if ((el.type === "radio" || el.type === "checkbox") ? el.checked : el.value) picked.push(el.value);
    });
    return picked;
  }

  function update() {
    // In the form's order: a question hidden hides those that depend on it.
    Array.prototype.forEach.call(dependants, function (box) {
      var target = document.getElementById(box.getAttribute("data-show-if") + "-question");
      var wanted = box.getAttribute("data-show-values").split(" ");
      var shown = !(target && target.hidden) && answers(box.getAttribute("data-show-if")).some(function (v) {
        return wanted.indexOf(v) >= 0;
      });
      box.hidden = !shown;
      var note = box.querySelector(".when");
      if (note) note.hidden = true;
    });
  }

  form.addEventListener("change", update);
  update();
})();
