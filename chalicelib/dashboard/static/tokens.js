// Tokens: who may call the API (metadata only; a secret is shown once, when issued).

import { api } from './api.js';
import { badge, confirmAction, h, table, when } from './view.js';

export async function tokensPage(_params, ctx) {
  const [{ tokens }, me] = await Promise.all([api.tokens(ctx.signal), ctx.who]);
  const actionError = h('p', { className: 'error', role: 'alert' });
  const revoke = async (token) => {
    const own = token.token_id === me.token_id;
    const sure = await confirmAction(`Revoke token ${token.token_id}?`,
      `${token.subject} (${token.role}) can no longer call the API with it.${own ? ' It is the token you are signed in with.' : ''}`,
      'Revoke');
    if (!sure) return;
    try {
      await api.revokeToken(token.token_id);
      ctx.refresh();
    } catch (error) {
      ctx.report(error, actionError);
    }
  };
  const rows = tokens.map((token) => [
    h('code', {}, token.token_id),
    token.subject,
    token.role,
    when(token.created_at),
    when(token.expires_at),
    token.revoked ? badge('revoked') : h('button', { type: 'button', className: 'secondary small', onClick: () => revoke(token) }, 'Revoke'),
  ]);
  return h('section', { 'aria-labelledby': 'tokens-title' },
    h('h1', { id: 'tokens-title' }, 'Tokens'),
    h('p', {}, `Signed in as ${me.subject} (${me.role})`, me.token_id ? `, token ${me.token_id}.` : ', with an admin token from the environment.'),
    actionError,
    table('Tokens', ['Token', 'Subject', 'Role', 'Issued', 'Expires', ''], rows, 'No stored tokens.'));
}
