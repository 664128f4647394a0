// An app's page: what serves it, its releases, the latest deployment's events, its logs.

import { api } from './api.js';
import { logPanel } from './logs.js';
import {
  announce, badge, confirmAction, duration, external, facts, h, route, shortDigest, shortId, sleep, svg, when,
} from './view.js';

const HISTORY = 50;
const FINISHED = new Set(['succeeded', 'failed']);

// A release as the page shows it. Today every deployment is one; the fields are
// those a numbered release (deploy, config change, scale, rollback) also has.
function releaseOf(deployment) {
  const started = Date.parse(deployment.created_at);
  const ended = FINISHED.has(deployment.status) ? Date.parse(deployment.updated_at) : NaN;
  return {
    id: deployment.deployment_id,
    status: deployment.status,
    reason: deployment.reason,
    who: deployment.created_by,
    when: deployment.created_at,
    digest: deployment.artifact_digest,
    runtime: deployment.runtime,
    replicas: deployment.replicas,
    startCommand: deployment.start_command,
    configNames: deployment.env_names || [],
    rollbackOf: deployment.rollback_of,
    durationMs: Number.isFinite(started) && Number.isFinite(ended) ? ended - started : null,
  };
}

export async function appPage([name], ctx) {
  const { signal } = ctx;
  const [app, history] = await Promise.all([api.app(name, signal), api.deployments(name, { limit: HISTORY }, signal)]);
  const releases = history.deployments.map(releaseOf);
  const latest = app.latest_deployment;
  // Newest first: the first that succeeded serves (a failed or running rollout leaves it up).
  const serving = history.deployments.find((deployment) => deployment.status === 'succeeded') || null;
  const latestFull = latest ? await api.deployment(latest.deployment_id, signal) : null;
  const actionError = h('p', { className: 'error', role: 'alert' });
  const rollBack = async (target) => {
    const label = target ? `deployment ${shortId(target.id)} (artifact ${shortDigest(target.digest)})` : 'its previous good artifact';
    const sure = await confirmAction(`Roll back ${name}?`,
      `A new deployment of ${label} with that deployment's configuration replaces what serves now. Nothing is uploaded.`,
      'Roll back');
    if (!sure) return;
    actionError.textContent = '';
    try {
      const started = await api.rollback(name, target && target.id);
      announce(`Rolling back ${name}: deployment ${shortId(started.deployment_id)} is ${started.status}.`);
      await settle(started, signal);
      ctx.refresh();
    } catch (error) {
      if (error.name !== 'AbortError') ctx.report(error, actionError);
    }
  };
  return h('article', { className: 'app', 'aria-labelledby': 'app-title' },
    h('div', { className: 'heading' },
      h('h1', { id: 'app-title' }, app.name),
      latest ? badge(latest.status) : null),
    summary(app, serving),
    h('div', { className: 'actions' },
      h('button', { type: 'button', id: 'rollback', onClick: () => rollBack(null), disabled: releases.length < 2 }, 'Roll back…')),
    actionError,
    h('div', { className: 'grid' },
      configSection(serving),
      latestSection(latestFull)),
    releasesSection(name, releases, serving, rollBack),
    logPanel(name, releases, ctx));
}

// Waits for a rollback's rollout to finish, reading it as the CLI does.
async function settle(deployment, signal) {
  let current = deployment;
  while (!FINISHED.has(current.status)) {
    await sleep(1000, signal);
    current = await api.deployment(current.deployment_id, signal);
  }
  announce(`Deployment ${shortId(current.deployment_id)} ${current.status}.`);
}

function summary(app, serving) {
  return facts([
    ['URL', external(serving && serving.url)],
    ['Serving', serving ? h('span', {}, h('code', {}, shortId(serving.deployment_id)), ' since ', when(serving.updated_at)) : 'nothing'],
    ['Artifact', serving ? h('a', { href: route('apps', app.name, 'artifacts', serving.artifact_digest) }, h('code', {}, shortDigest(serving.artifact_digest))) : null],
    ['Runtime', serving ? `${serving.runtime} on ${serving.platform}` : null],
    ['Replicas', serving ? String(serving.replicas) : null],
    ['Owner', app.owner],
    ['Signatures', app.require_signature ? 'required' : 'optional'],
    ['Registered', when(app.created_at)],
  ]);
}

// Names only: values never leave the control plane.
function configSection(serving) {
  const names = serving ? serving.env_names || [] : [];
  return h('section', { className: 'card', 'aria-labelledby': 'config-title' },
    h('h2', { id: 'config-title' }, 'Config'),
    names.length
      ? h('ul', { className: 'names' }, names.map((configName) => h('li', {}, h('code', {}, configName))))
      : h('p', { className: 'muted' }, 'No config variables.'));
}

function latestSection(deployment) {
  if (!deployment) {
    return h('section', { className: 'card' }, h('h2', {}, 'Latest deployment'), h('p', { className: 'muted' }, 'Never deployed.'));
  }
  return h('section', { className: 'card', id: 'latest', 'aria-labelledby': 'latest-title' },
    h('h2', { id: 'latest-title' }, 'Latest deployment ', h('code', {}, shortId(deployment.deployment_id)), ' ', badge(deployment.status)),
    reason(deployment.status, deployment.reason),
    h('ol', { className: 'events' }, (deployment.events || []).map((event) =>
      h('li', {}, when(event.timestamp), ' ', h('span', { className: 'phase' }, event.phase), ' ', h('span', {}, event.message)))));
}

// Why a deployment ended as it did: an error only when it failed.
function reason(status, text) {
  if (!text) return null;
  return h('p', { className: status === 'failed' ? 'reason failed' : 'reason' }, text);
}

function releasesSection(name, releases, serving, rollBack) {
  const servingId = serving && serving.deployment_id;
  const items = releases.map((release) => h('li', { className: 'release', 'data-id': release.id },
    h('div', { className: 'release-head' },
      h('code', {}, shortId(release.id)), ' ', badge(release.status),
      release.id === servingId ? h('span', { className: 'tag' }, 'serving') : null,
      ' ', when(release.when), ' by ', h('span', { className: 'who' }, release.who)),
    h('div', { className: 'release-body' },
      'artifact ', h('a', { href: route('apps', name, 'artifacts', release.digest) }, h('code', {}, shortDigest(release.digest))),
      `, ${release.runtime}, ${release.replicas} replica${release.replicas === 1 ? '' : 's'}, `,
      h('code', { className: 'command' }, release.startCommand),
      release.rollbackOf ? h('span', {}, ', rollback of ', h('code', {}, shortId(release.rollbackOf))) : null,
      release.configNames.length ? `, config: ${release.configNames.join(', ')}` : null,
      release.durationMs !== null ? `, took ${duration(release.durationMs)}` : null),
    reason(release.status, release.reason),
    release.status === 'succeeded' && release.id !== servingId
      ? h('button', { type: 'button', className: 'secondary small', onClick: () => rollBack(release) }, 'Roll back to this')
      : null));
  return h('section', { className: 'card', 'aria-labelledby': 'releases-title' },
    h('h2', { id: 'releases-title' }, 'Releases'),
    durationChart(releases),
    releases.length ? h('ol', { className: 'timeline', id: 'releases' }, items) : h('p', { className: 'muted' }, 'No deployments yet.'));
}

// Each finished deployment's rollout duration, oldest left, as bars.
function durationChart(releases) {
  const timed = releases.filter((release) => release.durationMs !== null).slice(0, 30).reverse();
  if (!timed.length) return null;
  const longest = Math.max(...timed.map((release) => release.durationMs), 1);
  const [step, height] = [14, 40];
  const label = `Rollout durations, oldest first: ${timed.map((release) => duration(release.durationMs)).join(', ')}`;
  return h('figure', { className: 'chart' },
    svg('svg', { width: timed.length * step, height, viewBox: `0 0 ${timed.length * step} ${height}`, role: 'img', 'aria-label': label },
      timed.map((release, index) => {
        const bar = Math.max(2, Math.round((release.durationMs / longest) * height));
        return svg('rect', { x: index * step + 2, y: height - bar, width: step - 4, height: bar, className: `dur d-${release.status}` },
          svg('title', {}, `${shortId(release.id)}: ${duration(release.durationMs)}`));
      })),
    h('figcaption', { className: 'muted' }, `Rollout durations, oldest first; longest ${duration(longest)}`));
}
