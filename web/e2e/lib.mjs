// Browser plumbing of the end-to-end scenarios: Debian's Chromium driven by
// playwright-core (no browser download), one context per user, screenshots
// as artifacts, and a failure on any console error of any page.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const params = JSON.parse(process.env.OPSPILOT_E2E ?? '{}');
const artifacts = join(params.artifacts ?? 'e2e-artifacts', params.scenario ?? 'run');
mkdirSync(artifacts, { recursive: true });

const consoleErrors = [];
const pages = [];
let browser;
let shots = 0;

export async function launch() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  return browser;
}

/** A signed-in user in a context of their own, the console in `lang`. */
export async function signIn(username, password, lang = 'zh-CN') {
  const context = await browser.newContext({ locale: lang, viewport: { width: 1440, height: 900 } });
  // The language the user starts with; the switch in the console keeps its choice.
  await context.addInitScript((l) => localStorage.getItem('opspilot.lang') || localStorage.setItem('opspilot.lang', l), lang);
  const page = await context.newPage();
  pages.push([username, page]);
  page.setDefaultTimeout(30_000);
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${username}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${username}: ${e.message}`));
  await page.goto(params.base + '/');
  await page.getByTestId('username').fill(username);
  await page.getByTestId('password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('whoami').filter({ hasText: username }).waitFor();
  return page;
}

/** Saves what the page shows now. */
export async function shot(page, name) {
  shots += 1;
  await page.screenshot({ path: join(artifacts, `${String(shots).padStart(2, '0')}-${name}.png`), fullPage: true });
}

/** Picks `label` in the Ant Design select found by `testId`. */
export async function choose(page, testId, label) {
  await page.getByTestId(testId).click();
  await page.locator('.ant-select-dropdown:visible .ant-select-item-option').filter({ hasText: label }).first().click();
}

/** The actions and sources of the timeline table in `scope`, in order. */
export async function timelineOf(scope) {
  const rows = scope.locator('[data-testid="timeline"] tr[data-action]');
  await rows.first().waitFor();
  return rows.evaluateAll((trs) => trs.map((tr) => `${tr.getAttribute('data-action')}@${tr.getAttribute('data-source')}`));
}

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

/** Runs `body`; fails on its error or on any console error; closes the browser. */
export async function run(body) {
  let failed = null;
  try {
    await launch();
    await body();
  } catch (e) {
    failed = e;
    // What every user's page showed when it failed, beside the other screenshots.
    for (const [user, page] of pages) {
      await page.screenshot({ path: join(artifacts, `failed-${user}.png`), fullPage: true }).catch(() => {});
    }
  } finally {
    await browser?.close();
  }
  if (consoleErrors.length) {
    console.error('console errors:\n' + consoleErrors.join('\n'));
    failed ??= new Error(`${consoleErrors.length} console error(s)`);
  }
  if (failed) {
    console.error(failed.stack ?? String(failed));
    process.exit(1);
  }
  console.log(`ok: ${shots} screenshot(s) in ${artifacts}`);
}
