// The login page: POST /dashboard/session with a token or a user / password; the server
// answers with the session and CSRF cookies and the browser goes to the dashboard.
const form = document.getElementById("login");
const error = document.getElementById("error");

function csrfToken() {
  const entry = document.cookie.split("; ").find((c) => c.startsWith("errorstream_csrf="));
  return entry ? decodeURIComponent(entry.slice("errorstream_csrf=".length)) : "";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const data = new FormData(form);
  const body = data.get("token")
    ? { token: data.get("token") }
    : { user: data.get("user"), password: data.get("password") };
  const response = await fetch("/dashboard/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(body),
  });
  if (response.ok) {
    window.location.assign("/#/overview");
    return;
  }
  let message = `login failed (${response.status})`;
  try {
    message = (await response.json()).error || message;
  } catch (_) {
    // not JSON: keep the status
  }
  error.textContent = message;
  error.hidden = false;
});
