// Drives Debian's Chromium through the planning pages: from the DAG page
// to its planning page, check the headline (the mail's capped list and
// the share of the money at risk it covers, against the full list from
// the API), filter the anomalies by severity, open a SKU and see its chart.
// Usage: node planning.mjs BASE_URL DAG_ID ARTIFACT_DIR [HEADLINE_CAP]
import { scenario } from "./browser.mjs";

const [base, dagId, artifacts, wantCap] = process.argv.slice(2);

/// Every anomaly of the planned run, from the API, page by page.
async function allAnomalies(page) {
  const rows = [];
  for (;;) {
    const r = await page.request.get(`${base}/api/v1/dags/${dagId}/planning/anomalies?limit=100&offset=${rows.length}`);
    if (!r.ok()) throw new Error(`anomalies API: ${r.status()}`);
    const j = await r.json();
    rows.push(...j.anomalies);
    if (j.anomalies.length === 0 || rows.length >= j.total_entries) return rows;
  }
}

async function checkHeadline(page) {
  if (!(await page.isVisible("#headline"))) throw new Error("no headline section");
  const cap = Number(await page.getAttribute("#headline", "data-cap"));
  if (wantCap !== undefined && cap !== Number(wantCap)) throw new Error(`headline cap ${cap}, want ${wantCap}`);
  const all = await allAnomalies(page);
  const flagged = all.filter((a) => a.headline).length;
  if (wantCap !== undefined && flagged <= cap) throw new Error(`${flagged} headline rows do not exercise the cap ${cap}`);
  const ranks = await page.$$eval("#headline-lines tbody tr", (els) => els.map((e) => Number(e.cells[0].textContent)));
  if (ranks.length !== Math.min(cap, flagged)) throw new Error(`headline has ${ranks.length} lines; cap ${cap}, ${flagged} flagged`);
  const byRank = new Map(all.map((a) => [a.rank, a]));
  const lines = ranks.map((r) => byRank.get(r));
  if (!lines.every((a) => a && a.headline)) throw new Error(`headline lines not flagged by the monitor: ${ranks}`);
  const money = lines.map((a) => a.money_at_risk);
  if (!money.every((m, i) => i === 0 || money[i - 1] >= m)) throw new Error(`not ranked by money: ${money}`);
  if (flagged > cap) {
    const left = all.filter((a) => a.headline && !ranks.includes(a.rank)).map((a) => a.money_at_risk);
    if (left.some((m) => m > money[money.length - 1])) throw new Error(`a larger figure left out: ${left}`);
  }
  const total = all.reduce((s, a) => s + (a.money_at_risk ?? 0), 0);
  const pct = Math.round((100 * money.reduce((s, m) => s + m, 0)) / total);
  const fmt = total.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const n = ranks.length === 1 ? "This line covers" : `These ${ranks.length} lines cover`;
  const want = `${n} ${pct}% of tonight's money at risk (total ${fmt}).`;
  const said = (await page.textContent("#headline-share")).trim();
  if (said !== want) throw new Error(`headline share: ${said}; want: ${want}`);
}

await scenario(artifacts, async (page, shot) => {
  await page.goto(`${base}/dags/${dagId}`);
  await page.click("#planning-link");
  await page.waitForSelector("#anomalies tbody tr");
  await page.waitForSelector("#orders");
  await shot("planning");
  await checkHeadline(page);
  if (!(await page.isVisible("#held-title"))) throw new Error("held lines are not shown apart");
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
