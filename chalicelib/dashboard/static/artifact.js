// An artifact's page: how its verification went, what signed it, its size and where it ran.

import { api } from './api.js';
import { badge, bytes, facts, h, route, shortId, table, when } from './view.js';

export async function artifactPage([name, digest], { signal }) {
  const [artifact, history] = await Promise.all([
    api.artifact(digest, name, signal),
    api.deployments(name, { limit: 100 }, signal),
  ]);
  const deployments = history.deployments.filter((deployment) => deployment.artifact_digest === artifact.digest);
  return h('article', { 'aria-labelledby': 'artifact-title' },
    h('p', {}, h('a', { href: route('apps', name) }, `← ${name}`)),
    h('h1', { id: 'artifact-title' }, 'Artifact ', h('code', { className: 'digest' }, artifact.digest)),
    facts([
      ['Verification', badge(artifact.status)],
      ['Reason', artifact.reason || null],
      ['Signature', badge(artifact.signature)],
      ['Size', bytes(artifact.size_bytes)],
      ['Runtime', artifact.runtime],
      ['Platform', artifact.platform],
      ['Uploaded', when(artifact.created_at)],
      ['Verified', artifact.verified_at ? when(artifact.verified_at) : null],
      ['Object key', h('code', {}, artifact.key)],
    ]),
    h('section', { className: 'card', 'aria-labelledby': 'artifact-deployments' },
      h('h2', { id: 'artifact-deployments' }, 'Deployments of this artifact'),
      table('Deployments of this artifact', ['Deployment', 'Status', 'When', 'By'],
        deployments.map((deployment) => [
          h('code', {}, shortId(deployment.deployment_id)), badge(deployment.status), when(deployment.created_at), deployment.created_by,
        ]),
        'Not deployed in the recent history.')));
}
