// Issue detail: state and actions, timeline, stack trace (in-app frames highlighted), tag /
// release / environment breakdowns, latest events, affected users, similar issues, audit.
import { get, issuePath, post } from "../api.js";
import { timeChart } from "../chart.js";
import { badge, h, replace, routeHref, section, table, toast } from "../dom.js";
import { ago, count, RANGES, when } from "../format.js";
import { alertsTable, issueLink, levelBadge, statusBadge } from "./common.js";

const optional = (promise, fallback) => promise.catch(() => fallback);

function stateOf(detail) {
  const issue = detail.issue || {};
  return {
    status: detail.status || issue.status,
    priority: detail.priority,
    priority_source: detail.priority_source,
    assignee: detail.assignee,
    merged_into: detail.merged_into,
  };
}

function frames(exception) {
  return h(
    "ol",
    { class: "frames" },
    [...exception.frames].reverse().map((f) =>
      h(
        "li",
        { class: f.in_app ? "frame in-app" : "frame" },
        h("span", { class: "fn", text: f.function || "?" }),
        " in ",
        h("span", { class: "file", text: f.filename || f.module || "?" }),
        f.lineno ? h("span", { class: "line", text: `:${f.lineno}` }) : "",
        f.in_app ? badge("in app", "in-app") : "",
      ),
    ),
  );
}

function stackTrace(event) {
  if (!event || !event.exception || !event.exception.length) {
    return h("p", { class: "muted", text: "no stack trace stored for this issue" });
  }
  return h(
    "div",
    { class: "stacktrace" },
    [...event.exception].reverse().map((e) =>
      h(
        "div",
        { class: "exception" },
        h("p", { class: "exc" }, h("strong", { text: e.type || "Error" }), ": ", e.value || ""),
        frames(e),
      ),
    ),
  );
}

function splits(title, values) {
  return section(
    title,
    table(
      ["value", "events"],
      values.map((v) => [v.value || "(none)", count(v.events)]),
      { empty: "no data" },
    ),
  );
}

function tagTables(tags) {
  if (!tags.length) return h("p", { class: "muted", text: "no tags on the stored events" });
  return h(
    "div",
    { class: "tags" },
    tags.map((t) =>
      h(
        "div",
        { class: "tag" },
        h("h3", { text: t.key }),
        table(
          ["value", "events"],
          t.values
            .map((v) => [h("span", { class: "tag-value", text: v.value }), count(v.events)])
            .concat(t.other ? [["other", count(t.other)]] : []),
        ),
      ),
    ),
  );
}

async function act(fingerprint, body, before) {
  const reply = await post(issuePath(fingerprint, "/actions"), body);
  // the state is visible in GET /api/issues/{fp} within a second of the 202
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const detail = await get(issuePath(fingerprint));
    if (JSON.stringify(stateOf(detail)) !== before) return reply;
    await new Promise((r) => setTimeout(r, 200));
  }
  return reply;
}

function actions(fingerprint, state, refresh) {
  const before = JSON.stringify(state);
  const reason = h("input", { type: "text", name: "reason", placeholder: "reason (optional)" });
  const run = async (body, label) => {
    try {
      const text = reason.value.trim();
      await act(fingerprint, text ? { ...body, reason: text } : body, before);
      toast(`${label}: done`, "ok");
      refresh();
    } catch (error) {
      toast(`${label}: ${error.message}`, "error");
    }
  };
  const release = h("input", { type: "text", name: "in_release", placeholder: "in release" });
  const nextRelease = h("input", { type: "checkbox", name: "in_next_release" });
  const ignoreMode = h(
    "select",
    { name: "ignore_mode" },
    h("option", { value: "forever", text: "forever" }),
    h("option", { value: "1h", text: "for 1 hour" }),
    h("option", { value: "24h", text: "for 24 hours" }),
    h("option", { value: "escalating", text: "until escalating" }),
    h("option", { value: "count", text: "until 100 more events" }),
    h("option", { value: "users", text: "until 10 more users" }),
  );
  const assignee = h("input", {
    type: "text",
    name: "assignee",
    placeholder: "assignee",
    value: state.assignee || "",
  });
  const priority = h(
    "select",
    { name: "priority" },
    ["auto", "high", "medium", "low"].map((p) => h("option", { value: p, text: p })),
  );
  const into = h("input", { type: "text", name: "into", placeholder: "target fingerprint" });
  const ignoreBody = () => {
    const mode = ignoreMode.value;
    if (mode === "1h") return { action: "ignore", for_seconds: 3600 };
    if (mode === "24h") return { action: "ignore", for_seconds: 86400 };
    if (mode === "escalating") return { action: "ignore", until_escalating: true };
    if (mode === "count") return { action: "ignore", until_count: 100 };
    if (mode === "users") return { action: "ignore", until_users: 10 };
    return { action: "ignore" };
  };
  const button = (text, name, onclick) =>
    h("button", { type: "button", name, text, dataset: { action: name }, onclick });
  const resolved = state.status === "resolved" || state.status === "ignored";
  return section(
    "Actions",
    h(
      "div",
      { class: "actions" },
      h("div", { class: "row" }, reason),
      h(
        "div",
        { class: "row" },
        button(resolved ? "Unresolve" : "Resolve", resolved ? "unresolve" : "resolve", () => {
          if (resolved) return run({ action: "unresolve" }, "unresolve");
          const body = { action: "resolve" };
          if (nextRelease.checked) body.in_next_release = true;
          else if (release.value.trim()) body.in_release = release.value.trim();
          return run(body, "resolve");
        }),
        release,
        h("label", { class: "inline" }, nextRelease, " in next release"),
      ),
      h(
        "div",
        { class: "row" },
        button("Ignore", "ignore", () => run(ignoreBody(), "ignore")),
        ignoreMode,
      ),
      h(
        "div",
        { class: "row" },
        button("Assign", "assign", () => run({ action: "assign", assignee: assignee.value.trim() || null }, "assign")),
        assignee,
      ),
      h(
        "div",
        { class: "row" },
        button("Set priority", "priority", () => run({ action: "priority", priority: priority.value }, "priority")),
        priority,
      ),
      h(
        "div",
        { class: "row" },
        button("Merge into", "merge", () => {
          if (!into.value.trim()) return toast("merge: name the target fingerprint", "error");
          return run({ action: "merge", into: into.value.trim() }, "merge");
        }),
        into,
        state.status === "merged" ? button("Unmerge", "unmerge", () => run({ action: "unmerge" }, "unmerge")) : "",
      ),
    ),
  );
}

function similarSection(fingerprint, similar, refresh) {
  const rows = similar.map((s) => [
    issueLink(s.fingerprint, s.title),
    h("span", { class: "mono small", text: s.culprit || "" }),
    h("span", { class: "score", text: Number(s.score).toFixed(2) }),
    h("button", {
      type: "button",
      class: "merge-here",
      text: "Merge into this issue",
      dataset: { fingerprint: s.fingerprint },
      onclick: async (event) => {
        event.target.disabled = true;
        try {
          await post(issuePath(s.fingerprint, "/actions"), {
            action: "merge",
            into: fingerprint,
            reason: "merged from the similar issues of the dashboard",
          });
          // wait until the merged issue shows its new state
          const deadline = Date.now() + 5000;
          while (Date.now() < deadline) {
            const other = await get(issuePath(s.fingerprint));
            if ((other.status || (other.issue || {}).status) === "merged") break;
            await new Promise((r) => setTimeout(r, 200));
          }
          toast(`merged ${s.fingerprint} into this issue`, "ok");
          refresh();
        } catch (error) {
          event.target.disabled = false;
          toast(`merge: ${error.message}`, "error");
        }
      },
    }),
  ]);
  return section(
    "Similar issues",
    table(["issue", "culprit", "score", ""], rows, {
      empty: "no similar issues",
      className: "similar",
    }),
  );
}

function auditSection(audit) {
  return section(
    "Audit",
    table(
      ["when", "who", "action", "from", "reason", "details"],
      audit.map((a) => [
        h("span", { title: when(a.at), text: ago(a.at) }),
        a.actor || "–",
        a.action,
        a.source || "–",
        a.reason || "",
        h("span", { class: "mono small", text: a.details ? JSON.stringify(a.details) : "" }),
      ]),
      { empty: "no actions yet", className: "audit" },
    ),
  );
}

export async function renderIssue(view, args, params) {
  const fingerprint = args[0];
  if (!fingerprint) throw new Error("no issue named");
  const range = RANGES.includes(params.get("range")) ? params.get("range") : "7d";
  const refresh = () => renderIssue(view, args, params);
  const detail = await get(issuePath(fingerprint));
  const [timeline, events, users, tags, similar, audit, alerts] = await Promise.all([
    get("/api/timeline", { fingerprint, since: range }),
    get(issuePath(fingerprint, "/events"), { limit: 10, since: "90d" }),
    get(issuePath(fingerprint, "/users"), { limit: 10, since: "90d" }),
    get(issuePath(fingerprint, "/tags"), { since: "90d" }),
    detail.similar
      ? Promise.resolve({ similar: detail.similar })
      : optional(get(issuePath(fingerprint, "/similar"), { limit: 10 }), { similar: [] }),
    detail.audit
      ? Promise.resolve({ audit: detail.audit })
      : optional(get(issuePath(fingerprint, "/audit")), { audit: [] }),
    get("/api/alerts", { fingerprint, since: "90d", limit: 20 }),
  ]);
  const state = stateOf(detail);
  const issue = detail.issue || {};
  const latest = detail.latest_event;
  const title = issue.title || (latest && latest.message) || fingerprint;
  replace(
    view,
    h(
      "div",
      { class: "toolbar" },
      h("a", { href: routeHref(["issues"]), text: "← issues" }),
      h("h1", { id: "issue-title", text: title }),
    ),
    h(
      "section",
      { class: "card summary" },
      h("p", { class: "mono", text: issue.culprit || "" }),
      h(
        "p",
        { class: "state" },
        "status ",
        h("span", { id: "issue-status" }, statusBadge(state.status)),
        state.merged_into ? [" into ", issueLink(state.merged_into, state.merged_into)] : "",
        " · priority ",
        badge(state.priority || "–", `priority-${state.priority}`),
        state.priority_source ? ` (${state.priority_source})` : "",
        " · assignee ",
        h("span", { id: "issue-assignee", text: state.assignee || "nobody" }),
      ),
      h(
        "p",
        { class: "muted" },
        `${count(detail.events)} events · ${count(detail.users)} users · first seen ${when(detail.first_seen)} · last seen ${when(detail.last_seen)} · `,
        issue.service || "",
        " · ",
        issue.category || "",
        " · ",
        h("span", { class: "mono small", text: fingerprint }),
      ),
    ),
    actions(fingerprint, state, refresh),
    section(
      `Events, last ${range}`,
      h(
        "p",
        {},
        RANGES.map((r) =>
          h("a", {
            href: routeHref(["issue", fingerprint], { range: r }),
            class: r === range ? "chip active" : "chip",
            text: r,
          }),
        ),
      ),
      timeChart(timeline.points, { bucket: timeline.bucket_seconds }),
    ),
    section("Stack trace of the latest event", latest ? h("p", { class: "message", text: latest.message || "" }) : "", stackTrace(latest)),
    h(
      "div",
      { class: "columns" },
      splits("Releases", detail.releases || []),
      splits("Environments", detail.environments || []),
      splits("Levels", detail.levels || []),
    ),
    section("Tags", tagTables(tags.tags)),
    section(
      "Latest events",
      table(
        ["when", "message", "level", "release", "environment", "user"],
        events.events.map((e) => [
          h("span", { title: when(e.timestamp), text: ago(e.timestamp) }),
          h("span", { class: "message", text: e.message || e.exception_type || "" }),
          levelBadge(e.level),
          e.release || "–",
          e.environment || "–",
          e.user_id || "–",
        ]),
        { empty: "no stored events", className: "events" },
      ),
    ),
    h(
      "div",
      { class: "columns" },
      section(
        "Affected users",
        table(
          ["user", "events", "last seen"],
          users.users.map((u) => [u.user_id, count(u.events), ago(u.last_seen)]),
          { empty: "no users recorded", className: "users" },
        ),
      ),
      section("Alerts", alertsTable(alerts.alerts, "no alerts for this issue")),
    ),
    similarSection(fingerprint, similar.similar, refresh),
    auditSection(audit.audit),
  );
}
