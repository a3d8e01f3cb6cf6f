// Drives headless Chromium through a fake provider's consent page for TestConnect
// (internal/e2e/connect_test.go), which runs `starter connect` and passes what the
// starter printed through the environment:
//
//   CONSENT_CHROMIUM   the Chromium executable
//   CONSENT_URL        the authorization URL the starter printed
//   CONSENT_DECISION   the button to click: "Approve" or "Deny"
//   CONSENT_SHOTS_DIR  where <name>-consent.png and <name>-callback.png go
//   CONSENT_NAME       the prefix of the screenshots
//
// It opens the page, clicks the button, waits for the starter's callback page to say
// how it went, and prints that page's text alone on stdout. Never the callback's
// address: its query holds the authorization code.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`consent: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const executablePath = need('CONSENT_CHROMIUM');
const authURL = need('CONSENT_URL');
const decision = need('CONSENT_DECISION');
const shotsDir = need('CONSENT_SHOTS_DIR');
const name = need('CONSENT_NAME');
mkdirSync(shotsDir, { recursive: true });

// The same quiet, fresh profile as webui.mjs.
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let code = 0;
try {
  const page = await (await browser.newContext({ viewport: { width: 900, height: 600 } })).newPage();
  await page.goto(authURL, { waitUntil: 'domcontentloaded' });
  await page.screenshot({ path: join(shotsDir, `${name}-consent.png`) });
  // The form posts to the provider, which redirects to the starter's loopback callback;
  // that page appears once the starter has exchanged the code and stored the credential.
  await Promise.all([
    page.waitForSelector('#result', { timeout: 90000 }),
    page.getByRole('button', { name: decision }).click(),
  ]);
  await page.screenshot({ path: join(shotsDir, `${name}-callback.png`) });
  console.log((await page.locator('#result').innerText()).trim());
} catch (e) {
  console.error(`consent: ${e.message}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
