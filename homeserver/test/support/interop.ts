/**
 * Interop test steps shared by federation_synapse.test.ts and federation_dendrite.test.ts: the same
 * scenarios (joins both ways, backfill, reactions, redactions, typing, receipts) run against either
 * peer implementation, checked through both servers' client APIs.
 */
import * as assert from 'uvu/assert';
import type { RequestOptions, Response, TestServer } from './harness.js';
import { eventually, type FederationTestServer, asTestServer as ts } from './federation.js';
import { api, bodies, enc, ok, send, type User } from './rooms.js';

/** What the steps need of a Synapse or Dendrite peer (support/synapse.ts, support/dendrite.ts). */
export interface InteropPeer {
  serverName: string;
  request(method: string, path: string, opts?: RequestOptions): Promise<Response>;
  logTail(lines?: number): string;
}

/** support/rooms.ts helpers on a peer's client API (they only use `request`). */
export const peerServer = (p: InteropPeer) => p as unknown as TestServer;

/**
 * One interop pairing: alice on Hearth `h`, `remote` on `peer`. `peerName` ('Synapse') and
 * `remoteName` ('sam') appear in message bodies and failure messages.
 */
export interface Interop {
  h: FederationTestServer;
  alice: User;
  peer: InteropPeer;
  peerName: string;
  remote: User;
  remoteName: string;
}

/** Bodies of the messages in a /messages page (newest first) read on `s` by `u`. */
export async function history(s: TestServer, u: User, roomId: string): Promise<string[]> {
  return bodies(ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100`), 'messages').chunk);
}

/** Waits until `u` on `s` sees a message with `body` in the room (read through /messages). */
export async function seen(s: TestServer, u: User, roomId: string, body: string, what: string): Promise<void> {
  await eventually(async () => (await history(s, u, roomId)).includes(body), what, 300, 100);
}

/** Waits until `who` has `membership` in the room as `u` on `s` sees it. */
export async function membershipOn(s: TestServer, u: User, roomId: string, who: string, what: string, membership = 'join'): Promise<void> {
  await eventually(async () => {
    const m = ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/members`)).chunk as any[];
    return m.some((e) => e.state_key === who && e.content.membership === membership);
  }, what, 300, 100);
}

/** Hearth accepted every event it holds of the room (the peer's signatures, hashes and auth all checked out). */
export async function noneRejected(h: FederationTestServer, roomId: string): Promise<void> {
  const bad = await h.hs.deps.db.query<{ event_id: string; type: string; rejected_reason: string | null; soft_failed: boolean }>(
    'select event_id, type, rejected_reason, soft_failed from events where room_id = ? and (rejected_reason is not null or soft_failed)',
    [roomId],
  );
  assert.equal(bad, [], 'no event of the room rejected or soft-failed on Hearth');
}

/** A room's state as comparable `type|state_key|event_id` lines. */
export const stateKeys = (events: any[]) => events.map((e) => `${e.type}|${e.state_key}|${e.event_id}`).sort();

/** The room's current state on Hearth and on the peer are the same, event for event. */
export async function sameState(ix: Interop, roomId: string): Promise<void> {
  const onPeer = ok(await api(peerServer(ix.peer), ix.remote, 'GET', `/rooms/${enc(roomId)}/state`)) as any[];
  const onHearth = ok(await api(ts(ix.h), ix.alice, 'GET', `/rooms/${enc(roomId)}/state`)) as any[];
  assert.equal(stateKeys(onPeer), stateKeys(onHearth), 'same state on both servers');
}

/**
 * alice invites the remote user into her Hearth room `roomId`; the remote user joins through Hearth
 * (the peer's make_join/send_join against Hearth's federation API, both asserted). Resets
 * h.federationRequests first, so the caller can inspect what the join sent.
 */
export async function remoteJoinsHearthRoom(ix: Interop, roomId: string): Promise<void> {
  const { h, alice, peer, peerName, remote, remoteName } = ix;
  h.federationRequests.length = 0;
  ok(await api(ts(h), alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: remote.user_id }), `invite ${remoteName}`);
  await eventually(async () => ok(await api(peerServer(peer), remote, 'GET', '/sync?timeout=0')).rooms?.invite?.[roomId] !== undefined, `the invite reaches ${peerName}`, 300, 100);
  const joined = await api(peerServer(peer), remote, 'POST', `/join/${enc(roomId)}?server_name=${enc(h.serverName)}`, {});
  assert.is(joined.status, 200, `${remoteName} joins: ${JSON.stringify(joined.body)}\n${peer.logTail()}`);
  await membershipOn(ts(h), alice, roomId, remote.user_id, `Hearth sees ${remoteName}'s join`);
  // The join came through Hearth's federation API, from the peer.
  const fromPeer = h.federationRequests.filter((r) => r.origin === peer.serverName).map((r) => `${r.method} ${r.url.split('?')[0]!.split('/').slice(0, 5).join('/')}`);
  assert.ok(fromPeer.includes('GET /_matrix/federation/v1/make_join'), `make_join from ${peerName} (got ${JSON.stringify(fromPeer)})`);
  assert.ok(fromPeer.includes('PUT /_matrix/federation/v2/send_join'), `send_join v2 from ${peerName}`);
}

/**
 * The remote user creates "<peerName> room" on the peer (`createBody` adds to /createRoom, e.g. a
 * room_version), sends "<peername> history 1..4" and invites alice; alice sees the stripped state,
 * joins through the peer, gets the room state from send_join and backfills the four messages; Hearth
 * rejected none of the room's events.
 * Returns the room id.
 */
export async function aliceJoinsPeerRoom(ix: Interop, createBody: Record<string, unknown> = {}): Promise<string> {
  const { h, alice, peer, peerName, remote } = ix;
  const p = peerServer(peer);
  const roomName = `${peerName} room`;
  const roomId = ok(await api(p, remote, 'POST', '/createRoom', { name: roomName, preset: 'private_chat', ...createBody })).room_id as string;
  const prefix = `${peerName.toLowerCase()} history`;
  for (let i = 1; i <= 4; i++) await send(p, remote, roomId, `${prefix} ${i}`);
  ok(await api(p, remote, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: alice.user_id }), 'invite alice');
  await eventually(async () => ok(await api(ts(h), alice, 'GET', '/sync?timeout=0')).rooms?.invite?.[roomId] !== undefined, 'the invite reaches Hearth', 300, 100);
  const inv = ok(await api(ts(h), alice, 'GET', '/sync?timeout=0')).rooms.invite[roomId];
  assert.ok(inv.invite_state.events.some((e: any) => e.type === 'm.room.name' && e.content.name === roomName), `stripped state from ${peerName}`);
  const joined = await api(ts(h), alice, 'POST', `/join/${enc(roomId)}?server_name=${enc(peer.serverName)}`, {});
  assert.is(joined.status, 200, `alice joins through ${peerName}: ${JSON.stringify(joined.body)}\n${peer.logTail()}`);
  await membershipOn(p, remote, roomId, alice.user_id, `${peerName} sees alice's join`);
  const name = ok(await api(ts(h), alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.name/`));
  assert.is(name.name, roomName, 'Hearth has the room state from send_join');
  const got = await history(ts(h), alice, roomId);
  assert.equal(got.filter((b) => b.startsWith(prefix)), [4, 3, 2, 1].map((i) => `${prefix} ${i}`), `backfilled from ${peerName} (got ${JSON.stringify(got)})`);
  await noneRejected(h, roomId);
  return roomId;
}

/**
 * Messages both ways, then each side reacts to the other's message (the other side gets the
 * m.reaction, and Hearth's relations API relates the peer's), then each side redacts its own
 * message (the other side's copy loses its content) while the reaction stays.
 */
export async function reactionsAndRedactionsBothWays(ix: Interop, roomId: string): Promise<void> {
  const { h, alice, peer, peerName, remote, remoteName } = ix;
  const p = peerServer(peer);
  const fromAlice = await send(ts(h), alice, roomId, `alice in the ${peerName} room`);
  await seen(p, remote, roomId, `alice in the ${peerName} room`, `${peerName} receives alice's message`);
  const fromRemote = await send(p, remote, roomId, `${remoteName} answers`);
  await seen(ts(h), alice, roomId, `${remoteName} answers`, `Hearth receives ${remoteName}'s message`);

  const reactionOf = async (s: TestServer, u: User, target: string, key: string) => {
    const chunk = ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100`)).chunk as any[];
    return chunk.find((e) => e.type === 'm.reaction' && e.content?.['m.relates_to']?.event_id === target && e.content['m.relates_to'].key === key);
  };
  const remoteReaction = await send(p, remote, roomId, { 'm.relates_to': { rel_type: 'm.annotation', event_id: fromAlice, key: '👍' } }, 'm.reaction');
  await eventually(async () => (await reactionOf(ts(h), alice, fromAlice, '👍'))?.event_id === remoteReaction, `Hearth receives ${remoteName}'s reaction`, 300, 100);
  const aliceReaction = await send(ts(h), alice, roomId, { 'm.relates_to': { rel_type: 'm.annotation', event_id: fromRemote, key: '🎉' } }, 'm.reaction');
  await eventually(async () => (await reactionOf(p, remote, fromRemote, '🎉'))?.event_id === aliceReaction, `${peerName} receives alice's reaction`, 300, 100);
  const rel = ok(await ts(h).request('GET', `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(fromAlice)}/m.annotation`, { token: alice.access_token }));
  assert.equal(rel.chunk.map((e: any) => e.event_id), [remoteReaction], `Hearth relates ${remoteName}'s reaction to alice's message`);

  const redact = async (s: TestServer, u: User, eventId: string) =>
    ok(await api(s, u, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(eventId)}/${Date.now()}r`, { reason: 'oops' }), 'redact').event_id as string;
  const redactedOn = async (s: TestServer, u: User, eventId: string) => {
    const e = ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/event/${enc(eventId)}`));
    return e.content.body === undefined && e.unsigned?.redacted_because !== undefined;
  };
  await redact(ts(h), alice, fromAlice);
  await eventually(() => redactedOn(p, remote, fromAlice), `${peerName} applies alice's redaction`, 300, 100);
  await redact(p, remote, fromRemote);
  await eventually(() => redactedOn(ts(h), alice, fromRemote), `Hearth applies ${remoteName}'s redaction`, 300, 100);
  assert.not.ok(await redactedOn(ts(h), alice, remoteReaction), 'other events stay');
  await noneRejected(h, roomId);
}

/** The remote user's typing notification reaches Hearth's /sync; alice's read receipt reaches the peer's. */
export async function typingAndReceipts(ix: Interop, roomId: string): Promise<void> {
  const { h, alice, peer, peerName, remote, remoteName } = ix;
  const p = peerServer(peer);
  /** Polls incremental /sync of `u` on `s` until the room's ephemeral event of `type` passes `check`. */
  const ephemeral = async (s: TestServer, u: User, type: string, check: (e: any) => boolean, what: string) => {
    let since: string | undefined;
    await eventually(async () => {
      const sync = ok(await api(s, u, 'GET', `/sync?timeout=0${since ? `&since=${enc(since)}` : ''}`));
      since = sync.next_batch;
      const found = (sync.rooms?.join?.[roomId]?.ephemeral?.events ?? []).find((e: any) => e.type === type);
      return found !== undefined && check(found);
    }, what, 300, 100);
  };
  ok(await api(p, remote, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(remote.user_id)}`, { typing: true, timeout: 30000 }), 'typing');
  await ephemeral(ts(h), alice, 'm.typing', (e) => e.content.user_ids.includes(remote.user_id) === true, `Hearth shows ${remoteName} typing`);

  const last = await send(p, remote, roomId, 'read me');
  await seen(ts(h), alice, roomId, 'read me', 'Hearth receives the message');
  ok(await api(ts(h), alice, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(last)}`, {}), 'receipt');
  await ephemeral(p, remote, 'm.receipt', (e) => e.content?.[last]?.['m.read']?.[alice.user_id] !== undefined, `${peerName} shows alice's read receipt`);
}
