//! `opspilot-bench console DATABASE_URL`: the web console in Debian's
//! Chromium against a release build of the server — initial JavaScript
//! (gzip) and time to interactive of the home page on localhost, and the
//! inbox with 10,000 tickets: time to the first page and to a filter applied.

use std::path::PathBuf;

use anyhow::Context as _;
use opspilot_eventstore::MasterKey;
use serde_json::json;
use uuid::Uuid;

pub async fn main(args: &[String]) -> anyhow::Result<()> {
    let url = args.first().context("usage: opspilot-bench console DATABASE_URL (an empty database)")?;
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web");
    anyhow::ensure!(web.join("dist/index.html").is_file(), "web/dist is not built: npm run build in web/");
    let pool = opspilot_eventstore::pool(url, 8)?;
    opspilot_eventstore::migrate(&pool).await?;
    let mut config = opspilot_api::Config::for_database(url, MasterKey::generate());
    config.admin_password = Some("bench-admin-pw".into());
    config.console_dir = Some(web.join("dist"));
    config.login_attempts_per_minute = 1000;
    let running = opspilot_api::start(config).await?;

    // 10,000 tickets straight into the inbox read model, 1 in 2 pending.
    let project = Uuid::new_v4();
    pool.get()
        .await?
        .execute(
            "INSERT INTO approval_inbox_items (ticket, scope_type, scope_id, project_id, team_id, runtime_type, risk_level, priority, status,
                requested_by, required_role, source, summary, detail, expires_at, sla_due_at, created_at, updated_at)
             SELECT 'dep-appr-' || g, 'release', gen_random_uuid()::text, $1, $1, 'k8s',
                (ARRAY['low','medium','high','critical'])[1 + g % 4], (ARRAY['p3','p2','p1','p0'])[1 + g % 4],
                CASE WHEN g % 2 = 0 THEN 'pending' ELSE (ARRAY['approved','rejected','expired'])[1 + g % 3] END,
                gen_random_uuid(), 'deploy:release:approve', 'deployment_ui', 'release svc-' || (g % 300) || ' v' || g, '{}',
                now() + (g % 7200) * interval '1 second', now() + (g % 3600) * interval '1 second', now() - (g % 86400) * interval '1 second', now()
             FROM generate_series(1, 10000) g",
            &[&project],
        )
        .await?;
    let params = json!({ "base": format!("http://{}", running.addr), "password": "bench-admin-pw", "filter": "svc-7 " });
    let out = tokio::process::Command::new("node").arg("e2e/bench.mjs").current_dir(&web).env("OPSPILOT_E2E", params.to_string()).output().await?;
    anyhow::ensure!(out.status.success(), "console bench failed: {}", String::from_utf8_lossy(&out.stderr));
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}
