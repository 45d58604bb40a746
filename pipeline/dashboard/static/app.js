// The dashboard's router: hash routes, one view module per page.
import { del, get } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { renderIssue } from "./views/issue.js";
import { renderIssues } from "./views/issues.js";
import { renderLive } from "./views/live.js";
import { renderOverview } from "./views/overview.js";

const VIEWS = {
  overview: renderOverview,
  issues: renderIssues,
  issue: renderIssue,
  live: renderLive,
};

let stopCurrent = null;

function parseHash() {
  const text = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = text.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "overview", args: parts.slice(1), params: new URLSearchParams(query) };
}

async function route() {
  if (stopCurrent) {
    stopCurrent();
    stopCurrent = null;
  }
  const { name, args, params } = parseHash();
  // each navigation renders into a fresh container: a render still running for the page
  // left behind (or its refresh after an action) writes into a detached element
  const view = h("div", { class: "page" });
  replace(document.getElementById("view"), view);
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === (name === "issue" ? "issues" : name));
  }
  const render = VIEWS[name];
  if (!render) {
    replace(view, h("p", { class: "error", text: `no such page: ${name}` }));
    return;
  }
  replace(view, h("p", { class: "muted", text: "loading…" }));
  try {
    stopCurrent = (await render(view, args, params)) || null;
  } catch (error) {
    replace(view, h("p", { class: "error", text: `could not load: ${error.message}` }));
  }
}

async function whoami() {
  try {
    const me = await get("/dashboard/whoami");
    document.getElementById("who").textContent = me.user;
    const logout = document.getElementById("logout");
    logout.hidden = !me.auth;
    logout.addEventListener("click", async () => {
      await del("/dashboard/session");
      window.location.assign("/dashboard/login");
    });
  } catch (error) {
    toast(error.message, "error");
  }
}

window.addEventListener("hashchange", route);
whoami();
route();
