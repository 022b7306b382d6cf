import * as sdk from 'matrix-js-sdk';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';
import type { User } from './rooms.js';

/** Helpers for the matrix-js-sdk (37.x) suites: quiet logs, timers, clients, waiting on SDK events. */

/** How long a wait for the SDK to reflect something lasts before the test fails. */
export const SDK_WAIT_MS = 20_000;

/** Silences the SDK's logger (sync progress, push-rule fix-ups) and the child loggers it names. */
export function quietSdk(children: string[] = ['[MatrixRTCSessionManager]']): void {
  for (const l of [sdkLogger, ...children.map((c) => sdkLogger.getChild(c))]) (l as unknown as { setLevel(level: 'silent'): void }).setLevel('silent');
}

/**
 * The SDK arms a local timeout for every request (pollTimeout + 80 s for each /sync) and never
 * clears it, so a stopped client would hold the test process open. Until the returned function is
 * called, timers of a minute or more do not keep the process alive (they still fire).
 */
export function unrefLongTimers(): () => void {
  const real = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = real(fn, ms, ...args);
    if ((ms ?? 0) >= 60_000) timer.unref();
    return timer;
  }) as typeof setTimeout;
  return () => {
    globalThis.setTimeout = real;
  };
}

/** A client for an already registered user (not started). */
export const clientFor = (baseUrl: string, u: User): sdk.MatrixClient =>
  sdk.createClient({ baseUrl, accessToken: u.access_token, userId: u.user_id, deviceId: u.device_id });

/**
 * Resolves once `check()` holds, re-evaluated whenever `emitter` emits one of `events` (no
 * polling); fails with `what` after SDK_WAIT_MS, or when `check` throws.
 */
export function waitUntil(emitter: unknown, events: string[], check: () => boolean, what: string): Promise<void> {
  const e = emitter as { on(ev: string, f: () => void): void; off(ev: string, f: () => void): void };
  return new Promise((resolve, reject) => {
    const finish = (err?: Error) => {
      clearTimeout(timer);
      for (const ev of events) e.off(ev, listener);
      if (err) reject(err);
      else resolve();
    };
    const listener = () => {
      try {
        if (check()) finish();
      } catch (err) {
        finish(err as Error);
      }
    };
    const timer = setTimeout(() => finish(new Error(`timed out after ${SDK_WAIT_MS} ms waiting for ${what}`)), SDK_WAIT_MS);
    for (const ev of events) e.on(ev, listener);
    listener();
  });
}

/** Starts the client's sync loop and resolves once its first sync is processed (fails on a sync error). */
export async function startSynced(client: sdk.MatrixClient, opts: sdk.IStartClientOpts = {}): Promise<void> {
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
      `${client.getUserId()}'s initial sync`,
    );
  } finally {
    client.off(sdk.ClientEvent.Sync, onSync);
  }
}
