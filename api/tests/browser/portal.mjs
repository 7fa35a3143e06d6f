// The portal in a real browser: Debian's headless Chromium driven by playwright-core,
// against a running `dbaas-api dev`. Started by api/tests/portal.rs, which creates the
// tenants and passes, in the environment:
//   PORTAL_URL, ADMIN_TOKEN, TENANT_TOKEN (team-a), OTHER_DB_ID (team-b's database),
//   SCREENSHOTS (directory), PLAYWRIGHT_CORE (path of the playwright-core module).
// Any failed expectation throws: the process exits non-zero and the Rust test fails.
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const BASE = process.env.PORTAL_URL;
const SHOTS = process.env.SCREENSHOTS;
mkdirSync(SHOTS, { recursive: true });

const api = async (token, method, path, body) => {
  const r = await fetch(BASE + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
};
const tenantDbs = async () =>
  (await api(process.env.ADMIN_TOKEN, "GET", "/v1/databases?tenant=team-a&limit=1000")).body.items;

const psql = (uri, password, sql) =>
  execFileSync("psql", [uri, "-XAtc", sql], {
    env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: "5" },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
const psqlFails = (uri, password) => {
  try {
    psql(uri, password, "select 1");
    return false;
  } catch {
    return true;
  }
};

let step = 0;
const shot = async (page, name) => page.screenshot({ path: `${SHOTS}/${String(++step).padStart(2, "0")}-${name}.png`, fullPage: true });
const log = (m) => console.log(`portal test: ${m}`);

// An operation page: wait for the live stream to say it ended, then check how.
async function operationSucceeds(page, what) {
  await page.waitForURL(/\/portal\/operations\/[0-9a-f-]{36}$/);
  const live = await page.locator("#log").getAttribute("data-live");
  await page.waitForFunction(() => document.body.dataset.operationDone === "true" || !document.querySelector("#log[data-live]"), null, { timeout: 120_000 });
  const status = (await page.locator("#op-status").innerText()).trim();
  assert.equal(status, "succeeded", `${what}: operation ended ${status}: ${await page.locator("#op-error").innerText()}`);
  const lines = await page.locator("#log li").count();
  assert.ok(lines > 0, `${what}: no log lines`);
  return { streamed: live !== null, lines };
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ baseURL: BASE, viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
  const page = await context.newPage();
  const consoleErrors = [];
  // Script errors (pages answered 4xx on purpose are logged by Chromium too: not errors).
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource:") && consoleErrors.push(m.text()));

  // --- Sign in: a bad token is refused with a message; the tenant's token signs in.
  await page.goto("/portal/databases");
  await page.waitForURL(/\/portal\/login(\?|$)/);
  await page.getByLabel("API token").fill("dbaas_not_a_token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#token-error").waitFor();
  await shot(page, "sign-in-refused");
  await page.getByLabel("API token").fill(process.env.TENANT_TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/portal\/databases$/);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "dbaas_portal");
  assert.ok(session && session.httpOnly && session.sameSite === "Strict", `session cookie: ${JSON.stringify(session)}`);
  assert.ok(await page.getByText("tenant team-a").isVisible());
  log("signed in");

  // --- Bad input: the API's message next to the field, nothing created.
  await page.getByRole("link", { name: "Create a database" }).click();
  await page.getByLabel("Name").fill("Bad_Name");
  await page.getByLabel("Instance").fill("local");
  await page.getByRole("button", { name: "Create" }).click();
  await page.locator("#name-error").waitFor();
  assert.equal(await page.getByLabel("Name").getAttribute("aria-invalid"), "true");
  assert.equal(await page.getByLabel("Name").inputValue(), "Bad_Name", "the form kept what was typed");
  await shot(page, "create-field-error");
  assert.equal((await tenantDbs()).length, 0, "a database was created from bad input");
  // Unknown instance: the API's error lands on the instance field.
  await page.getByLabel("Name").fill("orders");
  await page.getByLabel("Instance").fill("no-such-instance");
  await page.getByRole("button", { name: "Create" }).click();
  await page.locator("#instance-error").waitFor();
  assert.equal((await tenantDbs()).length, 0, "a database was created on an unknown instance");
  // Placement by labels no instance carries: the API's refusal, shown; nothing created.
  await page.getByLabel("Instance").fill("");
  await page.getByLabel("Environment (placement)").selectOption("sandbox");
  await page.getByLabel("Labels (placement)").fill("tier=platinum");
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByText("no instance in environment sandbox").waitFor();
  // A label that is not key=value: refused by the form itself.
  await page.getByLabel("Labels (placement)").fill("platinum");
  await page.getByRole("button", { name: "Create" }).click();
  await page.locator("#labels-error").waitFor();
  assert.equal((await tenantDbs()).length, 0, "a database was created without a matching instance");
  await page.getByLabel("Labels (placement)").fill("");
  await page.getByLabel("Environment (placement)").selectOption("");
  log("bad input refused with field errors");

  // --- Create, and watch its operation finish live.
  await page.getByLabel("Instance").fill("local");
  await page.getByRole("button", { name: "Create" }).click();
  const created = await operationSucceeds(page, "create");
  assert.ok(created.streamed, "the create operation had already ended when its page loaded: nothing was watched live");
  await shot(page, "create-operation");
  log(`database created (${created.lines} log lines, streamed live)`);
  await page.getByRole("link", { name: /^database / }).click();
  await page.waitForURL(/\/portal\/databases\/[0-9a-f-]{36}$/);
  const dbUrl = page.url();
  const dbId = dbUrl.split("/").pop();
  await page.locator("#status").getByText("ready").waitFor();

  // --- Connection panel: no password in the page until revealed; reveal, copy, connect.
  const before = await page.content();
  const adminCred = (await api(process.env.TENANT_TOKEN, "GET", `/v1/databases/${dbId}/credentials/admin`)).body;
  assert.ok(!before.includes(adminCred.password), "a password is in the page before it was revealed");
  const uri = (await page.locator("#uri-admin").innerText()).trim();
  assert.ok(!uri.includes(adminCred.password) && uri.startsWith(`postgresql://${adminCred.username}@`), uri);
  await shot(page, "database");
  await page.locator('tr[data-access="admin"]').getByRole("button", { name: "Reveal" }).click();
  const password = (await page.locator("#revealed-password").innerText()).trim();
  assert.equal(password, adminCred.password);
  await page.locator('button[data-copy="revealed-password"]').click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), password, "the copy button copied something else");
  await shot(page, "password-revealed");
  assert.equal(psql(uri, password, "select current_user"), adminCred.username);
  await page.locator('button[data-copy="psql-admin"]').click();
  const psqlCmd = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(psqlCmd, `psql "${uri}"`);
  await page.goto(dbUrl);
  assert.ok(!(await page.content()).includes(password), "the revealed password is still in the page after a reload");
  log("credential revealed, copied and used with psql");

  // --- Rotate: the old password stops working, the new one works.
  await page.locator('tr[data-access="admin"]').getByRole("button", { name: "Rotate" }).click();
  await operationSucceeds(page, "rotate");
  const rotated = (await api(process.env.TENANT_TOKEN, "GET", `/v1/databases/${dbId}/credentials/admin`)).body;
  assert.notEqual(rotated.password, password);
  assert.ok(psqlFails(uri, password), "the old password still works after rotation");
  assert.equal(psql(uri, rotated.password, "select 1"), "1");
  log("rotated");

  // --- Lease: created with a countdown, usable, then revoked.
  await page.goto(dbUrl);
  await page.getByLabel("Access", { exact: true }).selectOption("read");
  await page.getByLabel("Valid for").fill("10m");
  await page.getByRole("button", { name: "Create lease" }).click();
  const leasePassword = (await page.locator("#lease-password").innerText()).trim();
  const leaseUser = (await page.locator("#lease-created").innerText()).replace("Lease created: ", "").trim();
  await page.locator(".countdown").first().filter({ hasText: "in " }).waitFor();
  await shot(page, "lease-created");
  const leaseUri = uri.replace(`//${adminCred.username}@`, `//${leaseUser}@`);
  for (let i = 0; i < 60 && psqlFails(leaseUri, leasePassword); i++) await new Promise((r) => setTimeout(r, 500));
  assert.ok(!psqlFails(leaseUri, leasePassword), "the lease's login does not work");
  await page.goto(dbUrl);
  await page.locator("#lease-table tr", { hasText: leaseUser }).getByRole("button", { name: "Revoke" }).click();
  await page.waitForURL(/#leases$/);
  let revoked = false;
  for (let i = 0; i < 60 && !revoked; i++) {
    revoked = psqlFails(leaseUri, leasePassword);
    if (!revoked) await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(revoked, "the revoked lease still logs in");
  log("lease created, used and revoked");

  // --- Maintenance.
  await page.goto(dbUrl);
  await page.getByLabel("Run now").selectOption("vacuum");
  await page.getByRole("button", { name: "Run", exact: true }).click();
  await operationSucceeds(page, "vacuum");
  log("maintenance ran");

  // --- Backup, then restore it as a new database.
  psql(uri, rotated.password, "create table items(id int primary key, name text); insert into items select g, 'n' || g from generate_series(1, 500) g");
  await page.goto(dbUrl);
  await page.getByRole("button", { name: "Take a backup" }).click();
  await operationSucceeds(page, "backup");
  await page.goto(dbUrl);
  const backupRow = page.locator("#backup-table tbody tr").first();
  await backupRow.getByText("succeeded").waitFor();
  await backupRow.getByLabel("As").selectOption("new");
  await backupRow.getByLabel("named").fill("orders-copy");
  await backupRow.getByRole("button", { name: "Restore" }).click();
  await operationSucceeds(page, "restore as new");
  await shot(page, "restore-operation");
  const copy = (await tenantDbs()).find((d) => d.name === "orders-copy");
  assert.ok(copy && copy.status === "ready", `restored database: ${JSON.stringify(copy)}`);
  const copyCred = (await api(process.env.TENANT_TOKEN, "GET", `/v1/databases/${copy.id}/credentials/admin`)).body;
  const copyUri = `postgresql://${copyCred.username}@${copy.host}:${copy.port}/${copy.physical_name}`;
  assert.equal(psql(copyUri, copyCred.password, "select count(*) from items"), "500");
  log("backup taken and restored as new (500 rows back)");

  // --- In place, then undone: the rows written after the backup come back with the undo.
  psql(uri, rotated.password, "insert into items select g, 'later' from generate_series(501, 520) g");
  await page.goto(dbUrl);
  const inPlaceRow = page.locator("#backup-table tbody tr").first();
  await inPlaceRow.getByLabel("As").selectOption("in_place");
  await inPlaceRow.getByRole("button", { name: "Restore" }).click();
  await operationSucceeds(page, "restore in place");
  assert.equal(psql(uri, rotated.password, "select count(*) from items"), "500");
  await page.goto(dbUrl);
  await page.locator("#undo-restore").waitFor();
  await shot(page, "undo-restore");
  await page.getByRole("button", { name: "Undo the restore" }).click();
  await operationSucceeds(page, "undo the restore");
  assert.equal(psql(uri, rotated.password, "select count(*) from items"), "520");
  log("restored in place, then undone (520 rows back)");

  // --- The list, filtered; the operations feed; the database as Terraform.
  await page.goto("/portal/databases?q=copy");
  assert.equal(await page.locator("#databases tbody tr").count(), 1);
  // Sizes come from the metrics collection (every second here).
  let size = "";
  for (let i = 0; i < 30 && !/^[0-9.]+ (B|KiB|MiB|GiB)$/.test(size); i++) {
    await page.goto("/portal/databases");
    size = (await page.locator("#databases tr", { hasText: "orders-copy" }).locator("td").nth(5).innerText()).trim();
    if (!/^[0-9.]+ (B|KiB|MiB|GiB)$/.test(size)) await new Promise((r) => setTimeout(r, 500));
  }
  assert.match(size, /^[0-9.]+ (B|KiB|MiB|GiB)$/, "no size in the list");
  await shot(page, "databases");
  await page.goto(dbUrl);
  const tf = await page.locator("#terraform-snippet").innerText();
  assert.ok(tf.includes('resource "dbaas_database" "orders"') && tf.includes(`id = "${dbId}"`), tf);
  await page.goto("/portal/operations");
  assert.ok((await page.locator("#operations tbody tr").count()) >= 6);
  await shot(page, "operations");
  // A new operation appears in the open feed by itself.
  const feedRows = await page.locator("#operations tbody tr").count();
  const started = await api(process.env.TENANT_TOKEN, "POST", `/v1/databases/${dbId}/maintenance`, { kind: "analyze" });
  assert.equal(started.status, 202);
  await page.locator(`#operations tr[data-op="${started.body.operation.id}"]`).waitFor({ timeout: 30_000 });
  assert.ok((await page.locator("#operations tbody tr").count()) > feedRows);
  log("feed updated live");

  // --- Another tenant's database is a 404, as in the API.
  const other = await page.goto(`/portal/databases/${process.env.OTHER_DB_ID}`);
  assert.equal(other.status(), 404);
  await shot(page, "other-tenant-404");
  const adminPage = await page.goto("/portal/admin");
  assert.equal(adminPage.status(), 403);
  await page.goto("/portal/databases");

  // --- CSRF: a POST without the form's token, or with a wrong one, is refused; nothing made.
  const n = (await tenantDbs()).length;
  for (const form of [{ name: "csrfless", instance: "local" }, { name: "csrfwrong", instance: "local", _csrf: "x".repeat(43) }]) {
    const r = await page.request.post("/portal/databases", { form, maxRedirects: 0 });
    assert.equal(r.status(), 403, `CSRF-less POST answered ${r.status()}`);
  }
  const foreign = await page.request.post("/portal/databases", {
    form: { name: "foreign", instance: "local", _csrf: await page.locator('input[name="_csrf"]').first().inputValue() },
    headers: { origin: "https://evil.example" },
    maxRedirects: 0,
  });
  assert.equal(foreign.status(), 403, "a cross-origin POST was accepted");
  assert.equal((await tenantDbs()).length, n, "a refused POST created a database");
  log("CSRF-less and cross-origin POSTs refused");

  // --- On a phone.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(dbUrl);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the database page scrolls sideways on a phone by ${overflow}px`);
  await shot(page, "database-phone");
  await page.setViewportSize({ width: 1280, height: 900 });

  // --- Delete (standard mode: dropped).
  await page.goto(copy ? `/portal/databases/${copy.id}` : dbUrl);
  await page.getByLabel("Type the database's name to confirm").fill("wrong");
  await page.getByRole("button", { name: /^Delete / }).click();
  await page.getByText("type the database's name exactly").waitFor();
  await page.getByLabel("Type the database's name to confirm").fill("orders-copy");
  await page.getByRole("button", { name: /^Delete / }).click();
  await operationSucceeds(page, "delete");
  log("deleted the copy");

  // --- Sign out: the session is gone.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/portal\/login(\?|$)/);
  await page.goto("/portal/databases");
  await page.waitForURL(/\/portal\/login(\?|$)/);
  const replay = await context.request.get("/portal/databases", { headers: { cookie: `dbaas_portal=${session.value}` }, maxRedirects: 0 });
  assert.equal(replay.status(), 303, "the signed-out session cookie still works");
  // A link to a page (as from chat) comes back to that page after signing in.
  await page.goto(dbUrl);
  await page.waitForURL(/\/portal\/login\?next=/);
  await page.getByLabel("API token").fill(process.env.TENANT_TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(dbUrl);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/portal\/login(\?|$)/);
  log("signed out; a deep link survives signing in");

  // --- An admin: instances with capacity, tenants, audit log.
  const adminCtx = await browser.newContext({ baseURL: BASE, viewport: { width: 1280, height: 900 } });
  const ap = await adminCtx.newPage();
  await ap.goto("/portal/login");
  await ap.getByLabel("API token").fill(process.env.ADMIN_TOKEN);
  await ap.getByRole("button", { name: "Sign in" }).click();
  await ap.waitForURL(/\/portal\/databases$/);
  assert.ok((await ap.locator("#databases tbody tr").count()) >= 2, "the admin does not see every tenant's databases");
  await ap.goto("/portal/admin");
  await ap.locator("#instance-table meter").first().waitFor();
  assert.ok(await ap.locator("#tenant-table").getByText("team-b").isVisible());
  await shot(ap, "admin");
  await ap.goto("/portal/admin/audit?tenant=team-a&action=POST%20/v1/databases");
  assert.ok((await ap.locator("#audit tbody tr").count()) >= 2, "the tenant's creates are not in the audit log");
  await shot(ap, "audit");
  log("admin pages");

  assert.deepEqual(consoleErrors, [], "errors in the browser console");
} catch (e) {
  // The page as it was when an expectation failed, beside the others.
  for (const ctx of browser.contexts()) {
    for (const [i, p] of ctx.pages().entries()) {
      await p.screenshot({ path: `${SHOTS}/failure-${i}.png`, fullPage: true }).catch(() => {});
      console.error(`page ${i} at failure: ${p.url()}\n${(await p.content().catch(() => "")).slice(0, 4000)}`);
    }
  }
  throw e;
} finally {
  await browser.close();
}
log("all passed");
