// Overview: events over time for a chosen range, new and regressed issues, alert feed.
import { get } from "../api.js";
import { timeChart } from "../chart.js";
import { h, replace, routeHref, section, table } from "../dom.js";
import { count, RANGES } from "../format.js";
import { alertsTable, issueRows, rangeSelect } from "./common.js";

export async function renderOverview(view, _args, params) {
  const range = RANGES.includes(params.get("range")) ? params.get("range") : "24h";
  const service = params.get("service") || "";
  const go = (next) => {
    window.location.hash = routeHref(["overview"], { range, service, ...next });
  };
  const [timeline, fresh, regressions, alerts, services, categories] = await Promise.all([
    get("/api/timeline", { since: range, service }),
    get("/api/top", { since: range, order: "new", limit: 10, service }),
    get("/api/alerts", { since: range, kind: "regression", service, limit: 50 }),
    get("/api/alerts", { since: range, service, limit: 30 }),
    get("/api/breakdown", { since: range, by: "service", limit: 50 }),
    get("/api/breakdown", { since: range, by: "category", limit: 20, service }),
  ]);
  const regressed = [];
  const seen = new Set();
  for (const a of regressions.alerts) {
    if (a.fingerprint && !seen.has(a.fingerprint)) {
      seen.add(a.fingerprint);
      regressed.push(a);
    }
  }
  const serviceSelect = h(
    "label",
    { class: "inline" },
    "Service ",
    h(
      "select",
      { name: "service", onchange: (e) => go({ service: e.target.value }) },
      h("option", { value: "", text: "all" }),
      services.values.map((v) =>
        h("option", { value: v.value, selected: v.value === service }, v.value || "(none)"),
      ),
    ),
  );
  replace(
    view,
    h(
      "div",
      { class: "toolbar" },
      h("h1", { text: "Overview" }),
      rangeSelect(range, RANGES, (r) => go({ range: r })),
      serviceSelect,
    ),
    section(
      `Events, last ${range}`,
      h("p", { class: "big", id: "total-events", text: count(timeline.total) }),
      timeChart(timeline.points, { bucket: timeline.bucket_seconds }),
    ),
    h(
      "div",
      { class: "columns" },
      section(
        "New issues",
        table(
          ["issue", "culprit", "service", "status", "events", "users", "last seen"],
          issueRows(fresh.issues),
          { empty: "no new issues in this range", className: "new-issues" },
        ),
      ),
      section("Regressed issues", alertsTable(regressed, "no regressions in this range")),
    ),
    h(
      "div",
      { class: "columns" },
      section("Alert feed", alertsTable(alerts.alerts)),
      section(
        "By category",
        table(
          ["category", "events", "users", "issues"],
          categories.values.map((v) => [v.value || "–", count(v.events), count(v.users), v.issues]),
          { empty: "no events" },
        ),
      ),
    ),
  );
}
