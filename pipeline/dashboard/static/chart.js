// A small SVG bar chart of event counts over time (no chart library).
import { h, svg } from "./dom.js";
import { count, when } from "./format.js";

export function timeChart(points, { bucket = 60, height = 160, label = "events" } = {}) {
  const width = 900;
  const pad = { left: 44, right: 8, top: 10, bottom: 22 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = Math.max(1, ...points.map((p) => p.events));
  const n = Math.max(points.length, 1);
  const step = innerW / n;
  const bars = points.map((p, i) => {
    const barH = (p.events / max) * innerH;
    return svg(
      "rect",
      {
        class: "bar",
        x: (pad.left + i * step).toFixed(2),
        y: (pad.top + innerH - barH).toFixed(2),
        width: Math.max(step - 1, 0.5).toFixed(2),
        height: barH.toFixed(2),
      },
      svg("title", {}, `${when(p.ts)}: ${p.events} ${label}`),
    );
  });
  const axis = [
    svg("line", {
      class: "axis",
      x1: pad.left,
      x2: width - pad.right,
      y1: pad.top + innerH,
      y2: pad.top + innerH,
    }),
    svg("text", { class: "tick", x: pad.left - 6, y: pad.top + 8, "text-anchor": "end" }, count(max)),
    svg("text", { class: "tick", x: pad.left - 6, y: pad.top + innerH, "text-anchor": "end" }, "0"),
  ];
  if (points.length) {
    const last = points[points.length - 1];
    axis.push(
      svg("text", { class: "tick", x: pad.left, y: height - 6 }, when(points[0].ts)),
      svg(
        "text",
        { class: "tick", x: width - pad.right, y: height - 6, "text-anchor": "end" },
        when(last.ts + bucket),
      ),
    );
  }
  const total = points.reduce((a, p) => a + p.events, 0);
  return h(
    "figure",
    { class: "chart" },
    svg(
      "svg",
      {
        viewBox: `0 0 ${width} ${height}`,
        role: "img",
        "aria-label": `${total} ${label}`,
        preserveAspectRatio: "none",
      },
      ...axis,
      ...bars,
    ),
    h("figcaption", { class: "muted" }, `${count(total)} ${label}, ${bucket / 60} min buckets`),
  );
}
