// One scenario of the dashboard in Debian's headless chromium, driven by playwright-core.
//
//   node run.mjs SCENARIO    (the context, as JSON, in AETHER_DASHBOARD_CONTEXT)
//
// The context names the dashboard's URL, tokens, apps and where screenshots go.
// Prints one JSON line (what the scenario measured) and exits 0, or prints why it
// failed, saves a screenshot of the moment and exits 1. Every wait is bounded.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const WAIT_MS = 60_000;

const context = JSON.parse(process.env.AETHER_DASHBOARD_CONTEXT);
const scenarioName = process.argv[2];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// What a page did that it must never do: reach another origin, break its CSP, throw.
const problems = [];
function watch(page) {
  const origin = new URL(context.dashboard).origin;
  page.on('request', (request) => {
    if (new URL(request.url()).origin !== origin) problems.push(`request to another origin: ${request.url()}`);
  });
  page.on('console', (message) => {
    const text = message.text();
    if (message.type() === 'error' && !/status of 4\d\d/.test(text)) problems.push(`console error: ${text}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
}

async function signIn(page, token) {
  await page.goto(context.dashboard);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
}

async function shot(page, name) {
  const path = join(context.output, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

const text = (locator) => locator.innerText();

// In the page: when it marked itself interactive, and what it downloaded (bodies as sent).
function loadFigures() {
  const mark = performance.getEntriesByName('aether:interactive')[0];
  const navigation = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  const own = resources.filter((entry) => new URL(entry.name).pathname.includes('/dashboard/'));
  const sum = (entries) => entries.reduce((total, entry) => total + entry.encodedBodySize, 0);
  return {
    interactive_ms: mark ? Math.round(mark.startTime) : null,
    dashboard_bytes: navigation.encodedBodySize + sum(own),
    api_bytes: sum(resources.filter((entry) => !own.includes(entry))),
    requests: resources.length + 1,
  };
}

// Visits by a tab that holds a token, each in a fresh profile (nothing cached): when the
// apps page could be used and what it downloaded; then the same page again, revalidated.
async function firstVisits(browser, rounds) {
  const visits = [];
  for (let round = 0; round < rounds; round += 1) {
    const fresh = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await fresh.newPage();
    watch(page);
    await page.addInitScript((token) => sessionStorage.setItem('aether.token', token), context.admin_token);
    const row = page.getByRole('row').filter({ hasText: context.demo_app });
    await page.goto(context.dashboard);
    await row.waitFor();
    const cold = await page.evaluate(loadFigures);
    await page.reload();
    await row.waitFor();
    const warm = await page.evaluate(loadFigures);
    await fresh.close();
    visits.push({
      ...cold,
      revisit_interactive_ms: warm.interactive_ms,
      revisit_dashboard_bytes: warm.dashboard_bytes,
    });
  }
  return visits;
}

const scenarios = {
  async first_visits(page) {
    return { visits: await firstVisits(page.context().browser(), context.rounds || 1) };
  },

  async sign_in_and_see_the_demo_app(page) {
    await signIn(page, context.admin_token);
    const row = page.getByRole('row').filter({ hasText: context.demo_app });
    await row.waitFor();
    const link = row.getByRole('link', { name: context.demo_url });
    check(await link.count() === 1, `the demo app's row shows no link to ${context.demo_url}: ${await text(row)}`);
    check(await page.evaluate(() => sessionStorage.getItem('aether.token')) === context.admin_token, 'the token is not in sessionStorage');
    check(!page.url().includes(context.admin_token), 'the token is in the URL');
    const screenshot = await shot(page, 'apps');

    const [measured] = await firstVisits(page.context().browser(), 1);
    return { screenshot, ...measured };
  },

  async app_page_shows_releases_config_and_latest_events(page) {
    await signIn(page, context.admin_token);
    await page.getByRole('link', { name: context.demo_app, exact: true }).click();
    await page.getByRole('heading', { name: context.demo_app, level: 1 }).waitFor();
    const releases = page.locator('#releases > li');
    await releases.first().waitFor();
    check(await releases.count() === context.demo_releases, `${await releases.count()} releases shown, not ${context.demo_releases}`);
    const events = page.locator('#latest .events li');
    await events.first().waitFor();
    const latest = await text(page.locator('#latest'));
    check(latest.includes('succeeded'), `the latest deployment's events: ${latest}`);
    const config = await text(page.locator('section[aria-labelledby="config-title"]'));
    check(config.includes(context.config_name), `config shows no ${context.config_name}: ${config}`);
    const everything = await page.locator('body').innerText();
    check(!everything.includes(context.config_value), 'a config value is on the page');
    const screenshot = await shot(page, 'app');

    await page.locator('#releases > li').first().getByRole('link').first().click();
    await page.getByRole('heading', { name: /^Artifact/, level: 1 }).waitFor();
    const artifact = await page.locator('main').innerText();
    check(artifact.includes('verified'), `the artifact page: ${artifact}`);
    return { screenshot, artifact_screenshot: await shot(page, 'artifact') };
  },

  async a_failing_action_shows_the_api_error(page) {
    await signIn(page, context.admin_token);
    await page.goto(`${context.dashboard}#/apps/${context.demo_app}`);
    await page.getByRole('button', { name: 'Roll back…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Roll back' }).click();
    const alert = page.locator('.app [role="alert"]');
    await alert.filter({ hasText: 'conflict:' }).waitFor();
    return { message: await text(alert), screenshot: await shot(page, 'rollback-refused') };
  },

  async a_new_log_line_appears_while_following(page) {
    await signIn(page, context.admin_token);
    await page.goto(`${context.dashboard}#/apps/${context.chatty_app}`);
    const follow = page.getByRole('button', { name: 'Following' });
    await follow.waitFor();
    check(await follow.getAttribute('aria-pressed') === 'true', 'the log is not being followed');
    await page.waitForFunction(() => document.getElementById('log-status').textContent !== 'Loading…');
    const marker = `/marker-${Date.now()}`;
    const answer = await fetch(context.chatty_url + marker);
    check(answer.ok, `the app answered ${answer.status}`);
    await page.locator('#log-lines li').filter({ hasText: `request ${marker}` }).waitFor({ timeout: WAIT_MS });
    return { screenshot: await shot(page, 'logs') };
  },

  async hostile_values_render_as_text(page) {
    await signIn(page, context.admin_token);
    await page.goto(`${context.dashboard}#/apps/${context.chatty_app}`);
    await page.locator('#log-lines').waitFor();
    const hostile = `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>`;
    const answer = await fetch(`${context.chatty_url}/${encodeURIComponent(hostile)}`);
    check(answer.ok, `the app answered ${answer.status}`);
    await page.locator('#log-lines li').filter({ hasText: `request /${hostile}` }).waitFor({ timeout: WAIT_MS });
    const command = page.locator('#releases .command').filter({ hasText: context.hostile_command });
    check(await command.count() >= 1, 'the hostile start command is not shown literally');
    const injected = await page.locator('#log-lines img, #log-lines script, #releases img, #releases b').count();
    check(injected === 0, `${injected} elements were made from API values`);
    check(await page.evaluate(() => window.pwned === undefined), 'a script from an API value ran');
    // The policy itself holds: the browser refuses to parse an HTML string into the page.
    const sink = await page.evaluate(() => {
      try {
        document.body.insertAdjacentHTML('beforeend', '<b>parsed</b>');
        return 'parsed';
      } catch (error) {
        return error.name;
      }
    });
    check(sink === 'TypeError', `an HTML string sink was ${sink}`);
    problems.splice(0, problems.length, ...problems.filter((problem) => !problem.includes('TrustedHTML')));
    return { screenshot: await shot(page, 'hostile') };
  },

  async roll_back_from_the_page(page) {
    await signIn(page, context.admin_token);
    await page.goto(`${context.dashboard}#/apps/${context.chatty_app}`);
    const target = page.locator(`#releases > li[data-id="${context.rollback_to}"]`);
    await target.waitFor();
    const before = await page.locator('#releases > li').count();
    await target.getByRole('button', { name: 'Roll back to this' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    check((await text(dialog)).includes(context.rollback_to.slice(0, 8)), 'the confirmation does not name the target');
    await dialog.getByRole('button', { name: 'Roll back' }).click();
    const newest = page.locator('#releases > li').first();
    await newest.filter({ hasText: `rollback of ${context.rollback_to.slice(0, 8)}` }).filter({ hasText: 'succeeded' })
      .waitFor({ timeout: WAIT_MS * 3 });
    const after = await page.locator('#releases > li').count();
    check(after === before + 1, `${after} releases after the rollback, ${before} before`);
    return { deployment_id: await newest.getAttribute('data-id'), screenshot: await shot(page, 'rolled-back') };
  },

  async a_wrong_token_shows_the_error_and_no_data(page) {
    await page.goto(context.dashboard);
    await page.getByLabel('API token').fill('aet_not-a-token_0123456789');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const error = page.locator('#sign-in-error');
    await error.filter({ hasText: 'unauthorized' }).waitFor();
    check(await page.locator('#view').evaluate((view) => view.childElementCount) === 0, 'data is shown');
    check(await page.locator('#nav').isHidden(), 'the navigation is shown');
    check(await page.evaluate(() => sessionStorage.length) === 0, 'something was stored');
    check(!page.url().includes('aet_'), 'the token is in the URL');
    return { message: await text(error), screenshot: await shot(page, 'wrong-token') };
  },

  async a_developer_sees_only_its_own_apps(page) {
    await signIn(page, context.developer_token);
    await page.getByRole('row').filter({ hasText: context.developer_app }).waitFor();
    const names = await page.locator('tbody tr td:first-child').allInnerTexts();
    check(JSON.stringify(names) === JSON.stringify([context.developer_app]), `the developer sees ${names}`);
    const screenshot = await shot(page, 'developer');
    await page.goto(`${context.dashboard}#/apps/${context.demo_app}`);
    await page.locator('#page-error').filter({ hasText: 'not_found:' }).waitFor();
    check(await page.locator('#view').evaluate((view) => view.childElementCount) === 0, 'another owner\'s app is shown');
    return { screenshot };
  },

  async tokens_are_listed_without_secrets_and_revoked_after_a_confirmation(page) {
    await signIn(page, context.admin_token);
    await page.getByRole('link', { name: 'Tokens' }).click();
    await page.getByRole('heading', { name: 'Tokens', level: 1 }).waitFor();
    const spare = page.getByRole('row').filter({ hasText: context.spare_subject });
    await spare.waitFor();
    const listed = await page.locator('main').innerText();
    check(!listed.includes(context.developer_token) && !listed.includes(context.spare_token), 'a token secret is on the page');
    const screenshot = await shot(page, 'tokens');
    await spare.getByRole('button', { name: 'Revoke' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('row').filter({ hasText: context.spare_subject }).filter({ hasText: 'revoked' }).waitFor();
    return { screenshot };
  },

  async a_refused_token_in_the_tab_returns_to_sign_in(page) {
    await page.addInitScript((token) => {
      if (!sessionStorage.getItem('seeded')) {
        sessionStorage.setItem('seeded', '1');
        sessionStorage.setItem('aether.token', token);
      }
    }, context.revoked_token);
    await page.goto(`${context.dashboard}#/apps/${context.demo_app}`);
    await page.locator('#sign-in-error').filter({ hasText: 'unauthorized' }).waitFor();
    check(await page.locator('#view').evaluate((view) => view.childElementCount) === 0, 'data is shown');
    check(await page.evaluate(() => sessionStorage.getItem('aether.token')) === null, 'the refused token is kept');
    return { message: await text(page.locator('#sign-in-error')) };
  },

  async the_apps_page_fits_a_phone(page) {
    await page.setViewportSize({ width: 390, height: 844 });
    await signIn(page, context.admin_token);
    await page.goto(`${context.dashboard}#/apps/${context.chatty_app}`);
    await page.locator('#releases > li').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    return { screenshot: await shot(page, 'phone') };
  },

  async every_action_is_reachable_by_keyboard(page) {
    await page.goto(context.dashboard);
    await page.getByLabel('API token').waitFor();
    check(await page.evaluate(() => document.activeElement.id) === 'token', 'the token field has no focus');
    await page.keyboard.type(context.admin_token);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
    // Tab to the chatty app's link and open it, all from the keyboard.
    for (let step = 0; step < 30; step += 1) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement.textContent) === context.chatty_app) break;
    }
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: context.chatty_app, level: 1 }).waitFor();
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, button')]
      .filter((control) => !control.labels?.length && !control.textContent.trim() && !control.getAttribute('aria-label'))
      .map((control) => control.outerHTML));
    check(unlabelled.length === 0, `controls without a label: ${unlabelled}`);
    return {};
  },
};

async function main() {
  mkdirSync(context.output, { recursive: true });
  const browser = await chromium.launch({ executablePath: context.chromium, args: CHROMIUM_FLAGS });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.setDefaultTimeout(WAIT_MS);
  watch(page);
  try {
    const measured = await scenarios[scenarioName](page);
    check(problems.length === 0, problems.join('\n'));
    process.stdout.write(`${JSON.stringify(measured)}\n`);
  } catch (error) {
    await page.screenshot({ path: join(context.output, `${scenarioName}-failed.png`), fullPage: true }).catch(() => {});
    process.stderr.write(`${scenarioName}: ${error.message}\n${problems.join('\n')}\n`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

main();
