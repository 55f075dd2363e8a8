// The release page asks for news every few seconds (#release-poller, hx-trigger "every Ns").
// A hidden tab does not ask: htmx's trigger filters ([document.visibilityState ...]) need eval,
// which the Content-Security-Policy forbids (htmx-config allowEval: false), so the check is here.
// A tab that becomes visible again asks at once instead of waiting for the next tick.
(function () {
  "use strict";

  function visible() {
    return document.visibilityState === "visible";
  }

  document.addEventListener("htmx:confirm", function (event) {
    // Cancelling the confirm event skips this request; the next tick tries again.
    if (event.target.hasAttribute("data-live-poll") && !visible()) {
      event.preventDefault();
    }
  });

  document.addEventListener("visibilitychange", function () {
    var poller = document.querySelector("[data-live-poll]");
    if (poller && visible() && window.htmx) {
      window.htmx.trigger(poller, "live:refresh");
    }
  });
})();
