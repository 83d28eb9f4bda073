// Drives Debian's Chromium through the planning pages: from the DAG page
// to its planning page, filter the anomalies by severity, open a SKU and
// see its chart.
// Usage: node planning.mjs BASE_URL DAG_ID ARTIFACT_DIR
import { scenario } from "./browser.mjs";

const [base, dagId, artifacts] = process.argv.slice(2);
await scenario(artifacts, async (page, shot) => {
  await page.goto(`${base}/dags/${dagId}`);
  await page.click("#planning-link");
  await page.waitForSelector("#anomalies tbody tr");
  await page.waitForSelector("#orders");
  await shot("planning");
  const total = await page.$$eval("#anomalies tbody tr", (els) => els.length);
  await page.selectOption('#anomaly-filter select[name="severity"]', "critical");
  await page.click('#anomaly-filter button[type="submit"]');
  await page.waitForURL(/severity=critical/);
  const sev = await page.$$eval("#anomalies tbody tr", (els) => els.map((e) => e.className));
  if (sev.length === 0 || sev.length > total && total < 25) throw new Error(`critical rows: ${sev.length} of ${total}`);
  if (!sev.every((c) => c === "sev-critical")) throw new Error("filtered rows: " + sev.join(","));
  await shot("critical");
  const link = page.locator("#anomalies tbody a").first();
  const sku = (await link.textContent()).trim();
  await link.click();
  await page.waitForSelector("#chart svg polygon");
  const title = await page.textContent("#sku-title");
  if (!title.startsWith(sku + " @ ")) throw new Error(`SKU page title: ${title}`);
  const lines = await page.$$eval("#chart svg line", (els) => els.length);
  if (lines < 10) throw new Error(`chart has ${lines} lines`);
  await shot("sku");
});
