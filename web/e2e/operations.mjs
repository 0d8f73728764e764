// Operators' pages: a host key scanned and compared before it is trusted, an
// environment install previewed, applied and watched node-step by node-step
// with its log lines streaming, a cluster imported by kubeconfig with its
// permission probe, the audit chain verified, users and roles.
import { check, choose, params, run, shot, signIn } from './lib.mjs';

const base = params.base;

await run(async () => {
  const admin = await signIn('admin', params.password, 'zh-CN');

  // Hosts: the fingerprint the host presents is shown next to nothing trusted; trust it.
  await admin.goto(base + '/hosts');
  await admin.locator(`tr[data-host="${params.host}"] [data-state="pending_trust"]`).waitFor();
  await admin.getByTestId(`scan-${params.host}`).click();
  const shown = (await admin.getByTestId('scanned-fingerprint').textContent()).trim();
  check(shown === params.fingerprint, `the scan shows the host's real key: ${shown} vs ${params.fingerprint}`);
  await shot(admin, 'host-scan');
  await admin.getByTestId('trust-key').click();
  await admin.locator(`tr[data-host="${params.host}"] [data-state="active"]`).waitFor();
  await shot(admin, 'hosts');

  // Environments: wait for the node binding, preview, apply, watch.
  await admin.goto(base + '/environments');
  await admin.locator(`tr[data-environment="${params.environment}"] a`).click();
  for (let i = 0; i < 60 && !(await admin.getByText(params.host).count()); i++) {
    await admin.waitForTimeout(1000);
    await admin.reload();
  }
  await admin.getByTestId('env-install-preview').click();
  const preview = admin.getByTestId('install-preview');
  await preview.waitFor({ timeout: 120_000 });
  check((await preview.locator('.ant-list-item').count()) >= 3, 'checks and planned steps are listed');
  await shot(admin, 'install-preview');
  await admin.getByTestId('env-install-apply').click();
  const task = admin.getByTestId('install-task');
  await task.waitFor();
  await admin.locator('[data-node-step][data-status="running"], [data-node-step][data-status="succeeded"]').first().waitFor({ timeout: 120_000 });
  await shot(admin, 'install-running');
  await admin.locator('[data-testid="install-task"][data-status="succeeded"]').waitFor({ timeout: 600_000 });
  const logs = await admin.getByTestId('install-logs').textContent();
  check(logs.split('\n').length >= 3, `log lines streamed: ${logs.slice(0, 200)}`);
  const nodeSteps = await admin.locator('[data-node-step]').evaluateAll((xs) => xs.map((x) => x.getAttribute('data-status')));
  check(nodeSteps.length >= 3 && nodeSteps.every((s) => s === 'succeeded'), `every node-step succeeded: ${nodeSteps}`);
  await admin.locator('.ant-card-extra [data-state="ready"]').first().waitFor();
  await shot(admin, 'install-succeeded');

  // Clusters: import by kubeconfig; the connection test and permission probe show.
  await admin.goto(base + '/clusters');
  await admin.getByTestId('cluster-import').click();
  await admin.getByTestId('cluster-name').fill('k8s-from-console');
  await choose(admin, 'cluster-project', 'proj-alpha');
  await choose(admin, 'cluster-team', 'team-app');
  await admin.getByTestId('cluster-kubeconfig').fill(params.kubeconfig);
  await admin.getByTestId('cluster-import-ok').click();
  await admin.locator('tr[data-cluster="k8s-from-console"] [data-state="connected"]').waitFor({ timeout: 60_000 });
  await shot(admin, 'clusters');
  // Its certificates: the CA and the client certificate, with days left.
  await admin.locator('tr[data-cluster="k8s-from-console"] [data-testid="cluster-certs"]').click();
  await admin.locator('tr[data-cert="ca"]').waitFor();
  const days = Number(await admin.locator('tr[data-cert="client"] [data-testid="cert-days"]').innerText());
  if (!(days > 300 && days <= 366)) throw new Error(`client certificate days left: ${days}`);
  await admin.waitForTimeout(400); // the dialog's opening animation, for the screenshot
  await shot(admin, 'cluster-certs');
  await admin.keyboard.press('Escape');

  // Audit: the chain verifies.
  await admin.goto(base + '/audit');
  await admin.getByTestId('audit-verify').click();
  await admin.getByTestId('chain-intact').waitFor();
  await shot(admin, 'audit');

  await admin.goto(base + '/users');
  await admin.getByText('dev_user').first().waitFor();
  await shot(admin, 'users');
  await admin.getByTestId('lang-switch').click();
  await admin.goto(base + '/environments');
  await admin.getByText('Environments').first().waitFor();
  await shot(admin, 'environments-en');
});
