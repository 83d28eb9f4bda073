// Drives Debian's Chromium through the restock UI: open the DAG list,
// open a DAG, trigger a run, watch it finish on the run page, open a log.
// Usage: node ui.mjs BASE_URL DAG_ID ARTIFACT_DIR
// Screenshots of every step land in ARTIFACT_DIR; the test keeps them
// when it fails.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [base, dagId, artifacts] = process.argv.slice(2);
fs.mkdirSync(artifacts, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "restock-chromium-"));
// A fresh profile (--user-data-dir) per run, handed over the way
// Playwright wants it.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const page = browser.pages()[0] || (await browser.newPage());
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
let step = 0;
const shot = async (name) => page.screenshot({ path: path.join(artifacts, `${String(++step).padStart(2, "0")}-${name}.png`), fullPage: true });
try {
  await page.goto(base + "/");
  await page.waitForSelector(`tr[data-dag="${dagId}"] a.dag-link`);
  await shot("dags");
  await page.click(`tr[data-dag="${dagId}"] a.dag-link`);
  await page.waitForSelector("#trigger");
  await shot("dag");
  await page.fill('input[name="logical_date"]', "2026-11-27");
  await page.click("#trigger");
  await page.waitForURL(/\/runs\//, { timeout: 15000 });
  await page.waitForFunction(() => document.getElementById("run-state")?.textContent === "succeeded", null, { timeout: 60000 });
  await shot("run-succeeded");
  const states = await page.$$eval("#tasks .state", (els) => els.map((e) => e.textContent));
  if (!states.every((s) => s === "succeeded")) throw new Error("task states: " + states.join(","));
  await page.click("#tasks a.log-link");
  await page.waitForFunction(() => (document.getElementById("log")?.textContent || "").includes("<b>hello</b>"), null, { timeout: 15000 });
  // Escaped: the log's markup is text, not elements.
  const bold = await page.$$eval("#log b", (els) => els.length);
  if (bold !== 0) throw new Error("log text was parsed as HTML");
  await shot("log");
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  console.log("browser test passed");
} catch (e) {
  await shot("failure").catch(() => {});
  console.error(String(e && e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
