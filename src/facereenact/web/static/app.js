// The page of `facereenact serve`: uploads go to the server as they are chosen (so the portrait's
// fitted face shows at once and a bad file is refused before anything runs), a run is queued as a
// job, and its state is polled until the result can be played and downloaded.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { config: null, sourceId: null, faces: 0, drivingId: null, example: "", jobId: null, timer: null, finished: [] };

const STAGES = {
  starting: "Fitting the portrait",
  fitting: "Tracking the driving face",
  animating: "Animating",
};

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function megabytes(n) {
  return String(Math.round(n * 100) / 100);
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new Error("the server cannot be reached (is `facereenact serve` still running?)");
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (error) { body = null; }
  if (!response.ok) {
    throw new Error(body && body.error ? body.error : `the server answered ${response.status}`);
  }
  return body;
}

function tooLarge(file) {
  const limit = state.config.max_upload_mb;
  return file.size > limit * 1e6 ? `${file.name} is larger than the ${megabytes(limit)} MB upload limit` : "";
}

async function upload(kind, file) {
  const problem = tooLarge(file);
  if (problem) throw new Error(problem);
  return api(`/api/uploads/${kind}?name=${encodeURIComponent(file.name)}`, {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: file,
  });
}

function updateRun() {
  const busy = state.jobId !== null;
  $("run").disabled = busy || !state.sourceId || !(state.drivingId || state.example);
}

async function onSource() {
  const file = $("source-file").files[0];
  state.sourceId = null;
  $("source-preview").hidden = true;
  $("face-row").hidden = true;
  $("video-row").hidden = true;
  updateRun();
  if (!file) return;
  showError("");
  $("source-status").textContent = `Looking for faces in ${file.name}…`;
  try {
    const data = await upload("source", file);
    state.sourceId = data.id;
    state.faces = data.faces.length;
    $("source-preview").src = data.preview;
    $("source-preview").hidden = false;
    const first = data.faces[0];
    const pose = `yaw ${first.yaw.toFixed(0)}°, pitch ${first.pitch.toFixed(0)}°, roll ${first.roll.toFixed(0)}°`;
    const video = data.video ? `, a video of ${data.video.frames} frames at ${data.video.fps} frames/s (each frame re-acted)` : "";
    $("source-status").textContent = `${data.name}: ${data.width}×${data.height}${video}, ${data.faces.length} face${data.faces.length > 1 ? "s" : ""} found (${pose}).`;
    // One face, several (Ctrl/Shift-click) or all of a photo; a video's largest face.
    const select = $("face-index");
    select.replaceChildren(...data.faces.map((face, i) => new Option(i === 0 ? "1 (largest)" : String(i + 1), String(i), i === 0, i === 0)));
    select.size = Math.min(data.faces.length, 6);
    $("face-row").hidden = data.faces.length < 2 || Boolean(data.video);
    $("video-row").hidden = !data.video;
  } catch (error) {
    $("source-status").textContent = "";
    showError(error.message);
  }
  updateRun();
}

async function onDriving() {
  const file = $("driving-file").files[0];
  state.drivingId = null;
  updateRun();
  if (!file) return;
  $("example").value = "";
  state.example = "";
  showError("");
  $("driving-status").textContent = `Checking ${file.name}…`;
  $("driving-preview").hidden = true;
  try {
    const data = await upload("driving", file);
    state.drivingId = data.id;
    describeClip(data.name, data);
    $("driving-preview").src = URL.createObjectURL(file);
    $("driving-preview").hidden = false;
  } catch (error) {
    $("driving-status").textContent = "";
    showError(error.message);
  }
  updateRun();
}

function describeClip(name, clip) {
  const audio = clip.has_audio ? "with audio" : "no audio";
  let text = `${name}: ${clip.seconds.toFixed(1)} s, ${clip.frames} frames, ${audio}.`;
  const limit = state.config.max_frames;
  if (limit && clip.frames > limit) text += ` The server animates the first ${limit} frames.`;
  $("driving-status").textContent = text;
}

function onExample() {
  const name = $("example").value;
  state.example = name;
  if (name) {
    state.drivingId = null;
    $("driving-file").value = "";
    showError("");
    const clip = state.examples.find((e) => e.name === name);
    describeClip(name, clip);
    $("driving-preview").src = clip.url;
    $("driving-preview").hidden = false;
  } else {
    $("driving-preview").hidden = true;
    $("driving-status").textContent = "";
  }
  updateRun();
}

function choices() {
  return {
    source: state.sourceId,
    driving: state.example ? null : state.drivingId,
    example: state.example || null,
    method: $("method").value,
    mode: document.querySelector("input[name=mode]:checked").value,
    transfer: $("transfer").value,
    paste_back: $("paste-back").checked,
    crop_size: Number($("crop-size").value),
    compare: $("compare").checked,
    face_index: chosenFaces(),
    driving_mouth: $("driving-mouth").checked,
    pose_scale: Number($("pose-scale").value),
    expression_scale: Number($("expression-scale").value),
    regions: [...document.querySelectorAll("input[name=region]:checked")].map((box) => box.value),
    ...($("video-row").hidden ? {} : { video_motion: $("video-motion").value, length: $("length").value, audio: $("audio").value }),
  };
}

// The faces chosen: one index, a list of them, or "all".
function chosenFaces() {
  const picked = [...$("face-index").selectedOptions].map((option) => Number(option.value));
  if (picked.length === 0) return 0;
  if (picked.length === 1) return picked[0];
  return picked.length === state.faces ? "all" : picked;
}

async function onRun() {
  showError("");
  $("result-card").hidden = true;
  $("run").disabled = true;
  $("job-status").textContent = "Sending…";
  try {
    const job = await api("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(choices()),
    });
    state.jobId = job.id;
    $("cancel").hidden = false;
    showJob(job);
    poll();
  } catch (error) {
    $("job-status").textContent = "";
    showError(error.message);
    updateRun();
  }
}

function poll() {
  state.timer = setTimeout(async () => {
    if (!state.jobId) return;
    try {
      const job = await api(`/api/jobs/${state.jobId}`);
      if (showJob(job)) poll();
    } catch (error) {
      endJob();
      showError(error.message);
    }
  }, 400);
}

// Show a job's state; true while it is still queued or running.
function showJob(job) {
  const bar = $("progress");
  if (job.state === "queued") {
    bar.hidden = false;
    bar.removeAttribute("value");
    const running = `${job.running} job${job.running === 1 ? "" : "s"} running`;
    const free = job.running < state.config.max_jobs && job.position === 1;  // a worker is about to take it
    $("job-status").textContent = free ? "Starting…" : `Waiting in line: position ${job.position} (${running}).`;
    return true;
  }
  if (job.state === "running") {
    bar.hidden = false;
    const label = STAGES[job.stage] || "Working";
    if (job.total > 0) {
      bar.max = job.total;
      bar.value = job.done;
      $("job-status").textContent = `${label}: frame ${job.done} of ${job.total}.`;
    } else {
      bar.removeAttribute("value");
      $("job-status").textContent = `${label}…`;
    }
    return true;
  }
  endJob();
  if (job.state === "done") {
    state.finished.push(job.id);
    const seconds = job.finished_at && job.started_at ? ` in ${(job.finished_at - job.started_at).toFixed(1)} s` : "";
    $("job-status").textContent = `Done${seconds}.`;
    $("result").src = job.video;
    $("download").href = job.download;
    $("download").setAttribute("download", job.filename);
    $("result-info").textContent = `${job.filename}, ${job.frames} frames`;
    $("notes").replaceChildren(...job.notes.map((note) => Object.assign(document.createElement("li"), { textContent: note })));
    $("result-card").hidden = false;
  } else if (job.state === "failed") {
    $("job-status").textContent = "";
    showError(job.message);
  } else {
    $("job-status").textContent = "Cancelled.";
  }
  return false;
}

function endJob() {
  clearTimeout(state.timer);
  state.jobId = null;
  $("cancel").hidden = true;
  $("progress").hidden = true;
  updateRun();
}

async function onCancel() {
  const id = state.jobId;
  if (!id) return;
  endJob();
  $("job-status").textContent = "Cancelled.";
  try { await api(`/api/jobs/${id}`, { method: "DELETE" }); } catch (error) { /* already gone */ }
}

// Results are deleted when the page goes away (the server also deletes them after a while).
function onLeave() {
  for (const id of state.finished.concat(state.jobId ? [state.jobId] : [])) {
    fetch(`/api/jobs/${id}`, { method: "DELETE", keepalive: true }).catch(() => {});
  }
}

// The options start at the server's defaults (the same as the command line's).
function showDefaults(defaults) {
  if ([...$("method").options].some((o) => o.value === defaults.method)) $("method").value = defaults.method;
  document.querySelector(`input[name="mode"][value="${defaults.mode}"]`).checked = true;
  $("transfer").value = defaults.transfer;
  $("paste-back").checked = defaults.paste_back;
  $("crop-size").value = String(defaults.crop_size);
  $("compare").checked = defaults.compare;
  $("driving-mouth").checked = defaults.driving_mouth;
  for (const id of ["pose-scale", "expression-scale"]) {
    $(id).value = String(defaults[id.replace("-", "_")]);
    $(`${id}-shown`).textContent = $(id).value;
    $(id).oninput = () => { $(`${id}-shown`).textContent = $(id).value; };
  }
  for (const box of document.querySelectorAll("input[name=region]")) box.checked = defaults.regions.includes(box.value);
  for (const id of ["video-motion", "length", "audio"]) $(id).value = defaults[id.replace("-", "_")];
}

async function start() {
  try {
    state.config = await api("/api/config");
    state.examples = await api("/api/examples");
  } catch (error) {
    showError(error.message);
    return;
  }
  const cfg = state.config;
  $("method").replaceChildren(...cfg.methods.map((m) => new Option(m.label, m.name)));
  showDefaults(cfg.defaults);
  $("example").append(...state.examples.map((e) => new Option(`${e.name} (${e.seconds.toFixed(1)} s${e.has_audio ? ", audio" : ""})`, e.name)));
  $("example-row").hidden = state.examples.length === 0;
  let limits = `Uploads up to ${megabytes(cfg.max_upload_mb)} MB; clips up to ${cfg.max_seconds} s`;
  if (cfg.max_frames) limits += ` (the first ${cfg.max_frames} frames are animated)`;
  limits += `; ${cfg.max_jobs} job${cfg.max_jobs === 1 ? "" : "s"} at a time, the rest wait in line; results are kept ${cfg.keep_minutes} min.`;
  $("limits").textContent = limits;
  $("source-file").addEventListener("change", onSource);
  $("driving-file").addEventListener("change", onDriving);
  $("example").addEventListener("change", onExample);
  $("run").addEventListener("click", onRun);
  $("cancel").addEventListener("click", onCancel);
  window.addEventListener("pagehide", onLeave);
  document.body.dataset.ready = "true";
}

start();
