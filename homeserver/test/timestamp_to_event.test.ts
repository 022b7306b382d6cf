import * as assert from 'uvu/assert';
import { type TestServer } from './support/harness.js';
import { api, assertError, createRoom, enc, invite, join, ok, putState, send, suiteWithUsers, type User } from './support/rooms.js';
import { TimestampLookup } from '../src/services/rooms/timestamp_to_event.js';

const t = suiteWithUsers('timestamp_to_event (spec v1.6)', ['alice', 'bob', 'carol', 'dave'] as const);

const lookup = (s: TestServer, u: User, roomId: string, query: string) =>
  s.request('GET', `/_matrix/client/v1/rooms/${enc(roomId)}/timestamp_to_event?${query}`, { token: u.access_token });
const found = async (s: TestServer, u: User, roomId: string, ts: number, dir: 'f' | 'b') => ok(await lookup(s, u, roomId, `ts=${ts}&dir=${dir}`), `ts=${ts} dir=${dir}`);
const tsOf = async (s: TestServer, u: User, roomId: string, id: string): Promise<number> =>
  ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/event/${enc(id)}`), 'event').origin_server_ts;
/** Keeps consecutive sends a few milliseconds apart, so their origin_server_ts differ. */
const tick = () => new Promise((r) => setTimeout(r, 5));

t('finds the closest event at or after (f) / at or before (b) a timestamp', async ({ s, alice }) => {
  const roomId = await createRoom(s, alice, { preset: 'private_chat' });
  await tick();
  const m1 = await send(s, alice, roomId, 'one');
  await tick();
  const m2 = await send(s, alice, roomId, 'two');
  await tick();
  const m3 = await send(s, alice, roomId, 'three');
  const [t1, t2, t3] = [await tsOf(s, alice, roomId, m1), await tsOf(s, alice, roomId, m2), await tsOf(s, alice, roomId, m3)];
  assert.ok(t1 < t2 && t2 < t3, 'sends a tick apart have increasing timestamps');

  assert.equal(await found(s, alice, roomId, t2, 'f'), { event_id: m2, origin_server_ts: t2 }, 'exact match forwards');
  assert.equal(await found(s, alice, roomId, t2, 'b'), { event_id: m2, origin_server_ts: t2 }, 'exact match backwards');
  assert.is((await found(s, alice, roomId, t1 + 1, 'f')).event_id, m2, 'just after m1 → the next one');
  assert.is((await found(s, alice, roomId, t2 - 1, 'b')).event_id, m1, 'just before m2 → the previous one');
  assert.is((await found(s, alice, roomId, t3 + 1_000_000, 'b')).event_id, m3, 'far in the future, backwards → the newest');
  assert.is((await found(s, alice, roomId, 0, 'f')).type, undefined, 'only event_id and origin_server_ts are returned');

  const none = await lookup(s, alice, roomId, `ts=${t3 + 1}&dir=f`);
  assertError(none, 404, 'M_NOT_FOUND', 'nothing after the newest event');
  assertError(await lookup(s, alice, roomId, 'ts=0&dir=b'), 404, 'M_NOT_FOUND', 'nothing before the room existed');
});

t('only events the user may read are answered', async ({ s, alice, bob, carol, dave }) => {
  const roomId = await createRoom(s, alice, { preset: 'private_chat' });
  await putState(s, alice, roomId, 'm.room.history_visibility', '', { history_visibility: 'joined' });
  await tick();
  const before = await send(s, alice, roomId, 'before bob joined');
  await tick();
  await invite(s, alice, roomId, bob.user_id);
  await join(s, bob, roomId);
  await invite(s, alice, roomId, carol.user_id);
  await join(s, carol, roomId);
  await tick();
  const seen = await send(s, alice, roomId, 'while carol was here');
  await tick();
  ok(await api(s, carol, 'POST', `/rooms/${enc(roomId)}/leave`, {}), 'carol leaves');
  await tick();
  const afterLeave = await send(s, alice, roomId, 'after carol left');
  const tBefore = await tsOf(s, alice, roomId, before);
  const tAfterLeave = await tsOf(s, alice, roomId, afterLeave);

  // History from before bob's join is hidden from him (visibility 'joined'): the walk skips it.
  assert.is((await found(s, alice, roomId, tBefore, 'b')).event_id, before);
  // Backwards, bob gets the visibility change itself (visible to him: the state before it was 'shared').
  const bobBack = await found(s, bob, roomId, tBefore, 'b');
  assert.is.not(bobBack.event_id, before, 'bob cannot see messages before his join');
  assert.is(ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(bobBack.event_id)}`), 'hv').type, 'm.room.history_visibility');
  const bobFirst = await found(s, bob, roomId, tBefore, 'f');
  assert.is.not(bobFirst.event_id, before);
  const bobFirstEvent = ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(bobFirst.event_id)}`), 'bob may read what he is given');
  assert.is(bobFirstEvent.type, 'm.room.member', 'the first event bob may see is his own join');
  assert.is(bobFirstEvent.state_key, bob.user_id);

  // A former member reads up to their leave, never past it.
  assert.is((await found(s, alice, roomId, tAfterLeave, 'b')).event_id, afterLeave);
  const carolLast = await found(s, carol, roomId, tAfterLeave, 'b');
  assert.is.not(carolLast.event_id, afterLeave);
  assertError(await lookup(s, carol, roomId, `ts=${tAfterLeave}&dir=f`), 404, 'M_NOT_FOUND', 'nothing after carol left');
  const carolLeave = ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/event/${enc(carolLast.event_id)}`), 'carol leave');
  assert.equal([carolLeave.type, carolLeave.state_key, carolLeave.content.membership], ['m.room.member', carol.user_id, 'leave'], 'her leave is the last she sees');
  assert.is((await found(s, carol, roomId, await tsOf(s, alice, roomId, seen), 'b')).event_id, seen, 'what she saw while joined');

  // Non-members of a room that is not world-readable: 403, as /messages.
  assertError(await lookup(s, dave, roomId, `ts=${tBefore}&dir=f`), 403, 'M_FORBIDDEN', 'non-member');
  assertError(await lookup(s, dave, '!nosuchroom:hearth.test', 'ts=0&dir=f'), 403, 'M_FORBIDDEN', 'unknown room: no existence oracle');
});

t('events of ignored users are skipped', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  await tick();
  const fromBob = await send(s, bob, roomId, 'from bob');
  await tick();
  const fromAlice = await send(s, alice, roomId, 'from alice');
  const tBob = await tsOf(s, alice, roomId, fromBob);
  assert.is((await found(s, alice, roomId, tBob, 'f')).event_id, fromBob);
  ok(await api(s, alice, 'PUT', `/user/${enc(alice.user_id)}/account_data/m.ignored_user_list`, { ignored_users: { [bob.user_id]: {} } }), 'ignore bob');
  assert.is((await found(s, alice, roomId, tBob, 'f')).event_id, fromAlice);
});

t('the walk continues past whole batches of unreadable events, up to its scan limit', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'private_chat' });
  await putState(s, alice, roomId, 'm.room.history_visibility', '', { history_visibility: 'joined' });
  const hidden: string[] = [];
  for (let i = 0; i < 5; i++) hidden.push(await send(s, alice, roomId, `hidden ${i}`));
  await invite(s, alice, roomId, bob.user_id);
  await join(s, bob, roomId);
  const t0 = await tsOf(s, alice, roomId, hidden[0]!);
  const { deps } = s.hs;
  const viewer = { userId: bob.user_id, deviceId: bob.device_id };
  const wide = new TimestampLookup({ db: deps.db, reader: deps.services.rooms.reader, limits: { batch: 2, maxScanned: 100 } });
  const hit = await wide.closest(viewer, roomId, t0, 'f');
  const ev = ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(hit.event_id)}`), 'visible to bob');
  assert.ok(!hidden.includes(hit.event_id), 'skipped the hidden messages in batches of two');
  assert.is(ev.type, 'm.room.member');
  // With a scan limit below the number of hidden events the answer is 404, not an unbounded walk.
  const narrow = new TimestampLookup({ db: deps.db, reader: deps.services.rooms.reader, limits: { batch: 2, maxScanned: 4 } });
  await narrow.closest(viewer, roomId, t0, 'f').then(
    () => assert.unreachable('expected M_NOT_FOUND'),
    (err: { errcode?: string }) => assert.is(err.errcode, 'M_NOT_FOUND'),
  );
});

t('bad parameters', async ({ s, alice }) => {
  const roomId = await createRoom(s, alice);
  assertError(await lookup(s, alice, roomId, 'dir=f'), 400, 'M_MISSING_PARAM', 'no ts');
  assertError(await lookup(s, alice, roomId, 'ts=1'), 400, 'M_MISSING_PARAM', 'no dir');
  assertError(await lookup(s, alice, roomId, 'ts=1&dir=x'), 400, 'M_INVALID_PARAM', 'bad dir');
  assertError(await lookup(s, alice, roomId, 'ts=-5&dir=f'), 400, 'M_INVALID_PARAM', 'negative ts');
  assertError(await lookup(s, alice, roomId, 'ts=1.5&dir=f'), 400, 'M_INVALID_PARAM', 'float ts');
  assertError(await lookup(s, alice, roomId, 'ts=99999999999999999&dir=f'), 400, 'M_INVALID_PARAM', 'ts beyond 2^53');
  assertError(await lookup(s, alice, roomId, 'ts=1&ts=2&dir=f'), 400, 'M_INVALID_PARAM', 'repeated ts');
  const anon = await s.request('GET', `/_matrix/client/v1/rooms/${enc(roomId)}/timestamp_to_event?ts=1&dir=f`);
  assertError(anon, 401, 'M_MISSING_TOKEN', 'needs an access token');
});

t.run();
