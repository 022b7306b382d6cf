// Ignoring users (spec: "Ignoring Users"): with a user in `m.ignored_user_list`, their non-state
// events are absent from /sync, /messages, /context and /event; their state events still show;
// their invites are not sent; their receipts are left out; the change applies from the next sync.
import * as assert from 'uvu/assert';
import type { TestServer } from './support/harness.js';
import { api, assertError, createRoom, enc, join, ok, putState, send, suiteWithUsers, type User } from './support/rooms.js';
import { syncAs as sync } from './support/e2e.js';

const ignore = (s: TestServer, u: User, ids: string[]) =>
  api(s, u, 'PUT', `/user/${enc(u.user_id)}/account_data/m.ignored_user_list`, { ignored_users: Object.fromEntries(ids.map((i) => [i, {}])) });
const timelineIds = (body: any, roomId: string): string[] => (body.rooms.join[roomId]?.timeline.events ?? []).map((e: any) => e.event_id);

const t = suiteWithUsers('ignoring users', ['alice', 'bob', 'mallory'] as const);

t("an ignored user's messages are absent from sync, /messages, /context and /event; state stays", async ({ s, alice, bob, mallory }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  await join(s, mallory, roomId);
  const before = await send(s, mallory, roomId, 'before ignoring');
  ok(await ignore(s, bob, [mallory.user_id]));
  const since = (await sync(s, bob)).next_batch;
  const spam = await send(s, mallory, roomId, 'spam');
  const topic = await putState(s, mallory, roomId, 'm.room.member', mallory.user_id, { membership: 'join', displayname: 'Mal' });
  const fine = await send(s, alice, roomId, 'hello');

  const inc = await sync(s, bob, { since });
  const ids = timelineIds(inc, roomId);
  assert.ok(!ids.includes(spam), 'the message is not in the incremental sync');
  assert.ok(ids.includes(topic), 'the state event is');
  assert.ok(ids.includes(fine), "alice's message is");
  const initial = timelineIds(await sync(s, bob), roomId);
  assert.ok(!initial.includes(spam) && !initial.includes(before), 'nor in an initial sync (old ones included)');
  assert.ok(timelineIds(await sync(s, alice), roomId).includes(spam), 'alice, not ignoring, sees it');

  const page = ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`));
  const pageIds = page.chunk.map((e: any) => e.event_id);
  assert.ok(!pageIds.includes(spam) && !pageIds.includes(before), '/messages leaves them out');
  assert.ok(pageIds.includes(topic) && pageIds.includes(fine));

  const ctx = ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/context/${enc(fine)}?limit=20`));
  assert.ok(![...ctx.events_before, ...ctx.events_after].some((e: any) => e.event_id === spam), '/context leaves them out');
  assertError(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/context/${enc(spam)}`), 404, 'M_NOT_FOUND', '/context of an ignored event');
  assertError(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(spam)}`), 404, 'M_NOT_FOUND', '/event of an ignored event');
  ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(topic)}`), '/event of their state event');

  // Un-ignoring: new events show again from the next sync on.
  ok(await ignore(s, bob, []));
  const since2 = (await sync(s, bob)).next_batch;
  const back = await send(s, mallory, roomId, 'back');
  assert.ok(timelineIds(await sync(s, bob, { since: since2 }), roomId).includes(back), 'shown after un-ignoring');
});

t("an ignored user's invite is not sent; their receipts are left out", async ({ s, alice, bob, mallory }) => {
  ok(await ignore(s, bob, [mallory.user_id]));
  try {
    const since = (await sync(s, bob)).next_batch;
    const fromMallory = await createRoom(s, mallory, { invite: [bob.user_id] });
    const fromAlice = await createRoom(s, alice, { invite: [bob.user_id] });
    const inc = await sync(s, bob, { since });
    assert.ok(!inc.rooms.invite[fromMallory], "mallory's invite is hidden");
    assert.ok(inc.rooms.invite[fromAlice], "alice's invite shows");
    assert.ok(!(await sync(s, bob)).rooms.invite[fromMallory], 'hidden from an initial sync too');

    const roomId = await createRoom(s, alice, { preset: 'public_chat' });
    await join(s, bob, roomId);
    await join(s, mallory, roomId);
    const m = await send(s, alice, roomId, 'read me');
    const since2 = (await sync(s, bob)).next_batch;
    ok(await api(s, mallory, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(m)}`, {}));
    ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(m)}`, {}));
    const readers = (body: any) =>
      (body.rooms.join[roomId]?.ephemeral.events ?? []).filter((e: any) => e.type === 'm.receipt').flatMap((e: any) => Object.keys(e.content[m]?.['m.read'] ?? {}));
    assert.equal(readers(await sync(s, bob, { since: since2 })), [alice.user_id], "incremental: alice's receipt, not mallory's");
    assert.equal(readers(await sync(s, bob)), [alice.user_id], 'initial: the same');
    assert.equal(readers(await sync(s, alice)).sort(), [alice.user_id, mallory.user_id].sort(), 'alice sees both');
  } finally {
    ok(await ignore(s, bob, []));
  }
});

t.run();
