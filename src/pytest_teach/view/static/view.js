// teach view: keyboard review, annotation and live updates.
// It builds nothing from markup: data reaches the page through textContent, attributes and
// URLs this server made; requests go to this server only (the page's CSP allows nothing else).
"use strict";
(function () {
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var message = document.getElementById("message");

  function say(text) { if (message) { message.textContent = text; } }

  // -- help -----------------------------------------------------------------------------------
  var help = document.getElementById("help");
  var helpButton = document.getElementById("help-button");
  function toggleHelp() { if (help) { help.hidden = !help.hidden; } }
  if (helpButton) { helpButton.addEventListener("click", toggleHelp); }

  // -- steps and annotation -------------------------------------------------------------------
  var steps = Array.prototype.slice.call(document.querySelectorAll("li.step"));
  var episodeEl = document.getElementById("episode");
  var selected = -1;

  function select(i) {
    if (!steps.length) { return; }
    i = Math.max(0, Math.min(steps.length - 1, i));
    if (selected >= 0) { steps[selected].classList.remove("selected"); }
    selected = i;
    var el = steps[i];
    el.classList.add("selected");
    el.querySelector("details").open = true;
    el.scrollIntoView({ block: "nearest" });
    el.focus({ preventScroll: true });
  }

  function correctionOf(step) {
    var typed = step.querySelector("input.typed");
    var pick = step.querySelector("select.correction");
    var body = {};
    if (typed && typed.value.trim()) { body.correction = typed.value.trim(); }
    else if (pick && pick.value !== "") { body.choice = Number(pick.value); }
    return body;
  }

  function send(step, verdict) {
    var form = step.querySelector("form.annotate");
    var body = correctionOf(step);
    body.episode = episodeEl.dataset.episode;
    body.step = Number(step.dataset.step);
    body.verdict = verdict;
    var rating = form.querySelector('select[name="rating"]').value;
    if (rating) { body.rating = Number(rating); }
    var comment = form.querySelector('input[name="comment"]').value.trim();
    if (comment) { body.comment = comment; }
    if (verdict === "bad" && body.correction === undefined && body.choice === undefined) {
      say("step " + body.step + ": pick or type the correction (c), then press b");
      focusCorrection(step);
      return;
    }
    fetch("/api/feedback", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (result) {
      if (!result.ok) { say(String(result.data.error || "not saved")); return; }
      var pill = document.createElement("span");
      pill.className = "pill l-" + result.data.verdict;
      pill.textContent = result.data.verdict;
      step.querySelector(".status").appendChild(pill);
      say("step " + body.step + " marked " + result.data.verdict + " (feedback #" + result.data.id + ")");
      var queue = document.getElementById("queue");
      var next = document.getElementById("queue-next");
      if (queue && next) { next.setAttribute("href", queue.dataset.here); }
      select(selected + 1);
    }).catch(function () { say("not saved: the server did not answer"); });
  }

  function focusCorrection(step) {
    var field = step.querySelector("select.correction") || step.querySelector("input.typed");
    if (field) { field.focus(); }
  }

  steps.forEach(function (step, i) {
    step.addEventListener("click", function () { if (selected !== i) { select(i); } });
    var typed = step.querySelector("input.typed");
    if (typed) {
      typed.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { event.preventDefault(); typed.blur(); send(step, "bad"); }
      });
    }
  });

  function go(rel) {
    var link = document.querySelector('#queue a[rel="' + rel + '"]');
    if (link) { window.location.assign(link.getAttribute("href")); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = event.target && event.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    var key = event.key;
    if (key === "?") { toggleHelp(); return; }
    if (key === "n") { go("next"); return; }
    if (key === "p") { go("prev"); return; }
    if (!steps.length) { return; }
    if (key === "j") { select(selected + 1); event.preventDefault(); return; }
    if (key === "k") { select(selected - 1); event.preventDefault(); return; }
    if (selected < 0) { select(0); }
    var step = steps[selected];
    if (key === "g") { send(step, "good"); }
    else if (key === "b") { send(step, "bad"); }
    else if (key === "c") { event.preventDefault(); focusCorrection(step); }
  });

  // -- live updates ---------------------------------------------------------------------------
  var POLL_MS = 2000;
  var live = document.getElementById("live");
  var table = document.getElementById("episodes");
  if (live && table) {
    var url = live.dataset.liveUrl;
    var total = document.getElementById("total");
    var poll = function () {
      fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
        total.textContent = String(data.total);
        var body = table.tBodies[0];
        data.rows.forEach(function (row) {
          var tr = document.createElement("tr");
          tr.dataset.rowid = String(row.rowid);
          tr.dataset.outcome = row.outcome;
          var cells = [row.created, null, row.model, row.arm, row.outcome, row.reward, row.steps, row.feedback, row.reason];
          cells.forEach(function (value, i) {
            var td = document.createElement("td");
            if (i === 1) {
              var a = document.createElement("a");
              a.setAttribute("href", "/episodes/" + encodeURIComponent(row.id));
              a.textContent = row.scenario;
              td.appendChild(a);
            } else {
              td.textContent = String(value);
            }
            if (i === 4) { td.className = "o-" + row.outcome; }
            if (i === 5 || i === 6 || i === 7) { td.className = "num"; }
            if (i === 8) { td.className = "reason"; }
            tr.appendChild(td);
          });
          body.insertBefore(tr, body.firstChild);
          url = url.replace(/([?&]after=)\d+/, "$1" + String(row.rowid));
        });
      }).catch(function () {}).then(function () { window.setTimeout(poll, POLL_MS); });
    };
    window.setTimeout(poll, POLL_MS);
  }

  var sessions = document.getElementById("sessions");
  if (sessions) {
    var pollSessions = function () {
      fetch(sessions.dataset.liveUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
        data.sessions.forEach(function (s) {
          var tr = sessions.querySelector('tr[data-session="' + CSS.escape(s.id) + '"]');
          if (!tr) { document.getElementById("live-note").hidden = false; return; }
          tr.querySelector('[data-field="total"]').textContent = String(s.total);
          tr.querySelector('[data-field="duration"]').textContent = String(s.duration);
          tr.querySelector('[data-field="exit_status"]').textContent = s.exit_status === null ? "" : String(s.exit_status);
          var counts = tr.querySelector('[data-field="counts"]');
          counts.textContent = "";
          Object.keys(s.counts).sort().forEach(function (outcome) {
            var pill = document.createElement("span");
            pill.className = "pill o-" + outcome;
            pill.textContent = outcome + " " + String(s.counts[outcome]);
            counts.appendChild(pill);
            counts.appendChild(document.createTextNode(" "));
          });
        });
      }).catch(function () {}).then(function () { window.setTimeout(pollSessions, POLL_MS); });
    };
    window.setTimeout(pollSessions, POLL_MS);
  }
})();
