// The UI's only script. Everything works without it; it adds:
// - a question before destructive forms (data-confirm);
// - times in the browser's time zone, with the zone's name (<time datetime>);
// - a dashboard and a first-sync page that keep themselves current: they poll /setup/live
//   (JSON), show a running sync's progress, and reload when a spoke has a new run.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

(function () {
  function localTimes(root) {
    var format;
    try {
      format = new Intl.DateTimeFormat(undefined, {year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", timeZoneName: "short"});
    } catch (e) { return; }
    var times = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var when = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(when.getTime())) { times[i].textContent = format.format(when); }
    }
  }

  function get(url, done) {
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.onload = function () {
      if (xhr.status === 200) {
        try { done(JSON.parse(xhr.responseText)); } catch (e) { /* keep the page as it is */ }
      }
    };
    xhr.send();
  }

  function progressWords(p) {
    if (!p) { return ""; }
    if (p.phase === "reading") { return "reading changes…"; }
    if (!p.total) { return "nothing to write"; }
    return p.done + " of " + p.total + " items (" + Math.round(100 * p.done / p.total) + " %)";
  }

  function dashboard(note) {
    var url = note.getAttribute("data-live");
    function tick() {
      get(url, function (data) {
        var busy = false;
        var rows = document.querySelectorAll("tr[data-spoke-id]");
        for (var i = 0; i < rows.length; i++) {
          var row = rows[i];
          var s = data.spokes[row.getAttribute("data-spoke-id")];
          if (!s) { window.location.reload(); return; }
          if ((s.last_run_id || "") !== row.getAttribute("data-last-run") && !s.running) {
            window.location.reload();  // a run finished: show it with its counts and titles
            return;
          }
          busy = busy || s.running;
          row.querySelector(".state-words").textContent = s.state_words;
          var box = row.querySelector(".live-progress");
          if (s.progress) {
            box.hidden = false;
            var bar = box.querySelector("progress");
            bar.max = s.progress.total || 1;
            bar.value = s.progress.done;
            box.querySelector(".progress-words").textContent = progressWords(s.progress);
          } else {
            box.hidden = true;
          }
        }
        window.setTimeout(tick, busy ? 1000 : 5000);
      });
    }
    window.setTimeout(tick, 1000);
  }

  function firstSync(card) {
    var url = card.getAttribute("data-live");
    var id = card.getAttribute("data-spoke-id");
    var after = Date.parse(card.getAttribute("data-after") || "") || 0;
    var phase = document.getElementById("sync-phase");
    var bar = document.getElementById("sync-progress");
    var result = document.getElementById("sync-result");
    function tick() {
      get(url, function (data) {
        var s = data.spokes[id];
        if (!s) { return; }
        if (s.progress) {
          phase.textContent = "Syncing: " + progressWords(s.progress);
          bar.max = s.progress.total || 1;
          bar.value = s.progress.done;
        } else if (s.last_run && Date.parse(s.last_run.finished_at || "") >= after && !s.running &&
                   s.last_run.status !== "continued") {
          var r = s.last_run;
          bar.max = 1; bar.value = 1;
          phase.textContent = "First sync " + r.words + ": " + r.into_hub + " into the hub, " + r.into_spoke +
            " into the spoke, " + r.conflicts + " conflict" + (r.conflicts === 1 ? "" : "s") + ". " +
            "The spoke and the hub now share " + s.linked_items + " item" + (s.linked_items === 1 ? "" : "s") + ".";
          if (r.errors.length || r.reason) {
            result.hidden = false;
            result.className = r.status === "ok" ? "muted" : "error";
            result.textContent = r.reason || r.errors.join(" · ");
          }
          document.getElementById("to-dashboard").focus();
          return;  // done: nothing more to follow
        } else {
          phase.textContent = "The first sync is queued and starts in a moment.";
        }
        window.setTimeout(tick, 700);
      });
    }
    tick();
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    var note = document.getElementById("live-note");
    if (note) { dashboard(note); }
    var options = document.getElementById("options-form");
    var twoWay = options && options.querySelector("input[name=two_way]");
    if (twoWay) {  // options for copies the hub creates show only when the hub may create copies
      twoWay.addEventListener("change", function () { options.classList.toggle("to-hub-only", !twoWay.checked); });
    }
    var privacy = options && options.querySelector("select[name=privacy_mode]");
    if (privacy) {  // the placeholder title is used by busy-only copies alone
      privacy.addEventListener("change", function () {
        options.classList.toggle("not-busy-only", privacy.value !== "busy_only");
      });
    }
    var card = document.getElementById("first-sync");
    if (card) { firstSync(card); }
  });
})();
