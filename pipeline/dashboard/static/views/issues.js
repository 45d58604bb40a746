// Issues list: filters (service, environment, release, level, category, status, priority,
// text search), sorting and paging, all kept in the hash so a reload shows the same list.
import { get } from "../api.js";
import { badge, h, link, replace, routeHref, section, table } from "../dom.js";
import { ago, count, RANGES, when } from "../format.js";
import { issueLink, levelBadge, statusBadge } from "./common.js";

const PAGE = 50;
const STATUSES = ["unresolved", "resolved", "ignored", "merged"];
const PRIORITIES = ["high", "medium", "low"];
const SORTS = ["last_seen", "first_seen", "count", "users", "priority"];
const FIELDS = ["service", "environment", "release", "level", "category"];

function select(name, label, values, current, any = "any") {
  return h(
    "label",
    {},
    label,
    h(
      "select",
      { name },
      h("option", { value: "", text: any }),
      values.map((v) => h("option", { value: v, selected: v === current }, v || "(none)")),
    ),
  );
}

async function options(range) {
  const out = {};
  const answers = await Promise.all(
    FIELDS.map((by) =>
      get("/api/breakdown", { by, since: range === "all" ? "90d" : range, limit: 100 }).catch(
        () => ({ values: [] }),
      ),
    ),
  );
  FIELDS.forEach((by, i) => {
    out[by] = answers[i].values.map((v) => v.value);
  });
  return out;
}

export async function renderIssues(view, _args, params) {
  const state = Object.fromEntries(params.entries());
  const range = RANGES.includes(state.since) ? state.since : "30d";
  const offset = Math.max(0, Number(state.offset || 0));
  const query = {
    status: state.status,
    priority: state.priority,
    q: state.q,
    sort: SORTS.includes(state.sort) ? state.sort : "last_seen",
    order: state.order === "asc" ? "asc" : "desc",
    since: range,
    limit: PAGE,
    offset,
  };
  for (const f of FIELDS) query[f] = state[f];
  const [values, listing] = await Promise.all([options(range), get("/api/issues", query)]);

  const form = h(
    "form",
    { class: "filters", id: "issue-filters" },
    FIELDS.map((f) => select(f, f, values[f], state[f] || "")),
    select("status", "status", STATUSES, state.status || ""),
    select("priority", "priority", PRIORITIES, state.priority || ""),
    h("label", {}, "search", h("input", { type: "search", name: "q", value: state.q || "" })),
    select("since", "seen in", RANGES, range, "30d"),
    select("sort", "sort by", SORTS, query.sort, "last_seen"),
    select("order", "order", ["desc", "asc"], query.order, "desc"),
    h("button", { type: "submit", text: "Apply" }),
    h("a", { href: "#/issues", class: "reset", text: "Reset" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = {};
    for (const [key, value] of new FormData(form).entries()) if (value) next[key] = value;
    window.location.hash = routeHref(["issues"], next);
  });
  const sortLink = (key, label) =>
    link(
      ["issues"],
      { ...state, sort: key, order: query.sort === key && query.order === "desc" ? "asc" : "desc" },
      label,
      query.sort === key ? (query.order === "desc" ? " ▾" : " ▴") : "",
    );
  const rows = listing.issues.map((i) => [
    h("div", {}, issueLink(i.fingerprint, i.title), h("div", { class: "mono small muted", text: i.culprit || "" })),
    levelBadge(i.level),
    `${i.service || "–"} / ${i.environment || "–"}`,
    i.category || "–",
    statusBadge(i.status),
    badge(i.priority || "–", `priority-${i.priority}`),
    i.assignee || "–",
    count(i.count),
    count(i.users),
    h("span", { title: when(i.last_seen), text: ago(i.last_seen) }),
  ]);
  const headers = [
    "issue",
    "level",
    "service / env",
    "category",
    "status",
    "priority",
    "assignee",
    "events",
    "users",
    "last seen",
  ];
  const grid = table(headers, rows, { empty: "no issue matches", className: "issues" });
  // sortable columns: events, users, last seen, priority
  const ths = grid.querySelectorAll("th");
  replace(ths[5], sortLink("priority", "priority"));
  replace(ths[7], sortLink("count", "events"));
  replace(ths[8], sortLink("users", "users"));
  replace(ths[9], sortLink("last_seen", "last seen"));
  const total = listing.total ?? listing.issues.length;
  const pager = h(
    "p",
    { class: "pager" },
    offset > 0 ? link(["issues"], { ...state, offset: Math.max(0, offset - PAGE) }, "← newer") : "",
    ` ${total ? offset + 1 : 0}–${offset + listing.issues.length} of ${total} `,
    offset + PAGE < total ? link(["issues"], { ...state, offset: offset + PAGE }, "more →") : "",
  );
  replace(
    view,
    h("div", { class: "toolbar" }, h("h1", { text: "Issues" })),
    section("Filters", form),
    section(`${total} issue${total === 1 ? "" : "s"}`, grid, pager),
  );
}
