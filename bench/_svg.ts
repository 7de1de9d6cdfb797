/**
 * The apply chart: full apply time against policy size, Palisade and
 * `nft -f`, log-log, medians joined by lines with min–max whiskers.
 * Plain SVG text, no dependencies.
 *
 * @module
 */
import type { Summary } from "./_stats.ts";

/** One series of the chart. */
export interface ChartSeries {
  label: string;
  color: string;
  /** One point per policy size. */
  points: { size: number; time: Summary }[];
}

const WIDTH = 640;
const HEIGHT = 400;
const PAD = { left: 70, right: 20, top: 40, bottom: 55 };

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;");
}

function decades(min: number, max: number): number[] {
  const out: number[] = [];
  for (
    let e = Math.floor(Math.log10(min));
    e <= Math.ceil(Math.log10(max));
    e++
  ) {
    out.push(10 ** e);
  }
  return out;
}

function label(value: number): string {
  return value >= 1000 ? `${value / 1000}k` : `${value}`;
}

/**
 * Renders the chart.
 *
 * @throws {RangeError} no series holds a point
 */
export function applyChart(title: string, series: ChartSeries[]): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    throw new RangeError("Cannot draw the apply chart: no points");
  }
  const xTicks = decades(
    Math.min(...all.map((p) => p.size)),
    Math.max(...all.map((p) => p.size)),
  );
  const yTicks = decades(
    Math.max(0.01, Math.min(...all.map((p) => p.time.min))),
    Math.max(...all.map((p) => p.time.max)),
  );
  const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]];
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (v: number) =>
    PAD.left + plotW * Math.log10(v / x0) / Math.log10(x1 / x0 || 10);
  const y = (v: number) =>
    PAD.top + plotH -
    plotH * Math.log10(Math.max(v, y0) / y0) / Math.log10(y1 / y0 || 10);
  const f = (v: number) => v.toFixed(1);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" ` +
    `height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15">` +
    `${escape(title)}</text>`,
  ];
  for (const t of xTicks) {
    parts.push(
      `<line x1="${f(x(t))}" y1="${PAD.top}" x2="${f(x(t))}" ` +
        `y2="${PAD.top + plotH}" stroke="#ddd"/>`,
      `<text x="${f(x(t))}" y="${PAD.top + plotH + 18}" ` +
        `text-anchor="middle">${label(t)}</text>`,
    );
  }
  for (const t of yTicks) {
    parts.push(
      `<line x1="${PAD.left}" y1="${f(y(t))}" x2="${PAD.left + plotW}" ` +
        `y2="${f(y(t))}" stroke="#ddd"/>`,
      `<text x="${PAD.left - 8}" y="${f(y(t) + 4)}" ` +
        `text-anchor="end">${label(t)}</text>`,
    );
  }
  parts.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" ` +
      `height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${PAD.left + plotW / 2}" y="${HEIGHT - 12}" ` +
      `text-anchor="middle">addresses in the policy (log)</text>`,
    `<text x="16" y="${PAD.top + plotH / 2}" text-anchor="middle" ` +
      `transform="rotate(-90 16 ${PAD.top + plotH / 2})">` +
      `full apply, ms (log; median, min–max)</text>`,
  );

  series.forEach((s, i) => {
    const points = [...s.points].sort((a, b) => a.size - b.size);
    const path = points.map((p) => `${f(x(p.size))},${f(y(p.time.median))}`);
    parts.push(
      `<polyline points="${path.join(" ")}" fill="none" ` +
        `stroke="${s.color}" stroke-width="2"/>`,
    );
    for (const p of points) {
      const px = f(x(p.size));
      parts.push(
        `<line x1="${px}" y1="${f(y(p.time.min))}" x2="${px}" ` +
          `y2="${f(y(p.time.max))}" stroke="${s.color}"/>`,
        `<circle cx="${px}" cy="${f(y(p.time.median))}" r="4" ` +
          `fill="${s.color}"><title>${escape(s.label)}, ${p.size} ` +
          `addresses: ${p.time.median.toFixed(1)} ms</title></circle>`,
      );
    }
    const ly = PAD.top + 16 + 18 * i;
    parts.push(
      `<line x1="${PAD.left + 12}" y1="${ly - 4}" x2="${PAD.left + 36}" ` +
        `y2="${ly - 4}" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${PAD.left + 42}" y="${ly}">${escape(s.label)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
