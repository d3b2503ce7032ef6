// Hand-drawn SVG charts: a snapshot timeline and a line chart over time.
// Every mark has a <title> (the browser's tooltip, read by screen readers),
// and each chart carries a one-line text summary for those who do not see it.

import { formatTime, s } from './dom.js';

const W = 720;
const PAD = { left: 64, right: 16, top: 12, bottom: 28 };

function timeScale(points, width) {
  let t0 = Math.min(...points.map((p) => p.t.getTime()));
  let t1 = Math.max(...points.map((p) => p.t.getTime()));
  if (t1 - t0 < 60_000) {
    // One point or a burst: a minute either side keeps them readable.
    t0 -= 60_000;
    t1 += 60_000;
  }
  const x = (t) => PAD.left + ((t.getTime() - t0) / (t1 - t0)) * (width - PAD.left - PAD.right);
  return { x, t0, t1 };
}

function timeTicks(t0, t1, x, y, height) {
  const out = [];
  const n = 4;
  const span = t1 - t0;
  for (let i = 0; i <= n; i++) {
    const t = new Date(t0 + (span * i) / n);
    const iso = t.toISOString();
    const label =
      span > 2 * 86400_000 ? iso.slice(0, 10) : span > 86400_000 ? iso.slice(5, 16).replace('T', ' ') : span > 3600_000 ? iso.slice(11, 16) : iso.slice(11, 19);
    const xi = x(t);
    out.push(s('line', { x1: xi, x2: xi, y1: y, y2: y + 4, class: 'axis' }));
    out.push(
      s('text', { x: xi, y: height - 6, class: 'tick', 'text-anchor': i === 0 ? 'start' : i === n ? 'end' : 'middle' }, label),
    );
  }
  return out;
}

// points: [{t: Date, label: string, level: 'ok'|'bad'}]
export function timeline(points, { title }) {
  const height = 64;
  const svg = s('svg', { viewBox: `0 0 ${W} ${height}`, class: 'chart timeline', role: 'img', 'aria-label': title });
  svg.append(s('title', {}, title));
  if (points.length === 0) return svg;
  const { x, t0, t1 } = timeScale(points, W);
  const y = 24;
  svg.append(s('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: 'axis' }));
  svg.append(...timeTicks(t0, t1, x, y, height));
  for (const p of points) {
    svg.append(
      s('circle', { cx: x(p.t), cy: y, r: 6, class: ['mark', `mark-${p.level ?? 'ok'}`] }, s('title', {}, p.label)),
    );
  }
  return svg;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// series: [{name, points: [{t: Date, v: number, label}], class}]
export function lineChart(series, { title, format }) {
  const height = 180;
  const svg = s('svg', { viewBox: `0 0 ${W} ${height}`, class: 'chart line-chart', role: 'img', 'aria-label': title });
  svg.append(s('title', {}, title));
  const all = series.flatMap((x) => x.points);
  if (all.length === 0) return svg;
  const { x, t0, t1 } = timeScale(all, W);
  const vmax = niceMax(Math.max(...all.map((p) => p.v)));
  const y0 = height - PAD.bottom;
  const y = (v) => y0 - (v / vmax) * (y0 - PAD.top);
  for (let i = 0; i <= 4; i++) {
    const v = (vmax * i) / 4;
    svg.append(s('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: i === 0 ? 'axis' : 'grid' }));
    svg.append(s('text', { x: PAD.left - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, format(v)));
  }
  svg.append(...timeTicks(t0, t1, x, y0, height));
  for (const ser of series) {
    const pts = [...ser.points].sort((a, b) => a.t - b.t);
    if (pts.length > 1)
      svg.append(s('polyline', { points: pts.map((p) => `${x(p.t)},${y(p.v)}`).join(' '), class: ['series', ser.class] }));
    for (const p of pts)
      svg.append(
        s('circle', { cx: x(p.t), cy: y(p.v), r: 3.5, class: ['dot', ser.class] }, s('title', {}, `${ser.name}: ${p.label ?? format(p.v)} at ${formatTime(p.t)}`)),
      );
  }
  return svg;
}

export function legend(series) {
  const ul = document.createElement('ul');
  ul.className = 'legend';
  for (const ser of series) {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = `swatch ${ser.class}`;
    sw.setAttribute('aria-hidden', 'true');
    li.append(sw, ` ${ser.name}`);
    ul.append(li);
  }
  return ul;
}
