// Drives Debian's Chromium through the restock UI: open the DAG list,
// open a DAG, trigger a run, watch it finish on the run page, open a log.
// Usage: node ui.mjs BASE_URL DAG_ID ARTIFACT_DIR
import { scenario } from "./browser.mjs";

const [base, dagId, artifacts] = process.argv.slice(2);
await scenario(artifacts, async (page, shot) => {
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
});
