// dbaas portal: progressive enhancement only (every page works without this script).
// Copy buttons, lease countdowns, live operation logs and the live operations feed.
"use strict";
(function () {
  // Copy buttons: shown only when the script runs; copy the text of the element they name.
  document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var el = document.getElementById(b.dataset.copy);
      if (!el || !navigator.clipboard) return;
      navigator.clipboard.writeText(el.textContent).then(function () {
        b.textContent = "Copied";
        setTimeout(function () { b.textContent = "Copy"; }, 1500);
      });
    });
  });

  // Lease countdowns.
  function tick() {
    document.querySelectorAll(".countdown[data-expires]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.expires) - Date.now()) / 1000);
      if (left <= 0) { el.textContent = "(expired)"; return; }
      var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
      el.textContent = "(in " + (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s)";
    });
  }
  tick();
  setInterval(tick, 1000);

  function badge(status) {
    var tone = { succeeded: "good", failed: "bad", cancelled: "neutral", queued: "busy", running: "busy" }[status] || "neutral";
    var s = document.createElement("span");
    s.className = "badge " + tone;
    s.textContent = status;
    return s;
  }

  // One operation: its log streams in while it runs.
  var log = document.getElementById("log");
  if (log && log.dataset.live) {
    var es = new EventSource(log.dataset.live + "?after=" + (log.dataset.count || 0));
    es.addEventListener("log", function (e) {
      var l = JSON.parse(e.data);
      var li = document.createElement("li");
      li.className = l.level;
      var t = document.createElement("time");
      t.textContent = l.at;
      var lv = document.createElement("span");
      lv.className = "level";
      lv.textContent = l.level;
      li.append(t, " ", lv, " ", l.message);
      log.appendChild(li);
    });
    es.addEventListener("status", function (e) {
      var s = JSON.parse(e.data);
      var el = document.getElementById("op-status");
      if (el) el.replaceChildren(badge(s.status));
      var at = document.getElementById("op-attempts");
      if (at) at.textContent = s.attempts + "/" + s.max_attempts;
      var err = document.getElementById("op-error");
      if (err && s.error) {
        var p = document.createElement("p");
        p.className = "error";
        p.textContent = s.error;
        err.replaceChildren(p);
      }
    });
    es.addEventListener("done", function () {
      es.close();
      var f = document.getElementById("cancel-form");
      if (f) f.remove();
      document.body.dataset.operationDone = "true";
    });
  }

  // The operations feed: rows rendered by the server, replaced or added as they change.
  var feed = document.getElementById("feed-state");
  var table = document.querySelector("#operations tbody");
  if (feed && table && feed.dataset.live) {
    var fs = new EventSource(feed.dataset.live);
    fs.addEventListener("reload", function () { window.location.reload(); });
    fs.addEventListener("operation", function (e) {
      var tpl = document.createElement("template");
      tpl.innerHTML = e.data.trim();
      var row = tpl.content.firstElementChild;
      if (!row) return;
      var old = table.querySelector('tr[data-op="' + row.dataset.op + '"]');
      if (old) old.replaceWith(row); else table.prepend(row);
    });
  }
})();
