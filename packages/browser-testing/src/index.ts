// Shared helpers for tests that drive a real browser (calls, SFU, web client).
//
// Debian's chromium (apt) driven by playwright-core; `npx playwright install` cannot work on
// these machines, so the browser is never downloaded. Measured flags and behaviour:
// /work/shared/notes/mediasoup-worker-offline.md.
//
//   const browser = await launchBrowser();
//   const page = await newCallPage(browser, { onConsole: (l) => console.log('alice', l) });
//   await loadTestPage(page, { scripts: [await bundleForBrowser('test/pages/call.ts')] });
//   ...
//   await browser.close();
import { existsSync } from 'node:fs';
import path from 'node:path';
import { build, type Format } from 'esbuild';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';

export type { Browser, BrowserContext, Page } from 'playwright-core';

/** The chromium binary; HEARTH_CHROMIUM_PATH overrides Debian's /usr/bin/chromium. */
export function chromiumPath(): string {
  return process.env.HEARTH_CHROMIUM_PATH ?? '/usr/bin/chromium';
}

/** True when the chromium binary exists (tests may report a clear error instead of a launch failure). */
export function chromiumAvailable(): boolean {
  return existsSync(chromiumPath());
}

/**
 * Flags for a headless chromium in a container: no sandbox (root, no user namespaces), no GPU,
 * no background traffic, and fake camera/microphone devices with the permission prompt
 * auto-accepted. QUIC is off so nothing but the test's own traffic goes over UDP.
 */
export const CHROMIUM_FLAGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
];

export interface LaunchOptions {
  /** Added after CHROMIUM_FLAGS. */
  extraArgs?: readonly string[];
}

/** Starts a headless chromium. The caller closes it (`browser.close()`), also on failure. */
export async function launchBrowser(opts: LaunchOptions = {}): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!existsSync(executablePath)) {
    throw new Error(`chromium not found at ${executablePath} (apt-get install chromium, or set HEARTH_CHROMIUM_PATH)`);
  }
  return chromium.launch({
    executablePath,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...(opts.extraArgs ?? [])],
  });
}

export interface CallPageOptions {
  /** Origin granted the permissions; default: every origin. */
  origin?: string;
  /** Receives each console message and uncaught page error, e.g. to prefix and print them. */
  onConsole?: (line: string) => void;
  /** Extra playwright context options (viewport, baseURL, ...). */
  context?: BrowserContextOptions;
}

/**
 * A page in its own browser context (own cookies/storage, like a separate user) with camera,
 * microphone and local-network (fetch/WebSocket to 127.0.0.1 test servers) permission granted. Close it with `page.context().close()` (or close the browser).
 */
export async function newCallPage(browser: Browser, opts: CallPageOptions = {}): Promise<Page> {
  const context = await browser.newContext(opts.context);
  // local-network-access: chromium's Local Network Access checks block a page (served by the
  // router, i.e. from no address at all) from fetching 127.0.0.1, where the test servers listen.
  await context.grantPermissions(['camera', 'microphone', 'local-network-access'], opts.origin ? { origin: opts.origin } : undefined);
  const page = await context.newPage();
  const onConsole = opts.onConsole;
  if (onConsole) {
    page.on('console', (m) => onConsole(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => onConsole(`[pageerror] ${e.message}`));
  }
  return page;
}

export interface TestPageOptions {
  /**
   * URL the page appears to come from (served by playwright's router, no server needed).
   * Default http://localhost:9/ : a secure context, so getUserMedia and WebCrypto work, and an
   * origin no real server answers on. Requests to other URLs go to the network as usual.
   */
  url?: string;
  /** Markup for <body>. */
  body?: string;
  /** Script texts (e.g. from bundleForBrowser) run in order after <body>, as classic scripts. */
  scripts?: readonly string[];
}

/** Navigates `page` to a synthetic HTML page holding the given scripts. */
export async function loadTestPage(page: Page, opts: TestPageOptions = {}): Promise<void> {
  const url = opts.url ?? 'http://localhost:9/';
  // A `</script>` inside bundled code would end the tag early.
  const scripts = (opts.scripts ?? []).map((s) => `<script>${s.replace(/<\/script/gi, '<\\/script')}</script>`);
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>test</title></head><body>${opts.body ?? ''}${scripts.join('')}</body></html>`;
  await page.route(url, (route) => route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html }));
  await page.goto(url);
}

export interface BundleOptions {
  /** 'iife' (default, for <script> / page.addScriptTag({ content })) or 'esm' (for type="module"). */
  format?: Extract<Format, 'iife' | 'esm'>;
  /** With 'iife': the entry's exports become `globalThis[globalName]`. */
  globalName?: string;
  /** Compile-time constants, e.g. { 'process.env.NODE_ENV': '"test"' }. */
  define?: Record<string, string>;
}

/**
 * Bundles a TypeScript/JavaScript entry file (path absolute or relative to the cwd) and its
 * imports for the browser; returns the JS text. Workspace packages resolve through their
 * "source" export condition, so no build step is needed. Inline source maps keep page stack
 * traces readable.
 */
export async function bundleForBrowser(entry: string, opts: BundleOptions = {}): Promise<string> {
  const result = await build({
    entryPoints: [path.resolve(entry)],
    bundle: true,
    write: false,
    format: opts.format ?? 'iife',
    ...(opts.globalName ? { globalName: opts.globalName } : {}),
    platform: 'browser',
    target: 'chrome120',
    conditions: ['source'],
    sourcemap: 'inline',
    define: opts.define ?? {},
    logLevel: 'silent',
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error(`esbuild produced no output for ${entry}`);
  return out.text;
}
