import * as assert from 'uvu/assert';
import { registerUser, type TestServer } from './support/harness.js';
import { api, assertError, createRoom, enc, invite, join, newTxn, ok, putState, send, suiteWithUsers, type User } from './support/rooms.js';
import { listReports } from '../src/storage/reports.js';

const t = suiteWithUsers('search, user directory, reports', ['alice', 'bob', 'carol', 'dave'] as const);

/** `POST /search` for room events; returns `room_events` of the answer. */
async function search(s: TestServer, u: User, roomEvents: Record<string, unknown>, nextBatch?: string): Promise<any> {
  const q = nextBatch !== undefined ? `?next_batch=${enc(nextBatch)}` : '';
  const body = ok(await api(s, u, 'POST', `/search${q}`, { search_categories: { room_events: roomEvents } }), 'search');
  return body.search_categories.room_events;
}
const ids = (res: any) => res.results.map((r: any) => r.result.event_id);

t('finds messages by words in joined rooms only, with names and topics', async ({ s, alice, bob, carol }) => {
  const shared = await createRoom(s, alice, { preset: 'private_chat', name: 'Zebracorn lounge', topic: 'all about zebracorns' });
  await invite(s, alice, shared, bob.user_id);
  await join(s, bob, shared);
  const hit = await send(s, alice, shared, 'The Zebracorn gallops at dawn');
  await send(s, alice, shared, 'nothing to see here');
  const secret = await createRoom(s, carol, { preset: 'private_chat' });
  const hidden = await send(s, carol, secret, 'zebracorn secrets');

  const res = await search(s, bob, { search_term: 'zebracorn' });
  const found = ids(res);
  assert.ok(found.includes(hit), 'message found');
  assert.not.ok(found.includes(hidden), 'not in rooms bob is not in');
  assert.equal(res.highlights, ['zebracorn']);
  assert.is(res.count, 3); // message, name, topic (prefix match: "zebracorns")
  const types = res.results.map((r: any) => r.result.type).sort();
  assert.equal(types, ['m.room.message', 'm.room.name', 'm.room.topic']);
  assert.type(res.results[0].rank, 'number');
  assert.is(res.results.find((r: any) => r.result.event_id === hit).result.content.body, 'The Zebracorn gallops at dawn');

  const onlyBody = await search(s, bob, { search_term: 'zebracorn', keys: ['content.body'] });
  assert.equal(ids(onlyBody), [hit]);
  // Several words must all match; case does not matter.
  assert.equal(ids(await search(s, bob, { search_term: 'GALLOPS zebracorn' })), [hit]);
  assert.equal(ids(await search(s, bob, { search_term: 'gallops nowhere' })), []);
  assert.equal(ids(await search(s, carol, { search_term: 'zebracorn' })), [hidden]);
  // No words at all: nothing, not an error.
  assert.equal((await search(s, bob, { search_term: '!!!' })).results, []);
  // NUL is allowed in content (stored escaped) and does not break indexing.
  const nul = await send(s, alice, shared, 'tapir\u0000zebracorn');
  assert.equal(ids(await search(s, bob, { search_term: 'tapir' })), [nul]);
});

t('order_by rank vs recent', async ({ s, alice }) => {
  const room = await createRoom(s, alice);
  const strong = await send(s, alice, room, 'quokka quokka quokka quokka');
  const weak = await send(s, alice, room, 'a quokka among many other words here today');
  assert.equal(ids(await search(s, alice, { search_term: 'quokka', order_by: 'rank' })), [strong, weak]);
  assert.equal(ids(await search(s, alice, { search_term: 'quokka', order_by: 'recent' })), [weak, strong]);
  const ranked = await search(s, alice, { search_term: 'quokka' });
  assert.ok(ranked.results[0].rank > ranked.results[1].rank, 'rank is the default order');
});

t('filters (rooms, senders, limit) and next_batch pagination', async ({ s, alice, bob }) => {
  const r1 = await createRoom(s, alice, { preset: 'public_chat' });
  const r2 = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, r1);
  await join(s, bob, r2);
  const a1 = await send(s, alice, r1, 'wombat one');
  const b1 = await send(s, bob, r1, 'wombat two');
  const a2 = await send(s, alice, r2, 'wombat three');
  const b2 = await send(s, bob, r2, 'wombat four');
  const a3 = await send(s, alice, r2, 'wombat five');

  assert.equal(ids(await search(s, bob, { search_term: 'wombat', order_by: 'recent', filter: { rooms: [r1] } })), [b1, a1]);
  assert.equal(ids(await search(s, bob, { search_term: 'wombat', order_by: 'recent', filter: { not_rooms: [r1] } })), [a3, b2, a2]);
  assert.equal(ids(await search(s, bob, { search_term: 'wombat', order_by: 'recent', filter: { senders: [alice.user_id] } })), [a3, a2, a1]);
  assert.equal(ids(await search(s, bob, { search_term: 'wombat', order_by: 'recent', filter: { not_senders: [alice.user_id] } })), [b2, b1]);

  for (const order of ['recent', 'rank']) {
    const seen: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const page = await search(s, bob, { search_term: 'wombat', order_by: order, filter: { limit: 2 } }, next);
      assert.ok(page.results.length <= 2);
      assert.is(page.count, 5);
      seen.push(...ids(page));
      next = page.next_batch;
      pages++;
    } while (next !== undefined && pages < 10);
    assert.equal(seen.slice().sort(), [a1, b1, a2, b2, a3].sort(), `${order}: every result once`);
    if (order === 'recent') assert.equal(seen, [a3, b2, a2, b1, a1]);
  }
  // A token of the other ordering, or garbage, is a client error.
  const page = await search(s, bob, { search_term: 'wombat', order_by: 'recent', filter: { limit: 2 } });
  const wrong = await api(s, bob, 'POST', `/search?next_batch=${enc(page.next_batch)}`, { search_categories: { room_events: { search_term: 'wombat', order_by: 'rank' } } });
  assertError(wrong, 400, 'M_INVALID_PARAM');
  assertError(await api(s, bob, 'POST', '/search?next_batch=nope', { search_categories: { room_events: { search_term: 'wombat' } } }), 400, 'M_INVALID_PARAM');

  const grouped = await search(s, bob, { search_term: 'wombat', order_by: 'recent', groupings: { group_by: [{ key: 'room_id' }, { key: 'sender' }] }, include_state: true });
  assert.equal(grouped.groups.room_id[r2].results, [a3, b2, a2]);
  assert.equal(grouped.groups.room_id[r1].results, [b1, a1]);
  assert.is(grouped.groups.room_id[r2].order, 1);
  assert.equal(grouped.groups.sender[alice.user_id].results, [a3, a2, a1]);
  assert.ok(grouped.state[r1].some((e: any) => e.type === 'm.room.create'), 'include_state: current state of result rooms');
});

t('event_context with profiles', async ({ s, alice, bob }) => {
  const room = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, room);
  await putState(s, bob, room, 'm.room.member', bob.user_id, { membership: 'join', displayname: 'Bobby' });
  const before1 = await send(s, alice, room, 'first');
  const before2 = await send(s, bob, room, 'second');
  const hit = await send(s, alice, room, 'the platypus line');
  const after1 = await send(s, bob, room, 'fourth');
  // profile_info is the profile at the result, not today's.
  await putState(s, bob, room, 'm.room.member', bob.user_id, { membership: 'join', displayname: 'Robert' });
  const res = await search(s, alice, { search_term: 'platypus', event_context: { before_limit: 2, after_limit: 1, include_profile: true } });
  assert.equal(ids(res), [hit]);
  const c = res.results[0].context;
  assert.equal(c.events_before.map((e: any) => e.event_id), [before2, before1]);
  assert.equal(c.events_after.map((e: any) => e.event_id), [after1]);
  assert.is(c.events_before.length, 2);
  assert.type(c.start, 'string');
  assert.type(c.end, 'string');
  assert.is(c.profile_info[bob.user_id].displayname, 'Bobby');
  assert.ok(c.profile_info[alice.user_id], 'the result sender has a profile entry');
  assert.is(res.results[0].context.events_before[0].content.body, 'second');
});

t('a redacted message is no longer found', async ({ s, alice }) => {
  const room = await createRoom(s, alice);
  const gone = await send(s, alice, room, 'narwhal oops');
  const kept = await send(s, alice, room, 'narwhal fine');
  ok(await api(s, alice, 'PUT', `/rooms/${enc(room)}/redact/${enc(gone)}/${newTxn()}`, {}), 'redact');
  const res = await search(s, alice, { search_term: 'narwhal' });
  assert.equal(ids(res), [kept]);
  assert.is(res.count, 1);
});

t('history visibility: a later joiner does not find messages from before', async ({ s, alice, dave }) => {
  const room = await createRoom(s, alice, { preset: 'public_chat' });
  await putState(s, alice, room, 'm.room.history_visibility', '', { history_visibility: 'joined' });
  const early = await send(s, alice, room, 'axolotl before dave');
  await join(s, dave, room);
  const late = await send(s, alice, room, 'axolotl after dave');
  assert.equal(ids(await search(s, dave, { search_term: 'axolotl', order_by: 'recent' })), [late]);
  assert.equal(ids(await search(s, alice, { search_term: 'axolotl', order_by: 'recent' })), [late, early]);
  // Context never shows what dave cannot see either.
  const res = await search(s, dave, { search_term: 'axolotl', event_context: { before_limit: 10 } });
  assert.not.ok(res.results[0].context.events_before.some((e: any) => e.event_id === early));
  // Having left, dave's search covers the room no more.
  ok(await api(s, dave, 'POST', `/rooms/${enc(room)}/leave`, {}), 'leave');
  assert.equal(ids(await search(s, dave, { search_term: 'axolotl' })), []);
});

t('bad /search input gives Matrix errors', async ({ s, alice }) => {
  assertError(await api(s, alice, 'POST', '/search', {}), 400, 'M_MISSING_PARAM');
  assertError(await api(s, alice, 'POST', '/search', { search_categories: { room_events: {} } }), 400, 'M_MISSING_PARAM');
  assertError(await api(s, alice, 'POST', '/search', { search_categories: { room_events: { search_term: 5 } } }), 400, 'M_BAD_JSON');
  assertError(await api(s, alice, 'POST', '/search', { search_categories: { room_events: { search_term: 'x', order_by: 'best' } } }), 400, 'M_INVALID_PARAM');
  assertError(await api(s, alice, 'POST', '/search', { search_categories: { room_events: { search_term: 'x', keys: ['content.secret'] } } }), 400, 'M_INVALID_PARAM');
  assertError(await api(s, alice, 'POST', '/search', { search_categories: { room_events: { search_term: 'x', filter: { limit: -1 } } } }), 400, 'M_BAD_JSON');
  assertError(await api(s, alice, 'POST', '/search', { search_categories: { room_events: { search_term: 'x', groupings: { group_by: [{ key: 'type' }] } } } }), 400, 'M_INVALID_PARAM');
  assertError(await api(s, null, 'POST', '/search', { search_categories: { room_events: { search_term: 'x' } } }), 401, 'M_MISSING_TOKEN');
  assert.equal(ok(await api(s, alice, 'POST', '/search', { search_categories: {} })), { search_categories: {} });
});

t('user directory: users sharing a room or in public rooms, not strangers', async ({ s }) => {
  const erin = await registerUser(s, 'erin_dir');
  const frank = await registerUser(s, 'frank_dir');
  const gina = await registerUser(s, 'gina_dir');
  const hank = await registerUser(s, 'hank_dir');
  ok(await api(s, frank, 'PUT', `/profile/${enc(frank.user_id)}/displayname`, { displayname: 'Franky Dirwalker' }));
  ok(await api(s, gina, 'PUT', `/profile/${enc(gina.user_id)}/displayname`, { displayname: 'Gina Dirwalker' }));
  const priv = await createRoom(s, erin, { preset: 'private_chat' });
  await invite(s, erin, priv, frank.user_id);
  await join(s, frank, priv);
  // gina is alone in a private room: a stranger to erin. hank is in a public room.
  await createRoom(s, gina, { preset: 'private_chat' });
  await createRoom(s, hank, { preset: 'public_chat' });

  const dir = async (u: User, body: Record<string, unknown>) => ok(await api(s, u, 'POST', '/user_directory/search', body), 'user_directory');
  const byName = await dir(erin, { search_term: 'DIRWALKER' });
  assert.equal(byName.results, [{ user_id: frank.user_id, display_name: 'Franky Dirwalker' }]);
  assert.is(byName.limited, false);
  assert.equal((await dir(erin, { search_term: 'frank_d' })).results.map((r: any) => r.user_id), [frank.user_id]);
  assert.equal((await dir(erin, { search_term: 'gina' })).results, [], 'stranger in a private room');
  assert.equal((await dir(erin, { search_term: 'hank_dir' })).results.map((r: any) => r.user_id), [hank.user_id], 'member of a public room');
  const limited = await dir(erin, { search_term: '_dir', limit: 1 });
  assert.is(limited.results.length, 1);
  assert.is(limited.limited, true);
  // LIKE wildcards in the term are literal.
  assert.equal((await dir(erin, { search_term: '%' })).results, []);
  assertError(await api(s, erin, 'POST', '/user_directory/search', {}), 400, 'M_MISSING_PARAM');
  assertError(await api(s, erin, 'POST', '/user_directory/search', { search_term: 'x', limit: 'ten' }), 400, 'M_BAD_JSON');
});

t('reports: stored, {} answered; unknown or invisible → 404', async ({ s, alice, bob, carol }) => {
  const room = await createRoom(s, alice, { preset: 'public_chat' });
  await putState(s, alice, room, 'm.room.history_visibility', '', { history_visibility: 'joined' });
  const early = await send(s, alice, room, 'before bob');
  await join(s, bob, room);
  const ev = await send(s, alice, room, 'something rude');
  const report = (u: User, path: string, body: unknown) => api(s, u, 'POST', path, body);

  assert.equal(ok(await report(bob, `/rooms/${enc(room)}/report/${enc(ev)}`, { reason: 'rude' })), {});
  assert.equal(ok(await report(bob, `/rooms/${enc(room)}/report/${enc(ev)}`, {})), {}, 'reason is optional for events');
  assertError(await report(bob, `/rooms/${enc(room)}/report/${enc(early)}`, { reason: 'x' }), 404, 'M_NOT_FOUND', 'invisible event');
  assertError(await report(bob, `/rooms/${enc(room)}/report/${enc('$nope')}`, { reason: 'x' }), 404, 'M_NOT_FOUND', 'unknown event');
  assertError(await report(carol, `/rooms/${enc(room)}/report/${enc(ev)}`, { reason: 'x' }), 404, 'M_NOT_FOUND', 'not joined');
  assertError(await report(bob, `/rooms/${enc(room)}/report/${enc(ev)}`, { reason: 5 }), 400, 'M_BAD_JSON');

  assert.equal(ok(await report(carol, `/rooms/${enc(room)}/report`, { reason: 'spam room' })), {});
  assertError(await report(carol, `/rooms/${enc('!nope:hearth.test')}/report`, { reason: 'x' }), 404, 'M_NOT_FOUND');
  assertError(await report(carol, `/rooms/${enc(room)}/report`, {}), 400, 'M_MISSING_PARAM');

  assert.equal(ok(await report(carol, `/users/${enc(alice.user_id)}/report`, { reason: 'mean' })), {});
  assertError(await report(carol, `/users/${enc('@ghost:hearth.test')}/report`, { reason: 'x' }), 404, 'M_NOT_FOUND');
  assertError(await report(carol, `/users/${enc(alice.user_id)}/report`, {}), 400, 'M_MISSING_PARAM');

  const stored = await listReports(s.hs.deps.db);
  assert.equal(
    stored.map(({ receivedTs: _ts, ...r }) => r),
    [
      { reporter: bob.user_id, kind: 'event', roomId: room, eventId: ev, reason: 'rude' },
      { reporter: bob.user_id, kind: 'event', roomId: room, eventId: ev },
      { reporter: carol.user_id, kind: 'room', roomId: room, reason: 'spam room' },
      { reporter: carol.user_id, kind: 'user', targetUserId: alice.user_id, reason: 'mean' },
    ],
  );
});

t.run();
