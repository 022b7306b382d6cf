import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { eventRow, eventually, inviteAndJoin, startClusterWithUsers, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, send, type User } from './support/rooms.js';
import { FederationError } from '../src/services/federation/client.js';

/**
 * timestamp_to_event over federation: bob's server B joined A's rooms late and backfilled
 * nothing. Asked for a time before the join, B asks A (no local event that way, or the closest is
 * next to a gap), gets A's event id, fetches the event and answers with it; `/context` then works
 * on B. Where B's history has no gap, A is not asked. B's backfill rounds are tiny here
 * (HEARTH_FEDERATION_BACKFILL_LIMIT=2), so an event further back is fetched alone.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User; carol: User };
const t = suite<Ctx>('federation: timestamp_to_event');

beforeAll(t, async (ctx) => {
  const { cluster, servers, users } = await startClusterWithUsers(['hs-a', 'hs-b'], { alice: 'hs-a', carol: 'hs-a', bob: 'hs-b' }, { env: (label): Record<string, string> => (label === 'hs-b' ? { HEARTH_FEDERATION_BACKFILL_LIMIT: '2' } : {}) });
  Object.assign(ctx, { cluster, a: servers['hs-a'], b: servers['hs-b'] }, users);
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const asks = (s: FederationTestServer) => s.federationRequests.filter((r) => r.url.startsWith('/_matrix/federation/v1/timestamp_to_event/')).length;
const lookup = (s: FederationTestServer, u: User, roomId: string, t0: number, dir: 'f' | 'b') =>
  ts(s).request('GET', `/_matrix/client/v1/rooms/${enc(roomId)}/timestamp_to_event?ts=${t0}&dir=${dir}`, { token: u.access_token });

/** A public room on A with messages spaced in time; returns their ids and timestamps. */
async function roomWithHistory(ctx: Ctx, n: number): Promise<{ roomId: string; msgs: { id: string; ts: number }[] }> {
  const { a, alice } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'public_chat' })).room_id as string;
  const msgs: { id: string; ts: number }[] = [];
  for (let i = 0; i < n; i++) {
    await pause(5);
    const id = await send(ts(a), alice, roomId, `message ${i}`);
    msgs.push({ id, ts: (await eventRow(a, id)).json.origin_server_ts as number });
  }
  return { roomId, msgs };
}

t('A serves timestamp_to_event to servers in the room, refuses others', async (ctx) => {
  const { a, b, bob } = ctx;
  const { roomId, msgs } = await roomWithHistory(ctx, 2);
  const client = b.hs.deps.services.federation.client;
  const ask = (query: Record<string, string>) => client.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/timestamp_to_event/${enc(roomId)}`, query });
  try {
    await ask({ ts: String(msgs[0]!.ts), dir: 'f' });
    assert.unreachable('B is not in the room yet');
  } catch (err) {
    assert.ok(err instanceof FederationError);
    assert.is(err.status, 403);
  }
  await inviteAndJoin(a, ctx.alice, b, bob, roomId, { invite: false });
  assert.equal(await ask({ ts: String(msgs[0]!.ts), dir: 'f' }), { event_id: msgs[0]!.id, origin_server_ts: msgs[0]!.ts });
  assert.equal(await ask({ ts: String(msgs[1]!.ts), dir: 'b' }), { event_id: msgs[1]!.id, origin_server_ts: msgs[1]!.ts });
  // History visibility for servers: in a `joined` room, what was sent before B had a member is skipped.
  const hidden = ok(await api(ts(a), ctx.alice, 'POST', '/createRoom', {
    preset: 'public_chat',
    initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
  })).room_id as string;
  await pause(5);
  const secret = await send(ts(a), ctx.alice, hidden, 'before B');
  const secretTs = (await eventRow(a, secret)).json.origin_server_ts as number;
  await inviteAndJoin(a, ctx.alice, b, bob, hidden, { invite: false });
  const askHidden = (dir: string) => client.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/timestamp_to_event/${enc(hidden)}`, query: { ts: String(secretTs), dir } });
  assert.is.not((await askHidden('b')).event_id, secret, 'backwards: an earlier event B may see instead');
  assert.is.not((await askHidden('f')).event_id, secret, 'forwards: a later one');
  try {
    await ask({ ts: 'soon', dir: 'f' });
    assert.unreachable('bad ts');
  } catch (err) {
    assert.ok(err instanceof FederationError);
    assert.is(err.status, 400);
    assert.is(err.errcode, 'M_INVALID_PARAM');
  }
});

t('dir=b before B joined: no local event, so B asks A and fetches the event (too far back for one backfill round)', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  const { roomId, msgs } = await roomWithHistory(ctx, 6);
  await inviteAndJoin(a, alice, b, bob, roomId, { invite: false });
  a.federationRequests.length = 0;
  const target = msgs[0]!;
  const res = ok(await lookup(b, bob, roomId, target.ts + 1, 'b'), 'timestamp_to_event on B');
  assert.equal(res, { event_id: target.id, origin_server_ts: target.ts }, 'A\'s event');
  assert.is(asks(a), 1, 'A was asked');
  const row = await eventRow(b, target.id);
  assert.ok(row.streamOrdering !== null && row.streamOrdering < 0, 'B now holds it as a backfilled event');
  assert.is(row.json.content.body, 'message 0');
  const around = ok(await ts(b).request('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/context/${enc(target.id)}?limit=2`, { token: bob.access_token }));
  assert.is(around.event.event_id, target.id, '/context works on B');
});

t('dir=f before B joined: B\'s closest event (its join) follows a gap, so A is asked; without a gap it is not', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  const { roomId, msgs } = await roomWithHistory(ctx, 3);
  await inviteAndJoin(a, alice, b, bob, roomId, { invite: false });
  a.federationRequests.length = 0;
  const res = ok(await lookup(b, bob, roomId, msgs[1]!.ts, 'f'));
  assert.equal(res, { event_id: msgs[1]!.id, origin_server_ts: msgs[1]!.ts });
  assert.is(asks(a), 1);

  // After the join, B's history has no gap: answered locally.
  await pause(5);
  const later = await send(ts(b), bob, roomId, 'after the join');
  const laterTs = (await eventRow(b, later)).json.origin_server_ts as number;
  a.federationRequests.length = 0;
  assert.equal(ok(await lookup(b, bob, roomId, laterTs, 'f')).event_id, later);
  assert.equal(ok(await lookup(b, bob, roomId, laterTs, 'b')).event_id, later);
  assert.is(asks(a), 0, 'A not asked');
  // Let the sender deliver bob's message before the servers stop.
  await eventually(async () => (await a.hs.deps.db.query('select 1 from events where event_id = ?', [later])).length > 0, 'bob\'s message reaches A');
});

t.run();
