// Small DOM and formatting helpers. Everything the server sends is put into
// the page as text (textContent), never as markup, except the drill reports
// and runbooks cairn renders itself, which go through sanitizedHtml().

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// cairn's own HTML (drill reports, runbooks) shown inside the page: parsed
// inertly, then stripped of anything active. Their <style> blocks and style
// attributes would be refused by the CSP anyway; style.css styles them.
export function sanitizedHtml(text) {
  // <style> blocks go before parsing: the parsed document shares this page's
  // CSP, which would refuse them noisily.
  const doc = new DOMParser().parseFromString(text.replace(/<style[\s\S]*?<\/style\s*>/gi, ''), 'text/html');
  doc.querySelectorAll('script, style, link, meta, iframe, object, embed, form, base').forEach((n) => n.remove());
  const out = document.createElement('div');
  out.className = 'rendered';
  for (const el of doc.body.querySelectorAll('*')) {
    for (const a of [...el.attributes]) {
      const name = a.name.toLowerCase();
      const value = a.value.trim().toLowerCase();
      if (name.startsWith('on') || name === 'style' || name === 'srcset') el.removeAttribute(a.name);
      else if ((name === 'href' || name === 'src') && !(value.startsWith('#') || value.startsWith('https:')))
        el.removeAttribute(a.name);
    }
    if (el.tagName === 'A' && el.hasAttribute('href') && !el.getAttribute('href').startsWith('#')) {
      el.setAttribute('rel', 'noopener noreferrer');
      el.setAttribute('target', '_blank');
    }
  }
  out.append(...[...doc.body.childNodes].map((n) => document.importNode(n, true)));
  return out;
}

// Times from the API are RFC 3339 with up to nanoseconds; Date wants at most
// milliseconds.
export function parseTime(text) {
  if (!text) return null;
  const t = Date.parse(String(text).replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(t) ? null : new Date(t);
}

export function isoUtc(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// "2026-11-26 10:31 UTC"
export function formatTime(date) {
  if (!date) return '—';
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
  const s = Math.abs(seconds);
  if (s < 0.01) return seconds === 0 ? '0 s' : '< 0.01 s';
  if (s < 1) return `${seconds.toFixed(2)} s`;
  if (s < 90) return `${Math.round(seconds)} s`;
  if (s < 90 * 60) return `${round1(seconds / 60)} min`;
  if (s < 48 * 3600) return `${round1(seconds / 3600)} h`;
  return `${round1(seconds / 86400)} d`;
}

function round1(x) {
  return Number.isInteger(Math.round(x * 10) / 10) ? String(Math.round(x)) : (Math.round(x * 10) / 10).toFixed(1);
}

export function ago(date, now = new Date()) {
  if (!date) return 'never';
  const s = (now - date) / 1000;
  if (s < 5) return 'just now';
  return s >= 0 ? `${formatDuration(s)} ago` : `in ${formatDuration(-s)}`;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

// <time> with the absolute time as its tooltip.
export function timeEl(text, { relative = true } = {}) {
  const d = parseTime(text);
  if (!d) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: isoUtc(d), title: formatTime(d) }, relative ? ago(d) : formatTime(d));
}

// A status badge: colour from `level` (ok | warn | bad | info | none) and
// always a word, so the state never depends on seeing the colour.
export function badge(level, text, extra = {}) {
  const symbols = { ok: '✓', warn: '!', bad: '✗', info: '•', none: '–' };
  return h(
    'span',
    { class: ['badge', `badge-${level}`, extra.class], ...(extra.attrs ?? {}) },
    h('span', { 'aria-hidden': 'true', class: 'badge-symbol' }, symbols[level] ?? ''),
    ' ',
    text,
  );
}
