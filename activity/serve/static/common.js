"use strict";
// Shared by the pages: fetching JSON (errors as {"error"}), HTML escaping, class colours.

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function escapeHTML(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// One colour per class, spread around the hue circle in class order.
function classColour(index, count) {
  return `hsl(${Math.round((360 * index) / Math.max(count, 1))}, 65%, 50%)`;
}

function setStatus(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}
