import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bundleForBrowser, chromiumAvailable, launchBrowser, loadTestPage, newCallPage } from '../src/index.js';

const smokeEntry = fileURLToPath(new URL('../pages/media_smoke.ts', import.meta.url));

test('chromium is installed where launchBrowser looks', () => {
  assert.ok(chromiumAvailable(), 'apt-get install chromium (or set HEARTH_CHROMIUM_PATH)');
});

test('bundleForBrowser returns an iife exposing the entry under globalName', async () => {
  const js = await bundleForBrowser(smokeEntry, { globalName: 'smoke' });
  assert.match(js, /var smoke = /);
  assert.match(js, /trackKinds/); // the imported module is inlined
  assert.not.match(js, /^import /m);
});

test('a call page has fake camera + microphone, granted without a prompt', async () => {
  const browser = await launchBrowser();
  try {
    const logs: string[] = [];
    const page = await newCallPage(browser, { onConsole: (l) => logs.push(l) });
    await loadTestPage(page, { scripts: [await bundleForBrowser(smokeEntry, { globalName: 'smoke' })] });
    const r = await page.evaluate(() => (globalThis as any).smoke.fakeMedia());
    assert.equal(r, { kinds: ['audio', 'video'], secure: true });
    await page.evaluate(() => console.log('hello from the page'));
    assert.ok(logs.includes('[log] hello from the page'), logs.join('\n'));
  } finally {
    await browser.close();
  }
});

test.run();
