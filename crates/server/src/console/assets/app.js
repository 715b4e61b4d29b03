// Hookline console: progressive enhancement only. Every page works without this script; with it,
// the webhook form shows a live example body, copy buttons copy, confirmations confirm, and the
// delivery log's first page refreshes itself. No inline script anywhere (the CSP forbids it).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A page answered to a POST names its own address: show it, so a reload doesn't post again.
  const main = document.getElementById("main");
  if (main && main.dataset.location && location.pathname !== main.dataset.location) {
    history.replaceState(null, "", main.dataset.location);
  }

  // Live example body of the chosen format and event.
  const format = document.getElementById("f-format");
  const event = document.getElementById("f-example-event");
  const example = document.getElementById("format-example");
  if (format && event && example) {
    const show = async () => {
      const q = new URLSearchParams({ format: format.value, event: event.value });
      try {
        const r = await fetch("/format-example?" + q, { credentials: "same-origin" });
        const text = await r.text();
        example.textContent = r.ok ? JSON.stringify(JSON.parse(text), null, 2) : text;
      } catch (e) {
        example.textContent = "The example could not be loaded.";
      }
    };
    format.addEventListener("change", show);
    event.addEventListener("change", show);
    show();
  }

  // Copy buttons: data-copy names the element whose text to copy.
  for (const b of document.querySelectorAll("button[data-copy]")) {
    b.addEventListener("click", async () => {
      const el = document.getElementById(b.dataset.copy);
      if (!el) return;
      try {
        await navigator.clipboard.writeText(el.textContent);
        b.textContent = "Copied";
      } catch (e) {
        const range = document.createRange();
        range.selectNodeContents(el);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        b.textContent = "Selected: press Ctrl+C";
      }
    });
  }

  // Forms that ask first.
  for (const f of document.querySelectorAll("form[data-confirm]")) {
    f.addEventListener("submit", (e) => {
      if (!confirm(f.dataset.confirm)) e.preventDefault();
    });
  }

  // The delivery log's first page: new deliveries and new outcomes appear without a reload.
  const rows = document.getElementById("delivery-rows");
  if (rows && rows.dataset.live) {
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const r = await fetch(rows.dataset.live, { credentials: "same-origin" });
        if (r.ok) {
          const html = await r.text();
          if (html !== rows.dataset.last) {
            rows.innerHTML = html;
            rows.dataset.last = html;
          }
        }
      } catch (e) {
        // Offline for a moment: the next tick tries again.
      }
    };
    setInterval(refresh, 2000);
  }
});
