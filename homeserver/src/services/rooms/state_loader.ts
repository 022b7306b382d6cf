/**
 * Storage-backed wrappers around the pure state resolution (state_res.ts) for events received over
 * federation: load the events and auth chains a resolution needs, then resolve synchronously; and
 * write a state map as a snapshot, as a delta over a known one when it only adds or replaces keys.
 */
import type { Sql } from '../../storage/db.js';
import * as stateStore from '../../storage/state.js';
import * as fed from '../../storage/federated_events.js';
import { redact } from './event_format.js';
import { resolveState, splitConflicted } from './state_res.js';
import type { RoomEvent, RoomVersionId, StateMap } from './pdu.js';
import { THIRD_PARTY_AUTH } from '../identity/signed.js'; // auth rule 4.4.1.7's signature check

export function sameState(a: StateMap, b: StateMap): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** Loads events for the rules: redacted ones in their redacted form (what the rules must read). */
export async function loadRuleEvents(sql: Sql, ids: string[], version: RoomVersionId): Promise<{ events: Map<string, RoomEvent>; rejected: Set<string> }> {
  const events = new Map<string, RoomEvent>();
  const rejected = new Set<string>();
  for (const [id, s] of await fed.getEventsWithRejected(sql, [...new Set(ids)])) {
    events.set(id, s.redactedBy ? ({ ...redact(s.event, version), event_id: id } as RoomEvent) : s.event);
    if (s.rejected) rejected.add(id);
  }
  return { events, rejected };
}

/**
 * State resolution v2 of `stateSets` over stored events: the conflicted events and every event of
 * their auth chains are loaded first (one recursive query), then state_res runs in memory.
 * `unstored`: events of the sets not written yet (the one being persisted).
 */
export async function resolveStored(sql: Sql, version: RoomVersionId, stateSets: StateMap[], unstored: RoomEvent[] = []): Promise<StateMap> {
  if (stateSets.length === 0) return new Map();
  if (stateSets.length === 1) return new Map(stateSets[0]);
  const { conflicted, unconflicted } = splitConflicted(stateSets);
  if (conflicted.size === 0) return unconflicted;
  // Every state event of every set can be in some auth difference; their chains are needed.
  const all = new Set<string>();
  for (const s of stateSets) for (const id of s.values()) all.add(id);
  // Events being persisted right now are in a state set but not in the tables yet.
  for (const e of unstored) for (const a of e.auth_events) all.add(a);
  const links = await fed.authChainLinks(sql, [...all]);
  const authOf = new Map<string, string[]>();
  for (const l of links) {
    let list = authOf.get(l.eventId);
    if (!list) authOf.set(l.eventId, (list = []));
    list.push(l.authEventId);
    all.add(l.authEventId);
  }
  const { events, rejected } = await loadRuleEvents(sql, [...all], version);
  for (const e of unstored) events.set(e.event_id, e);
  const chainCache = new Map<string, Set<string>>();
  const chainOf = (id: string): Set<string> => {
    const hit = chainCache.get(id);
    if (hit) return hit;
    const out = new Set<string>();
    const stack = [...(authOf.get(id) ?? events.get(id)?.auth_events ?? [])];
    while (stack.length > 0) {
      const a = stack.pop()!;
      if (out.has(a)) continue;
      out.add(a);
      stack.push(...(authOf.get(a) ?? events.get(a)?.auth_events ?? []));
    }
    chainCache.set(id, out);
    return out;
  };
  const authChain = (ids: Iterable<string>) => {
    const out = new Set<string>();
    for (const id of ids) for (const a of chainOf(id)) out.add(a);
    return out;
  };
  return resolveState(version, stateSets, (id) => events.get(id), authChain, { isRejected: (id) => rejected.has(id), auth: THIRD_PARTY_AUTH });
}

/** Loads a snapshot (null: the empty state). */
export async function loadState(sql: Sql, snapshot: number | null): Promise<StateMap> {
  return snapshot === null ? new Map() : stateStore.loadSnapshot(sql, snapshot);
}

/**
 * Writes `map` as a snapshot: reuses `base` when equal, a delta over it when `map` only adds or
 * replaces keys, a full snapshot otherwise (resolution can drop a key).
 */
export async function writeState(sql: Sql, roomId: string, map: StateMap, base?: { snapshot: number | null; map: StateMap }): Promise<number> {
  if (base && base.snapshot !== null) {
    if (sameState(map, base.map)) return base.snapshot;
    let removes = false;
    for (const k of base.map.keys()) if (!map.has(k)) removes = true;
    if (!removes) {
      const delta: StateMap = new Map();
      for (const [k, v] of map) if (base.map.get(k) !== v) delta.set(k, v);
      return stateStore.writeSnapshot(sql, roomId, base.snapshot, delta);
    }
  }
  return stateStore.writeSnapshot(sql, roomId, null, map);
}
