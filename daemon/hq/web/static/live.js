// Live counts: the server pushes new figures (server-sent events) whenever HQ
// stores events; this swaps them in. Without it the page still works: reload it.
"use strict";
(function () {
  const status = document.getElementById("live-status");
  const target = document.getElementById("counts-live");
  if (!status || !target || !window.EventSource) {
    return;
  }
  const source = new EventSource(status.dataset.stream);
  source.addEventListener("counts", function (message) {
    const data = JSON.parse(message.data);
    target.innerHTML = data.html;
    const badge = document.getElementById("conflict-badge");
    if (badge) {
      badge.textContent = String(data.conflicts);
      badge.classList.toggle("hidden", data.conflicts === 0);
    }
    status.textContent = "live · updated " + data.shown_at;
    status.classList.add("on");
  });
  source.addEventListener("error", function () {
    status.textContent = "reconnecting…";
    status.classList.remove("on");
  });
})();
