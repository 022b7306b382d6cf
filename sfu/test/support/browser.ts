// Real-browser participants for the SFU tests: headless Debian chromium (through
// @hearth/browser-testing) running test/pages/call_client.ts against an in-process SFU.
import { fileURLToPath } from 'node:url';
import {
  bundleForBrowser,
  chromiumAvailable,
  chromiumPath,
  launchBrowser,
  loadTestPage,
  newCallPage,
  type Browser,
  type Page,
} from '@hearth/browser-testing';
import { until } from './sfu.js';

export { chromiumAvailable, launchBrowser, type Browser };

/** Prints why browser tests are skipped; they only skip when chromium is missing. */
export function browserSkipReason(): string | null {
  return chromiumAvailable() ? null : `chromium not found at ${chromiumPath()} (apt-get install chromium); skipping SFU browser tests`;
}

let bundle: Promise<string> | null = null;
function clientBundle(): Promise<string> {
  bundle ??= bundleForBrowser(fileURLToPath(new URL('../pages/call_client.ts', import.meta.url)));
  return bundle;
}

export interface InboundReport {
  consumerId: string;
  producerId: string;
  participantId: string;
  source: string;
  kind: string;
  bytes: number;
  muted: boolean;
  paused: boolean;
}

/** One browser participant; methods call into window.sfuTest in its page. */
export class BrowserParticipant {
  participantId = '';
  readonly log: string[] = [];

  private constructor(
    readonly name: string,
    readonly page: Page,
  ) {}

  static async open(browser: Browser, name: string): Promise<BrowserParticipant> {
    const log: string[] = [];
    const page = await newCallPage(browser, { onConsole: (l) => log.push(l) });
    await loadTestPage(page, { scripts: [await clientBundle()] });
    const p = new BrowserParticipant(name, page);
    p.log.push(...log);
    page.on('console', (m) => p.log.push(m.text()));
    return p;
  }

  /** Runs `fn(window.sfuTest, arg)` in the page. */
  run<R, A = undefined>(fn: (client: any, arg: A) => R | Promise<R>, arg?: A): Promise<R> {
    return this.page.evaluate(
      async ([src, a]) => {
        const f = new Function(`return (${src})`)();
        return f((globalThis as any).sfuTest, a);
      },
      [fn.toString(), arg] as const,
    ) as Promise<R>;
  }

  async join(url: string, token: string, roomId: string, opts: { forceTcp?: boolean; autoConsume?: boolean } = {}): Promise<string> {
    await this.run((c, a: { url: string }) => (c.ws ? null : c.connect(a.url)), { url });
    this.participantId = await this.run((c, a: any) => c.join(a.token, a.roomId, a.opts), { token, roomId, opts });
    return this.participantId;
  }

  inbound(): Promise<InboundReport[]> {
    return this.run((c) => c.inbound());
  }

  notifications(method: string): Promise<any[]> {
    return this.run((c, m: string) => c.notifications.filter((n: any) => n.method === m).map((n: any) => n.params), method);
  }

  async waitForNotification(method: string, pred: (params: any) => boolean = () => true): Promise<any> {
    return until(`${this.name}: ${method}`, async () => (await this.notifications(method)).find(pred));
  }

  /**
   * Waits until this participant receives media from `from` (a participant id) for each listed
   * source: every matching consumer's inbound bytes are non-zero and then grow past a first reading.
   */
  async waitForMediaFrom(from: string, sources: string[]): Promise<void> {
    const pick = async () => (await this.inbound()).filter((r) => r.participantId === from && sources.includes(r.source));
    const first = await until(`${this.name}: media from ${from} (${sources.join(',')})`, async () => {
      const rs = await pick();
      return rs.length === sources.length && rs.every((r) => r.bytes > 0) ? rs : null;
    });
    await until(`${this.name}: media from ${from} keeps flowing`, async () => {
      const rs = await pick();
      return rs.every((r) => r.bytes > first.find((f) => f.consumerId === r.consumerId)!.bytes);
    });
  }

  async close(): Promise<void> {
    await this.page.context().close();
  }
}
