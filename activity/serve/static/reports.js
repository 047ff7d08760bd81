"use strict";
// The evaluation viewer: metrics, the confusion matrix (click a cell for its clips, a clip to play it)
// and the per-class table, from a folder written by `activity evaluate`.

async function showClips(trueLabel, predicted) {
  const url = `/api/reports/clips?true=${encodeURIComponent(trueLabel)}&predicted=${encodeURIComponent(predicted)}`;
  const { clips } = await getJSON(url);
  document.getElementById("clips-title").textContent = `${clips.length} clip(s): true ${trueLabel}, predicted ${predicted}`;
  const body = document.querySelector("#clips tbody");
  body.innerHTML = clips.map((c) => `<tr data-row="${c.row}"><td>${escapeHTML(c.name)}</td><td>${escapeHTML(c.true)}</td>` +
    `<td>${escapeHTML(c.predicted)}</td><td>${c.probability.toFixed(3)}</td></tr>`).join("");
  body.querySelectorAll("tr").forEach((tr) => tr.addEventListener("click", () => {
    body.querySelectorAll("tr").forEach((other) => other.classList.toggle("current", other === tr));
    const player = document.getElementById("clip-player");
    player.src = `/api/reports/videos/${tr.dataset.row}`;
    player.play().catch(() => {});
  }));
  document.getElementById("clips-block").hidden = false;
}

async function load() {
  const report = await getJSON("/api/reports");
  const m = report.metrics;
  const shown = ["top1", "top5", "mean_class_accuracy", "roc_auc", "num_videos", "skipped"].filter((k) => k in m);
  document.getElementById("metrics").innerHTML = shown.map((k) =>
    `<dt>${k}</dt><dd>${typeof m[k] === "number" ? +m[k].toFixed(4) : escapeHTML(m[k])}</dd>`).join("");
  const classes = report.classes;
  const head = `<tr><th>true \\ predicted</th>${classes.map((c) => `<th>${escapeHTML(c)}</th>`).join("")}</tr>`;
  const rows = report.confusion.map((row, i) => `<tr><th>${escapeHTML(classes[i])}</th>` + row.map((n, j) =>
    `<td class="cell${i === j ? " diagonal" : ""}" data-true="${escapeHTML(classes[i])}" data-predicted="${escapeHTML(classes[j])}">${n}</td>`).join("") + "</tr>");
  const table = document.getElementById("confusion");
  table.innerHTML = head + rows.join("");
  table.querySelectorAll("td.cell").forEach((td) => td.addEventListener("click", () => {
    showClips(td.dataset.true, td.dataset.predicted).catch((err) => setStatus(err.message, true));
  }));
  document.querySelector("#per-class tbody").innerHTML = report.per_class.map((r) =>
    `<tr><td>${escapeHTML(r.class)}</td><td>${r.precision}</td><td>${r.recall}</td><td>${r.f1}</td><td>${r.support}</td></tr>`).join("");
  setStatus(`${report.folder}: ${m.num_videos} videos`);
}

load().catch((err) => setStatus(err.message, true));
