// Console figures for the README (node e2e/bench.mjs, parameters as for the
// scenarios): initial JavaScript of the home page (gzip), time to
// interactive of the home page on localhost, and the inbox (10,000 tickets
// prepared by opspilot-bench console): first page, then a filter applied.
import { chromium } from 'playwright-core';
import { gzipSync } from 'node:zlib';

const params = JSON.parse(process.env.OPSPILOT_E2E ?? '{}');
const base = params.base;
const RUNS = 5;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
const login = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: params.password }) });
const token = (await login.json()).data.token;

async function fresh() {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await context.addInitScript((t) => localStorage.setItem('opspilot.token', t), token);
  return [context, await context.newPage()];
}

const tti = [];
let jsGzip = 0;
let jsFiles = 0;
for (let i = 0; i < RUNS; i++) {
  const [context, page] = await fresh();
  const scripts = [];
  page.on('response', async (r) => {
    if (r.request().resourceType() === 'script') scripts.push(r);
  });
  const started = Date.now();
  await page.goto(base + '/');
  // Interactive: the user, the actions and the data of the home page are there.
  await page.getByTestId('action-release').waitFor();
  await page.locator('[data-testid="home-in-flight"] .ant-list-empty-text, [data-testid="home-in-flight"] .ant-list-item').first().waitFor();
  tti.push(Date.now() - started);
  if (i === 0) {
    for (const r of scripts) {
      if (r.url().includes('DeliveryCharts')) continue; // loaded after the page is interactive
      jsGzip += gzipSync(await r.body()).length;
      jsFiles += 1;
    }
  }
  await context.close();
}

const firstPage = [];
const filtered = [];
for (let i = 0; i < RUNS; i++) {
  const [context, page] = await fresh();
  const started = Date.now();
  await page.goto(base + '/inbox');
  await page.locator('[data-testid="inbox-table"] tr[data-ticket]').first().waitFor();
  firstPage.push(Date.now() - started);
  const search = page.getByPlaceholder('搜索工单、服务、发起人');
  await search.fill(params.filter);
  const t0 = Date.now();
  await search.press('Enter');
  await page.waitForFunction((f) => {
    const rows = [...document.querySelectorAll('[data-testid="inbox-table"] tr[data-ticket]')];
    return rows.length > 0 && rows.every((r) => r.textContent.includes(f.trim()));
  }, params.filter);
  filtered.push(Date.now() - t0);
  await context.close();
}
await browser.close();

console.log('\n## Web console (Chromium headless on localhost, release build, median of 5)');
console.log('| measure | value |');
console.log('|---|---|');
console.log(`| initial JavaScript of the home page (gzip, ${jsFiles} files) | ${(jsGzip / 1024).toFixed(0)} KiB |`);
console.log(`| home page time to interactive (data shown) | ${median(tti)} ms |`);
console.log(`| inbox, 10,000 tickets: first page | ${median(firstPage)} ms |`);
console.log(`| inbox, 10,000 tickets: search filter applied | ${median(filtered)} ms |`);
