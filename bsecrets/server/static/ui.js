// bsecrets web UI: the only script (served from /ui/static, allowed by the CSP).
// A revealed value is taken off the page after data-hide-after seconds, or at once
// with "Hide now".
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var value = document.getElementById("value");
  if (!value) {
    return;
  }
  var seconds = Number(value.dataset.hideAfter);
  if (!(seconds > 0)) {
    seconds = 30;
  }
  var countdown = document.getElementById("countdown");
  var ends = Date.now() + seconds * 1000;
  var ticker = null;
  var timer = null;

  function hide() {
    value.textContent = "";
    value.hidden = true;
    value.dataset.hidden = "true";
    var line = document.getElementById("countdown-line");
    if (line) {
      line.hidden = true;
    }
    var notice = document.getElementById("rehidden");
    if (notice) {
      notice.hidden = false;
    }
    clearInterval(ticker);
    clearTimeout(timer);
  }

  function tick() {
    if (countdown) {
      countdown.textContent = String(Math.max(0, Math.ceil((ends - Date.now()) / 1000)));
    }
  }

  timer = setTimeout(hide, seconds * 1000);
  ticker = setInterval(tick, 250);
  var button = document.getElementById("hide-now");
  if (button) {
    button.addEventListener("click", hide);
  }
});
