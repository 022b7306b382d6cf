/**
 * Crafted PDU streams for the federation benches (federation-bench.ts, federation-vs-synapse.ts):
 * a linear chain of events signed by one Hearth server of the federation fixture (a "fake origin"
 * whose events no process of that server knows about), and their delivery as /send transactions.
 */
import type { RoomVersionId } from '../../homeserver/src/services/rooms/pdu.js';
import { currentStateMap, type FederationTestServer } from '../../homeserver/test/support/federation.js';

export interface CraftedPdu {
  id: string;
  pdu: Record<string, unknown>;
}

/** A spec limit: a transaction carries at most 50 PDUs. */
export const TXN_PDUS = 50;

/**
 * Events of one room chained one after the other (each one's only prev event is the previous one),
 * signed with `signer`'s key; senders must be users of `signer`. Joins use the create, power
 * levels and join rules events as auth; messages the sender's join instead of the join rules.
 */
export class PduChain {
  private readonly memberOf = new Map<string, string>();
  private prev: string[] = [];
  private depth = 0;
  private state = new Map<string, string>();

  private constructor(
    readonly roomId: string,
    readonly version: RoomVersionId,
    private readonly signer: FederationTestServer,
  ) {}

  /** A chain continuing `on`'s view of the room (its forward extremities and current state). */
  static async on(on: FederationTestServer, roomId: string, signer: FederationTestServer): Promise<PduChain> {
    const [room] = await on.hs.deps.db.query<{ room_version: string }>('select room_version from rooms where room_id = ?', [roomId]);
    const chain = new PduChain(roomId, room!.room_version as RoomVersionId, signer);
    await chain.rebase(on);
    return chain;
  }

  /** Continues from `on`'s current forward extremities (after events the chain did not make, e.g. other joins). */
  async rebase(on: FederationTestServer): Promise<void> {
    const ext = await on.hs.deps.db.query<{ event_id: string; depth: string }>(
      'select f.event_id, e.depth from forward_extremities f join events e using (event_id) where f.room_id = ?',
      [this.roomId],
    );
    this.prev = ext.map((e) => e.event_id);
    this.depth = Math.max(...ext.map((e) => Number(e.depth)));
    this.state = await currentStateMap(on, this.roomId);
  }

  private next(ev: { type: string; sender: string; content: Record<string, unknown>; state_key?: string }, authEvents: string[]): CraftedPdu {
    const pdu = { room_id: this.roomId, ...ev, prev_events: this.prev, auth_events: authEvents, depth: ++this.depth, origin_server_ts: Date.now() };
    const { event, json } = this.signer.hs.deps.services.rooms.signingKey.build(pdu, this.version);
    this.prev = [event.event_id];
    return { id: event.event_id, pdu: JSON.parse(json) as Record<string, unknown> };
  }

  private get(key: string): string {
    const id = this.state.get(key);
    if (!id) throw new Error(`PduChain: no ${key} in the room's state`);
    return id;
  }

  /** `userId` joins (public room). */
  join(userId: string): CraftedPdu {
    const j = this.next({ type: 'm.room.member', sender: userId, state_key: userId, content: { membership: 'join' } }, [
      this.get('m.room.create|'),
      this.get('m.room.power_levels|'),
      this.get('m.room.join_rules|'),
    ]);
    this.memberOf.set(userId, j.id);
    return j;
  }

  /** A text message from `sender`, who joined through this chain. */
  message(sender: string, body: string): CraftedPdu {
    const member = this.memberOf.get(sender);
    if (!member) throw new Error(`PduChain: ${sender} did not join through this chain`);
    return this.next({ type: 'm.room.message', sender, content: { msgtype: 'm.text', body } }, [this.get('m.room.create|'), this.get('m.room.power_levels|'), member]);
  }
}

let txnSeq = 0;

/**
 * PUTs `pdus` from `from` to `destination`'s /send in transactions of `TXN_PDUS`, one after the
 * other (each waits for the previous answer). `onTxn` hears each transaction's start (before
 * its request) with its PDUs; `afterTxn`, when given, is awaited after each answer (pacing). Returns how many PDUs the destination refused (an `error` in its answer).
 */
export async function sendTransactions(
  from: FederationTestServer,
  destination: string,
  pdus: CraftedPdu[],
  onTxn?: (batch: CraftedPdu[], startedMs: number) => void,
  afterTxn?: (batch: CraftedPdu[]) => Promise<void>,
): Promise<{ refused: number }> {
  let refused = 0;
  for (let i = 0; i < pdus.length; i += TXN_PDUS) {
    const batch = pdus.slice(i, i + TXN_PDUS);
    onTxn?.(batch, performance.now());
    const answer = await from.hs.deps.services.federation.client.request({
      destination,
      method: 'PUT',
      path: `/_matrix/federation/v1/send/bench${Date.now()}.${++txnSeq}`,
      body: { origin: from.serverName, origin_server_ts: Date.now(), pdus: batch.map((x) => x.pdu) as never },
    });
    const results = (answer.pdus ?? {}) as Record<string, { error?: string }>;
    for (const x of batch) if (results[x.id]?.error !== undefined) refused++;
    await afterTxn?.(batch);
  }
  return { refused };
}

/**
 * The PostgreSQL admin URL the benches create their scratch databases on (HEARTH_DATABASE_URL or
 * HEARTH_TEST_DATABASE_URL); exits with 2 when neither is set. The test fixtures the benches use
 * read HEARTH_TEST_DATABASE_URL, so it is set to the answer.
 */
export function benchAdminUrl(): string {
  const admin = process.env.HEARTH_DATABASE_URL ?? process.env.HEARTH_TEST_DATABASE_URL;
  if (!admin) {
    console.error('bench: set HEARTH_DATABASE_URL to a PostgreSQL admin URL (scratch databases are created there)');
    process.exit(2);
  }
  process.env.HEARTH_TEST_DATABASE_URL = admin;
  return admin;
}
