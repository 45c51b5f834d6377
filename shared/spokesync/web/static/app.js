// The only script of the UI: ask before destructive forms (data-confirm).
// Everything works without it; it only adds the confirmation dialog.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
