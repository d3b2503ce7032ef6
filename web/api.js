// The cairn API as the dashboard uses it: the bearer token (kept in
// sessionStorage, so it dies with the browser tab), fetch with JSON in and
// out, and the role model of src/server/access.h.

const TOKEN_KEY = 'cairn.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// An API error: `status` is the HTTP status (0 when the server could not be
// reached), `message` the server's own words when it sent any.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Called when the server rejects the stored token (revoked, expired).
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

async function request(path, { method = 'GET', body, as = 'json', tokenOverride } = {}) {
  const headers = { Authorization: `Bearer ${tokenOverride ?? token() ?? ''}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, `the server cannot be reached (${e.message})`);
  }
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      if (j && typeof j.error === 'string') message = j.error;
    } catch {
      // not JSON: keep the status line
    }
    if (res.status === 401 && tokenOverride === undefined) onUnauthorized();
    throw new ApiError(res.status, message);
  }
  if (as === 'text') return res.text();
  if (as === 'blob') return res.blob();
  return res.json();
}

export const api = {
  whoami: (tokenOverride) => request('/whoami', { tokenOverride }),
  services: () => request('/services').then((j) => j.services),
  service: (s) => request(`/services/${enc(s)}`),
  runs: (s, limit = 200) => request(`/services/${enc(s)}/runs?limit=${limit}`).then((j) => j.runs),
  snapshots: (s) => request(`/services/${enc(s)}/snapshots`).then((j) => j.snapshots),
  files: (s, id, path) => request(`/services/${enc(s)}/snapshots/${enc(id)}/files?path=${enc(path)}`),
  download: (s, id, path) =>
    request(`/services/${enc(s)}/snapshots/${enc(id)}/download?path=${enc(path)}`, { as: 'blob' }),
  drills: (s) => request(`/services/${enc(s)}/drills`).then((j) => j.drills),
  drillReport: (s, id) => request(`/services/${enc(s)}/drills/${enc(id)}?format=html`, { as: 'text' }),
  runbook: (s) => request(`/services/${enc(s)}/runbook?format=html`, { as: 'text' }),
  backup: (s) => request(`/services/${enc(s)}/backups`, { method: 'POST', body: {} }),
  drill: (s) => request(`/services/${enc(s)}/drills`, { method: 'POST', body: {} }),
  restore: (s, body) => request(`/services/${enc(s)}/restores`, { method: 'POST', body }),
  job: (id) => request(`/jobs/${enc(id)}`),
  jobs: () => request('/jobs').then((j) => j.jobs),
  alerts: () => request('/alerts').then((j) => j.alerts),
  audit: (limit = 200) => request(`/audit?limit=${limit}`).then((j) => j.entries),
};

function enc(s) {
  return encodeURIComponent(s);
}

// Roles include the ones before them (src/server/access.h); agents are
// repository writers and see nothing here.
const RANK = { viewer: 1, operator: 2, restorer: 3, admin: 4 };
const NEEDS = { read: 1, trigger: 2, restore: 3, admin: 4 };

export function can(role, permission) {
  return (RANK[role] ?? 0) >= NEEDS[permission];
}
