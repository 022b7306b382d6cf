import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser } from './support/harness.js';
import { startFederationCluster, type FederationCluster, type FederationTestServer, asTestServer as ts, inviteAndJoin } from './support/federation.js';
import { beforeAll } from './support/hooks.js';
import { api, enc, ok, send, type User } from './support/rooms.js';

/**
 * Ephemeral data between real servers (issue 5): typing, read receipts and presence flow both ways
 * between alice on A and bob on B in a room bob joined through the real invite + make_join/send_join
 * flow, carried by each server's federation sender as EDUs. A private read receipt stays home.
 * Each check long-polls /sync on the receiving server (set_presence=offline, so syncing does not
 * change anyone's presence).
 */
const ENV = {
  HEARTH_FEDERATION_RETRY_BASE_MS: '100',
  HEARTH_FEDERATION_RETRY_MAX_MS: '400',
  // A remote typing notice lasts the default timeout: long, so a list empties only by a stop EDU.
  HEARTH_TYPING_DEFAULT_TIMEOUT_MS: '600000',
  HEARTH_TYPING_MAX_TIMEOUT_MS: '600000',
  HEARTH_LOG_LEVEL: process.env.FE_LOG ?? 'silent',
};

type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User; roomId: string };
const t = suite<Ctx>('federation: typing, receipts and presence both ways');

type SyncResponse = any;

/** The current end of `u`'s sync stream on `s`. */
async function syncToken(s: FederationTestServer, u: User): Promise<string> {
  return ok(await api(ts(s), u, 'GET', '/sync?timeout=0&set_presence=offline')).next_batch as string;
}

/**
 * Long-polls `u`'s /sync on `s` from `since` until a response satisfies `pred`; returns every
 * response seen (so a caller can check what never showed up), the last one first matching.
 */
async function syncUntil(s: FederationTestServer, u: User, since: string, pred: (r: SyncResponse) => boolean, what: string, rounds = 20): Promise<SyncResponse[]> {
  const seen: SyncResponse[] = [];
  let from = since;
  for (let i = 0; i < rounds; i++) {
    const r = ok(await api(ts(s), u, 'GET', `/sync?timeout=5000&set_presence=offline&since=${enc(from)}`));
    seen.push(r);
    if (pred(r)) return seen;
    from = r.next_batch;
  }
  throw new Error(`never happened: ${what}`);
}

const ephemeral = (r: SyncResponse, roomId: string, type: string): any[] => (r.rooms?.join?.[roomId]?.ephemeral?.events ?? []).filter((e: any) => e.type === type);
const typingIds = (r: SyncResponse, roomId: string): string[] | undefined => ephemeral(r, roomId, 'm.typing').at(-1)?.content.user_ids;
/** The receipt `userId` holds on `eventId` of type `receiptType`, as a sync response shows it. */
const receiptOf = (r: SyncResponse, roomId: string, eventId: string, receiptType: string, userId: string) =>
  ephemeral(r, roomId, 'm.receipt').map((e) => e.content[eventId]?.[receiptType]?.[userId]).find((x) => x !== undefined);
const presenceOf = (r: SyncResponse, userId: string) => (r.presence?.events ?? []).filter((e: any) => e.type === 'm.presence' && e.sender === userId).at(-1);

beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b'], { env: () => ENV });
  ctx.a = ctx.cluster.get('hs-a');
  ctx.b = ctx.cluster.get('hs-b');
  ctx.alice = await registerUser(ts(ctx.a), 'alice');
  ctx.bob = await registerUser(ts(ctx.b), 'bob');
  // The real flow: a room on A, an invite over federation, bob joins through A.
  ctx.roomId = ok(await api(ts(ctx.a), ctx.alice, 'POST', '/createRoom', { preset: 'private_chat', name: 'Ephemeral' })).room_id;
  await inviteAndJoin(ctx.a, ctx.alice, ctx.b, ctx.bob, ctx.roomId);
  // A holds bob's join before anything ephemeral is sent (the join came back through send_join).
  const members = ok(await api(ts(ctx.a), ctx.alice, 'GET', `/rooms/${enc(ctx.roomId)}/joined_members`)).joined;
  assert.ok(members[ctx.bob.user_id], 'A lists bob as joined');
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

t('typing: alice on A → bob on B, bob on B → alice on A, and alice stopping empties the list on B', async ({ a, b, alice, bob, roomId }) => {
  const bobSince = await syncToken(b, bob);
  ok(await api(ts(a), alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.user_id)}`, { typing: true, timeout: 30_000 }));
  const onB = await syncUntil(b, bob, bobSince, (r) => typingIds(r, roomId)?.includes(alice.user_id) === true, 'alice typing on B');
  assert.equal(typingIds(onB.at(-1), roomId), [alice.user_id]);

  const aliceSince = await syncToken(a, alice);
  ok(await api(ts(b), bob, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(bob.user_id)}`, { typing: true, timeout: 30_000 }));
  const onA = await syncUntil(a, alice, aliceSince, (r) => typingIds(r, roomId)?.includes(bob.user_id) === true, 'bob typing on A');
  assert.equal([...typingIds(onA.at(-1), roomId)!].sort(), [alice.user_id, bob.user_id].sort(), 'A shows both typists');

  // bob stops locally first, so B's list only holds alice; then alice stops and it empties.
  ok(await api(ts(b), bob, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(bob.user_id)}`, { typing: false }));
  const bobSince2 = await syncToken(b, bob);
  ok(await api(ts(a), alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.user_id)}`, { typing: false }));
  const stopped = await syncUntil(b, bob, bobSince2, (r) => typingIds(r, roomId) !== undefined && !typingIds(r, roomId)!.includes(alice.user_id), 'alice stops on B');
  assert.equal(typingIds(stopped.at(-1), roomId), [], 'the empty list reaches B');
  // And bob's stop reached A too.
  await syncUntil(a, alice, aliceSince, (r) => typingIds(r, roomId)?.length === 0, 'both stopped on A');
});

t('read receipts: alice on A reads bob’s message → B shows it; bob reads alice’s → A shows it', async ({ a, b, alice, bob, roomId }) => {
  const fromBob = await send(ts(b), bob, roomId, 'hello from B');
  const aliceSince = await syncToken(a, alice);
  await syncUntil(a, alice, aliceSince, (r) => (r.rooms?.join?.[roomId]?.timeline?.events ?? []).some((e: any) => e.event_id === fromBob), 'bob’s message on A');
  const bobSince = await syncToken(b, bob);
  ok(await api(ts(a), alice, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(fromBob)}`, {}));
  const onB = await syncUntil(b, bob, bobSince, (r) => receiptOf(r, roomId, fromBob, 'm.read', alice.user_id) !== undefined, 'alice’s receipt on B');
  assert.type(receiptOf(onB.at(-1), roomId, fromBob, 'm.read', alice.user_id).ts, 'number');

  const fromAlice = await send(ts(a), alice, roomId, 'hello from A');
  const bobSince2 = await syncToken(b, bob);
  await syncUntil(b, bob, bobSince2, (r) => (r.rooms?.join?.[roomId]?.timeline?.events ?? []).some((e: any) => e.event_id === fromAlice), 'alice’s message on B');
  const aliceSince2 = await syncToken(a, alice);
  ok(await api(ts(b), bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(fromAlice)}`, {}));
  const onA = await syncUntil(a, alice, aliceSince2, (r) => receiptOf(r, roomId, fromAlice, 'm.read', bob.user_id) !== undefined, 'bob’s receipt on A');
  assert.type(receiptOf(onA.at(-1), roomId, fromAlice, 'm.read', bob.user_id).ts, 'number');
});

t('an m.read.private receipt never leaves its server; a later public one does', async ({ a, b, alice, bob, roomId }) => {
  const first = await send(ts(a), alice, roomId, 'private read target');
  const second = await send(ts(a), alice, roomId, 'public read target');
  const bobSince = await syncToken(b, bob);
  await syncUntil(b, bob, bobSince, (r) => (r.rooms?.join?.[roomId]?.timeline?.events ?? []).some((e: any) => e.event_id === second), 'alice’s messages on B');
  const aliceSince = await syncToken(a, alice);
  ok(await api(ts(b), bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read.private/${enc(first)}`, {}));
  // bob's own sync on B shows his private receipt (it was stored).
  const own = ok(await api(ts(b), bob, 'GET', `/sync?timeout=0&set_presence=offline&since=${enc(bobSince)}`));
  assert.ok(receiptOf(own, roomId, first, 'm.read.private', bob.user_id), 'B keeps the private receipt');
  // The public receipt after it travels the same path; once it is on A, the private one would be too.
  ok(await api(ts(b), bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(second)}`, {}));
  const seen = await syncUntil(a, alice, aliceSince, (r) => receiptOf(r, roomId, second, 'm.read', bob.user_id) !== undefined, 'bob’s public receipt on A');
  for (const r of seen) {
    assert.is(receiptOf(r, roomId, first, 'm.read', bob.user_id), undefined, 'no public receipt on the privately read event');
    assert.is(receiptOf(r, roomId, first, 'm.read.private', bob.user_id), undefined, 'no private receipt on A');
  }
  const onA = await a.hs.deps.db.query<{ event_id: string; receipt_type: string }>('select event_id, receipt_type from receipts where room_id = ? and user_id = ?', [roomId, bob.user_id]);
  assert.not.ok(onA.some((r) => r.receipt_type === 'm.read.private' || r.event_id === first), `A holds only bob's public receipts (${JSON.stringify(onA)})`);
});

t('presence: alice unavailable with a status message → bob sees it on B, and the other way round', async ({ a, b, alice, bob }) => {
  const bobSince = await syncToken(b, bob);
  ok(await api(ts(a), alice, 'PUT', `/presence/${enc(alice.user_id)}/status`, { presence: 'unavailable', status_msg: 'at lunch' }));
  const onB = await syncUntil(b, bob, bobSince, (r) => presenceOf(r, alice.user_id)?.content.status_msg === 'at lunch', 'alice’s presence on B');
  assert.is(presenceOf(onB.at(-1), alice.user_id).content.presence, 'unavailable');
  const status = ok(await api(ts(b), bob, 'GET', `/presence/${enc(alice.user_id)}/status`));
  assert.is(status.presence, 'unavailable');
  assert.is(status.status_msg, 'at lunch');

  const aliceSince = await syncToken(a, alice);
  ok(await api(ts(b), bob, 'PUT', `/presence/${enc(bob.user_id)}/status`, { presence: 'unavailable', status_msg: 'in a meeting' }));
  const onA = await syncUntil(a, alice, aliceSince, (r) => presenceOf(r, bob.user_id)?.content.status_msg === 'in a meeting', 'bob’s presence on A');
  assert.is(presenceOf(onA.at(-1), bob.user_id).content.presence, 'unavailable');
  const back = ok(await api(ts(a), alice, 'GET', `/presence/${enc(bob.user_id)}/status`));
  assert.is(back.presence, 'unavailable');
  assert.is(back.status_msg, 'in a meeting');
});

t.run();
