// Drives Debian's Chromium through the overrides form: from the DAG page
// to its overrides page, add a forecast adjustment and see it listed, then
// submit an exclusion without a reason and see the API's message naming
// the field, with nothing added to the list; then edit the row through
// the form and withdraw it with its own button.
// Usage: node overrides.mjs BASE_URL DAG_ID ARTIFACT_DIR
import { scenario } from "./browser.mjs";

const [base, dagId, artifacts] = process.argv.slice(2);
const rows = (page) => page.$$eval("#overrides tbody tr", (els) => els.map((e) => e.textContent));
await scenario(artifacts, async (page, shot) => {
  await page.goto(`${base}/dags/${dagId}`);
  await page.click("#overrides-link");
  await page.waitForSelector("#override-form");
  if ((await rows(page)).length !== 0) throw new Error("overrides before any was added");
  await shot("empty");

  await page.selectOption('#override-form select[name="kind"]', "forecast_multiply");
  await page.fill('#override-form input[data-key="store"]', "CA_1");
  await page.fill('#override-form input[data-key="sku"]', "A");
  await page.fill('#override-form input[name="start_date"]', "2026-12-01");
  await page.fill('#override-form input[name="end_date"]', "2026-12-07");
  await page.fill('#override-form input[name="value"]', "1.2");
  await page.fill('#override-form input[name="author"]', "alice");
  await page.fill('#override-form input[name="reason"]', "store opening");
  await page.click("#override-submit");
  await page.waitForFunction(() => document.querySelectorAll("#overrides tbody tr").length === 1, null, { timeout: 15000 });
  const [listed] = await rows(page);
  for (const want of ["forecast_multiply", "sku=A, store=CA_1", "2026-12-01", "2026-12-07", "1.2", "alice", "store opening"]) {
    if (!listed.includes(want)) throw new Error(`listed row lacks ${want}: ${listed}`);
  }
  if ((await page.textContent("#override-error")) !== "") throw new Error("an error after a valid row");
  await shot("added");

  await page.selectOption('#override-form select[name="kind"]', "exclude");
  await page.fill('#override-form input[data-key="sku"]', "B");
  await page.fill('#override-form input[name="author"]', "bob");
  await page.fill('#override-form input[name="reason"]', "");
  await page.click("#override-submit");
  await page.waitForFunction(() => (document.getElementById("override-error")?.textContent || "") !== "", null, { timeout: 15000 });
  const error = await page.textContent("#override-error");
  if (!/^request row 1: override ui-[0-9a-z-]+ has no `reason` \(every override needs one\)$/.test(error)) {
    throw new Error(`error shown: ${error}`);
  }
  const after = await rows(page);
  if (after.length !== 1) throw new Error(`rows after the refused one: ${after.join(" | ")}`);
  // The list survives a reload: it is what the server stored.
  await page.reload();
  await page.waitForSelector("#override-form");
  const reloaded = await rows(page);
  if (reloaded.length !== 1 || !reloaded[0].includes("store opening")) throw new Error(`after reload: ${reloaded.join(" | ")}`);
  await shot("refused");

  // Edit: the row's Edit button loads it into the form, whose submit
  // replaces it (the old version is listed as withdrawn).
  await page.click("#overrides tbody tr .override-edit");
  await page.waitForFunction(() => document.getElementById("override-heading").textContent.startsWith("Edit override ui-"));
  if ((await page.inputValue('#override-form input[name="reason"]')) !== "store opening") throw new Error("the form does not hold the row");
  await page.fill('#override-form input[name="value"]', "1.3");
  await page.fill('#override-form input[name="author"]', "carol");
  await page.click("#override-submit");
  await page.waitForFunction(() => document.querySelectorAll("#withdrawn tbody tr").length === 1, null, { timeout: 15000 });
  const [edited] = await rows(page);
  if (!edited.includes("1.3") || !edited.includes("carol")) throw new Error(`edited row: ${edited}`);
  if ((await page.textContent("#override-heading")) !== "New override") throw new Error("still editing after the save");
  await shot("edited");

  // Withdraw: who and why in the row's own form, then the button.
  await page.fill('#overrides tbody tr form.withdraw input[name="author"]', "dave");
  await page.fill('#overrides tbody tr form.withdraw input[name="reason"]', "opening postponed");
  await page.click('#overrides tbody tr form.withdraw button[type="submit"]');
  await page.waitForFunction(() => document.querySelectorAll("#overrides tbody tr").length === 0, null, { timeout: 15000 });
  const gone = await page.$$eval("#withdrawn tbody tr", (els) => els.map((e) => e.textContent));
  if (gone.length !== 2 || !gone.some((t) => t.includes("dave") && t.includes("opening postponed"))) {
    throw new Error(`withdrawn rows: ${gone.join(" | ")}`);
  }
  await shot("withdrawn");
});
