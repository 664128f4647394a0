// The apps page: every app the token may see, what serves it now and its latest deployment.

import { api } from './api.js';
import { badge, external, h, route, shortDigest, table, when } from './view.js';

// A rollout that fails or is still going leaves the previous release serving,
// so what serves is the newest deployment that succeeded.
async function servingDeployment(name, latest, signal) {
  if (!latest || latest.status === 'succeeded') return latest || null;
  const page = await api.deployments(name, { limit: 50 }, signal);
  return page.deployments.find((deployment) => deployment.status === 'succeeded') || null;
}

export async function appsPage(_params, { signal }) {
  const { apps } = await api.apps(signal);
  const serving = await Promise.all(apps.map((app) => servingDeployment(app.name, app.latest_deployment, signal)));
  const rows = apps.map((app, index) => {
    const latest = app.latest_deployment;
    const current = serving[index];
    return [
      h('a', { href: route('apps', app.name) }, app.name),
      latest ? badge(latest.status) : h('span', { className: 'muted' }, 'never deployed'),
      external(current && current.url),
      current ? h('code', {}, shortDigest(current.artifact_digest)) : '—',
      when(latest ? latest.created_at : null),
      app.owner,
    ];
  });
  return h('section', { 'aria-labelledby': 'apps-title' },
    h('h1', { id: 'apps-title' }, 'Apps'),
    table('Apps', ['App', 'Latest deployment', 'URL', 'Serving artifact', 'Last deploy', 'Owner'], rows,
      'No apps yet. Deploy one with `aether deploy`.'));
}
