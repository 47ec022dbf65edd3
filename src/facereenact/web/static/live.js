// The page's Live tab: the camera's frames go to the server as JPEGs over a WebSocket, and the
// animated portrait comes back frame by frame (see facereenact/web/live.py for the protocol).
// A frame is only sent when the last one has left the browser, so nothing queues up here either.
"use strict";

(() => {
  const el = (id) => document.getElementById(id);
  const CLIP_CARDS = ["driving-card", "options-card", "run-card"];
  const SEND_SIDE = 640; // the camera frames' longer side as sent
  const live = { ws: null, stream: null, timer: null, stopping: false, shownAt: [], latencies: [], server: null, url: null, resultHidden: true };
  const canvas = document.createElement("canvas");

  function liveError(message) {
    el("live-error").textContent = message;
    el("live-error").hidden = !message;
  }

  function showTab(name) {
    const isLive = name === "live";
    if (isLive === !el("live-card").hidden) return;
    el("tab-live").setAttribute("aria-pressed", String(isLive));
    el("tab-clip").setAttribute("aria-pressed", String(!isLive));
    el("live-card").hidden = !isLive;
    for (const id of CLIP_CARDS) el(id).hidden = isLive;
    // A clip's result stays where it was when the Animate tab comes back.
    if (isLive) {
      live.resultHidden = el("result-card").hidden;
      el("result-card").hidden = true;
    } else {
      el("result-card").hidden = live.resultHidden;
      stop();
    }
  }

  function setRunning(running) {
    el("live-start").disabled = running;
    el("live-stop").disabled = !running;
    el("live-recentre").disabled = !running;
  }

  function median(values) {
    if (!values.length) return 0;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  function showStats() {
    const now = performance.now();
    live.shownAt = live.shownAt.filter((t) => now - t < 1000);
    const parts = [`${live.shownAt.length} frames/s`, `latency ${Math.round(median(live.latencies))} ms (camera → shown)`];
    const server = live.server;
    if (server) {
      parts.push(`server ${Math.round(server.latency_p50_ms)} ms`);
      parts.push(`${server.dropped} dropped while busy`);
      const refused = server.undecodable + server.over_rate + server.too_large;
      if (refused) parts.push(`${refused} refused (not an image, too large or too fast)`);
    }
    el("live-stats").textContent = parts.join(" · ");
  }

  function sendFrame() {
    const ws = live.ws;
    const video = el("live-camera");
    if (!ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > 0 || !video.videoWidth) return;
    const scale = Math.min(1, SEND_SIDE / Math.max(video.videoWidth, video.videoHeight));
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const capturedAt = performance.now();
    canvas.toBlob(async (blob) => {
      if (!blob || live.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      const jpeg = new Uint8Array(await blob.arrayBuffer());
      const message = new Uint8Array(8 + jpeg.length);
      new DataView(message.buffer).setFloat64(0, capturedAt, true);
      message.set(jpeg, 8);
      ws.send(message);
    }, "image/jpeg", 0.8);
  }

  function onAnswer(data) {
    const view = new DataView(data);
    const capturedAt = view.getFloat64(0, true);
    const url = URL.createObjectURL(new Blob([new Uint8Array(data, 12)], { type: "image/jpeg" }));
    const img = el("live-output");
    img.onload = () => {
      const now = performance.now();
      live.shownAt.push(now);
      live.latencies.push(now - capturedAt);
      if (live.latencies.length > 60) live.latencies.shift();
    };
    img.src = url;
    img.hidden = false;
    if (live.url) URL.revokeObjectURL(live.url);
    live.url = url;
  }

  function onMessage(event) {
    if (typeof event.data !== "string") {
      onAnswer(event.data);
      return;
    }
    const message = JSON.parse(event.data);
    if (message.type === "ready") {
      setRunning(true);
      const fps = Math.min(30, (state.config && state.config.live && state.config.live.fps) || 30);
      live.timer = setInterval(sendFrame, 1000 / fps);
      el("live-stats").textContent = "Live: move your head.";
    } else if (message.type === "stats") {
      live.server = message;
      showStats();
    } else if (message.type === "error") {
      liveError(message.error);
    }
  }

  async function start() {
    liveError("");
    if (!state.sourceId) {
      liveError("Choose a portrait first (step 1).");
      return;
    }
    el("live-start").disabled = true;
    try {
      live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (error) {
      el("live-start").disabled = false;
      liveError(`The camera cannot be opened: ${error.message || error.name}`);
      return;
    }
    const video = el("live-camera");
    video.srcObject = live.stream;
    await video.play();
    const params = new URLSearchParams({
      source: state.sourceId,
      face: el("face-index").value || "0",
      mode: (document.querySelector("input[name=mode]:checked") || { value: "relative" }).value,
    });
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/api/live?${params}`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = onMessage;
    ws.onclose = (event) => {
      if (live.ws !== ws) return;
      if (!live.stopping && el("live-error").hidden) {
        liveError(event.code === 1013 ? "The server is busy with other live sessions; try again later." : "The live connection closed.");
      }
      stop();
    };
    live.ws = ws;
    live.stopping = false;
    el("live-stats").textContent = "Preparing the portrait…";
  }

  function stop() {
    live.stopping = true;
    clearInterval(live.timer);
    live.timer = null;
    if (live.ws) live.ws.close(1000);
    live.ws = null;
    if (live.stream) live.stream.getTracks().forEach((track) => track.stop());
    live.stream = null;
    el("live-camera").srcObject = null;
    live.shownAt = [];
    live.latencies = [];
    setRunning(false);
  }

  el("tab-clip").addEventListener("click", () => showTab("clip"));
  el("tab-live").addEventListener("click", () => showTab("live"));
  el("live-start").addEventListener("click", start);
  el("live-stop").addEventListener("click", stop);
  el("live-recentre").addEventListener("click", () => live.ws && live.ws.send(JSON.stringify({ type: "recentre" })));
  window.addEventListener("pagehide", stop);
})();
