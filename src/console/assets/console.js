// ssfd console: shows times in the browser's zone (the RFC 3339 original stays in the title,
// shown on hover) and offers an optional periodic refresh. Pages read fully without it.
"use strict";

function localTimes() {
  for (const el of document.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at.getTime())) {
      el.textContent = at.toLocaleString();
      el.title = el.getAttribute("datetime");
    }
  }
}

function autoRefresh() {
  const box = document.getElementById("auto-refresh");
  if (!box) return;
  box.parentElement.hidden = false;
  const key = "ssfd-console-refresh";
  box.checked = window.localStorage.getItem(key) === "on";
  let timer = null;
  const arm = () => {
    if (timer) window.clearTimeout(timer);
    timer = box.checked ? window.setTimeout(() => window.location.reload(), 10000) : null;
  };
  box.addEventListener("change", () => {
    window.localStorage.setItem(key, box.checked ? "on" : "off");
    arm();
  });
  arm();
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  autoRefresh();
});
