// Formatting of numbers and times (UTC, as the API stores them).

export function when(ts) {
  if (ts === null || ts === undefined || ts === "") return "–";
  const d = new Date(Number(ts) * 1000);
  if (Number.isNaN(d.getTime())) return "–";
  return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

export function ago(ts, now = Date.now() / 1000) {
  if (!ts) return "–";
  const s = Math.max(0, now - Number(ts));
  if (s < 60) return `${Math.round(s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function count(n) {
  const v = Number(n || 0);
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  return String(v);
}

export const RANGES = ["1h", "6h", "24h", "7d", "30d", "90d"];
