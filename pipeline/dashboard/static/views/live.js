// Live alerts: polls /api/alerts every two seconds and adds the new ones on top.
import { get } from "../api.js";
import { h, replace, section, toast } from "../dom.js";
import { alertRow } from "./common.js";

const POLL_MS = 2000;
const KEEP = 200;

export async function renderLive(view) {
  const seen = new Set();
  const body = h("tbody", {});
  const status = h("span", { class: "muted", id: "live-status", text: "connecting…" });
  const counter = h("span", { class: "big", id: "live-count", text: "0" });
  let paused = false;
  let received = 0;
  const pause = h("button", {
    type: "button",
    text: "Pause",
    onclick: () => {
      paused = !paused;
      pause.textContent = paused ? "Resume" : "Pause";
    },
  });
  replace(
    view,
    h("div", { class: "toolbar" }, h("h1", { text: "Live alerts" }), pause, status),
    section(
      "Alerts as they arrive",
      h("p", {}, counter, " new since this page opened"),
      h(
        "table",
        { class: "grid alerts live" },
        h(
          "thead",
          {},
          h("tr", {}, ["when", "kind", "service", "issue", "level"].map((t) => h("th", { text: t }))),
        ),
        body,
      ),
    ),
  );
  let first = true;
  let stopped = false;
  let timer = 0;
  async function poll() {
    if (stopped) return;
    if (!paused) {
      try {
        const data = await get("/api/alerts", { since: "1h", limit: 100 });
        const fresh = data.alerts.filter((a) => !seen.has(a.alert_id));
        for (const a of fresh.reverse()) {
          seen.add(a.alert_id);
          const row = h("tr", { class: first ? "" : "fresh", dataset: { alert: a.alert_id } });
          for (const cell of alertRow(a)) row.append(h("td", {}, cell));
          body.prepend(row);
          if (!first) received += 1;
        }
        while (body.children.length > KEEP) body.lastChild.remove();
        counter.textContent = String(received);
        status.textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
        first = false;
      } catch (error) {
        status.textContent = `poll failed: ${error.message}`;
        toast(error.message, "error");
      }
    }
    timer = setTimeout(poll, POLL_MS);
  }
  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
