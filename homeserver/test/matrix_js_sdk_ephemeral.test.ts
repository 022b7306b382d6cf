// The real matrix-js-sdk (37.x) and ephemeral data: typing (client.sendTyping; the other side's
// RoomMember.typing), read receipts (client.sendReadReceipt, threaded as the SDK sends them with
// thread support on; the other side's room.getReceiptsForEvent / getUsersReadUpTo), private
// receipts (not seen by others), and read markers (client.setRoomReadMarkers; m.fully_read room
// account data).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, createRoom, join, ok, send, type User } from './support/rooms.js';
import { clientFor, quietSdk, startSynced, unrefLongTimers, waitUntil } from './support/sdk.js';

quietSdk();

type Ctx = { s: TestServer; baseUrl: string; alice: User; bob: User; roomId: string; a: sdk.MatrixClient; b: sdk.MatrixClient; restoreTimers: () => void };
const t = suite<Ctx>('matrix-js-sdk 37: typing, receipts, read markers');

beforeAll(t, async (ctx) => {
  ctx.restoreTimers = unrefLongTimers();
  ctx.s = await startTestServer();
  ctx.baseUrl = await ctx.s.listen();
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.bob = await registerUser(ctx.s, 'bob');
  ctx.roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat', name: 'Ephemeral' });
  await join(ctx.s, ctx.bob, ctx.roomId);
  ctx.a = clientFor(ctx.baseUrl, ctx.alice);
  ctx.b = clientFor(ctx.baseUrl, ctx.bob);
  await startSynced(ctx.a, { threadSupport: true });
  await startSynced(ctx.b, { threadSupport: true });
});
t.after(async (ctx) => {
  ctx.a?.stopClient();
  ctx.b?.stopClient();
  await ctx.s?.close();
  ctx.restoreTimers?.();
});

/** The event as `client`'s room holds it, once it arrived. */
async function eventAt(client: sdk.MatrixClient, roomId: string, eventId: string): Promise<sdk.MatrixEvent> {
  await waitUntil(client, [sdk.RoomEvent.Timeline], () => !!client.getRoom(roomId)?.findEventById(eventId), `event ${eventId} at ${client.getUserId()}`);
  return client.getRoom(roomId)!.findEventById(eventId)!;
}

t("bob's client sees alice start and stop typing (RoomMember.typing)", async ({ a, b, alice, roomId }) => {
  const member = () => b.getRoom(roomId)?.getMember(alice.user_id);
  await waitUntil(b, [sdk.RoomStateEvent.Members], () => !!member(), 'alice as a member at bob');
  const seen: boolean[] = [];
  const onTyping = (_e: sdk.MatrixEvent, m: sdk.RoomMember) => {
    if (m.userId === alice.user_id) seen.push(m.typing);
  };
  b.on(sdk.RoomMemberEvent.Typing, onTyping);
  try {
    await a.sendTyping(roomId, true, 30_000);
    await waitUntil(b, [sdk.RoomMemberEvent.Typing], () => member()!.typing, 'alice typing at bob');
    await a.sendTyping(roomId, false, 0);
    await waitUntil(b, [sdk.RoomMemberEvent.Typing], () => !member()!.typing, 'alice stopped at bob');
    assert.equal(seen, [true, false]);
  } finally {
    b.off(sdk.RoomMemberEvent.Typing, onTyping);
  }
});

t("alice's client sees bob's read receipt; a private one stays bob's", async ({ s, a, b, alice, bob, roomId }) => {
  const e1 = await send(s, alice, roomId, 'first');
  const e2 = await send(s, alice, roomId, 'second');
  const ev1 = await eventAt(b, roomId, e1);
  const ev2 = await eventAt(b, roomId, e2);
  // Private first, then public on the older event: once alice sees the public one, the private one
  // (earlier in the receipts stream) would have reached her too had it leaked.
  await b.sendReadReceipt(ev2, sdk.ReceiptType.ReadPrivate);
  await b.sendReadReceipt(ev1, sdk.ReceiptType.Read);
  const aRoom = () => a.getRoom(roomId)!;
  const aEv1 = await eventAt(a, roomId, e1);
  const aEv2 = await eventAt(a, roomId, e2);
  await waitUntil(a, [sdk.RoomEvent.Receipt], () => aRoom().getReceiptsForEvent(aEv1).some((r) => r.userId === bob.user_id), "bob's receipt at alice");
  const r = aRoom().getReceiptsForEvent(aEv1).find((x) => x.userId === bob.user_id)!;
  assert.is(r.type, sdk.ReceiptType.Read);
  assert.ok(aRoom().getUsersReadUpTo(aEv1).includes(bob.user_id), 'getUsersReadUpTo lists bob');
  assert.ok(!aRoom().getReceiptsForEvent(aEv2).some((x) => x.userId === bob.user_id), 'the private receipt did not reach alice');

  // A fresh client of bob's learns his private receipt from the server.
  const b2 = clientFor((await s.listen()), bob);
  try {
    await startSynced(b2, { threadSupport: true });
    const b2Ev2 = await eventAt(b2, roomId, e2);
    const mine = b2.getRoom(roomId)!.getReceiptsForEvent(b2Ev2).filter((x) => x.userId === bob.user_id).map((x) => x.type);
    assert.ok(mine.includes(sdk.ReceiptType.ReadPrivate), `bob's own private receipt came down his sync (${JSON.stringify(mine)})`);
  } finally {
    b2.stopClient();
  }
});

t('a threaded receipt sent by the SDK is accepted and carries its thread', async ({ s, b, alice, bob, roomId }) => {
  const root = await send(s, alice, roomId, 'thread root');
  const replyId = await send(s, alice, roomId, { msgtype: 'm.text', body: 'reply', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
  const since = ok(await api(s, alice, 'GET', '/sync')).next_batch;
  const found = () => b.getRoom(roomId)?.findEventById(replyId) ?? b.getRoom(roomId)?.getThread(root)?.findEventById(replyId);
  await waitUntil(b, [sdk.RoomEvent.Timeline, sdk.ThreadEvent.New, sdk.ThreadEvent.NewReply, sdk.ThreadEvent.Update], () => !!found(), 'the reply at bob');
  const reply = found()!;
  assert.is(reply.threadRootId, root, "the SDK knows the reply's thread");
  await b.sendReadReceipt(reply);
  const inc = ok(await api(s, alice, 'GET', `/sync?since=${since}`));
  const receipt = inc.rooms.join[roomId].ephemeral.events.find((e: any) => e.type === 'm.receipt');
  assert.equal(Object.keys(receipt.content[replyId]['m.read']), [bob.user_id]);
  assert.is(receipt.content[replyId]['m.read'][bob.user_id].thread_id, root, 'the SDK sent thread_id = the root; the server kept it');
});

t('client.setRoomReadMarkers sets m.fully_read, visible as room account data', async ({ s, b, alice, roomId }) => {
  const e = await send(s, alice, roomId, 'marked');
  const ev = await eventAt(b, roomId, e);
  await b.setRoomReadMarkers(roomId, e, ev);
  const room = b.getRoom(roomId)!;
  await waitUntil(room, [sdk.RoomEvent.AccountData], () => room.getAccountData('m.fully_read')?.getContent().event_id === e, 'm.fully_read at bob');
  assert.ok(room.getUsersReadUpTo(ev).includes(b.getUserId()!), 'the read receipt sent with it');
});

t.run();
