// The real matrix-js-sdk (37.x) and push rule counts: bob's client sees
// room.getUnreadNotificationCount('total'/'highlight') rise with alice's messages and a mention
// (unread_notifications in /sync), and fall to 0 after client.sendReadReceipt.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as sdk from 'matrix-js-sdk';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { createRoom, join, send, type User } from './support/rooms.js';
import { clientFor, quietSdk, startSynced, unrefLongTimers, waitUntil } from './support/sdk.js';

quietSdk();

type Ctx = { s: TestServer; baseUrl: string; alice: User; bob: User; roomId: string; b: sdk.MatrixClient; restoreTimers: () => void };
const t = suite<Ctx>('matrix-js-sdk 37: unread notification counts');

beforeAll(t, async (ctx) => {
  ctx.restoreTimers = unrefLongTimers();
  ctx.s = await startTestServer();
  ctx.baseUrl = await ctx.s.listen();
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.bob = await registerUser(ctx.s, 'bob');
  ctx.roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat', name: 'Counts' });
  await join(ctx.s, ctx.bob, ctx.roomId);
  ctx.b = clientFor(ctx.baseUrl, ctx.bob);
  await startSynced(ctx.b);
});
t.after(async (ctx) => {
  ctx.b?.stopClient();
  await ctx.s?.close();
  ctx.restoreTimers?.();
});

t("alice's messages and a mention raise bob's counts; his read receipt clears them", async ({ s, alice, bob, b, roomId }) => {
  const room = () => b.getRoom(roomId);
  const total = () => room()?.getUnreadNotificationCount(sdk.NotificationCountType.Total) ?? -1;
  const highlight = () => room()?.getUnreadNotificationCount(sdk.NotificationCountType.Highlight) ?? -1;
  const events = [sdk.RoomEvent.UnreadNotifications, sdk.RoomEvent.Timeline, sdk.ClientEvent.Sync];
  await waitUntil(b, events, () => total() === 0, 'the room at bob with nothing unread');

  await send(s, alice, roomId, 'one');
  await send(s, alice, roomId, 'two');
  await waitUntil(b, events, () => total() === 2, "two of alice's messages counted");
  assert.is(highlight(), 0);

  const mentionId = await send(s, alice, roomId, { msgtype: 'm.text', body: `look ${bob.user_id}`, 'm.mentions': { user_ids: [bob.user_id] } });
  await waitUntil(b, events, () => total() === 3 && highlight() === 1, 'the mention counted and highlighted');

  await waitUntil(b, [sdk.RoomEvent.Timeline], () => !!room()?.findEventById(mentionId), 'the mention in bob\'s timeline');
  await b.sendReadReceipt(room()!.findEventById(mentionId)!);
  await waitUntil(b, events, () => total() === 0 && highlight() === 0, 'the counts back to 0 after the receipt');
});

t.run();
