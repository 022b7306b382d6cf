import * as assert from 'uvu/assert';
import { type TestServer } from './support/harness.js';
import { api, assertError, createRoom, enc, invite, join, newTxn, ok, putState, send, suiteWithUsers, type User } from './support/rooms.js';

const t = suiteWithUsers('relations: reactions, edits, threads, references', ['alice', 'bob', 'carol', 'dave'] as const);

/** A client-server v1 GET as `u`. */
const v1 = (s: TestServer, u: User, path: string) => s.request('GET', `/_matrix/client/v1${path}`, { token: u.access_token });
const rels = async (s: TestServer, u: User, roomId: string, rest: string) => ok(await v1(s, u, `/rooms/${enc(roomId)}/relations/${rest}`), `relations/${rest}`);
const getEvent = async (s: TestServer, u: User, roomId: string, id: string) => ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/event/${enc(id)}`), 'event');
const ids = (chunk: any[]) => chunk.map((e) => e.event_id);
/** origin_server_ts orders edits; a short pause keeps consecutive sends apart. */
const tick = () => new Promise((r) => setTimeout(r, 5));

const react = (s: TestServer, u: User, roomId: string, target: string, key: string) =>
  send(s, u, roomId, { 'm.relates_to': { rel_type: 'm.annotation', event_id: target, key } }, 'm.reaction');
const edit = (s: TestServer, u: User, roomId: string, target: string, body: string) =>
  send(s, u, roomId, { msgtype: 'm.text', body: `* ${body}`, 'm.new_content': { msgtype: 'm.text', body }, 'm.relates_to': { rel_type: 'm.replace', event_id: target } });
const inThread = (s: TestServer, u: User, roomId: string, root: string, body: string) =>
  send(s, u, roomId, { msgtype: 'm.text', body, 'm.relates_to': { rel_type: 'm.thread', event_id: root, is_falling_back: true, 'm.in_reply_to': { event_id: root } } });

async function sharedRoom(s: TestServer, owner: User, ...others: User[]): Promise<string> {
  const roomId = await createRoom(s, owner, { preset: 'public_chat' });
  for (const u of others) await join(s, u, roomId);
  return roomId;
}

t('reactions are listed by /relations with rel_type and event_type filters and paginate both ways', async ({ s, alice, bob }) => {
  const roomId = await sharedRoom(s, alice, bob);
  const root = await send(s, alice, roomId, 'react to me');
  const r1 = await react(s, alice, roomId, root, '👍');
  const r2 = await react(s, bob, roomId, root, '👍');
  const r3 = await react(s, bob, roomId, root, '🎉');
  const reply = await send(s, bob, roomId, { msgtype: 'm.text', body: 'a reference', 'm.relates_to': { rel_type: 'm.reference', event_id: root } });
  await send(s, alice, roomId, 'unrelated');

  assert.equal(ids((await rels(s, bob, roomId, enc(root))).chunk), [reply, r3, r2, r1], 'all children, newest first');
  assert.equal(ids((await rels(s, bob, roomId, `${enc(root)}/m.annotation`)).chunk), [r3, r2, r1]);
  assert.equal(ids((await rels(s, bob, roomId, `${enc(root)}/m.annotation/m.reaction`)).chunk), [r3, r2, r1]);
  assert.equal(ids((await rels(s, bob, roomId, `${enc(root)}/m.annotation/m.room.message`)).chunk), []);
  assert.equal(ids((await rels(s, bob, roomId, `${enc(root)}/m.reference`)).chunk), [reply]);

  // Backwards in pages of two, then forwards; next_batch is absent on the last page.
  const p1 = await rels(s, bob, roomId, `${enc(root)}/m.annotation?limit=2`);
  assert.equal(ids(p1.chunk), [r3, r2]);
  assert.type(p1.next_batch, 'string');
  assert.is(p1.prev_batch, undefined);
  const p2 = await rels(s, bob, roomId, `${enc(root)}/m.annotation?limit=2&from=${enc(p1.next_batch)}`);
  assert.equal(ids(p2.chunk), [r1]);
  assert.is(p2.next_batch, undefined);
  assert.is(p2.prev_batch, p1.next_batch);
  const f1 = await rels(s, bob, roomId, `${enc(root)}/m.annotation?limit=2&dir=f`);
  assert.equal(ids(f1.chunk), [r1, r2]);
  const f2 = await rels(s, bob, roomId, `${enc(root)}/m.annotation?limit=2&dir=f&from=${enc(f1.next_batch)}`);
  assert.equal(ids(f2.chunk), [r3]);
  // `to` bounds the range: from the start back to the first page's end.
  const bounded = await rels(s, bob, roomId, `${enc(root)}/m.annotation?to=${enc(p1.next_batch)}`);
  assert.equal(ids(bounded.chunk), [r3, r2]);

  // Annotations are not aggregated; references are (ids only).
  const rootEv = await getEvent(s, bob, roomId, root);
  assert.equal(rootEv.unsigned['m.relations'], { 'm.reference': { chunk: [{ event_id: reply }] } });
  // A second identical annotation is refused (spec: "Avoiding duplicate annotations").
  const dup = await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.reaction/${newTxn()}`, { 'm.relates_to': { rel_type: 'm.annotation', event_id: root, key: '👍' } });
  assertError(dup, 400, 'M_DUPLICATE_ANNOTATION');
});

t('a redacted reaction disappears from /relations and may be sent again', async ({ s, alice, bob }) => {
  const roomId = await sharedRoom(s, alice, bob);
  const root = await send(s, alice, roomId, 'hi');
  const r1 = await react(s, bob, roomId, root, '❤️');
  const r2 = await react(s, alice, roomId, root, '❤️');
  ok(await api(s, bob, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(r1)}/${newTxn()}`, {}), 'redact');
  assert.equal(ids((await rels(s, alice, roomId, `${enc(root)}/m.annotation`)).chunk), [r2]);
  const again = await react(s, bob, roomId, root, '❤️');
  assert.equal(ids((await rels(s, alice, roomId, `${enc(root)}/m.annotation`)).chunk), [again, r2]);
});

t('edits: the latest edit by the original sender is bundled; others, edits of edits and redacted ones are ignored', async ({ s, alice, bob }) => {
  const roomId = await sharedRoom(s, alice, bob);
  const orig = await send(s, alice, roomId, 'I like cake');
  const e1 = await edit(s, alice, roomId, orig, 'I like chocolate cake');
  await tick();
  const e2 = await edit(s, alice, roomId, orig, 'I really like chocolate cake');
  await tick();
  await edit(s, bob, roomId, orig, 'bob was here'); // another user's edit
  await tick();
  await edit(s, alice, roomId, e2, 'edit of an edit');
  await send(s, alice, roomId, { msgtype: 'm.text', body: '* no new content', 'm.relates_to': { rel_type: 'm.replace', event_id: orig } });
  await send(s, alice, roomId, { 'm.new_content': { x: 1 }, 'm.relates_to': { rel_type: 'm.replace', event_id: orig } }, 'org.example.other');

  const ev = await getEvent(s, bob, roomId, orig);
  assert.is(ev.content.body, 'I like cake', 'the original content is left intact');
  const bundled = ev.unsigned['m.relations']['m.replace'];
  assert.is(bundled.event_id, e2);
  assert.is(bundled.sender, alice.user_id);
  assert.is(bundled.content['m.new_content'].body, 'I really like chocolate cake');
  // /messages and /context bundle too.
  const msgs = ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=20`));
  assert.is(msgs.chunk.find((e: any) => e.event_id === orig).unsigned['m.relations']['m.replace'].event_id, e2);
  assert.is(ok(await api(s, bob, 'GET', `/rooms/${enc(roomId)}/context/${enc(orig)}?limit=0`)).event.unsigned['m.relations']['m.replace'].event_id, e2);
  // So do sync timelines.
  const filter = enc(JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 20 } } }));
  const synced = ok(await api(s, bob, 'GET', `/sync?filter=${filter}`)).rooms.join[roomId].timeline.events;
  assert.is(synced.find((e: any) => e.event_id === orig).unsigned['m.relations']['m.replace'].event_id, e2);
  // Redacting the latest edit reverts to the one before it.
  ok(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(e2)}/${newTxn()}`, {}));
  assert.is((await getEvent(s, bob, roomId, orig)).unsigned['m.relations']['m.replace'].event_id, e1);
  // A redacted original carries no edit.
  ok(await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(orig)}/${newTxn()}`, {}));
  assert.is((await getEvent(s, bob, roomId, orig)).unsigned['m.relations'], undefined);
  // State events cannot be edited.
  const topic = await putState(s, alice, roomId, 'm.room.topic', '', { topic: 'one' });
  await send(s, alice, roomId, { topic: 'two', 'm.new_content': { topic: 'two' }, 'm.relates_to': { rel_type: 'm.replace', event_id: topic } }, 'm.room.topic');
  assert.is((await getEvent(s, bob, roomId, topic)).unsigned['m.relations'], undefined);
});

t('threads: replies via /relations/{root}/m.thread and the root\'s summary per user', async ({ s, alice, bob, carol }) => {
  const roomId = await sharedRoom(s, alice, bob, carol);
  const root = await send(s, alice, roomId, 'thread root');
  const t1 = await inThread(s, bob, roomId, root, 'first reply');
  const t2 = await inThread(s, bob, roomId, root, 'second reply');
  const t2edit = await edit(s, bob, roomId, t2, 'second reply, edited');
  await send(s, carol, roomId, 'not in the thread');

  assert.equal(ids((await rels(s, carol, roomId, `${enc(root)}/m.thread`)).chunk), [t2, t1]);
  const summary = (u: User) => getEvent(s, u, roomId, root).then((e) => e.unsigned['m.relations']['m.thread']);
  const forBob = await summary(bob);
  assert.is(forBob.count, 2);
  assert.is(forBob.current_user_participated, true);
  assert.is(forBob.latest_event.event_id, t2);
  assert.is(forBob.latest_event.content.body, 'second reply');
  assert.is(forBob.latest_event.unsigned['m.relations']['m.replace'].event_id, t2edit, 'the latest event carries its own aggregations');
  assert.is((await summary(carol)).current_user_participated, false);
  assert.is((await summary(alice)).current_user_participated, true, 'the root sender participates');
  await inThread(s, carol, roomId, root, 'carol joins in');
  const forCarol = await summary(carol);
  assert.is(forCarol.count, 3);
  assert.is(forCarol.current_user_participated, true);

  // A thread cannot start from an event that has a relation itself.
  const bad = await api(s, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/${newTxn()}`, {
    msgtype: 'm.text', body: 'nested', 'm.relates_to': { rel_type: 'm.thread', event_id: t1 },
  });
  assertError(bad, 400, 'M_UNKNOWN');
});

t('/threads lists thread roots by latest activity, include=all|participated, with pagination', async ({ s, alice, bob, carol }) => {
  const roomId = await sharedRoom(s, alice, bob, carol);
  const a = await send(s, alice, roomId, 'A');
  const b = await send(s, bob, roomId, 'B');
  const c = await send(s, alice, roomId, 'C');
  await send(s, alice, roomId, 'no thread here');
  await inThread(s, bob, roomId, a, 'in A');
  await inThread(s, alice, roomId, c, 'in C');
  await inThread(s, alice, roomId, b, 'in B');
  await inThread(s, carol, roomId, a, 'carol in A'); // A is now the most recently active

  const threads = async (u: User, q: string) => ok(await v1(s, u, `/rooms/${enc(roomId)}/threads?${q}`), `threads?${q}`);
  const all = await threads(carol, 'include=all');
  assert.equal(ids(all.chunk), [a, b, c]);
  assert.is(all.chunk[0].unsigned['m.relations']['m.thread'].count, 2);
  assert.is(all.next_batch, undefined);
  const p1 = await threads(carol, 'limit=2');
  assert.equal(ids(p1.chunk), [a, b]);
  const p2 = await threads(carol, `limit=2&from=${enc(p1.next_batch)}`);
  assert.equal(ids(p2.chunk), [c]);
  assert.is(p2.next_batch, undefined);
  assert.equal(ids((await threads(carol, 'include=participated')).chunk), [a]);
  assert.equal(ids((await threads(bob, 'include=participated')).chunk), [a, b], 'replied in A, started B');
  assert.equal(ids((await threads(alice, 'include=participated')).chunk), [a, b, c]);
});

t('recurse=true also returns relations of relations', async ({ s, alice, bob }) => {
  const roomId = await sharedRoom(s, alice, bob);
  const root = await send(s, alice, roomId, 'root');
  const reply = await inThread(s, bob, roomId, root, 'reply');
  const reaction = await react(s, alice, roomId, reply, '👀');
  const direct = await rels(s, bob, roomId, enc(root));
  assert.equal(ids(direct.chunk), [reply]);
  assert.is(direct.recursion_depth, undefined);
  const deep = await rels(s, bob, roomId, `${enc(root)}?recurse=true`);
  assert.equal(ids(deep.chunk), [reaction, reply]);
  assert.is(deep.recursion_depth, 3);
  assert.equal(ids((await rels(s, bob, roomId, `${enc(root)}/m.annotation?recurse=true`)).chunk), [reaction]);
  assert.is((await rels(s, bob, roomId, `${enc(root)}?recurse=false`)).recursion_depth, 1);
});

t('non-members get 403; unknown events 404; bad parameters 400', async ({ s, alice, bob, dave }) => {
  const roomId = await createRoom(s, alice, { preset: 'private_chat' });
  await invite(s, alice, roomId, bob.user_id);
  await join(s, bob, roomId);
  const root = await send(s, alice, roomId, 'secret');
  await react(s, bob, roomId, root, '🤫');
  for (const path of [`relations/${enc(root)}`, `relations/${enc(root)}/m.annotation`, `relations/${enc(root)}/m.annotation/m.reaction`, 'threads']) {
    assertError(await v1(s, dave, `/rooms/${enc(roomId)}/${path}`), 403, 'M_FORBIDDEN', path);
  }
  assertError(await v1(s, dave, `/rooms/${enc('!nope:hearth.test')}/threads`), 403, 'M_FORBIDDEN', 'unknown room');
  assertError(await v1(s, bob, `/rooms/${enc(roomId)}/relations/${enc('$missing')}`), 404, 'M_NOT_FOUND');
  const bad = [
    `relations/${enc(root)}?dir=x`,
    `relations/${enc(root)}?limit=lots`,
    `relations/${enc(root)}?recurse=maybe`,
    `relations/${enc(root)}?from=garbage`,
    `relations/${enc(root)}?to=garbage`,
    `relations/${enc(root)}?limit=1&limit=2`,
    'threads?include=mine',
    'threads?limit=0',
    'threads?from=garbage',
  ];
  for (const path of bad) {
    const res = await v1(s, bob, `/rooms/${enc(roomId)}/${path}`);
    assert.is(res.status, 400, path);
    assert.match(res.body.errcode, /^M_/, path);
  }
  assert.is((await s.request('GET', `/_matrix/client/v1/rooms/${enc(roomId)}/threads`)).status, 401, 'needs a token');
});

t.run();
