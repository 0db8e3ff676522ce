// Ponton dashboard: the little htmx does not do by itself.
// - a live stream that reports the session gone sends the browser to the sign-in page;
// - a new alarm shows a banner and plays a short tone (the browser may keep the tone
//   silent until the page has been clicked once: its autoplay rule);
// - ages ("3 secondes") count on by themselves: live streams send a part again only when
//   its data change, and leave the ages' text to the page (macros.html, `age`).
(function () {
  "use strict";
  var audio = null;
  // Babel's format_timedelta, as the server writes ages (threshold 1.1, largest unit first).
  var UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
               ["hour", 3600], ["minute", 60], ["second", 1]];
  var formats = {};

  function age(ms) {
    var seconds = Math.max(0, Date.now() - ms) / 1000;
    for (var i = 0; i < UNITS.length; i++) {
      var value = seconds / UNITS[i][1];
      if (value >= 1.1 || i === UNITS.length - 1) {
        var unit = UNITS[i][0];
        formats[unit] = formats[unit] || new Intl.NumberFormat(document.documentElement.lang,
          {style: "unit", unit: unit, unitDisplay: "long"});
        return formats[unit].format(seconds === 0 ? 0 : Math.max(1, Math.round(value)));
      }
    }
  }

  function refreshAges() {
    var found = document.querySelectorAll(".age[data-ts]");
    for (var i = 0; i < found.length; i++) {
      var text = age(Number(found[i].dataset.ts));
      if (found[i].textContent !== text) { found[i].textContent = text; }
    }
  }
  document.addEventListener("htmx:afterSettle", refreshAges);
  document.addEventListener("DOMContentLoaded", refreshAges);
  window.setInterval(refreshAges, 1000);

  function tone() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.2, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.6);
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.6);
      document.body.dataset.cuePlayed = String(Number(document.body.dataset.cuePlayed || 0) + 1);
    } catch (e) { /* no audio device: the banner still shows */ }
  }

  document.addEventListener("htmx:sseMessage", function (event) {
    var type = event.detail && event.detail.type;
    refreshAges();
    if (type === "signed-out") {
      window.location.assign(document.body.dataset.signin);
    } else if (type === "alarm") {
      var cue = document.getElementById("live-cue");
      if (cue) {
        cue.classList.remove("shown");
        void cue.offsetWidth;  // restart the animation
        cue.classList.add("shown");
      }
      tone();
    }
  });
})();
