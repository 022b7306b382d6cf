import * as assert from 'uvu/assert';
import { type TestServer } from './support/harness.js';
import { api, assertError, bodies, createRoom, enc, invite, join, ok, putState, send, suiteWithUsers, type User } from './support/rooms.js';

const t = suiteWithUsers('rooms: reading state, members and history', ['alice', 'bob', 'carol', 'dave'] as const);

const get = async (s: TestServer, u: User, roomId: string, rest: string) => api(s, u, 'GET', `/rooms/${enc(roomId)}${rest}`);
const messages = async (s: TestServer, u: User, roomId: string, query: string) => ok(await get(s, u, roomId, `/messages?${query}`), `messages?${query}`);
/** A token just after `eventId` (a /context with limit 0 ends at the event itself). */
const tokenAfter = async (s: TestServer, u: User, roomId: string, eventId: string) => ok(await get(s, u, roomId, `/context/${enc(eventId)}?limit=0`)).end as string;
const filterParam = (f: object) => `filter=${enc(JSON.stringify(f))}`;

/** Sends m0..m{n-1}; returns their event ids. */
async function sendMany(s: TestServer, u: User, roomId: string, n: number, prefix = 'm'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await send(s, u, roomId, `${prefix}${i}`));
  return ids;
}

t('non-members get M_FORBIDDEN for every read; world_readable rooms are readable by anyone logged in', async ({ s, alice, carol }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat', name: 'Open' });
  const msg = await send(s, alice, roomId, 'hello');
  const reads = (ev: string) => ['/state', '/state/m.room.name', '/state/m.room.name/', '/members', '/messages?dir=b', `/event/${enc(ev)}`, `/context/${enc(ev)}`, '/joined_members', '/aliases'];
  for (const path of reads(msg)) assertError(await get(s, carol, roomId, path), 403, 'M_FORBIDDEN', path);
  for (const path of ['/state', '/members', '/messages?dir=b']) assertError(await get(s, carol, '!unknown:hearth.test', path), 403, 'M_FORBIDDEN', `unknown room ${path}`);

  await putState(s, alice, roomId, 'm.room.history_visibility', '', { history_visibility: 'world_readable' });
  const later = await send(s, alice, roomId, 'for everyone');
  for (const path of reads(later).filter((p) => p !== '/joined_members')) ok(await get(s, carol, roomId, path), `world_readable ${path}`);
  assert.equal(bodies((await messages(s, carol, roomId, 'dir=b')).chunk), ['for everyone'], 'only what was world_readable when sent');
  assert.is(ok(await get(s, carol, roomId, `/event/${enc(later)}`)).content.body, 'for everyone');
  assertError(await get(s, carol, roomId, `/event/${enc(msg)}`), 404, 'M_NOT_FOUND', 'sent while shared');
  assertError(await get(s, carol, roomId, '/joined_members'), 403, 'M_FORBIDDEN', 'joined_members needs membership');
  assertError(await api(s, carol, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/x1`, { body: 'no' }), 403, 'M_FORBIDDEN', 'reading is not writing');
});

t('history_visibility joined hides what came before the join; shared does not', async ({ s, alice, bob }) => {
  for (const visibility of ['joined', 'shared']) {
    const roomId = await createRoom(s, alice, { preset: 'private_chat' });
    await putState(s, alice, roomId, 'm.room.history_visibility', '', { history_visibility: visibility });
    const early = await send(s, alice, roomId, 'before');
    await invite(s, alice, roomId, bob.user_id);
    await join(s, bob, roomId);
    await send(s, alice, roomId, 'after');
    const seen = bodies((await messages(s, bob, roomId, 'dir=b&limit=50')).chunk);
    if (visibility === 'joined') {
      assert.equal(seen, ['after']);
      // Paging back page by page ends (no `end`) once only unreadable history is left.
      let from: string | undefined;
      let pages = 0;
      for (;;) {
        const page = await messages(s, bob, roomId, `dir=b&limit=2${from ? `&from=${from}` : ''}`);
        pages++;
        if (page.end === undefined) break;
        assert.ok(page.chunk.length > 0, `page ${pages} holds only unreadable history yet has an end`);
        from = page.end;
      }
      assertError(await get(s, bob, roomId, `/event/${enc(early)}`), 404, 'M_NOT_FOUND');
      assertError(await get(s, bob, roomId, `/context/${enc(early)}`), 404, 'M_NOT_FOUND');
    } else {
      assert.equal(seen, ['after', 'before']);
      ok(await get(s, bob, roomId, `/event/${enc(early)}`));
    }
  }
});

t('a user who left reads up to their leave, with the state as it was then', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat', name: 'Before' });
  await join(s, bob, roomId);
  const seen = await send(s, alice, roomId, 'while in');
  ok(await api(s, bob, 'POST', `/rooms/${enc(roomId)}/leave`, {}));
  const unseen = await send(s, alice, roomId, 'after leaving');
  await putState(s, alice, roomId, 'm.room.name', '', { name: 'After' });

  assert.equal(bodies((await messages(s, bob, roomId, 'dir=b&limit=50')).chunk), ['while in']);
  assert.equal(bodies((await messages(s, bob, roomId, 'dir=f&limit=50')).chunk), ['while in']);
  ok(await get(s, bob, roomId, `/event/${enc(seen)}`));
  assertError(await get(s, bob, roomId, `/event/${enc(unseen)}`), 404, 'M_NOT_FOUND');
  assert.equal(ok(await get(s, bob, roomId, '/state/m.room.name')), { name: 'Before' });
  const st = ok(await get(s, bob, roomId, '/state')) as any[];
  assert.is(st.find((e) => e.type === 'm.room.name').content.name, 'Before');
  const mine = ok(await get(s, bob, roomId, '/members')).chunk.find((e: any) => e.state_key === bob.user_id);
  assert.is(mine.content.membership, 'leave');
  assertError(await get(s, bob, roomId, '/joined_members'), 403, 'M_FORBIDDEN');
});

t('shared history: a user who left still sees what came before their join, not what came after their leave', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' }); // history_visibility shared
  const early = await send(s, alice, roomId, 'before bob joined');
  await join(s, bob, roomId);
  await send(s, alice, roomId, 'while bob was in');
  ok(await api(s, bob, 'POST', `/rooms/${enc(roomId)}/leave`, {}));
  await send(s, alice, roomId, 'after bob left');
  // Spec: "shared" events are visible to a user who joined at any point after them.
  assert.equal(bodies((await messages(s, bob, roomId, 'dir=b&limit=50')).chunk), ['while bob was in', 'before bob joined']);
  ok(await get(s, bob, roomId, `/event/${enc(early)}`));
});

t('/members: at, membership, not_membership (together an "or"); /joined_members shape', async ({ s, alice, bob, carol, dave }) => {
  ok(await api(s, bob, 'PUT', `/profile/${enc(bob.user_id)}/displayname`, { displayname: 'Bob B' }));
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, carol, roomId);
  const beforeBob = (await messages(s, alice, roomId, 'dir=b&limit=0')).start as string;
  await join(s, bob, roomId);
  ok(await api(s, carol, 'POST', `/rooms/${enc(roomId)}/leave`, {}));
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/ban`, { user_id: dave.user_id }));
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: bob.user_id }));
  await invite(s, alice, roomId, bob.user_id);

  const members = async (q: string) =>
    (ok(await get(s, alice, roomId, `/members${q}`)).chunk as any[]).map((e) => `${e.state_key.slice(1, 2)}:${e.content.membership}`).sort();
  assert.equal(await members(''), ['a:join', 'b:invite', 'c:leave', 'd:ban']);
  assert.equal(await members('?membership=join'), ['a:join']);
  assert.equal(await members('?not_membership=join'), ['b:invite', 'c:leave', 'd:ban']);
  assert.equal(await members('?membership=invite&not_membership=leave'), ['a:join', 'b:invite', 'd:ban']);
  assert.equal(await members(`?at=${enc(beforeBob)}`), ['a:join', 'c:join']);
  assertError(await get(s, alice, roomId, '/members?membership=lurking'), 400, 'M_INVALID_PARAM');
  assertError(await get(s, alice, roomId, '/members?at=yesterday'), 400, 'M_INVALID_PARAM');

  await join(s, bob, roomId);
  const joined = ok(await get(s, alice, roomId, '/joined_members')).joined;
  assert.equal(Object.keys(joined).sort(), [alice.user_id, bob.user_id]);
  assert.equal(joined[bob.user_id], { display_name: 'Bob B' });
});

t('/messages pages both ways with from/to and limit; end is omitted at the start of history', async ({ s, alice }) => {
  const roomId = await createRoom(s, alice, { preset: 'private_chat' });
  const ids = await sendMany(s, alice, roomId, 25);
  const all = (await messages(s, alice, roomId, 'dir=f&limit=1000')).chunk as any[];
  assert.is(all[0].type, 'm.room.create');
  assert.is(all.length, 6 + 25);

  // Backwards to the start, 10 at a time.
  const back: any[] = [];
  let from: string | undefined;
  for (let pages = 1; ; pages++) {
    const page = await messages(s, alice, roomId, `dir=b&limit=10${from ? `&from=${enc(from)}` : ''}`);
    if (from) assert.is(page.start, from, 'start is the given from');
    back.push(...page.chunk);
    if (page.end === undefined) break;
    from = page.end;
    assert.ok(pages < 10);
  }
  assert.equal(back.map((e) => e.event_id), all.map((e) => e.event_id).reverse());
  const last = await messages(s, alice, roomId, 'dir=b&limit=100');
  assert.not.ok('end' in last, 'the whole history in one page: no end');

  // Forwards from the start.
  const fwd: any[] = [];
  from = undefined;
  for (;;) {
    const page = await messages(s, alice, roomId, `dir=f&limit=7${from ? `&from=${enc(from)}` : ''}`);
    if (page.chunk.length === 0) break;
    fwd.push(...page.chunk);
    from = page.end;
  }
  assert.equal(fwd.map((e) => e.event_id), all.map((e) => e.event_id));

  // `to` bounds either direction.
  const after9 = await tokenAfter(s, alice, roomId, ids[9]!);
  const after14 = await tokenAfter(s, alice, roomId, ids[14]!);
  assert.equal(bodies((await messages(s, alice, roomId, `dir=b&limit=100&to=${enc(after9)}`)).chunk), [...Array(15)].map((_, i) => `m${24 - i}`));
  assert.equal(bodies((await messages(s, alice, roomId, `dir=f&from=${enc(after9)}&to=${enc(after14)}`)).chunk), ['m10', 'm11', 'm12', 'm13', 'm14']);
  assert.equal(bodies((await messages(s, alice, roomId, `dir=b&from=${enc(after14)}&limit=2`)).chunk), ['m14', 'm13']);

  for (const q of ['dir=x', 'dir=b&limit=-1', 'dir=b&limit=ten', 'dir=b&from=nope', 'dir=b&filter=notjson']) {
    assert.is((await get(s, alice, roomId, `/messages?${q}`)).status, 400, q);
  }
});

t('/messages filter: types, not_types (with wildcards), lazy_load_members', async ({ s, alice, bob, carol }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  await join(s, carol, roomId);
  await send(s, alice, roomId, 'a1');
  await send(s, bob, roomId, 'b1');
  await send(s, alice, roomId, { x: 1 }, 'org.example.custom');
  const typesOf = async (f: object) => ((await messages(s, alice, roomId, `dir=b&limit=100&${filterParam(f)}`)).chunk as any[]).map((e) => e.type);

  assert.equal(await typesOf({ types: ['m.room.message'] }), ['m.room.message', 'm.room.message']);
  assert.equal(await typesOf({ types: ['org.*'] }), ['org.example.custom']);
  assert.not.ok((await typesOf({ not_types: ['m.room.message'] })).includes('m.room.message'));
  assert.equal(await typesOf({ not_types: ['m.room.*'] }), ['org.example.custom']);

  const lazy = await messages(s, alice, roomId, `dir=b&limit=100&${filterParam({ lazy_load_members: true, types: ['m.room.message'] })}`);
  assert.equal(bodies(lazy.chunk), ['b1', 'a1']);
  const lazyMembers = (lazy.state as any[]).map((e) => e.state_key).sort();
  assert.equal(lazyMembers, [alice.user_id, bob.user_id].sort(), 'only the senders, not carol');
});

t('/context: before/after split, state at the last event returned, filter and tokens', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat', name: 'Old' });
  await join(s, bob, roomId);
  const ids = await sendMany(s, alice, roomId, 7, 'c');
  const renamed = await putState(s, alice, roomId, 'm.room.name', '', { name: 'New' });
  await sendMany(s, bob, roomId, 3, 'd');

  const ctx = ok(await get(s, alice, roomId, `/context/${enc(ids[5]!)}?limit=4`));
  assert.is(ctx.event.content.body, 'c5');
  assert.equal(bodies(ctx.events_before), ['c4', 'c3']);
  assert.equal(ctx.events_after.map((e: any) => e.content.body ?? e.type), ['c6', 'm.room.name']);
  assert.is(ctx.events_after[1].event_id, renamed);
  const nameIn = (st: any[]) => st.find((e) => e.type === 'm.room.name').content.name;
  assert.is(nameIn(ctx.state), 'New', 'state at the last event returned');
  assert.is(nameIn(ok(await get(s, alice, roomId, `/context/${enc(ids[5]!)}?limit=2`)).state), 'Old');
  assert.ok(ctx.state.some((e: any) => e.type === 'm.room.create'));
  assert.equal(bodies((await messages(s, alice, roomId, `dir=b&limit=1&from=${enc(ctx.start)}`)).chunk), ['c2']);
  assert.equal(bodies((await messages(s, alice, roomId, `dir=f&limit=1&from=${enc(ctx.end)}`)).chunk), ['d0']);

  const none = ok(await get(s, alice, roomId, `/context/${enc(ids[5]!)}?limit=0`));
  assert.equal([none.event.event_id, none.events_before, none.events_after], [ids[5], [], []]);

  const lazy = ok(await get(s, alice, roomId, `/context/${enc(ids[1]!)}?limit=2&${filterParam({ lazy_load_members: true })}`));
  const members = (lazy.state as any[]).filter((e) => e.type === 'm.room.member').map((e) => e.state_key);
  assert.equal(members, [alice.user_id], "only the senders' members");
  assertError(await get(s, alice, roomId, `/context/${enc('$nope')}`), 404, 'M_NOT_FOUND');
});

t('GET state: with and without a trailing slash, format=event, unknown state is 404', async ({ s, alice }) => {
  const roomId = await createRoom(s, alice, { name: 'Named' });
  assert.equal(ok(await get(s, alice, roomId, '/state/m.room.name')), { name: 'Named' });
  assert.equal(ok(await get(s, alice, roomId, '/state/m.room.name/')), { name: 'Named' });
  const ev = ok(await get(s, alice, roomId, '/state/m.room.name?format=event'));
  assert.equal([ev.type, ev.state_key, ev.sender, ev.room_id, ev.content], ['m.room.name', '', alice.user_id, roomId, { name: 'Named' }]);
  assert.match(ev.event_id, /^\$/);
  assert.equal(ok(await get(s, alice, roomId, `/state/m.room.member/${enc(alice.user_id)}?format=content`)).membership, 'join');
  assertError(await get(s, alice, roomId, '/state/m.room.name?format=xml'), 400, 'M_INVALID_PARAM');
  assertError(await get(s, alice, roomId, '/state/m.room.topic'), 404, 'M_NOT_FOUND');
});

t.run();
