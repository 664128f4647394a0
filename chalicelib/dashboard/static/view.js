// Building the page: elements from data, and every value from the API as text.
// No HTML string is ever parsed (the page's Trusted Types policy forbids it).

const SVG = 'http://www.w3.org/2000/svg';

function build(element, props, children) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === 'function' && name.startsWith('on')) {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name.startsWith('on')) {
      throw new TypeError(`inline handler ${name} refused`);
    } else if (name === 'href') {
      element.setAttribute('href', safeHref(value));
    } else {
      element.setAttribute(name === 'className' ? 'class' : name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export const h = (tag, props, ...children) => build(document.createElement(tag), props, children);
export const svg = (tag, props, ...children) => build(document.createElementNS(SVG, tag), props, children);

// Links go to a page of the dashboard or to an http(s) URL, nothing else.
function safeHref(value) {
  const text = String(value);
  if (text.startsWith('#/')) return text;
  try {
    const url = new URL(text);
    if (url.protocol === 'http:' || url.protocol === 'https:') return url.href;
  } catch {
    // not a URL: fall through
  }
  return '#/apps';
}

export const route = (...parts) => `#/${parts.map(encodeURIComponent).join('/')}`;

export function external(url) {
  if (!url) return h('span', { className: 'muted' }, 'none yet');
  return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, url);
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : '');
export const shortDigest = (digest) => (digest ? String(digest).slice(0, 12) : '');

const STATUS_CLASSES = new Set(['pending', 'releasing', 'rolling_out', 'succeeded', 'failed', 'verified', 'rejected', 'valid', 'invalid', 'absent', 'revoked', 'active']);

export function badge(status) {
  const word = String(status ?? 'none');
  const tone = STATUS_CLASSES.has(word) ? word : 'none';
  return h('span', { className: `badge s-${tone}` }, word.replace('_', ' '));
}

export function when(iso) {
  if (!iso) return h('span', { className: 'muted' }, '—');
  const moment = new Date(iso);
  return h('time', { datetime: iso, title: moment.toLocaleString() }, relative(moment));
}

function relative(moment) {
  const seconds = Math.round((Date.now() - moment.getTime()) / 1000);
  if (Math.abs(seconds) < 45) return 'just now';
  const steps = [[60, 'minute'], [3600, 'hour'], [86400, 'day']];
  let unit = ['second', 1];
  for (const [size, name] of steps) if (Math.abs(seconds) >= size) unit = [name, size];
  return new Intl.RelativeTimeFormat('en', { numeric: 'auto' }).format(-Math.round(seconds / unit[1]), unit[0]);
}

export function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function bytes(count) {
  if (typeof count !== 'number') return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]} (${count.toLocaleString('en')} bytes)`;
}

// A definition list of [term, value] pairs; a null value is left out.
export function facts(pairs) {
  return h('dl', { className: 'facts' }, pairs.filter(([, value]) => value !== null && value !== undefined).map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
}

export function table(caption, headers, rows, emptyText) {
  if (!rows.length) return h('p', { className: 'muted' }, emptyText);
  return h('div', { className: 'scroll', role: 'region', 'aria-label': caption, tabindex: 0 },
    h('table', {},
      h('caption', { className: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell)))))));
}

export function errorText(error) {
  return error.code ? `${error.code}: ${error.message}` : String(error.message || error);
}

export function announce(text) {
  document.getElementById('announce').textContent = text;
}

// A modal confirmation; resolves true only when the user confirms.
export function confirmAction(title, text, verb) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  const ok = document.getElementById('confirm-ok');
  const cancel = document.getElementById('confirm-cancel');
  ok.textContent = verb;
  return new Promise((resolve) => {
    const finish = (answer) => {
      ok.removeEventListener('click', yes);
      cancel.removeEventListener('click', no);
      dialog.removeEventListener('close', no);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const yes = () => finish(true);
    const no = () => finish(false);
    ok.addEventListener('click', yes);
    cancel.addEventListener('click', no);
    dialog.addEventListener('close', no);
    dialog.showModal();
    cancel.focus();
  });
}

// Resolves after ms, or rejects at once when the page is left.
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new DOMException('left the page', 'AbortError'));
    }, { once: true });
  });
}
