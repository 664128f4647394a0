// The control plane's public API, as the dashboard calls it: same origin, the
// bearer token of this tab, every failure turned into an ApiError with the
// API's {code, message}.

const TOKEN_KEY = 'aether.token';

// The page is served at <api>/dashboard, so the API is its parent path (API
// Gateway puts the stage in front: /api/dashboard talks to /api/apps).
const BASE = location.pathname.replace(/\/dashboard\/?$/, '');

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// sessionStorage: the token lives as long as this tab and is never sent
// anywhere but in the Authorization header of calls to this API.
export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  save: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

const segment = encodeURIComponent;

async function call(method, path, { body, token = session.token(), signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
      signal,
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'unreachable', 'the control plane did not answer; check it runs and retry');
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return data;
  if (data && typeof data.code === 'string' && typeof data.message === 'string') {
    throw new ApiError(response.status, data.code, data.message);
  }
  throw new ApiError(response.status, `http_${response.status}`, `the control plane answered ${response.status}`);
}

export const api = {
  whoami: (token) => call('GET', '/whoami', { token }),
  apps: (signal) => call('GET', '/apps', { signal }),
  app: (name, signal) => call('GET', `/apps/${segment(name)}`, { signal }),
  deployments: (name, { limit, cursor } = {}, signal) =>
    call('GET', `/apps/${segment(name)}/deployments${query({ limit, cursor })}`, { signal }),
  deployment: (id, signal) => call('GET', `/deployments/${segment(id)}`, { signal }),
  rollback: (name, to) => call('POST', `/apps/${segment(name)}/rollback`, { body: to ? { to } : {} }),
  logs: (name, { since, tail, deployment }, signal) =>
    call('GET', `/apps/${segment(name)}/logs${query({ since, tail, deployment })}`, { signal }),
  artifact: (digest, appName, signal) =>
    call('GET', `/artifacts/${segment(digest)}${query({ app_name: appName })}`, { signal }),
  tokens: (signal) => call('GET', '/tokens', { signal }),
  revokeToken: (id) => call('DELETE', `/tokens/${segment(id)}`),
};
