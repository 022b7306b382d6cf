// The push evaluator's per-room member cache (services/push/evaluator.ts): each process keeps a
// room's joined member count and local members, checked against the room's latest membership
// change on every event. Two processes share one database here: a join, a leave or a push rule
// change made through the second process must be honoured by the first one's very next message
// (who is evaluated, and room_member_count: .m.rule.room_one_to_one only with two members), and
// so must a join in the same process.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser, startTestServer, type TestServer } from './support/harness.js';
import { api, createRoom, enc, join, ok, send, type User } from './support/rooms.js';
import { beforeAll } from './support/hooks.js';

type Ctx = { s1: TestServer; s2: TestServer; alice: User; bob: User; carol: User; dave: User; roomId: string };
const t = suite<Ctx>('push member cache across processes');

beforeAll(t, async (ctx) => {
  ctx.s1 = await startTestServer();
  ctx.s2 = await startTestServer({}, { databaseUrl: ctx.s1.databaseUrl, keepDatabase: true });
  for (const l of ['alice', 'bob', 'carol', 'dave'] as const) ctx[l] = await registerUser(ctx.s1, l);
  ctx.roomId = await createRoom(ctx.s1, ctx.alice, { preset: 'public_chat' });
  await join(ctx.s1, ctx.bob, ctx.roomId);
});
t.after(async (ctx) => {
  await ctx.s2?.close();
  await ctx.s1?.close();
});

/** The push actions stored for an event, per user. */
async function actionsFor(s: TestServer, eventId: string): Promise<Map<string, unknown[]>> {
  const rows = await s.hs.deps.db.query<{ user_id: string; actions: string }>('select user_id, actions from event_push_actions where event_id = ?', [eventId]);
  return new Map(rows.map((r) => [r.user_id, JSON.parse(r.actions) as unknown[]]));
}
const hasSound = (actions: unknown[] | undefined) => (actions ?? []).some((a) => typeof a === 'object' && a !== null && (a as { set_tweak?: string }).set_tweak === 'sound');

t('a join through another process: the new member is evaluated and the member count moves', async ({ s1, s2, alice, bob, carol, roomId }) => {
  const m1 = await actionsFor(s1, await send(s1, alice, roomId, 'two of us'));
  assert.equal([...m1.keys()], [bob.user_id], 'only bob (never the sender)');
  assert.ok(hasSound(m1.get(bob.user_id)), 'two members: the one-to-one rule (with sound)');
  // The first process now holds the room's members; the join commits through the second.
  await join(s2, carol, roomId);
  const m2 = await actionsFor(s1, await send(s1, alice, roomId, 'three of us'));
  assert.equal([...m2.keys()].sort(), [bob.user_id, carol.user_id].sort(), 'carol, joined through the other process, is evaluated');
  assert.not.ok(hasSound(m2.get(bob.user_id)), 'three members: no longer one-to-one');
});

t('a leave through another process: the member is no longer evaluated', async ({ s1, s2, alice, bob, carol, roomId }) => {
  await send(s1, alice, roomId, 'warm the cache');
  ok(await api(s2, carol, 'POST', `/rooms/${enc(roomId)}/leave`, {}), 'leave');
  const m = await actionsFor(s1, await send(s1, alice, roomId, 'carol left'));
  assert.equal([...m.keys()], [bob.user_id]);
  assert.ok(hasSound(m.get(bob.user_id)), 'two members again');
});

t('a push rule change through another process applies to the next message', async ({ s1, s2, alice, bob, roomId }) => {
  await send(s1, alice, roomId, 'warm the rules');
  ok(await api(s2, bob, 'PUT', `/pushrules/global/room/${enc(roomId)}`, { actions: [] }), 'mute the room');
  assert.equal([...(await actionsFor(s1, await send(s1, alice, roomId, 'muted'))).keys()], [], 'the room rule of the other process mutes');
  ok(await api(s2, bob, 'DELETE', `/pushrules/global/room/${enc(roomId)}`), 'unmute');
  assert.equal([...(await actionsFor(s1, await send(s1, alice, roomId, 'unmuted'))).keys()], [bob.user_id]);
});

t('a join in the same process right before a message', async ({ s1, alice, bob, dave, roomId }) => {
  await send(s1, alice, roomId, 'warm again');
  await join(s1, dave, roomId);
  const m = await actionsFor(s1, await send(s1, alice, roomId, 'hello dave'));
  assert.equal([...m.keys()].sort(), [bob.user_id, dave.user_id].sort());
});

t.run();
