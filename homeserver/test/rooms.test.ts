import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';

type User = { user_id: string; access_token: string; device_id: string };
const t = suite<{ s: TestServer; alice: User; bob: User }>('rooms: create, join, send, read');

t.before(async (ctx) => {
  ctx.s = await startTestServer();
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.bob = await registerUser(ctx.s, 'bob');
});
t.after(async (ctx) => {
  await ctx.s.close();
});

const req = (s: TestServer, u: User, method: string, path: string, body?: unknown) =>
  s.request(method, `/_matrix/client/v3${path}`, { token: u.access_token, body });

t('create a room, send, read back via state, messages, event, and sync', async ({ s, alice, bob }) => {
  const created = await req(s, alice, 'POST', '/createRoom', { name: 'Hearth', topic: 'warm', preset: 'private_chat', invite: [bob.user_id] });
  assert.is(created.status, 200, JSON.stringify(created.body));
  const roomId = created.body.room_id as string;
  assert.match(roomId, /^!.+:hearth\.test$/);

  const name = await req(s, alice, 'GET', `/rooms/${encodeURIComponent(roomId)}/state/m.room.name`);
  assert.equal(name.body, { name: 'Hearth' });

  const nonMember = await req(s, bob, 'GET', `/rooms/${encodeURIComponent(roomId)}/messages?dir=b`);
  assert.is(nonMember.status, 403, 'an invited user cannot read history before joining');

  const sent = await req(s, alice, 'PUT', `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hello' });
  assert.is(sent.status, 200, JSON.stringify(sent.body));
  assert.match(sent.body.event_id, /^\$[A-Za-z0-9_-]{43}$/);
  const again = await req(s, alice, 'PUT', `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hello' });
  assert.is(again.body.event_id, sent.body.event_id, 'same txn id, same event');

  const bobSync = await req(s, bob, 'GET', '/sync');
  assert.ok(bobSync.body.rooms.invite[roomId], 'bob sees the invite');
  const joined = await req(s, bob, 'POST', `/join/${encodeURIComponent(roomId)}`, {});
  assert.is(joined.status, 200, JSON.stringify(joined.body));

  const msgs = await req(s, bob, 'GET', `/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`);
  assert.is(msgs.status, 200, JSON.stringify(msgs.body));
  const bodies = msgs.body.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
  assert.equal(bodies, ['hello']);

  const sync = await req(s, alice, 'GET', '/sync');
  const room = sync.body.rooms.join[roomId];
  assert.ok(room, 'alice has the room in sync');
  const tl = room.timeline.events.map((e: any) => e.type);
  assert.ok(tl.includes('m.room.message'));
  const mine = room.timeline.events.find((e: any) => e.type === 'm.room.message');
  assert.is(mine.unsigned.transaction_id, 't1');
  assert.is(room.summary['m.joined_member_count'], 2);

  const ev = await req(s, bob, 'GET', `/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(sent.body.event_id)}`);
  assert.is(ev.body.content.body, 'hello');
  assert.is(ev.body.unsigned.transaction_id, undefined, 'only the sending device sees its txn id');
});

t.run();
