// Pieces shared by the views.
import { badge, h, link, table } from "../dom.js";
import { ago, count, when } from "../format.js";

export function rangeSelect(current, ranges, onChange) {
  return h(
    "label",
    { class: "inline" },
    "Range ",
    h(
      "select",
      { name: "range", onchange: (e) => onChange(e.target.value) },
      ranges.map((r) => h("option", { value: r, selected: r === current }, r)),
    ),
  );
}

export function statusBadge(status) {
  return badge(status || "unknown", `status-${status || "unknown"}`);
}

export function levelBadge(level) {
  return badge(level || "–", `level-${level || "none"}`);
}

export function issueLink(fingerprint, title) {
  return link(["issue", fingerprint], {}, title || fingerprint);
}

export function alertRow(a) {
  return [
    h("span", { title: when(a.event_time), text: ago(a.event_time) }),
    badge(a.kind, `kind-${a.kind}`),
    a.service || "–",
    a.fingerprint ? issueLink(a.fingerprint, a.title) : a.title || a.rule || "–",
    levelBadge(a.level),
  ];
}

export function alertsTable(alerts, empty = "no alerts in this range") {
  return table(["when", "kind", "service", "issue", "level"], alerts.map(alertRow), {
    empty,
    className: "alerts",
  });
}

export function issueRows(issues) {
  return issues.map((i) => [
    issueLink(i.fingerprint, i.title),
    h("span", { class: "mono small", text: i.culprit || "" }),
    i.service || "–",
    statusBadge(i.status),
    count(i.events ?? i.count),
    count(i.users),
    h("span", { title: when(i.last_seen), text: ago(i.last_seen) }),
  ]);
}
