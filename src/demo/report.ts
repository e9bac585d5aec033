// `vrdma demo --report out.html`: one self-contained page — an inline SVG chart of throughput
// over time with the migration phases shaded, and the summary table. No external resources: the
// styles and a few lines of script are inline; the script only measures the drawn chart and
// records it on the page (data-rendered), so a headless browser can tell the chart was laid out.
import type { DemoSummary, PhaseSpan, ThroughputSample } from './summary.js';
import { summaryLines } from './summary.js';

const W = 900;
const H = 320;
const PAD = { left: 64, right: 16, top: 24, bottom: 44 };

const PHASE_COLOURS: Record<string, string> = { before: '#e8f1fb', precopy: '#fff3cd', switchover: '#f8d7da', after: '#e6f4ea' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** A "nice" axis maximum and step for values up to `max`. */
function niceScale(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) as number;
  return { top: step * Math.ceil(max / step), step };
}

export function renderChart(samples: readonly ThroughputSample[], phases: readonly PhaseSpan[], endMs: number): string {
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const spanMs = Math.max(1, endMs);
  const { top, step } = niceScale(Math.max(0, ...samples.map((s) => s.bytesPerSec / 1e6)));
  const x = (ms: number) => PAD.left + (Math.min(Math.max(ms, 0), spanMs) / spanMs) * plotW;
  const y = (mbps: number) => PAD.top + plotH - (mbps / top) * plotH;
  const parts: string[] = [];
  parts.push(`<svg id="throughput-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="throughput over time">`);
  for (const p of phases) {
    const x0 = x(p.startMs);
    const x1 = x(p.endMs);
    parts.push(`<rect class="phase phase-${p.phase}" data-phase="${p.phase}" x="${x0.toFixed(1)}" y="${PAD.top}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${plotH}" fill="${PHASE_COLOURS[p.phase] ?? '#eee'}"><title>${p.phase}: ${p.startMs}-${p.endMs} ms</title></rect>`);
    parts.push(`<text class="phase-label" x="${((x0 + x1) / 2).toFixed(1)}" y="${PAD.top - 6}" text-anchor="middle">${p.phase}</text>`);
  }
  for (let v = 0; v <= top + 1e-9; v += step) {
    parts.push(`<line class="grid" x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>`);
    parts.push(`<text class="tick" x="${PAD.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${Number(v.toFixed(2))}</text>`);
  }
  const secs = spanMs / 1000;
  const tStep = secs <= 10 ? 1 : secs <= 30 ? 5 : 10;
  for (let t = 0; t <= secs + 1e-9; t += tStep) {
    parts.push(`<text class="tick" x="${x(t * 1000).toFixed(1)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<line class="axis" x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${PAD.top + plotH}"/>`);
  parts.push(`<line class="axis" x1="${PAD.left}" x2="${W - PAD.right}" y1="${PAD.top + plotH}" y2="${PAD.top + plotH}"/>`);
  parts.push(`<text class="axis-label" x="${PAD.left + plotW / 2}" y="${H - 6}" text-anchor="middle">time (s)</text>`);
  parts.push(`<text class="axis-label" transform="translate(16 ${PAD.top + plotH / 2}) rotate(-90)" text-anchor="middle">MB/s</text>`);
  const points = samples.map((s) => `${x(s.tMs).toFixed(1)},${y(s.bytesPerSec / 1e6).toFixed(1)}`).join(' ');
  parts.push(`<polyline id="throughput-line" points="${points}" fill="none" stroke="#1f5fa8" stroke-width="2" data-samples="${samples.length}"/>`);
  parts.push('</svg>');
  return parts.join('\n');
}

function summaryTable(s: DemoSummary): string {
  const rows = summaryLines(s).map((line) => {
    const m = /^ {2}(.*?) {2,}(.*)$/.exec(line) ?? /^ {2}(problem): (.*)$/.exec(line);
    const [k, v] = m === null ? ['', line.trim()] : [m[1].trim(), m[2]];
    return `<tr><th scope="row">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`;
  });
  return `<table id="summary">\n${rows.join('\n')}\n</table>`;
}

export function renderReport(s: DemoSummary, samples: readonly ThroughputSample[], phases: readonly PhaseSpan[]): string {
  const settings = Object.entries(s.settings).map(([k, v]) => `${escapeHtml(k)} ${escapeHtml(String(v))}`).join(', ');
  const vms = s.vms.map((v) => `${escapeHtml(v.name)} (${escapeHtml(v.ip)}) on ${escapeHtml(v.startedOn)}${v.endedOn !== v.startedOn ? ` then ${escapeHtml(v.endedOn)}` : ''}`).join('; ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vrdma demo report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; }
.verdict-ok { color: #1e7b34; } .verdict-bad { color: #b3261e; }
svg text { font-size: 11px; fill: #444; }
.grid { stroke: #ddd; stroke-width: 1; } .axis { stroke: #666; stroke-width: 1; }
table { border-collapse: collapse; margin-top: 16px; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #eee; }
</style>
</head>
<body data-rendered="no">
<h1>vrdma live-migration demo: <span class="${s.verified ? 'verdict-ok' : 'verdict-bad'}">data verified ${s.verified ? 'yes' : 'NO'}</span></h1>
<p>${vms}. ${settings}.</p>
<h2>Throughput over time</h2>
${renderChart(samples, phases, phases.length > 0 ? phases[phases.length - 1].endMs : s.elapsedMs)}
<h2>Summary</h2>
${summaryTable(s)}
<script>
(function () {
  var line = document.getElementById('throughput-line');
  var box = line.getBBox();
  document.body.setAttribute('data-rendered', 'yes');
  document.body.setAttribute('data-chart-width', String(Math.round(box.width)));
  document.body.setAttribute('data-phases', String(document.querySelectorAll('#throughput-chart rect.phase').length));
})();
</script>
</body>
</html>
`;
}
