// The seed's P0 cases through the console: C-01 main path from the AI panel
// with the approver in a second browser, C-04 an operator cannot approve,
// C-05 one timeline in three places, C-02 a rejection, a console release,
// C-06 a rollback through the inbox; screenshots in both languages.
import { check, choose, params, run, shot, signIn, timelineOf } from './lib.mjs';

const base = params.base;
const FINAL = 180_000;

/** The one pending ticket of the approver's 我的待办. */
async function pendingTicket(page) {
  await page.goto(base + '/inbox');
  const row = page.locator('[data-testid="inbox-table"] tr[data-ticket]').first();
  await row.waitFor();
  return row.getAttribute('data-ticket');
}

/** Confirms the open decision dialog once it has finished opening, and waits until it is gone. */
async function confirmDecision(page) {
  const dialog = page.locator('.ant-modal-confirm').last();
  await dialog.waitFor();
  await page.waitForTimeout(300); // its opening animation: a click while it zooms in can miss
  await page.getByTestId('decision-ok').click();
  await dialog.waitFor({ state: 'hidden' });
}

async function decide(page, ticket, how, comment) {
  await page.getByTestId(`${how}-${ticket}`).click();
  if (comment) await page.getByTestId('decision-comment').fill(comment);
  await confirmDecision(page);
  await page.locator(`[data-testid="inbox-table"] tr[data-ticket="${ticket}"]`).waitFor({ state: 'detached', timeout: 30_000 });
}

async function releaseStatus(page, id, status) {
  if (!page.url().endsWith(`/releases/${id}`)) await page.goto(`${base}/releases/${id}`);
  await page.locator(`[data-testid="release-status"][data-status="${status}"]`).waitFor({ timeout: FINAL });
}

/** Drafts svc-a on target-k8s-prod with `tag` on the deployment page and previews it. */
async function draft(page, tag) {
  await page.goto(base + '/deploy');
  await choose(page, 'deploy-service', 'svc-a');
  await choose(page, 'deploy-target', 'target-k8s-prod');
  check((await page.getByTestId('deploy-env').inputValue()) === 'production', 'the target fills the env');
  await page.getByRole('button', { name: /添加变量|Add a variable/ }).click();
  await page.getByTestId('var-key-1').fill('image_tag');
  await page.getByTestId('var-value-1').fill(tag);
  await page.getByTestId('deploy-preview').click();
  await page.getByTestId('preview-panel').waitFor();
}

/** Confirms the preview on screen; answers the new release's id. */
async function confirmDraft(page) {
  await page.getByTestId('confirm-release').click();
  await page.waitForURL(/\/releases\/[0-9a-f-]{36}$/);
  return page.url().split('/').pop();
}

await run(async () => {
  const dev = await signIn('dev_user', params.password, 'zh-CN');
  await shot(dev, 'home-zh');
  check(await dev.getByTestId('home-metrics').isVisible(), 'the home page shows the delivery charts');

  // C-01: dev_user asks the AI and confirms the preview.
  await dev.getByTestId('action-ai').click();
  await dev.getByTestId('ai-input').fill('把 svc-a 发布到生产，镜像 v2.0.1');
  await dev.getByTestId('ai-send').click();
  const confirm = dev.getByTestId('ai-confirm').last();
  await confirm.waitFor();
  check((await dev.getByTestId('ai-preview-card').last().getAttribute('data-ok')) === 'true', 'the preview passed');
  await shot(dev, 'ai-preview-zh');
  await confirm.click();
  const approvalCard = dev.getByTestId('ai-approval-card').last();
  await approvalCard.waitFor();
  const ticket = (await approvalCard.locator('.ant-tag').first().textContent()).trim();
  const releaseId = (await dev.getByTestId('ai-preview-card').last().locator('a').getAttribute('href')).split('/').pop();
  const sessionUrl = dev.url();
  check(/\/ai\/[0-9a-f-]{36}$/.test(sessionUrl), `the conversation has its own URL: ${sessionUrl}`);

  // C-04: the requester, an operator, cannot approve; the ticket stays pending.
  await dev.goto(base + '/inbox');
  await dev.getByRole('tab', { name: '全部待办' }).click();
  await dev.locator(`tr[data-ticket="${ticket}"]`).waitFor();
  await dev.getByTestId(`approve-${ticket}`).click();
  await confirmDecision(dev);
  await dev.locator('[data-error-key="approval_permission_denied"]').waitFor();
  await shot(dev, 'c04-operator-cannot-approve');
  check((await dev.locator(`tr[data-ticket="${ticket}"] [data-state="pending"]`).count()) === 1, 'the ticket is still pending');

  // The approver, in a second browser context, approves in the inbox.
  const approver = await signIn('approver_user', params.password, 'zh-CN');
  await approver.goto(base + '/inbox');
  await approver.locator(`tr[data-ticket="${ticket}"]`).waitFor();
  await shot(approver, 'inbox-zh');
  await decide(approver, ticket, 'approve', '同意发布');

  // The AI panel continues by itself to applied; the deployment page shows applied.
  await dev.goto(sessionUrl);
  await dev.locator('[data-testid="ai-release-status"][data-status="applied"]').waitFor({ timeout: FINAL });
  await shot(dev, 'ai-applied-zh');
  await releaseStatus(dev, releaseId, 'applied');

  // C-05: one timeline, the same in the deployment page, the approver's view and the AI panel.
  // The approver opens the ticket (recorded as viewed) and its release first.
  await approver.goto(`${base}/inbox/${ticket}`);
  await approver.locator('.ant-drawer a[href^="/releases/"]').click();
  await approver.locator('[data-testid="release-status"][data-status="applied"]').waitFor();
  await dev.waitForTimeout(1500);
  await approver.reload();
  const fromInbox = await timelineOf(approver);
  await dev.reload();
  const fromDeploy = await timelineOf(dev);
  await shot(dev, 'release-applied-zh');
  await dev.goto(sessionUrl); // resume after a reload: the cards are still there
  await dev.locator('[data-testid="ai-release-status"][data-status="applied"]').waitFor();
  await dev.getByTestId('ai-timeline').locator('.ant-collapse-header').click();
  const fromAi = await timelineOf(dev.getByTestId('ai-timeline'));
  check(JSON.stringify(fromDeploy) === JSON.stringify(fromInbox), `deployment and inbox timelines differ:\n${fromDeploy}\n${fromInbox}`);
  check(JSON.stringify(fromDeploy) === JSON.stringify(fromAi), `deployment and AI timelines differ:\n${fromDeploy}\n${fromAi}`);
  for (const must of ['release.previewed@ai_command_center', 'approval.ticket_approved@approval_inbox', 'release.applied@']) {
    check(fromDeploy.some((e) => e.startsWith(must)), `the timeline has ${must}: ${fromDeploy}`);
  }
  console.log(`C-05 timeline (${fromDeploy.length} events) equal in three places`);

  // C-02: a release drafted on the deployment page is rejected with a comment.
  await draft(dev, 'v3');
  await shot(dev, 'deploy-preview-zh');
  const rejected = await confirmDraft(dev);
  await releaseStatus(dev, rejected, 'pending_approval');
  const t2 = await pendingTicket(approver);
  await decide(approver, t2, 'reject', '风险太高');
  await releaseStatus(dev, rejected, 'rejected');
  const afterReject = await timelineOf(dev);
  check(afterReject.some((e) => e.startsWith('release.rejected@approval_inbox')), `rejected from the inbox: ${afterReject}`);
  check(!afterReject.some((e) => e.startsWith('release.applying')), 'a rejected release never applies');
  await shot(dev, 'c02-rejected-zh');

  // A console release, the diff showing what runs and what comes.
  await draft(dev, 'v2.0.2');
  const removed = await dev.locator('[data-testid="manifest-diff"] td[data-kind="removed"]').allTextContents();
  const added = await dev.locator('[data-testid="manifest-diff"] td[data-kind="added"]').allTextContents();
  check(removed.some((l) => l.includes('svc-a:v2.0.1')) && added.some((l) => l.includes('svc-a:v2.0.2')), `the diff shows v2.0.1 → v2.0.2: ${removed} | ${added}`);
  const second = await confirmDraft(dev);
  await decide(approver, await pendingTicket(approver), 'approve');
  await releaseStatus(dev, second, 'applied');
  check((await timelineOf(dev)).some((e) => e.startsWith('release.previewed@deployment_ui')), 'sourced from the console');

  // C-06: roll back through the inbox; the page follows live.
  await dev.getByTestId('rollback').click();
  await dev.locator('.ant-popconfirm .ant-btn-primary').click();
  await dev.locator('[data-testid="release-status"]:is([data-status="rollback_requested"], [data-status="pending_approval"])').waitFor();
  await decide(approver, await pendingTicket(approver), 'approve');
  await dev.locator('[data-testid="release-status"][data-status="rolled_back"]').waitFor({ timeout: FINAL });
  const rolled = await timelineOf(dev);
  check(rolled.some((e) => e.startsWith('release.rollback_completed@')), `rollback completed: ${rolled}`);
  await shot(dev, 'c06-rolled-back-zh');

  // The main pages in English.
  await dev.getByTestId('lang-switch').click();
  await dev.getByText('Rolled back').first().waitFor();
  await shot(dev, 'release-en');
  await dev.goto(base + '/');
  await dev.getByText('What I can do').waitFor();
  await shot(dev, 'home-en');
  await dev.goto(sessionUrl);
  await dev.getByTestId('ai-conversation').waitFor();
  await shot(dev, 'ai-en');
  await approver.getByTestId('lang-switch').click();
  await approver.goto(base + '/inbox');
  await approver.getByText('My to-do').waitFor();
  await approver.getByRole('tab', { name: 'Requested by me' }).waitFor();
  await shot(approver, 'inbox-en');
  console.log(JSON.stringify({ releaseId, ticket, rejected, second }));
});
