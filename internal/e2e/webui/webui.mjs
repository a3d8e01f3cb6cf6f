// Drives headless Chromium against the Temporal dev server's Web UI for TestWebUI
// (internal/e2e/webui_test.go), which starts the dev server, the worker (codec endpoint),
// the fake provider and the credentials, and passes everything through the environment:
//
//   WEBUI_CHROMIUM     the Chromium executable
//   WEBUI_BASE         the UI's origin, e.g. http://127.0.0.1:41234
//   WEBUI_PAGES        JSON: [{"name", "path", "expect": [...], "absent": [...]}]; each page is
//                      opened at WEBUI_BASE+path and reloaded until its text holds every
//                      "expect" string (or the timeout passes); "absent" strings are waited
//                      out too (the UI may render a stale list first)
//   WEBUI_SHOTS_DIR    where <name>.png goes (the CI artifacts)
//   WEBUI_TEXT_DIR     where <name>.txt (the page's visible text) and <name>.html (its
//                      DOM) go, for the Go test's assertions
//   WEBUI_TIMEOUT_MS   per page, default 60000
//
// The script itself asserts only that the expected strings showed up; it exits 1 with
// the page text otherwise. The Go test checks the texts again, and for secrets.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`webui: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const executablePath = need('WEBUI_CHROMIUM');
const base = need('WEBUI_BASE');
const pages = JSON.parse(need('WEBUI_PAGES'));
const shotsDir = need('WEBUI_SHOTS_DIR');
const textDir = need('WEBUI_TEXT_DIR');
const timeoutMs = Number(process.env.WEBUI_TIMEOUT_MS || 60000);
mkdirSync(shotsDir, { recursive: true });
mkdirSync(textDir, { recursive: true });

// A fresh profile and no background traffic: on a closed network Chromium's own
// connections (updates, sync, safe browsing) fail and slow everything down.
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const page = await context.newPage();
  const log = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => log.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.url().includes('/codec/')) log.push(`codec: ${r.request().method()} ${r.url()} -> ${r.status()}`);
  });

  for (const p of pages) {
    const started = Date.now();
    const url = base + p.path;
    const expect = p.expect || [];
    const absent = p.absent || [];
    let text = '';
    let missing = expect;
    let present = [];
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    let loaded = Date.now();
    for (;;) {
      // The UI fetches from the server and then from the codec endpoint after the
      // first render; poll the text rather than guess at selectors.
      await page.waitForTimeout(500);
      text = await page.locator('body').innerText();
      missing = expect.filter((s) => !text.includes(s));
      present = absent.filter((s) => text.includes(s));
      if (missing.length === 0 && present.length === 0) break;
      if (Date.now() - started > timeoutMs) break;
      // Reload now and then: visibility may lag behind a state change.
      if (Date.now() - loaded > 10000) {
        await page.reload({ waitUntil: 'domcontentloaded' });
        loaded = Date.now();
      }
    }
    // Let late decodes and layout settle before the picture.
    await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => {});
    text = await page.locator('body').innerText();
    writeFileSync(join(textDir, `${p.name}.txt`), text);
    writeFileSync(join(textDir, `${p.name}.html`), await page.content());
    await page.screenshot({ path: join(shotsDir, `${p.name}.png`), fullPage: true });
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    if (missing.length || present.length) {
      failed = true;
      console.error(`webui: ${p.name} (${url}) after ${secs}s: missing ${JSON.stringify(missing)}, unexpectedly present ${JSON.stringify(present)}`);
      console.error(`--- page text ---\n${text}\n--- end ---`);
    } else {
      console.log(`webui: ${p.name} (${url}) ok after ${secs}s`);
    }
  }
  if (failed && log.length) console.error(`--- browser log ---\n${log.join('\n')}\n--- end ---`);
  await context.close();
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
