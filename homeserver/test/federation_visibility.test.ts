import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { eventRow, startClusterWithUsers, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, putState, send, type User } from './support/rooms.js';
import { FederationError } from '../src/services/federation/client.js';

/**
 * History visibility for servers: B asks A (signed requests made with B's own federation client)
 * for events of rooms whose visibility is `joined` or `invited`. Events from before B had a member
 * that could see them come back redacted from /backfill, /get_missing_events and /event, and the
 * state at them is refused; events B may see come back whole.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User };
const t = suite<Ctx>('federation: history visibility for servers');

beforeAll(t, async (ctx) => {
  const { cluster, servers, users } = await startClusterWithUsers(['hs-a', 'hs-b'], { alice: 'hs-a', bob: 'hs-b' });
  Object.assign(ctx, { cluster, a: servers['hs-a'], b: servers['hs-b'] }, users);
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

/** A GET from B to A, signed as B. */
function fromB(ctx: Ctx, path: string, query?: Record<string, string | string[]>) {
  return ctx.b.hs.deps.services.federation.client.request({ destination: ctx.a.serverName, method: 'GET', path, ...(query ? { query } : {}) });
}

type Pdu = { type: string; content: Record<string, unknown>; hashes: { sha256: string }; signatures?: Record<string, unknown> };
/**
 * The PDUs by event id. Room versions 3+ carry no event_id in the PDU, and a redacted copy has
 * another reference hash than the original, so they are matched through A's stored content hash
 * (which redaction keeps).
 */
async function byId(ctx: Ctx, pdus: unknown, ids: string[]): Promise<Map<string, Pdu>> {
  const out = new Map<string, Pdu>();
  for (const id of ids) {
    const sha = (await eventRow(ctx.a, id)).json.hashes.sha256;
    const p = (pdus as Pdu[]).find((x) => x.hashes?.sha256 === sha);
    if (p) out.set(id, p);
  }
  return out;
}

async function refused(p: Promise<unknown>, what: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FederationError, what);
    assert.is(err.status, 403, what);
    assert.is(err.errcode, 'M_FORBIDDEN', what);
    return;
  }
  assert.unreachable(`${what}: expected 403`);
}

t('`joined` room: what was sent before B joined is served redacted, the rest whole; state at a hidden event is refused', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', { preset: 'public_chat' })).room_id as string;
  const hvId = await putState(ts(a), alice, roomId, 'm.room.history_visibility', '', { history_visibility: 'joined' });
  const secret = await send(ts(a), alice, roomId, 'before B joined');
  ok(await api(ts(b), bob, 'POST', `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {}), 'join');
  const after = await send(ts(a), alice, roomId, 'after B joined');

  const backPdus = (await fromB(ctx, `/_matrix/federation/v1/backfill/${enc(roomId)}`, { v: [after], limit: '50' })).pdus as Pdu[];
  const back = await byId(ctx, backPdus, [after, secret, hvId]);
  assert.is(back.get(after)?.content.body, 'after B joined', 'visible event whole');
  const hidden = back.get(secret)!;
  assert.ok(hidden, 'the hidden event is still served (the DAG needs it)');
  assert.equal(hidden.content, {}, 'redacted: no content');
  assert.ok(hidden.hashes && hidden.signatures?.[a.serverName], 'hashes and signatures kept, so the redacted copy verifies');
  // The visibility change itself: `shared` before it, so visible.
  assert.is(back.get(hvId)?.content.history_visibility, 'joined');
  // Create event and the room's setup (sent while visibility was `shared`) stay whole.
  assert.ok(backPdus.find((p) => p.type === 'm.room.create')?.content.room_version, 'the create event (sent while `shared`) whole');

  const missing = await byId(
    ctx,
    (await ctx.b.hs.deps.services.federation.client.request({
      destination: a.serverName,
      method: 'POST',
      path: `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`,
      body: { earliest_events: [], latest_events: [after], limit: 10 },
    })).events,
    [secret],
  );
  assert.equal(missing.get(secret)?.content, {}, 'get_missing_events: redacted');

  const single = await byId(ctx, (await fromB(ctx, `/_matrix/federation/v1/event/${enc(secret)}`)).pdus, [secret]);
  assert.equal(single.get(secret)?.content, {}, '/event: redacted');
  const visible = await byId(ctx, (await fromB(ctx, `/_matrix/federation/v1/event/${enc(after)}`)).pdus, [after]);
  assert.is(visible.get(after)?.content.body, 'after B joined');

  await refused(fromB(ctx, `/_matrix/federation/v1/state_ids/${enc(roomId)}`, { event_id: secret }), 'state_ids at a hidden event');
  await refused(fromB(ctx, `/_matrix/federation/v1/state/${enc(roomId)}`, { event_id: secret }), 'state at a hidden event');
  const ids = await fromB(ctx, `/_matrix/federation/v1/state_ids/${enc(roomId)}`, { event_id: after });
  assert.ok(Array.isArray(ids.pdu_ids) && ids.pdu_ids.length > 0, 'state at a visible event');
});

t('`invited` room: events sent while B\'s user was invited are whole, those before the invite redacted', async (ctx) => {
  const { a, b, alice, bob } = ctx;
  const roomId = ok(await api(ts(a), alice, 'POST', '/createRoom', {
    preset: 'private_chat',
    initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'invited' } }],
  })).room_id as string;
  const before = await send(ts(a), alice, roomId, 'before the invite');
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.user_id }), 'invite');
  const during = await send(ts(a), alice, roomId, 'while invited');
  ok(await api(ts(b), bob, 'POST', `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {}), 'join');
  const last = await send(ts(a), alice, roomId, 'joined');
  const back = await byId(ctx, (await fromB(ctx, `/_matrix/federation/v1/backfill/${enc(roomId)}`, { v: [last], limit: '50' })).pdus, [before, during, last]);
  assert.equal(back.get(before)?.content, {}, 'before the invite: redacted');
  assert.is(back.get(during)?.content.body, 'while invited');
  assert.is(back.get(last)?.content.body, 'joined');
});

t.run();
