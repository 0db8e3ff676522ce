// Ponton dashboard: the little htmx does not do by itself.
// - a live stream that reports the session gone sends the browser to the sign-in page;
// - a new alarm shows a banner and plays a short tone (the browser may keep the tone
//   silent until the page has been clicked once: its autoplay rule).
(function () {
  "use strict";
  var audio = null;

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
