// Runs one end-to-end scenario: `node e2e/run.mjs <scenario>`, parameters in
// OPSPILOT_E2E (JSON: base URL, passwords, names the scenario needs). The
// Rust test of tests/tests/console.rs prepares the world and calls this.
const scenario = process.argv[2];
if (!scenario) {
  console.error('usage: node e2e/run.mjs <scenario>');
  process.exit(2);
}
await import(`./${scenario}.mjs`);
