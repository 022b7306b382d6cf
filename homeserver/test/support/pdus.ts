/**
 * Building blocks for unit tests of the room rules (auth_rules, state_res, room versions): PDUs
 * made by hand, without hashes or real signatures, and the auth chain over a test's own events.
 */
import type { RoomEvent } from '../../src/services/rooms/pdu.js';

export type EventOpts = {
  state_key?: string;
  /** Default ['$prev']. */
  prev?: string[];
  /** Default []. */
  auth?: string[];
  /** Default: the builder's room. */
  room?: string;
  redacts?: string;
  /** Servers with a (fake) signature; default the sender's server. */
  signedBy?: string[];
};

/**
 * An event factory for `room`: `(id, type, sender, content, opts)` -> a RoomEvent with depth 1, a
 * dummy hash and signature(s), and an origin_server_ts that increases with each event made.
 */
export function eventBuilder(room: string): (id: string, type: string, sender: string, content: Record<string, unknown>, o?: EventOpts) => RoomEvent {
  let clock = 1000;
  return (id, type, sender, content, o = {}) => {
    const servers = o.signedBy ?? [sender.slice(sender.indexOf(':') + 1)];
    return {
      event_id: id,
      room_id: o.room ?? room,
      type,
      sender,
      content,
      ...(o.state_key !== undefined ? { state_key: o.state_key } : {}),
      ...(o.redacts !== undefined ? { redacts: o.redacts } : {}),
      prev_events: o.prev ?? ['$prev'],
      auth_events: o.auth ?? [],
      depth: 1,
      hashes: { sha256: 'x' },
      origin_server_ts: clock++,
      signatures: Object.fromEntries(servers.map((s) => [s, { 'ed25519:k': 'sig' }])),
    };
  };
}

/** The auth chain per the spec over `events`: everything reachable through auth_events, excluding the start events themselves. */
export function authChainOver(events: ReadonlyMap<string, RoomEvent>): (ids: Iterable<string>) => Set<string> {
  return (ids) => {
    const out = new Set<string>();
    const stack = [...ids].flatMap((id) => events.get(id)?.auth_events ?? []);
    for (let id = stack.pop(); id !== undefined; id = stack.pop()) {
      if (out.has(id)) continue;
      out.add(id);
      stack.push(...(events.get(id)?.auth_events ?? []));
    }
    return out;
  };
}
