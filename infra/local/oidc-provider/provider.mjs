// The embedded stack's OpenID provider: oidc-provider on 127.0.0.1, its users, keys and client
// read from a JSON file that `make up` writes (mode 0600). Nothing here reaches the network.
//
//   node provider.mjs CONFIG.json
//
// The CLI is a public native client: Authorization Code with PKCE through a loopback redirect
// (any port), the Device Authorization Grant, refresh tokens and revocation. Access tokens are
// JWTs for one resource, the Aether API, and carry the user's groups.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { scryptSync, timingSafeEqual } from 'node:crypto';
import { URLSearchParams } from 'node:url';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = new Map(config.users.map((user) => [user.username, user]));

// The provider's sessions, grants and refresh tokens in one file (mode 0600), so that a
// signed-in CLI stays signed in across `make down && make up`. Written whole on each change:
// a handful of entries on one machine.
const stored = new Map(
  existsSync(config.state_file)
    ? Object.entries(JSON.parse(readFileSync(config.state_file, 'utf8')))
    : [],
);

function persist() {
  const now = Date.now();
  for (const [key, entry] of stored) {
    if (entry.expiresAt && entry.expiresAt <= now) stored.delete(key);
  }
  const temporary = `${config.state_file}.tmp`;
  writeFileSync(temporary, JSON.stringify(Object.fromEntries(stored)), { mode: 0o600 });
  renameSync(temporary, config.state_file);
}

class FileAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    stored.set(this.key(id), { payload, expiresAt });
    persist();
  }

  async find(id) {
    const entry = stored.get(this.key(id));
    if (!entry || (entry.expiresAt && entry.expiresAt <= Date.now())) return undefined;
    return entry.payload;
  }

  async findBy(field, value) {
    for (const [key, entry] of stored) {
      if (key.startsWith(`${this.model}:`) && entry.payload[field] === value) {
        return this.find(key.slice(this.model.length + 1));
      }
    }
    return undefined;
  }

  async findByUid(uid) {
    return this.findBy('uid', uid);
  }

  async findByUserCode(userCode) {
    return this.findBy('userCode', userCode);
  }

  async consume(id) {
    const entry = stored.get(this.key(id));
    if (entry) {
      entry.payload.consumed = Math.floor(Date.now() / 1000);
      persist();
    }
  }

  async destroy(id) {
    stored.delete(this.key(id));
    persist();
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of stored) {
      if (entry.payload.grantId === grantId) stored.delete(key);
    }
    persist();
  }
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  // No external style sheet or font: the page works offline.
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:sans-serif;max-width:22em;margin:3em auto}input,button{display:block;width:100%;margin:.4em 0;padding:.4em}</style>
</head><body><h1>${escape(title)}</h1>${body}</body></html>`;
}

function passwordMatches(user, password) {
  const expected = Buffer.from(user.password_scrypt, 'hex');
  const actual = scryptSync(String(password), Buffer.from(user.salt, 'hex'), expected.length);
  return timingSafeEqual(expected, actual);
}

const provider = new Provider(config.issuer, {
  adapter: FileAdapter,
  clients: [
    {
      client_id: config.client_id,
      client_name: 'Aether CLI',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: [
        'authorization_code',
        'refresh_token',
        'urn:ietf:params:oauth:grant-type:device_code',
      ],
      response_types: ['code'],
      id_token_signed_response_alg: config.keys[0].alg,
    },
  ],
  jwks: { keys: config.keys },
  cookies: { keys: [config.cookie_secret] },
  scopes: ['openid', 'profile', 'offline_access'],
  claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
  ttl: {
    AccessToken: config.access_token_ttl,
    AuthorizationCode: 60,
    DeviceCode: 600,
    IdToken: config.access_token_ttl,
    Interaction: 600,
    RefreshToken: config.refresh_token_ttl,
    Session: config.refresh_token_ttl,
    Grant: config.refresh_token_ttl,
  },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: true,
      userCodeInputSource(ctx, form, out, err) {
        const problem = err ? '<p role="alert">That code is not valid. Try again.</p>' : '';
        ctx.body = page(
          'Sign in a device',
          `${problem}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`,
        );
      },
      userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
        ctx.body = page(
          'Confirm the device',
          `<p>Is this the code your terminal shows? <code>${escape(userCode)}</code></p>${form}
<button type="submit" form="op.deviceConfirmForm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" value="yes" name="abort">Abort</button>`,
        );
      },
      successSource(ctx) {
        ctx.body = page('Signed in', '<p>You can close this window and return to the terminal.</p>');
      },
    },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator) {
        if (indicator !== config.audience) throw new errors.InvalidTarget();
        return {
          scope: 'openid profile offline_access',
          audience: config.audience,
          accessTokenTTL: config.access_token_ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: config.keys[0].alg } },
        };
      },
    },
  },
  issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
  async extraTokenClaims(ctx, token) {
    if (token.kind !== 'AccessToken') return undefined;
    const user = [...users.values()].find((u) => u.sub === token.accountId);
    return { groups: user ? user.groups : [] };
  },
  async findAccount(ctx, sub) {
    const user = [...users.values()].find((u) => u.sub === sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, preferred_username: user.username, groups: user.groups };
      },
    };
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Sign-in failed', `<p>${escape(out.error)}: ${escape(out.error_description || '')}</p>`);
  },
});

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 16 * 1024) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function loginForm(uid, problem) {
  return page(
    'Sign in to Aether',
    `${problem ? `<p role="alert">${escape(problem)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
<label>User <input name="username" required autofocus></label>
<label>Password <input name="password" type="password" required></label>
<button type="submit">Sign in</button></form>`,
  );
}

function send(res, status, html) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(html);
}

// The CLI is first-party: a signed-in user is granted what it asks, with no consent page.
async function consent(details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return { consent: { grantId: await grant.save() } };
}

// The login page, and the consent every native client's sign-in asks for, given at once.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt } = details;
  if (req.method === 'GET') {
    if (prompt.name === 'consent') {
      await provider.interactionFinished(req, res, await consent(details), {
        mergeWithLastSubmission: true,
      });
      return;
    }
    send(res, 200, loginForm(uid));
    return;
  }
  const form = await readForm(req);
  const user = users.get(form.get('username') || '');
  if (!user || !passwordMatches(user, form.get('password') || '')) {
    send(res, 401, loginForm(uid, 'Wrong user or password.'));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: user.sub } }, {
    mergeWithLastSubmission: false,
  });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      send(res, 400, page('Sign-in failed', `<p>${escape(err.message)}</p>`));
    });
    return;
  }
  callback(req, res);
});
server.listen(config.port, '127.0.0.1', () => {
  console.log(
    `oidc provider ${config.issuer} listening on 127.0.0.1:${config.port} (Node.js ${process.version})`,
  );
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
