// C-03 in the AI panel: an expired preview, a preview that no longer matches
// the draft, and a confirmation with no preview waiting are each refused with
// their dictionary error; the session says so and previews again.
import { check, params, run, shot, signIn } from './lib.mjs';

const base = params.base;

async function refusal(page, key) {
  await page.locator(`[data-testid="ai-conversation"] [data-error-key="${key}"]`).last().waitFor();
}

await run(async () => {
  const dev = await signIn('dev_user', params.password, 'zh-CN');
  await dev.goto(base + '/ai');
  await dev.getByTestId('ai-input').fill('把 svc-a 发布到生产，镜像 v1');
  await dev.getByTestId('ai-send').click();
  const cards = dev.getByTestId('ai-confirm');
  await cards.first().waitFor();

  // Expired: the TTL of this OpsPilot is 3 s.
  await dev.waitForTimeout(4000);
  const first = await cards.last().getAttribute('data-ref');
  await cards.last().click();
  await refusal(dev, 'preview_expired');
  await dev.getByText('预览已过期，正在重新预览').waitFor();
  await dev.waitForFunction((n) => document.querySelectorAll('[data-testid="ai-confirm"]').length > n, 1);
  const second = await cards.last().getAttribute('data-ref');
  check(second !== first, 'a new preview replaced the expired one');
  await shot(dev, 'c03-expired');

  // Mismatch: the draft changed after that preview.
  await dev.getByTestId('ai-input').fill('镜像改成 v2');
  await dev.getByTestId('ai-send').click();
  await dev.waitForFunction((n) => document.querySelectorAll('[data-testid="ai-confirm"]').length > n, 2);
  await dev.locator(`[data-testid="ai-confirm"][data-ref="${second}"]`).click();
  await refusal(dev, 'preview_mismatch');
  await shot(dev, 'c03-mismatch');

  // Required: the draft is dropped; nothing waits for confirmation.
  await dev.getByTestId('ai-input').fill('取消');
  await dev.getByTestId('ai-send').click();
  await dev.waitForFunction(() => (document.querySelector('[data-testid="ai-input"]'))?.value === '');
  await cards.last().click();
  await refusal(dev, 'preview_required');
  await shot(dev, 'c03-required');

  // No ticket waits anywhere.
  await dev.goto(base + '/inbox');
  await dev.getByRole('tab', { name: '我发起的' }).click();
  await dev.waitForTimeout(1000);
  check((await dev.locator('[data-testid="inbox-table"] tr[data-ticket]').count()) === 0, 'no ticket was raised');
  await shot(dev, 'c03-no-ticket');
});
