// The page of the speaker-gender service: a file upload (POST /v1/classify) and a live
// microphone stream (WebSocket /v1/stream). Plain JS, no build step; runs in current
// Chromium and Firefox.
"use strict";

const $ = (id) => document.getElementById(id);
const CHUNK_S = 0.1;         // audio sent per WebSocket frame
const STRIP_MIN_S = 30;      // the live timeline shows at least this many seconds

// ------------------------------------------------------------------------------- shared drawing

function pOfLabel(label, pMale) {
  if (pMale === null || pMale === undefined) return null;
  if (label === "male") return pMale;
  if (label === "female") return 1 - pMale;
  return Math.max(pMale, 1 - pMale);
}

function setLabel(el, label) {
  el.textContent = label;
  el.dataset.label = label;
}

function setBar(el, fraction, cls) {
  el.style.width = `${Math.round(Math.max(0, Math.min(1, fraction)) * 100)}%`;
  el.className = `fill ${cls || ""}`;
}

function drawStrip(strip, segments, totalS) {
  strip.replaceChildren();
  const total = Math.max(totalS, 1e-3);
  for (const s of segments) {
    const seg = document.createElement("div");
    seg.className = `seg ${s.label}`;
    seg.style.left = `${(100 * s.start_s) / total}%`;
    seg.style.width = `${(100 * (s.end_s - s.start_s)) / total}%`;
    const p = pOfLabel(s.label, s.p_male);
    seg.title = `${s.start_s.toFixed(1)}–${s.end_s.toFixed(1)} s ${s.label}` + (p === null ? "" : ` ${p.toFixed(2)}`);
    strip.appendChild(seg);
  }
}

function talkText(speaking) {
  const parts = Object.entries(speaking || {}).map(([k, v]) => `${k} ${Number(v).toFixed(1)} s`);
  return parts.length ? `speaking time: ${parts.join(", ")}` : "";
}

function setStatus(el, text, isError) {
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

// ----------------------------------------------------------------------------------- a file

let audioUrl = null; // the object URL of the file in the player

function clearResult() {
  $("file-result").hidden = true;
  setLabel($("file-label"), "–");
  $("file-numbers").textContent = "";
  $("file-talk").textContent = "";
  $("file-timeline").replaceChildren();
  $("file-axis").replaceChildren();
  $("file-playhead").hidden = true;
  const audio = $("file-audio");
  audio.pause();
  audio.removeAttribute("src");
  audio.load();
  if (audioUrl) URL.revokeObjectURL(audioUrl);
  audioUrl = null;
}

async function classifyFile(file) {
  const status = $("file-status");
  clearResult(); // a failed upload must not leave the previous file's answer on the page
  setStatus(status, `classifying ${file.name} …`);
  const form = new FormData();
  form.append("file", file, file.name);
  let res, body;
  try {
    res = await fetch(`/v1/classify?timeline=${$("timeline").checked}`, { method: "POST", body: form });
    body = await res.json();
  } catch (err) {
    setStatus(status, `the service did not answer (${err})`, true);
    return;
  }
  if (!res.ok) {
    setStatus(status, `${body.detail || body.error || res.statusText}`, true);
    return;
  }
  setStatus(status, "");
  showResult(body, file);
}

function drawAxis(axis, totalS) {
  axis.replaceChildren();
  const step = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((s) => totalS / s <= 10) || 1200;
  for (let t = 0; t <= totalS + 1e-6; t += step) {
    const tick = document.createElement("span");
    tick.style.left = `${(100 * t) / Math.max(totalS, 1e-3)}%`;
    tick.textContent = `${Number(t.toFixed(1))} s`;
    axis.appendChild(tick);
  }
}

function showResult(r, file) {
  $("file-result").hidden = false;
  setLabel($("file-label"), r.label);
  $("file-name").textContent = r.filename || "";
  const p = pOfLabel(r.label, r.p_male);
  setBar($("file-bar"), p === null ? 0 : p, r.label);
  const both = r.p_male === null || r.p_male === undefined ? ""
    : `p(female) = ${r.p_female.toFixed(2)} · p(male) = ${r.p_male.toFixed(2)} · `;
  const why = r.status === "no_speech" ? "no speech found · "
    : (r.status === "unknown" || r.label === "mixed") && r.reason ? `${r.reason} · ` : "";
  $("file-numbers").textContent = why + both
    + `${r.speech_s.toFixed(1)} s of speech in ${r.duration_s.toFixed(1)} s`;
  const audio = $("file-audio");
  audioUrl = URL.createObjectURL(file);
  audio.src = audioUrl;
  const hasTimeline = Boolean(r.timeline && r.timeline.length);
  drawStrip($("file-timeline"), r.timeline || [], r.duration_s);
  drawAxis($("file-axis"), r.duration_s);
  $("file-playhead").hidden = false;
  $("file-talk").textContent = hasTimeline ? talkText(r.speaking_time_s) : "no segments (timeline off or no speech)";
  $("file-model").textContent = r.model || "the service's model";
  audio.ontimeupdate = () => {
    $("file-playhead").style.left = `${(100 * audio.currentTime) / Math.max(r.duration_s, 1e-3)}%`;
  };
  audio.ontimeupdate();
}

async function showExamples() {
  let list;
  try {
    list = await (await fetch("/v1/examples")).json();
  } catch (err) {
    return;
  }
  const box = $("examples");
  for (const ex of list) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = ex.title;
    b.dataset.name = ex.name;
    if (ex.note) b.title = ex.note;
    b.addEventListener("click", async () => {
      const blob = await (await fetch(ex.url)).blob();
      classifyFile(new File([blob], ex.name, { type: blob.type }));
    });
    box.appendChild(b);
  }
  box.hidden = list.length === 0;
}

function setUpDrop() {
  const drop = $("drop");
  const input = $("file-input");
  input.addEventListener("change", () => input.files.length && classifyFile(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => e.dataTransfer.files.length && classifyFile(e.dataTransfer.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
}

// ---------------------------------------------------------------------------------- live

let live = null; // {ws, ctx, media, nodes, segments, hopS}

function streamUrl(rate) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/v1/stream?rate=${Math.round(rate)}&dtype=float32`;
}

async function startLive() {
  const status = $("live-status");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus(status, "this page needs a secure origin (https, localhost or 127.0.0.1) for the microphone", true);
    return;
  }
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    setStatus(status, `no microphone: ${err.message || err}`, true);
    return;
  }
  const ctx = new (window.AudioContext || window.webkitAudioContext)();
  await ctx.resume();
  const ws = new WebSocket(streamUrl(ctx.sampleRate));
  ws.binaryType = "arraybuffer";
  live = { ws, ctx, media, nodes: [], segments: [], hopS: 0.3, ready: false };
  $("record").textContent = "■ Stop";
  $("record").classList.add("recording");
  setStatus(status, "connecting…");
  drawStrip($("live-timeline"), [], STRIP_MIN_S);
  const session = live;

  ws.onmessage = (e) => onLiveMessage(session, JSON.parse(e.data));
  ws.onclose = (e) => {
    if (live === session) stopLive(false);
    if (e.code !== 1000 && e.code !== 1005 && !session.failed) {
      setStatus(status, `the stream closed (${e.code}${e.reason ? ": " + e.reason : ""})`, true);
    }
  };
  ws.onerror = () => setStatus(status, "the stream failed", true);

  const source = ctx.createMediaStreamSource(media);
  const send = (samples) => {
    showLevel(samples);
    if (session.ready && ws.readyState === WebSocket.OPEN) ws.send(samples.buffer);
  };
  let node;
  const chunk = Math.round(ctx.sampleRate * CHUNK_S);
  if (ctx.audioWorklet && window.AudioWorkletNode) {
    await ctx.audioWorklet.addModule("/static/pcm-worklet.js");
    node = new AudioWorkletNode(ctx, "pcm-chunker", {
      numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: "explicit",
      processorOptions: { chunk },
    });
    node.port.onmessage = (e) => send(e.data);
  } else { // older browsers: ScriptProcessor (deprecated, but everywhere)
    node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (e) => send(new Float32Array(e.inputBuffer.getChannelData(0)));
  }
  const mute = ctx.createGain(); // keeps the graph pulled without playing the microphone back
  mute.gain.value = 0;
  source.connect(node);
  node.connect(mute);
  mute.connect(ctx.destination);
  session.nodes = [source, node, mute];
}

function showLevel(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  const db = 10 * Math.log10(sum / Math.max(samples.length, 1) + 1e-10); // dBFS of this chunk
  setBar($("live-level"), (db + 60) / 60, "level"); // -60 dBFS: empty, 0 dBFS: full
}

function onLiveMessage(session, m) {
  const status = $("live-status");
  if (m.type === "ready") {
    session.ready = true;
    session.hopS = m.hop_s;
    setStatus(status, `listening (${Math.round(session.ctx.sampleRate)} Hz)`);
  } else if (m.type === "event") {
    setLabel($("live-label"), m.label);
    const p = m.p_label === null || m.p_label === undefined ? null : m.p_label; // the held label's own p
    setBar($("live-confidence"), p === null ? 0 : p, m.label);
    const heard = m.p_male === null ? "silence"
      : m.heard && m.heard !== m.label ? `hearing ${m.heard} ${pOfLabel(m.heard, m.p_male).toFixed(2)}` : "";
    $("live-p").textContent = (p === null ? "" : `p(${m.label}) = ${p.toFixed(2)}`)
      + (heard ? `${p === null ? "" : " · "}${heard}` : "")
      + (m.p_male === null ? "" : ` · speech in the window ${m.speech_s.toFixed(1)} s`);
    $("live-time").textContent = `${m.t_s.toFixed(1)} s`;
    const segs = session.segments;
    const start = Math.max(0, m.t_s - session.hopS);
    const last = segs[segs.length - 1];
    if (last && last.label === m.label && Math.abs(last.end_s - start) < 1e-3 + session.hopS) {
      last.end_s = m.t_s;
    } else {
      segs.push({ start_s: start, end_s: m.t_s, label: m.label, p_male: m.p_male });
    }
    drawStrip($("live-timeline"), segs, Math.max(STRIP_MIN_S, m.t_s));
  } else if (m.type === "error") {
    session.failed = true;
    setStatus(status, m.detail || m.error, true);
  } else if (m.type === "end") {
    // the stream's whole answer (mixed when two voices were established), not the last hop's label
    setLabel($("live-label"), m.label);
    if (m.label !== m.last_label) {
      setBar($("live-confidence"), 0, m.label);
      $("live-p").textContent = `whole stream: ${m.label} · last heard: ${m.last_label}`;
    }
    setStatus(status, `stopped · ${m.label} · ${talkText(m.speaking_time_s)}`);
  }
}

function stopLive(sendEnd) {
  const session = live;
  if (!session) return;
  live = null;
  for (const n of session.nodes) { try { n.disconnect(); } catch (_) { /* already */ } }
  session.media.getTracks().forEach((t) => t.stop());
  session.ctx.close();
  if (sendEnd && session.ws.readyState === WebSocket.OPEN) {
    session.ws.send(new ArrayBuffer(0)); // an empty frame ends the stream; the server answers "end"
    setTimeout(() => session.ws.readyState === WebSocket.OPEN && session.ws.close(), 5000);
  } else if (!sendEnd && session.ws.readyState <= WebSocket.OPEN) {
    session.ws.close(1000);
  }
  $("record").textContent = "● Record";
  $("record").classList.remove("recording");
  setBar($("live-level"), 0, "level");
}

// ----------------------------------------------------------------------------------- start

async function showHealth() {
  try {
    const h = await (await fetch("/healthz")).json();
    for (const [label, colour] of Object.entries(h.colours || {})) {
      document.documentElement.style.setProperty(`--${label}`, colour); // one colour scheme: src/labels.py
    }
    $("health").textContent = `model: ${h.encoder || "?"}${h.run ? " · " + h.run : ""} · uploads up to `
      + `${h.limits.max_upload_mb} MiB and ${Math.round(h.limits.max_duration_s)} s`;
    $("model-card-link").hidden = !h.model_card;
  } catch (err) {
    $("health").textContent = "the service does not answer";
  }
}

window.addEventListener("DOMContentLoaded", () => {
  setUpDrop();
  $("record").addEventListener("click", () => {
    if (live) stopLive(true);
    else startLive().catch((err) => { setStatus($("live-status"), String(err), true); stopLive(false); });
  });
  showHealth();
  showExamples();
});
