import { suite, type Test } from 'uvu';
import * as sdk from 'matrix-js-sdk';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';
import { LoggerLevel, Tracing } from '@matrix-org/matrix-sdk-crypto-wasm';
import { startTestServer, registerUser, type TestServer } from './harness.js';
import { beforeAll } from './hooks.js';
import type { User } from './rooms.js';

/**
 * Helpers for the matrix-js-sdk (37.x) suites: quiet logs, timers, clients (plain or with the Rust
 * crypto), waiting on SDK events, and a suite fixture. Typical use:
 *
 *   quietSdk();
 *   const t = sdkSuite('matrix-js-sdk 37: …', ['alice', 'bob']);
 *   t('…', async (ctx) => {
 *     const alice = await cryptoClient(ctx.baseUrl, ctx.alice, { track: ctx.clients });
 *     await waitUntil(alice, [sdk.RoomEvent.Timeline], () => …, 'what is awaited');
 *   });
 */

/** How long a wait for the SDK to reflect something lasts, by default, before the test fails. */
export const SDK_WAIT_MS = 20_000;

/** The real setTimeout, for the waits' own deadlines (unrefLongTimers may lower its threshold under them). */
const realSetTimeout = globalThis.setTimeout;

/** Silences the SDK's logger (sync progress, push-rule fix-ups) and the child loggers it names. */
export function quietSdk(children: string[] = ['[MatrixRTCSessionManager]']): void {
  for (const l of [sdkLogger, ...children.map((c) => sdkLogger.getChild(c))]) (l as unknown as { setLevel(level: 'silent'): void }).setLevel('silent');
}

/**
 * The SDK arms a local timeout for every request (pollTimeout + 80 s for each /sync) and never
 * clears it, so a stopped client would hold the test process open. Until the returned function is
 * called, timers of `minMs` or more (default a minute) do not keep the process alive (they still
 * fire). waitUntil's own deadline is unaffected.
 */
export function unrefLongTimers(minMs = 60_000): () => void {
  const real = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = real(fn, ms, ...args);
    if ((ms ?? 0) >= minMs) timer.unref();
    return timer;
  }) as typeof setTimeout;
  return () => {
    globalThis.setTimeout = real;
  };
}

/**
 * Replaces `console[m]` for each of `methods` with a no-op (the wasm crypto traces through
 * console.debug, the SDK's per-room crypto loggers through log/info); returns the restore function.
 */
export function muteConsole(methods: readonly ('debug' | 'log' | 'info' | 'warn')[] = ['debug', 'log', 'info']): () => void {
  const saved = methods.map((m) => [m, console[m]] as const);
  for (const m of methods) console[m] = () => {};
  return () => {
    for (const [m, f] of saved) console[m] = f;
  };
}

/** A client for an already registered user (not started). */
export const clientFor = (baseUrl: string, u: User): sdk.MatrixClient =>
  sdk.createClient({ baseUrl, accessToken: u.access_token, userId: u.user_id, deviceId: u.device_id });

/**
 * Resolves once `check()` holds, re-evaluated whenever `emitter` emits one of `events` (no
 * polling); fails with `what` after `timeoutMs`, or when `check` throws or rejects. A synchronous
 * check is evaluated at once on each event; an async one (e.g. asking the crypto API) is awaited.
 */
export function waitUntil(
  emitter: unknown,
  events: string[],
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = SDK_WAIT_MS,
): Promise<void> {
  const e = emitter as { on(ev: string, f: () => void): void; off(ev: string, f: () => void): void };
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = (err?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      for (const ev of events) e.off(ev, listener);
      if (err) reject(err);
      else resolve();
    };
    const listener = () => {
      if (finished) return;
      let held: boolean | Promise<boolean>;
      try {
        held = check();
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (typeof held === 'boolean') {
        if (held) finish();
      } else {
        held.then((ok) => ok && finish(), (err: unknown) => finish(err as Error));
      }
    };
    const timer = realSetTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    for (const ev of events) e.on(ev, listener);
    listener();
  });
}

/** Starts the client's sync loop and resolves once its first sync is processed (fails on a sync error). */
export async function startSynced(client: sdk.MatrixClient, opts: sdk.IStartClientOpts = {}, timeoutMs = SDK_WAIT_MS): Promise<void> {
  let failure: unknown;
  const onSync = (state: sdk.SyncState, _prev: sdk.SyncState | null, data?: { error?: unknown }) => {
    if (state === sdk.SyncState.Error) failure ??= data?.error ?? new Error('sync error');
  };
  client.on(sdk.ClientEvent.Sync, onSync);
  try {
    await client.startClient(opts);
    await waitUntil(
      client,
      [sdk.ClientEvent.Sync],
      () => {
        if (failure !== undefined) throw new Error(`the SDK's sync failed: ${String(failure)}`);
        return client.isInitialSyncComplete();
      },
      `${client.getUserId()} ${client.getDeviceId()}'s initial sync`,
      timeoutMs,
    );
  } finally {
    client.off(sdk.ClientEvent.Sync, onSync);
  }
}

export interface CryptoClientOptions {
  /** The client is pushed here before anything can fail, so the suite's `after` can stop it. */
  track?: sdk.MatrixClient[];
  /** startClient options (default `{ initialSyncLimit: 20 }`); `false` returns the client unstarted. */
  start?: sdk.IStartClientOpts | false;
  /** How long the first sync may take (default SDK_WAIT_MS). */
  timeoutMs?: number;
}

/**
 * A client for `u` with the SDK's Rust crypto, its stores in memory, started and past its first
 * sync (unless `start: false`). Mute console.debug (muteConsole) around suites that use it: the
 * wasm module logs through it.
 */
export async function cryptoClient(baseUrl: string, u: User, opts: CryptoClientOptions = {}): Promise<sdk.MatrixClient> {
  const client = clientFor(baseUrl, u);
  opts.track?.push(client);
  await client.initRustCrypto({ useIndexedDB: false });
  // initRustCrypto turns the wasm module's tracing on at debug level: keep only errors (the
  // expected "no key for an older message" warnings would read like failures).
  new Tracing(LoggerLevel.Error).turnOn();
  if (opts.start !== false) await startSynced(client, opts.start ?? { initialSyncLimit: 20 }, opts.timeoutMs);
  return client;
}

export interface SdkSuiteOptions {
  /** The server (default startTestServer()); it is given a real port. */
  server?: () => Promise<TestServer>;
  /** unrefLongTimers' threshold (default a minute). */
  unrefTimersFrom?: number;
  /** Mute console.debug/log/info while the suite runs (suites with the Rust crypto). */
  muteConsole?: boolean;
}

/** The context of an sdkSuite: the server, its base URL, the clients to stop, and the users by localpart. */
export type SdkCtx<N extends string = never> = { s: TestServer; baseUrl: string; clients: sdk.MatrixClient[] } & Record<N, User>;

/**
 * A suite with its own listening test server and these registered users (context keys =
 * localparts). Long SDK timers are unref'd while it runs; every client pushed to `ctx.clients` is
 * stopped after it, then the server and its database go away.
 */
export function sdkSuite<N extends string = never>(name: string, localparts: readonly N[] = [], opts: SdkSuiteOptions = {}): Test<SdkCtx<N>> {
  const t = suite<SdkCtx<N>>(name);
  const restore: (() => void)[] = [];
  beforeAll(t, async (ctx) => {
    restore.push(unrefLongTimers(opts.unrefTimersFrom));
    if (opts.muteConsole) restore.push(muteConsole());
    ctx.clients = [];
    ctx.s = await (opts.server ?? (() => startTestServer()))();
    ctx.baseUrl = await ctx.s.listen();
    for (const l of localparts) (ctx as Record<string, unknown>)[l] = await registerUser(ctx.s, l);
  });
  t.after(async (ctx) => {
    for (const c of ctx.clients ?? []) c.stopClient();
    await ctx.s?.close();
    for (const r of restore.splice(0).reverse()) r();
  });
  return t;
}

/** The decrypted body of the room's event `eventId` at `client`, once it has arrived and been decrypted. */
export async function decryptedBody(client: sdk.MatrixClient, roomId: string, eventId: string, what: string, timeoutMs: number): Promise<string> {
  let body: string | undefined;
  await waitUntil(
    client,
    [sdk.RoomEvent.Timeline, sdk.MatrixEventEvent.Decrypted],
    () => {
      const ev = client.getRoom(roomId)?.getLiveTimeline().getEvents().find((e) => e.getId() === eventId);
      if (!ev || !ev.isEncrypted() || ev.isDecryptionFailure() || ev.getClearContent() === null) return false;
      body = ev.getClearContent()!.body as string;
      return true;
    },
    what,
    timeoutMs,
  );
  return body!;
}
