"use strict";
// The video page: upload a file as a background job, show its progress, then the top-k bars and, for a
// video longer than one window, the timeline under the player (click a segment to seek there).

let card = null;
let timeline = null;

async function loadCard() {
  card = await getJSON("/api/model");
  const rows = [["classes", card.classes.join(", ")], ["backbone", card.backbone], ["streams", card.streams.join(", ")],
    ["frames per clip", card.frames_per_clip], ["temporal model", card.temporal_model]];
  for (const [key, value] of Object.entries(card.metrics || {})) {
    if (typeof value === "number" || typeof value === "string") rows.push([key, typeof value === "number" ? +value.toFixed(4) : value]);
  }
  document.getElementById("card-list").innerHTML = rows.map(([k, v]) => `<dt>${escapeHTML(k)}</dt><dd>${escapeHTML(v)}</dd>`).join("");
  document.getElementById("reports-link").hidden = !card.reports;
}

function upload(file) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("video", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs?kind=analyze");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) setStatus(`uploading ${Math.round((100 * e.loaded) / e.total)}%`);
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { /* not JSON */ }
      if (xhr.status === 202) resolve(body.id);
      else reject(new Error(body.error || `upload failed (${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("upload failed: the server did not answer"));
    xhr.send(form);
  });
}

async function waitFor(id) {
  for (;;) {
    const job = await getJSON(`/api/jobs/${id}`);
    if (job.state === "done") return job.result;
    if (job.state === "error") throw new Error(job.error);
    setStatus(job.message);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function showTopK(topK) {
  document.getElementById("topk").innerHTML = topK.map((t) =>
    `<li><span class="label">${escapeHTML(t.label)}</span> ${(100 * t.probability).toFixed(1)}%` +
    `<div class="bar" style="width:${(100 * t.probability).toFixed(1)}%"></div></li>`).join("");
}

function showTimeline(tl) {
  timeline = tl;
  const block = document.getElementById("timeline-block");
  const segBlock = document.getElementById("segments-block");
  block.hidden = segBlock.hidden = !tl;
  if (!tl) return;
  const classes = card.classes;
  const colour = (label) => classColour(classes.indexOf(label), classes.length);
  const track = document.getElementById("track");
  track.innerHTML = "";
  tl.segments.forEach((s, i) => {
    const div = document.createElement("div");
    div.className = "segment";
    div.dataset.index = i;
    div.title = `${s.label} ${s.start.toFixed(1)}-${s.end.toFixed(1)} s (${(100 * s.probability).toFixed(0)}%)`;
    div.style.left = `${(100 * s.start) / tl.duration}%`;
    div.style.width = `${(100 * (s.end - s.start)) / tl.duration}%`;
    div.style.background = colour(s.label);
    div.addEventListener("click", () => {
      const player = document.getElementById("player");
      player.currentTime = s.start + 0.01;
      highlight(player.currentTime);
    });
    track.appendChild(div);
  });
  const used = [...new Set(tl.segments.map((s) => s.label))];
  document.getElementById("legend").innerHTML = used.map((l) => `<span style="--c:${colour(l)}">${escapeHTML(l)}</span>`).join("");
  document.querySelector("#segments tbody").innerHTML = tl.segments.map((s, i) =>
    `<tr data-index="${i}"><td>${s.start.toFixed(2)}</td><td>${s.end.toFixed(2)}</td><td>${escapeHTML(s.label)}</td>` +
    `<td>${s.probability.toFixed(3)}</td></tr>`).join("");
}

function highlight(time) {
  if (!timeline) return;
  const index = timeline.segments.findIndex((s) => s.start <= time && time < s.end);
  document.querySelectorAll(".segment, #segments tbody tr").forEach((el) => {
    el.classList.toggle("current", Number(el.dataset.index) === index);
  });
}

function download(kind) {
  const name = (timeline.path || "video").replace(/\.[^.]+$/, "");
  let text;
  if (kind === "json") {
    text = JSON.stringify(timeline, null, 2);
  } else {
    text = "start,end,label,probability\n" + timeline.segments.map((s) =>
      [s.start.toFixed(3), s.end.toFixed(3), `"${s.label.replace(/"/g, '""')}"`, s.probability.toFixed(4)].join(",")).join("\n") + "\n";
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: kind === "json" ? "application/json" : "text/csv" }));
  link.download = `${name}.segments.${kind}`;
  link.click();
  URL.revokeObjectURL(link.href);
}

async function analyze(file) {
  document.getElementById("result").hidden = true;
  try {
    const id = await upload(file);
    setStatus("waiting for the model");
    const result = await waitFor(id);
    const player = document.getElementById("player");
    player.src = URL.createObjectURL(file);
    document.getElementById("video-name").textContent = result.video;
    showTopK(result.top_k);
    showTimeline(result.timeline);
    document.getElementById("result").hidden = false;
    const segments = result.timeline ? `; ${result.timeline.segments.length} segments` : "";
    setStatus(`${result.video}: ${result.top_k[0].label} (${(100 * result.top_k[0].probability).toFixed(1)}%)${segments}`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

function setUp() {
  const drop = document.getElementById("drop");
  const input = document.getElementById("file");
  input.addEventListener("change", () => input.files.length && analyze(input.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) analyze(e.dataTransfer.files[0]);
  });
  document.getElementById("player").addEventListener("timeupdate", (e) => highlight(e.target.currentTime));
  document.getElementById("player").addEventListener("seeked", (e) => highlight(e.target.currentTime));
  document.getElementById("download-csv").addEventListener("click", () => download("csv"));
  document.getElementById("download-json").addEventListener("click", () => download("json"));
  loadCard().catch((err) => setStatus(`cannot read the model: ${err.message}`, true));
}

setUp();
