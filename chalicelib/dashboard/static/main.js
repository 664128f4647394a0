// The dashboard's shell: signing in and out, and which page the address names.

import { api, session } from './api.js';
import { appsPage } from './apps.js';
import { appPage } from './app.js';
import { artifactPage } from './artifact.js';
import { tokensPage } from './tokens.js';
import { errorText } from './view.js';

const ROUTES = [
  [/^#\/apps$/, appsPage],
  [/^#\/apps\/([^/]+)$/, appPage],
  [/^#\/apps\/([^/]+)\/artifacts\/([^/]+)$/, artifactPage],
  [/^#\/tokens$/, tokensPage],
];

const $ = (id) => document.getElementById(id);
let leave = new AbortController();
let who = null; // the signed-in identity (GET /whoami), as a promise

function showSignIn(message) {
  who = null;
  leave.abort();
  $('view').replaceChildren();
  $('page-error').textContent = '';
  $('nav').hidden = true;
  $('who').hidden = true;
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message || '';
  $('token').focus();
}

function signedIn(identity) {
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  $('who-text').textContent = `${identity.subject} (${identity.role})`;
}

async function signIn(event) {
  event.preventDefault();
  const token = $('token').value.trim();
  if (!token) return;
  $('sign-in-error').textContent = '';
  try {
    const identity = await api.whoami(token);
    session.save(token);
    $('token').value = '';
    who = Promise.resolve(identity);
    signedIn(identity);
    if (location.hash === '#/apps') render();
    else location.hash = '#/apps';
  } catch (error) {
    $('sign-in-error').textContent = errorText(error);
  }
}

function signOut() {
  session.clear();
  showSignIn('Signed out.');
}

async function render() {
  if (!who) return;
  leave.abort();
  leave = new AbortController();
  const signal = leave.signal;
  const hash = location.hash || '#/apps';
  const found = ROUTES.map(([pattern, page]) => [hash.match(pattern), page]).find(([match]) => match);
  if (!found) {
    location.replace('#/apps');
    return;
  }
  const [match, page] = found;
  const params = match.slice(1).map(decodeURIComponent);
  $('page-error').textContent = '';
  try {
    const node = await page(params, { signal, who, refresh: render, report });
    await who;
    if (signal.aborted) return;
    $('view').replaceChildren(node);
    const heading = node.querySelector('h1');
    document.title = heading ? `${heading.textContent} · Aether` : 'Aether';
    $('main').focus({ preventScroll: true });
    performance.mark('aether:interactive'); // when each page can be used (see bench/)
  } catch (error) {
    if (error.name !== 'AbortError' && !signal.aborted) fail(error); // signing out aborts
  }
}

// A refused token signs out; any other failure is shown where it happened, as the API said it.
function report(error, where) {
  if (error.status === 401) {
    session.clear();
    showSignIn(errorText(error));
    return;
  }
  where.textContent = errorText(error);
}

function fail(error) {
  $('view').replaceChildren();
  report(error, $('page-error'));
}

async function start() {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('skip').addEventListener('click', (event) => {
    event.preventDefault();
    $('main').focus();
  });
  window.addEventListener('hashchange', () => {
    if (location.hash.startsWith('#/')) render();
  });
  const token = session.token();
  if (!token) {
    showSignIn();
    return;
  }
  // A tab that holds a token asks who it is and loads its page at once, not one after the other.
  who = api.whoami(token);
  who.then(signedIn, (error) => {
    if (error.status === 401) session.clear();
    showSignIn(errorText(error));
  });
  render();
}

start();
