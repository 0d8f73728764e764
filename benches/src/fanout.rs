//! `opspilot-bench fanout DATABASE_URL [options]`: the same 6-hook set
//! (benches/fanout/hooks) on N of the tests/env SSH hosts, run by OpsPilot
//! (in-process, through its REST API, as a user would) and then by Ansible
//! (`ansible-playbook`, `script` module, forks = N) on the same hosts.
//! Run through `./scripts/bench-fanout.sh`, which brings the hosts up and
//! puts the environment back to 4 hosts afterwards.
//!
//! Options:
//!   --hosts 10,30,50     host counts, one run of each tool per count
//!   --first-host K       use opspilot-host-K.. (default 5: hosts 1-4 belong
//!                        to the system tests, which may be running)
//!   --work DIR           bundle, inventories, raw results (default
//!                        /var/cache/opspilot-bench/fanout)
//!   --opspilot BIN       the `opspilot` binary used to index and sign the bundle
//!   --skip-ansible       OpsPilot only
//!
//! Timings are printed, never asserted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use chrono::{DateTime, Utc};
use opspilot_eventstore::MasterKey;
use serde_json::{json, Value};
use uuid::Uuid;

const ENV_JSON: &str = "/var/cache/opspilot-env/run/env.json";
const HOOK_COUNT: usize = 6;

struct Opts {
    db_url: String,
    counts: Vec<usize>,
    first_host: usize,
    work: PathBuf,
    opspilot_bin: PathBuf,
    fanout_dir: PathBuf,
    skip_ansible: bool,
}

fn parse_opts(args: &[String]) -> Result<Opts> {
    let mut it = args.iter();
    let db_url = it.next().context("usage: opspilot-bench fanout DATABASE_URL [--hosts 10,30,50] [--first-host 5] [--work DIR] [--opspilot BIN] [--skip-ansible]")?.clone();
    let mut o = Opts {
        db_url,
        counts: vec![10, 30, 50],
        first_host: 5,
        work: PathBuf::from("/var/cache/opspilot-bench/fanout"),
        opspilot_bin: std::env::var("OPSPILOT_BIN").map(PathBuf::from).unwrap_or_else(|_| "opspilot".into()),
        fanout_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("fanout"),
        skip_ansible: false,
    };
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--hosts" => o.counts = value()?.split(',').map(|s| s.trim().parse::<usize>().with_context(|| format!("--hosts: {s:?} is not a number"))).collect::<Result<_>>()?,
            "--first-host" => o.first_host = value()?.parse().context("--first-host needs a number")?,
            "--work" => o.work = value()?.into(),
            "--opspilot" => o.opspilot_bin = value()?.into(),
            "--skip-ansible" => o.skip_ansible = true,
            other => bail!("unknown option {other}"),
        }
    }
    ensure!(!o.counts.is_empty() && o.counts.iter().all(|n| *n >= 1), "--hosts needs counts of at least 1");
    ensure!(o.first_host >= 1, "--first-host starts at 1");
    Ok(o)
}

/// One SSH test host as env.json describes it.
#[derive(Clone)]
struct TestHost {
    name: String,
    container: String,
    ip: String,
    port: u16,
    key_path: String,
    fingerprint: String,
    known_hosts_line: String,
}

fn test_hosts(env: &Value) -> Result<Vec<TestHost>> {
    let list = env["hosts"].as_array().context("env.json: hosts")?;
    list.iter()
        .map(|h| {
            let s = |v: &Value, what: &str| v.as_str().map(str::to_string).with_context(|| format!("env.json: host {what}"));
            Ok(TestHost {
                name: s(&h["name"], "name")?,
                container: s(&h["container"], "container")?,
                ip: s(&h["ip"], "ip")?,
                port: h["port"].as_u64().unwrap_or(22) as u16,
                key_path: s(&h["root"]["privateKeyPath"], "root.privateKeyPath")?,
                fingerprint: s(&h["hostKey"]["fingerprint"], "hostKey.fingerprint")?,
                known_hosts_line: s(&h["hostKey"]["knownHostsLine"], "hostKey.knownHostsLine")?,
            })
        })
        .collect()
}

/// The REST client of the in-process server, logged in as admin.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await?.json().await.with_context(|| format!("{method} {path}: not JSON"))?;
        ensure!(v["code"] == 1000, "{method} {path}: {v}");
        Ok(v["data"].clone())
    }
    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }
}

fn ts(v: &Value) -> Result<DateTime<Utc>> {
    let s = v.as_str().with_context(|| format!("not a timestamp: {v}"))?;
    Ok(DateTime::parse_from_rfc3339(s).with_context(|| format!("timestamp {s:?}"))?.with_timezone(&Utc))
}

fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

/// The `script_ms` a hook printed (`[INFO] script_ms=<n>`), from outputs or stdout.
fn script_ms_of_stdout(stdout: &str) -> Option<f64> {
    stdout.lines().rev().find_map(|l| l.trim().strip_prefix("[INFO] script_ms=")).and_then(|v| v.trim().parse().ok())
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// CPU seconds: the whole machine busy (all cores, /proc/stat), this process
/// (OpsPilot runs in it), and this process's waited-for children (ansible-playbook
/// and its forks).
#[derive(Clone, Copy, Default)]
struct Cpu {
    machine_busy: f64,
    own: f64,
    children: f64,
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf").arg("CLK_TCK").output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
    })
}

fn cpu_now() -> Cpu {
    let hz = clock_ticks();
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // cpu  user nice system idle iowait irq softirq steal ...
    let f: Vec<f64> = stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let machine_busy = if f.len() >= 8 { (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / hz } else { f64::NAN };
    // /proc/self/stat after the ")": field 3 (state) first, so field k is token k - 3;
    // utime, stime, cutime, cstime are fields 14-17.
    let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after: Vec<f64> = me.rsplit_once(')').map(|(_, r)| r.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN)).collect()).unwrap_or_default();
    let (own, children) = if after.len() >= 15 { ((after[11] + after[12]) / hz, (after[13] + after[14]) / hz) } else { (f64::NAN, f64::NAN) };
    Cpu { machine_busy, own, children }
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, o: Cpu) -> Cpu {
        Cpu { machine_busy: self.machine_busy - o.machine_busy, own: self.own - o.own, children: self.children - o.children }
    }
}

fn cores() -> f64 {
    std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0)
}

/// Copies index.yaml and the hooks into a fresh bundle directory and has
/// `opspilot bundle index` and `opspilot bundle sign` finish it.
fn assemble_bundle(o: &Opts, env: &Value) -> Result<PathBuf> {
    let dir = o.work.join("bundle");
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["manifests", "hooks", "checksums"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::copy(o.fanout_dir.join("index.yaml"), dir.join("manifests/index.yaml")).context("benches/fanout/index.yaml")?;
    let mut hooks = 0;
    for entry in std::fs::read_dir(o.fanout_dir.join("hooks"))? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "sh") {
            let to = dir.join("hooks").join(p.file_name().unwrap());
            std::fs::copy(&p, &to)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))?;
            hooks += 1;
        }
    }
    ensure!(hooks == HOOK_COUNT, "benches/fanout/hooks has {hooks} hooks, expected {HOOK_COUNT}");
    let key = env["bundle"]["privateKeyPath"].as_str().context("env.json: bundle.privateKeyPath")?;
    let d = dir.to_str().context("bundle path")?;
    for args in [vec!["bundle", "index", d], vec!["bundle", "sign", d, "--key", key], vec!["bundle", "verify", d, "--runtime", "compose"]] {
        let out = std::process::Command::new(&o.opspilot_bin).args(&args).output().with_context(|| format!("running {}", o.opspilot_bin.display()))?;
        ensure!(out.status.success(), "opspilot {}: {}{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(dir)
}

/// Fails when a bench host is gone (another `envctl up --hosts 4`, e.g. the test suite, removed it).
async fn ensure_running(hosts: &[TestHost]) -> Result<()> {
    let mut args = vec!["inspect".to_string(), "-f".into(), "{{.Name}} {{.State.Running}} {{.State.Paused}}".into()];
    args.extend(hosts.iter().map(|h| h.container.clone()));
    let out = tokio::process::Command::new("docker").args(&args).output().await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bad: Vec<&str> = text.lines().filter(|l| !l.ends_with(" true false")).collect();
    ensure!(out.status.success() && bad.is_empty(), "bench hosts are not all running ({bad:?} {}): did another `envctl up` remove them? run the bench again", String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// Removes everything either tool left on the hosts: /opt/opspilot (OpsPilot's
/// script root and task dirs, the hooks' /opt/opspilot/bench) and Ansible's
/// remote temp dir.
async fn clean(hosts: &[TestHost]) -> Result<()> {
    let mut set = tokio::task::JoinSet::new();
    for h in hosts {
        let c = h.container.clone();
        set.spawn(async move { (tokio::process::Command::new("docker").args(["exec", &c, "rm", "-rf", "/opt/opspilot", "/root/.ansible"]).status().await, c) });
    }
    while let Some(r) = set.join_next().await {
        let (status, c) = r?;
        ensure!(status?.success(), "cleaning {c} failed");
    }
    Ok(())
}

/// What one OpsPilot run measured.
#[derive(Default)]
struct OpsRun {
    preview_ms: f64,
    client_ms: f64,
    task_ms: f64,
    upload_wall_ms: f64,
    upload_node_ms: Vec<f64>,
    /// Per hook step: wall (first start → last end) and slowest script_ms.
    step_wall_ms: Vec<f64>,
    step_slowest_script_ms: Vec<f64>,
    /// Per hook node-step.
    overhead_ms: Vec<f64>,
    script_ms: Vec<f64>,
    before_first_line_ms: Vec<f64>,
    after_last_line_ms: Vec<f64>,
    /// From one step's last end to the next step's first start.
    gap_ms: Vec<f64>,
    /// From apply to succeeded.
    cpu: Cpu,
    raw: Value,
}

async fn opspilot_run(api: &Api, n: usize, hosts: &[TestHost], ids: &HashMap<String, String>) -> Result<OpsRun> {
    let env = format!("fanout-{n}-{}", &Uuid::new_v4().simple().to_string()[..6]);
    api.post("/api/v1/environments", json!({ "name": env, "project_id": "bench-fanout", "team_id": "bench-fanout-team", "runtime_type": "compose" })).await?;
    let nodes: Vec<Value> = hosts.iter().map(|h| json!({ "host_id": h.name, "node_role": "compose_manager" })).collect();
    api.put(&format!("/api/v1/environments/{env}/nodes"), json!({ "nodes": nodes })).await?;

    let started = Instant::now();
    let preview = api.post(&format!("/api/v1/environments/{env}/install/preview"), json!({})).await?;
    let preview_ms = started.elapsed().as_secs_f64() * 1000.0;
    let steps = preview["steps"].as_array().map(|s| s.len()).unwrap_or(0);
    ensure!(steps == HOOK_COUNT + 1, "the preview plans {steps} steps, expected upload-bundle + {HOOK_COUNT} hooks: {preview}");

    let started = Instant::now();
    let cpu_before = cpu_now();
    let applied = api.post(&format!("/api/v1/environments/{env}/install/apply"), json!({ "preview_ref": preview["preview_ref"], "confirm": true })).await?;
    let task_id = applied["task_id"].as_str().with_context(|| format!("apply answered no task_id: {applied}"))?.to_string();
    let task = loop {
        let t = api.get(&format!("/api/v1/environments/{env}/install/tasks/{task_id}")).await?;
        match t["status"].as_str() {
            Some("succeeded") => break t,
            Some("failed") => bail!("the OpsPilot task on {n} hosts failed: {} {} {}", t["error_key"], t["error_message"], t["result"]),
            _ if started.elapsed() > Duration::from_secs(900) => bail!("the OpsPilot task on {n} hosts did not finish in 15 min"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let client_ms = started.elapsed().as_secs_f64() * 1000.0;
    let cpu = cpu_now() - cpu_before;
    let logs = api.get(&format!("/api/v1/environments/{env}/install/tasks/{task_id}/logs?limit=50000")).await?;
    // A host serves one environment: free them for the next, larger run.
    api.put(&format!("/api/v1/environments/{env}/nodes"), json!({ "nodes": [] })).await?;

    // First and last stdout line of each (step, host, attempt), as OpsPilot received them.
    let mut lines: HashMap<(i64, String, i64), (DateTime<Utc>, DateTime<Utc>)> = HashMap::new();
    for l in logs["list"].as_array().context("logs list")? {
        let key = (l["step_index"].as_i64().unwrap_or(-1), l["host_id"].as_str().unwrap_or_default().to_string(), l["attempt"].as_i64().unwrap_or(0));
        let at = ts(&l["at"])?;
        let e = lines.entry(key).or_insert((at, at));
        e.0 = e.0.min(at);
        e.1 = e.1.max(at);
    }

    let mut r = OpsRun { preview_ms, client_ms, task_ms: task["duration_ms"].as_f64().unwrap_or(f64::NAN), cpu, ..Default::default() };
    let names: HashMap<&str, &str> = ids.iter().map(|(name, id)| (id.as_str(), name.as_str())).collect();
    let mut prev_end: Option<DateTime<Utc>> = None;
    for step in task["steps"].as_array().context("task steps")? {
        let index = step["step_index"].as_i64().unwrap_or(-1);
        let all = step["nodes"].as_array().context("step nodes")?;
        // The attempt that succeeded (no retries are expected; a retry would count its own time only).
        let nodes: Vec<&Value> = all.iter().filter(|nd| nd["status"] == "succeeded").collect();
        ensure!(nodes.len() == n, "step {} has {} succeeded node-steps, expected {n}", step["name"], nodes.len());
        ensure!(all.len() == n, "step {} was retried on some node ({} node-steps for {n} hosts)", step["name"], all.len());
        let starts: Vec<DateTime<Utc>> = nodes.iter().map(|nd| ts(&nd["started_at"])).collect::<Result<_>>()?;
        let ends: Vec<DateTime<Utc>> = nodes.iter().map(|nd| ts(&nd["ended_at"])).collect::<Result<_>>()?;
        let (first, last) = (*starts.iter().min().unwrap(), *ends.iter().max().unwrap());
        if let Some(p) = prev_end {
            r.gap_ms.push(ms_between(p, first));
        }
        prev_end = Some(last);
        let wall = ms_between(first, last);
        if index == 0 {
            r.upload_wall_ms = wall;
            r.upload_node_ms = nodes.iter().map(|nd| nd["duration_ms"].as_f64().unwrap_or(f64::NAN)).collect();
            continue;
        }
        let mut slowest = 0f64;
        for (i, nd) in nodes.iter().enumerate() {
            let host = nd["host_id"].as_str().unwrap_or_default();
            let script = nd["outputs"]["script_ms"].as_str().and_then(|s| s.parse::<f64>().ok()).with_context(|| format!("step {} on {}: no script_ms output: {}", step["name"], names.get(host).unwrap_or(&host), nd["outputs"]))?;
            let duration = nd["duration_ms"].as_f64().context("duration_ms")?;
            slowest = slowest.max(script);
            r.script_ms.push(script);
            r.overhead_ms.push(duration - script);
            if let Some((fl, ll)) = lines.get(&(index, host.to_string(), nd["attempt"].as_i64().unwrap_or(0))) {
                r.before_first_line_ms.push(ms_between(starts[i], *fl));
                r.after_last_line_ms.push(ms_between(*ll, ends[i]));
            }
        }
        r.step_wall_ms.push(wall);
        r.step_slowest_script_ms.push(slowest);
    }
    ensure!(r.step_wall_ms.len() == HOOK_COUNT, "the task ran {} hook steps", r.step_wall_ms.len());
    r.raw = json!({ "environment": env, "task": task, "preview_ms": preview_ms, "client_ms": client_ms,
        "cpu_s": { "machine_busy": cpu.machine_busy, "opspilot_process": cpu.own } });
    Ok(r)
}

/// What one Ansible run measured.
#[derive(Default)]
struct AnsibleRun {
    wall_ms: f64,
    task_wall_ms: Vec<f64>,
    task_slowest_script_ms: Vec<f64>,
    script_ms: Vec<f64>,
    cpu: Cpu,
    raw: Value,
}

async fn ansible_run(o: &Opts, n: usize, hosts: &[TestHost]) -> Result<AnsibleRun> {
    let dir = o.work.join(format!("ansible-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cp"))?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    let mut inv = String::from("[bench]\n");
    let mut known = String::new();
    for h in hosts {
        inv.push_str(&format!("{} ansible_host={} ansible_port={}\n", h.name, h.ip, h.port));
        known.push_str(&h.known_hosts_line);
        known.push('\n');
    }
    inv.push_str(&format!("\n[bench:vars]\nansible_user=root\nansible_ssh_private_key_file={}\n", hosts[0].key_path));
    std::fs::write(dir.join("inventory.ini"), inv)?;
    std::fs::write(dir.join("known_hosts"), known)?;
    let cfg = format!(
        "[defaults]\nforks = {n}\nhost_key_checking = True\nstdout_callback = json\nretry_files_enabled = False\nlocal_tmp = {tmp}\n\n\
         [ssh_connection]\n# Ansible's default ssh_args plus the pinned known_hosts\n\
         ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={kh} -o StrictHostKeyChecking=yes\n\
         control_path_dir = {cp}\n",
        tmp = dir.join("tmp").display(),
        kh = dir.join("known_hosts").display(),
        cp = dir.join("cp").display(),
    );
    std::fs::write(dir.join("ansible.cfg"), cfg)?;
    let vars = json!({ "ops_task_id": Uuid::new_v4(), "ops_environment_id": Uuid::new_v4(), "ops_project_id": Uuid::new_v4(), "ops_team_id": Uuid::new_v4() });
    std::fs::write(dir.join("vars.json"), vars.to_string())?;

    let started = Instant::now();
    let cpu_before = cpu_now();
    let out = tokio::process::Command::new("ansible-playbook")
        .arg("-i")
        .arg(dir.join("inventory.ini"))
        .arg("-e")
        .arg(format!("@{}", dir.join("vars.json").display()))
        .arg(o.fanout_dir.join("playbook.yml"))
        .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
        .env("ANSIBLE_HOME", dir.join("home"))
        .output()
        .await
        .context("running ansible-playbook")?;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let cpu = cpu_now() - cpu_before;
    close_control_masters(&dir.join("cp")).await;
    std::fs::write(dir.join("stdout.json"), &out.stdout)?;
    std::fs::write(dir.join("stderr.txt"), &out.stderr)?;
    let v: Value = serde_json::from_slice(&out.stdout).with_context(|| format!("ansible-playbook output is not JSON (exit {:?}): {}", out.status.code(), String::from_utf8_lossy(&out.stderr)))?;
    for (host, s) in v["stats"].as_object().context("ansible stats")? {
        ensure!(s["failures"] == 0 && s["unreachable"] == 0, "ansible on {host}: {s} (see {})", dir.join("stdout.json").display());
    }
    ensure!(out.status.success(), "ansible-playbook exited with {:?}", out.status.code());

    let mut r = AnsibleRun { wall_ms, cpu, ..Default::default() };
    for t in v["plays"][0]["tasks"].as_array().context("ansible tasks")? {
        let d = &t["task"]["duration"];
        r.task_wall_ms.push(ms_between(ts(&d["start"])?, ts(&d["end"])?));
        let results = t["hosts"].as_object().context("task hosts")?;
        ensure!(results.len() == n, "task {} ran on {} hosts, expected {n}", t["task"]["name"], results.len());
        let mut slowest = 0f64;
        for (host, res) in results {
            let script = script_ms_of_stdout(res["stdout"].as_str().unwrap_or_default()).with_context(|| format!("ansible task {} on {host}: no script_ms in stdout", t["task"]["name"]))?;
            slowest = slowest.max(script);
            r.script_ms.push(script);
        }
        r.task_slowest_script_ms.push(slowest);
    }
    ensure!(r.task_wall_ms.len() == HOOK_COUNT, "ansible ran {} tasks", r.task_wall_ms.len());
    r.raw = json!({ "wall_ms": wall_ms, "task_wall_ms": r.task_wall_ms, "task_slowest_script_ms": r.task_slowest_script_ms,
        "script_ms": r.script_ms, "cpu_s": { "machine_busy": cpu.machine_busy, "ansible_playbook_and_workers": cpu.children } });
    Ok(r)
}

/// Ends the ControlPersist masters this run's ansible-playbook left behind.
async fn close_control_masters(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let _ = tokio::process::Command::new("ssh").arg("-o").arg(format!("ControlPath={}", e.path().display())).args(["-O", "exit", "bench-host"]).output().await;
    }
}

pub async fn main(args: &[String]) -> Result<()> {
    let o = parse_opts(args)?;
    let env: Value = serde_json::from_str(&std::fs::read_to_string(ENV_JSON).context("env.json: bring the hosts up first (scripts/bench-fanout.sh does)")?)?;
    let all = test_hosts(&env)?;
    let max_n = *o.counts.iter().max().unwrap();
    let needed = o.first_host - 1 + max_n;
    ensure!(all.len() >= needed, "env.json lists {} hosts; the bench needs opspilot-host-{}..{needed} (tests/env/envctl up --hosts {needed})", all.len(), o.first_host);
    let hosts: Vec<TestHost> = all[o.first_host - 1..needed].to_vec();
    std::fs::create_dir_all(&o.work)?;
    let bundle = assemble_bundle(&o, &env)?;
    let trusted = std::fs::read_to_string(env["bundle"]["publicKeyPath"].as_str().context("env.json: bundle.publicKeyPath")?)?.trim().to_string();

    let pool = opspilot_eventstore::pool(&o.db_url, 4)?;
    opspilot_eventstore::migrate(&pool).await?;
    let mut config = opspilot_api::Config::for_database(&o.db_url, MasterKey::generate());
    config.admin_password = Some("bench-admin-pw".into());
    config.login_attempts_per_minute = 1000;
    config.script_root = bundle.clone();
    config.bundle_trusted_key = Some(trusted);
    let parallelism = config.install_parallelism;
    let running = opspilot_api::start(config).await?;
    let http = reqwest::Client::new();
    let base = format!("http://{}", running.addr);
    let login: Value = http.post(format!("{base}/api/v1/auth/login")).json(&json!({ "username": "admin", "password": "bench-admin-pw" })).send().await?.json().await?;
    let token = login["data"]["token"].as_str().context("admin login")?.to_string();
    let api = Api { http, base, token };

    api.post("/api/v1/projects", json!({ "name": "bench-fanout" })).await?;
    api.post("/api/v1/teams", json!({ "name": "bench-fanout-team", "project_id": "bench-fanout" })).await?;
    let mut ids = HashMap::new();
    for h in &hosts {
        let key = std::fs::read_to_string(&h.key_path).with_context(|| h.key_path.clone())?;
        let made = api
            .post("/api/v1/hosts", json!({ "name": h.name, "project_id": "bench-fanout", "ip": h.ip, "port": h.port, "ssh_user": "root", "auth": "key", "private_key": key }))
            .await?;
        ids.insert(h.name.clone(), made["id"].as_str().context("host id")?.to_string());
        api.post(&format!("/api/v1/hosts/{}/host-key/trust", h.name), json!({ "fingerprint": h.fingerprint })).await?;
    }
    eprintln!("[fanout] {} hosts registered ({}..{}), install_parallelism {parallelism}, bundle {}", hosts.len(), hosts[0].name, hosts[hosts.len() - 1].name, bundle.display());

    let mut rows = Vec::new();
    let mut raw = Vec::new();
    for &n in &o.counts {
        let set = &hosts[..n];
        ensure_running(set).await?;
        clean(set).await?;
        let load_before = loadavg();
        eprintln!("[fanout] N={n}: OpsPilot (load {load_before})");
        let ops = opspilot_run(&api, n, set, &ids).await?;
        eprintln!("[fanout] N={n}: OpsPilot apply → succeeded {:.0} ms (task {:.0} ms)", ops.client_ms, ops.task_ms);
        clean(set).await?;
        let ans = if o.skip_ansible {
            None
        } else {
            ensure_running(set).await?;
            eprintln!("[fanout] N={n}: Ansible, forks {n} (load {})", loadavg());
            let a = ansible_run(&o, n, set).await?;
            eprintln!("[fanout] N={n}: ansible-playbook {:.0} ms", a.wall_ms);
            clean(set).await?;
            Some(a)
        };
        raw.push(json!({ "hosts": n, "load_before": load_before, "opspilot": ops.raw, "ansible": ans.as_ref().map(|a| a.raw.clone()) }));
        rows.push((n, load_before, ops, ans));
    }
    let results = o.work.join("results.json");
    std::fs::write(&results, serde_json::to_vec_pretty(&json!({ "measured_at": Utc::now(), "runs": raw }))?)?;
    print_tables(&rows);
    eprintln!("[fanout] raw results: {}", results.display());
    Ok(())
}

fn secs(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

fn print_tables(rows: &[(usize, String, OpsRun, Option<AnsibleRun>)]) {
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    println!("## Fan-out: 6 hooks on N hosts, OpsPilot vs Ansible");
    println!("| hosts | OpsPilot apply → succeeded | OpsPilot task `duration_ms` | Ansible `ansible-playbook` (forks = hosts) | Ansible ÷ OpsPilot | OpsPilot preview |");
    println!("|---|---|---|---|---|---|");
    for (n, _, ops, ans) in rows {
        let (a, ratio) = match ans {
            Some(a) => (secs(a.wall_ms), format!("{:.1}×", a.wall_ms / ops.client_ms)),
            None => ("—".into(), "—".into()),
        };
        println!("| {n} | {} | {} | {a} | {ratio} | {} |", secs(ops.client_ms), secs(ops.task_ms), secs(ops.preview_ms));
    }
    println!();
    let busy = |c: &Cpu, wall_ms: f64| format!("{:.1} s of {:.1} s ({:.0} %)", c.machine_busy, wall_ms / 1000.0 * cores(), 100.0 * c.machine_busy / (wall_ms / 1000.0 * cores()));
    println!("CPU during each run (the whole machine, {} cores: hosts' scripts and sshd, PostgreSQL, the tool itself, anything else running):", cores());
    println!();
    println!("| hosts | OpsPilot run: machine busy | OpsPilot process | Ansible run: machine busy | `ansible-playbook` and its workers |");
    println!("|---|---|---|---|---|");
    for (n, _, ops, ans) in rows {
        let (ab, ap) = match ans {
            Some(a) => (busy(&a.cpu, a.wall_ms), format!("{:.1} s", a.cpu.children)),
            None => ("—".into(), "—".into()),
        };
        println!("| {n} | {} | {:.1} s | {ab} | {ap} |", busy(&ops.cpu, ops.client_ms), ops.cpu.own);
    }
    println!();
    println!("Where the time goes, per step (6 hook steps; \"slowest script\" = the largest `script_ms` of the step's hosts):");
    println!();
    println!("| hosts | scripts: Σ slowest per step, OpsPilot / Ansible | OpsPilot upload-bundle step (node mean) | OpsPilot hook step wall − slowest script (mean) | OpsPilot between steps (mean) | Ansible task wall − slowest script (mean) | Ansible outside tasks |");
    println!("|---|---|---|---|---|---|---|");
    for (n, _, ops, ans) in rows {
        let per_step: Vec<f64> = ops.step_wall_ms.iter().zip(&ops.step_slowest_script_ms).map(|(w, s)| w - s).collect();
        let (a_scripts, a_step, a_outside) = match ans {
            Some(a) => {
                let d: Vec<f64> = a.task_wall_ms.iter().zip(&a.task_slowest_script_ms).map(|(w, s)| w - s).collect();
                (format!("{:.0} ms", sum(&a.task_slowest_script_ms)), format!("{:.0} ms", mean(&d)), secs(a.wall_ms - sum(&a.task_wall_ms)))
            }
            None => ("—".into(), "—".into(), "—".into()),
        };
        println!(
            "| {n} | {:.0} ms / {a_scripts} | {:.0} ms ({:.0} ms) | {:.0} ms | {:.0} ms | {a_step} | {a_outside} |",
            sum(&ops.step_slowest_script_ms),
            ops.upload_wall_ms,
            mean(&ops.upload_node_ms),
            mean(&per_step),
            mean(&ops.gap_ms),
        );
    }
    println!();
    println!("OpsPilot overhead per host-step (hook node-step `duration_ms` − the hook's own `script_ms`; 6 × hosts node-steps):");
    println!();
    println!("| hosts | mean | p50 | p95 | max | step start → first output line (mean / max) | last output line → step end (mean) | script_ms mean (OpsPilot / Ansible) |");
    println!("|---|---|---|---|---|---|---|---|");
    for (n, _, ops, ans) in rows {
        let a_script = ans.as_ref().map(|a| format!("{:.0} ms", mean(&a.script_ms))).unwrap_or_else(|| "—".into());
        println!(
            "| {n} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} / {:.0} ms | {:.0} ms | {:.0} ms / {a_script} |",
            mean(&ops.overhead_ms),
            pct(&ops.overhead_ms, 0.5),
            pct(&ops.overhead_ms, 0.95),
            max(&ops.overhead_ms),
            mean(&ops.before_first_line_ms),
            max(&ops.before_first_line_ms),
            mean(&ops.after_last_line_ms),
            mean(&ops.script_ms),
        );
    }
}
