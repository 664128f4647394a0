// Live logs: the last lines, then every new one, paged with the API's next_since.

import { api } from './api.js';
import { h, shortId, sleep } from './view.js';

const TAIL = 200;
const KEPT = 1000;
const POLL_MS = 2000;

// A line's time of day in UTC, to the millisecond (the date is in its datetime).
function clock(ts) {
  const moment = new Date(ts);
  return Number.isNaN(moment.getTime()) ? String(ts) : moment.toISOString().slice(11, 23);
}

export function logPanel(name, releases, ctx) {
  const { signal } = ctx;
  const lines = h('ol', { className: 'log', id: 'log-lines', tabindex: 0, 'aria-label': 'Log lines' });
  const status = h('p', { className: 'muted', id: 'log-status' }, 'Loading…');
  const filter = h('select', { id: 'log-deployment' },
    h('option', { value: '' }, 'every deployment'),
    releases.map((release) => h('option', { value: release.id }, `${shortId(release.id)} (${release.status})`)));
  const follow = h('button', { type: 'button', id: 'log-follow', 'aria-pressed': 'true', className: 'secondary' }, 'Following');
  let cursor = null;
  let generation = 0;

  const append = (batch) => {
    const atBottom = lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 4;
    lines.append(...batch.map((line) => h('li', {},
      h('time', { datetime: line.ts }, clock(line.ts)), ' ',
      h('span', { className: 'pod' }, line.pod), ' ',
      h('span', { className: 'message' }, line.message))));
    while (lines.childElementCount > KEPT) lines.firstElementChild.remove();
    if (atBottom) lines.scrollTop = lines.scrollHeight;
  };

  // Without a cursor (no line yet) ask for the tail again: every line it brings is new.
  const fetchMore = async (mine) => {
    const deployment = filter.value || undefined;
    const page = await api.logs(name, cursor ? { since: cursor, deployment } : { tail: TAIL, deployment }, signal);
    if (mine !== generation) return;
    append(page.lines);
    cursor = page.next_since || cursor;
    status.textContent = lines.childElementCount ? '' : 'No log lines yet.';
  };

  // From the start (a new filter), or on from the cursor (follow resumed).
  const run = async (fromStart) => {
    const mine = ++generation;
    if (fromStart) {
      cursor = null;
      lines.replaceChildren();
    }
    try {
      await fetchMore(mine);
      while (mine === generation && follow.getAttribute('aria-pressed') === 'true') {
        await sleep(POLL_MS, signal);
        if (mine === generation) await fetchMore(mine);
      }
    } catch (error) {
      if (error.name !== 'AbortError' && mine === generation) ctx.report(error, status);
    }
  };

  filter.addEventListener('change', () => run(true));
  follow.addEventListener('click', () => {
    const on = follow.getAttribute('aria-pressed') !== 'true';
    follow.setAttribute('aria-pressed', String(on));
    follow.textContent = on ? 'Following' : 'Follow';
    if (on) run(false);
    else generation += 1;
  });
  run(true);

  return h('section', { className: 'card', 'aria-labelledby': 'logs-title' },
    h('h2', { id: 'logs-title' }, 'Logs'),
    h('div', { className: 'toolbar' },
      h('label', { for: 'log-deployment' }, 'Deployment'), filter, follow),
    status,
    lines);
}
