// Launches Debian's Chromium through playwright-core with a fresh profile
// and runs one scenario; screenshots of every step land in ARTIFACT_DIR
// (the Rust test keeps them when the scenario fails).
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export async function scenario(artifacts, body) {
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
    await body(page, shot);
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
}
