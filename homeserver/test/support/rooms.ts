import { suite, type Test } from 'uvu';
import { startTestServer, registerUser } from './harness.js';
import { beforeAll } from './hooks.js';
import * as assert from 'uvu/assert';
import type { Response, TestServer } from './harness.js';

/** Helpers for the room API tests: a logged-in user's requests and the common room steps. */

export type User = { user_id: string; access_token: string; device_id: string };

export const enc = encodeURIComponent;

let txnCounter = 0;
export const newTxn = () => `txn${Date.now()}.${++txnCounter}`;

/** A client-server v3 request as `u` (no token when `u` is null). */
export function api(s: TestServer, u: User | null, method: string, path: string, body?: unknown): Promise<Response> {
  return s.request(method, `/_matrix/client/v3${path}`, { token: u?.access_token, body });
}

/** Asserts a Matrix error: the status and errcode the spec gives. */
export function assertError(res: Response, status: number, errcode: string, what = ''): void {
  const msg = `${what} ${res.status} ${JSON.stringify(res.body)}`.trim();
  assert.is(res.status, status, msg);
  assert.is(res.body?.errcode, errcode, msg);
}

/** Asserts a 200 and returns the body. */
export function ok(res: Response, what = ''): any {
  assert.is(res.status, 200, `${what} ${res.status} ${JSON.stringify(res.body)}`.trim());
  return res.body;
}

export async function createRoom(s: TestServer, u: User, body: Record<string, unknown> = {}): Promise<string> {
  return ok(await api(s, u, 'POST', '/createRoom', body), 'createRoom').room_id as string;
}

export async function send(s: TestServer, u: User, roomId: string, body: string | Record<string, unknown>, type = 'm.room.message'): Promise<string> {
  const content = typeof body === 'string' ? { msgtype: 'm.text', body } : body;
  return ok(await api(s, u, 'PUT', `/rooms/${enc(roomId)}/send/${enc(type)}/${newTxn()}`, content), `send ${type}`).event_id as string;
}

export async function putState(s: TestServer, u: User, roomId: string, type: string, key: string, content: Record<string, unknown>): Promise<string> {
  return ok(await api(s, u, 'PUT', `/rooms/${enc(roomId)}/state/${enc(type)}/${enc(key)}`, content), `state ${type}`).event_id as string;
}

export async function join(s: TestServer, u: User, roomIdOrAlias: string): Promise<void> {
  ok(await api(s, u, 'POST', `/join/${enc(roomIdOrAlias)}`, {}), `join ${roomIdOrAlias}`);
}

export async function invite(s: TestServer, u: User, roomId: string, userId: string): Promise<void> {
  ok(await api(s, u, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: userId }), `invite ${userId}`);
}

/** Current state of the room as `u` sees it, as a map "type|state_key" -> event. */
export async function stateMap(s: TestServer, u: User, roomId: string): Promise<Map<string, any>> {
  const events = ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/state`), 'state') as any[];
  return new Map(events.map((e) => [`${e.type}|${e.state_key}`, e]));
}

/** Bodies of the m.room.message events of a /messages chunk, in chunk order. */
export const bodies = (chunk: any[]): string[] => chunk.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);

/**
 * A suite with its own test server and these registered users (context keys = localparts);
 * the server and its database go away after the suite.
 */
export function suiteWithUsers<N extends string>(name: string, localparts: readonly N[]): Test<{ s: TestServer } & Record<N, User>> {
  type Ctx = { s: TestServer } & Record<N, User>;
  const t = suite<Ctx>(name);
  beforeAll(t, async (ctx) => {
    ctx.s = await startTestServer();
    for (const l of localparts) (ctx as Record<string, unknown>)[l] = await registerUser(ctx.s, l);
  });
  t.after(async (ctx) => {
    await ctx.s?.close();
  });
  return t;
}
