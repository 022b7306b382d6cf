/**
 * State resolution v2, as room versions 10 and 11 use it (spec: rooms/fragments/
 * v2-state-res.md, included by rooms/v10.md and v11.md "State resolution"), and v2.1 for room
 * version 12 (rooms/v12.md; the differences are in state_res_v21.ts).
 *
 * Synchronous and pure: events come from `fetchEvent` and auth chains from `authChain`, so
 * a storage-backed async wrapper can preload what it needs and call this.
 */
import { stateKey, type RoomEvent, type RoomVersionId, type StateKey, type StateMap } from './pdu.js';
import { authEventTypesFor, checkAuth, CREATE_KEY, POWER_LEVELS_KEY, type AuthOptions } from './auth_rules.js';
import { createEventIdOfRoom, roomIdIsCreateHash } from './room_v12.js';
import { conflictedSubgraph, usesStateResV21 } from './state_res_v21.js';
import { ownGet, userPowerLevel } from './power_levels.js';

export type FetchEvent = (eventId: string) => RoomEvent | undefined;

/**
 * The auth chain of a set of events: every event reachable by following `auth_events`
 * links from them, *not* counting the given events themselves unless reachable (spec
 * definition "Auth chain"). Callers backed by storage should cache it.
 */
export type AuthChain = (eventIds: Iterable<string>) => Set<string>;

export interface StateResOptions {
  /**
   * Whether an event was rejected. Rejected events are never used as auth events in the
   * iterative auth checks ("Rejected auth events are deliberately excluded").
   */
  isRejected?: (eventId: string) => boolean;
  /** Passed through to checkAuth (signature verification hooks). */
  auth?: AuthOptions;
}

/**
 * "Power events": power levels and join rules events, and kicks/bans (a leave or ban whose
 * sender is not its target) — the events that can take abilities away.
 */
export function isPowerEvent(event: RoomEvent): boolean {
  if (event.state_key === undefined) return false;
  if (event.type === 'm.room.power_levels' || event.type === 'm.room.join_rules') {
    return event.state_key === '';
  }
  if (event.type !== 'm.room.member') return false;
  const membership = ownGet(event.content, 'membership');
  return (membership === 'leave' || membership === 'ban') && event.sender !== event.state_key;
}

/**
 * Unconflicted state map and conflicted state set: a key whose value is the same event in
 * *every* state set is unconflicted; otherwise every event any set has for it is conflicted
 * (a key missing from some set is conflicted too).
 */
export function splitConflicted(stateSets: readonly StateMap[]): {
  unconflicted: StateMap;
  conflicted: Set<string>;
} {
  const unconflicted: StateMap = new Map();
  const conflicted = new Set<string>();
  const keys = new Set<StateKey>();
  for (const set of stateSets) for (const key of set.keys()) keys.add(key);
  for (const key of keys) {
    const ids = stateSets.map((s) => s.get(key));
    const first = ids[0];
    if (first !== undefined && ids.every((id) => id === first)) {
      unconflicted.set(key, first);
    } else {
      for (const id of ids) if (id !== undefined) conflicted.add(id);
    }
  }
  return { unconflicted, conflicted };
}

/** Auth difference: ∪ Cᵢ − ∩ Cᵢ, where Cᵢ is the auth chain of all events of state set i. */
export function authDifference(stateSets: readonly StateMap[], authChain: AuthChain): Set<string> {
  const chains = stateSets.map((s) => authChain(s.values()));
  const diff = new Set<string>();
  for (const chain of chains) {
    for (const id of chain) if (!chains.every((c) => c.has(id))) diff.add(id);
  }
  return diff;
}

/**
 * The level of an event's sender "when looking at their respective auth_events": the
 * power levels event among its auth events, or, without one, 100 for the creator (named by
 * the create event among its auth events) and 0 for everyone else.
 */
function senderPowerLevel(event: RoomEvent, fetchEvent: FetchEvent, roomVersion: RoomVersionId): number {
  let pl: RoomEvent | undefined;
  let create: RoomEvent | undefined;
  for (const id of event.auth_events) {
    const e = fetchEvent(id);
    if (e?.state_key !== '') continue;
    if (e.type === 'm.room.power_levels') pl = e;
    else if (e.type === 'm.room.create') create = e;
  }
  // v12: the create event is not among the auth events; the room id names it.
  if (roomIdIsCreateHash(roomVersion)) create = fetchEvent(createEventIdOfRoom(event.room_id));
  return userPowerLevel(event.sender, pl, create, roomVersion);
}

/** A minimal binary min-heap; `less` decides the order. */
class MinHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  push(item: T): void {
    const a = this.items;
    a.push(item);
    for (let i = a.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.less(a[i] as T, a[parent] as T)) break;
      [a[i], a[parent]] = [a[parent] as T, a[i] as T];
      i = parent;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l] as T, a[m] as T)) m = l;
        if (r < a.length && this.less(a[r] as T, a[m] as T)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m] as T, a[i] as T];
        i = m;
      }
    }
    return top;
  }
}

/**
 * Reverse topological power ordering of `events` (earliest first): Kahn's algorithm over
 * the auth DAG restricted to `events`, always taking the smallest ready event, where x < y
 * if x's sender has the greater power level, else the smaller origin_server_ts, else the
 * smaller event_id.
 *
 * `authChainOf(id)` gives each event's auth chain. Edges are "y is in x's auth chain", not
 * just direct `auth_events` links, so that an ancestor reached only through an event
 * outside `events` still sorts first (a DAG and its transitive closure have the same
 * topological orderings, so this is exactly the ordering of the auth DAG itself).
 */
export function reverseTopologicalPowerSort(
  events: readonly RoomEvent[],
  authChainOf: (eventId: string) => ReadonlySet<string>,
  fetchEvent: FetchEvent,
  roomVersion: RoomVersionId,
): string[] {
  type Node = { id: string; level: number; ts: number };
  const ids = new Set(events.map((e) => e.event_id));
  const nodes = new Map<string, Node>();
  const waitingOn = new Map<string, number>(); // number of own ancestors not yet emitted
  const dependents = new Map<string, string[]>(); // ancestor → events that wait on it
  for (const e of events) {
    nodes.set(e.event_id, { id: e.event_id, level: senderPowerLevel(e, fetchEvent, roomVersion), ts: e.origin_server_ts });
    let count = 0;
    for (const a of authChainOf(e.event_id)) {
      if (!ids.has(a) || a === e.event_id) continue;
      count++;
      const list = dependents.get(a);
      if (list) list.push(e.event_id);
      else dependents.set(a, [e.event_id]);
    }
    waitingOn.set(e.event_id, count);
  }
  const heap = new MinHeap<Node>(
    (x, y) => x.level > y.level || (x.level === y.level && (x.ts < y.ts || (x.ts === y.ts && x.id < y.id))),
  );
  for (const [id, count] of waitingOn) if (count === 0) heap.push(nodes.get(id) as Node);
  const out: string[] = [];
  while (heap.size > 0) {
    const node = heap.pop() as Node;
    out.push(node.id);
    for (const d of dependents.get(node.id) ?? []) {
      const left = (waitingOn.get(d) as number) - 1;
      waitingOn.set(d, left);
      if (left === 0) heap.push(nodes.get(d) as Node);
    }
  }
  // Anything left over sits on an auth cycle, which valid events cannot form (an event's
  // auth events are referenced by hash, so must predate it); such events are dropped.
  return out;
}

/** The power levels event among an event's auth events, if any. */
function authPowerLevels(event: RoomEvent, fetchEvent: FetchEvent): RoomEvent | undefined {
  for (const id of event.auth_events) {
    const e = fetchEvent(id);
    if (e && e.type === 'm.room.power_levels' && e.state_key === '') return e;
  }
  return undefined;
}

/**
 * Mainline ordering based on the power levels event `powerLevelsId` (earliest first). The
 * mainline is P₀ = that event, P₁ its power levels auth event, and so on. An event's
 * mainline position is the index i of the first Pᵢ met walking back through power levels
 * auth events from it (the event itself excluded), ∞ if none; a *greater* position sorts
 * earlier, ties go to the smaller origin_server_ts, then the smaller event_id.
 */
export function mainlineSort(
  events: readonly RoomEvent[],
  powerLevelsId: string | undefined,
  fetchEvent: FetchEvent,
): string[] {
  const mainline = new Map<string, number>();
  const seen = new Set<string>();
  for (let p = powerLevelsId ? fetchEvent(powerLevelsId) : undefined; p && !seen.has(p.event_id); ) {
    seen.add(p.event_id);
    mainline.set(p.event_id, mainline.size);
    p = authPowerLevels(p, fetchEvent);
  }
  // Memoised position reached from a power levels event on an event's walk.
  const fromPl = new Map<string, number>();
  const positionFrom = (start: RoomEvent | undefined): number => {
    const walked: string[] = [];
    let pos = Infinity;
    for (let p = start; p; p = authPowerLevels(p, fetchEvent)) {
      const known = mainline.get(p.event_id) ?? fromPl.get(p.event_id);
      if (known !== undefined) {
        pos = known;
        break;
      }
      if (walked.includes(p.event_id)) break; // a cycle: never reaches the mainline
      walked.push(p.event_id);
    }
    for (const id of walked) fromPl.set(id, pos);
    return pos;
  };
  const keyed = events.map((e) => ({ e, pos: positionFrom(authPowerLevels(e, fetchEvent)) }));
  keyed.sort((a, b) => {
    if (a.pos !== b.pos) return a.pos > b.pos ? -1 : 1;
    if (a.e.origin_server_ts !== b.e.origin_server_ts) return a.e.origin_server_ts - b.e.origin_server_ts;
    return a.e.event_id < b.e.event_id ? -1 : a.e.event_id > b.e.event_id ? 1 : 0;
  });
  return keyed.map((k) => k.e.event_id);
}

/**
 * Iterative auth checks: apply each event in order to `state` if the authorization rules
 * allow it against that state. Auth events come from `state` for every key the event's
 * auth events selection asks for, and from the event's own (non-rejected) `auth_events`
 * for keys `state` lacks.
 */
export function iterativeAuthChecks(
  roomVersion: RoomVersionId,
  eventIds: readonly string[],
  initial: StateMap,
  fetchEvent: FetchEvent,
  options: StateResOptions = {},
): StateMap {
  const state: StateMap = new Map(initial);
  const usable = (id: string | undefined): RoomEvent | undefined =>
    id === undefined || options.isRejected?.(id) ? undefined : fetchEvent(id);
  for (const id of eventIds) {
    const event = fetchEvent(id);
    if (!event || event.state_key === undefined) continue;
    const authState = new Map<StateKey, RoomEvent>();
    for (const aid of event.auth_events) {
      const a = usable(aid);
      if (a && a.state_key !== undefined) authState.set(stateKey(a.type, a.state_key), a);
    }
    for (const key of authEventTypesFor(event, roomVersion)) {
      const a = usable(state.get(key));
      if (a) authState.set(key, a);
    }
    // v12: the create event is implied by the room id, whatever the state holds (v2.1 starts
    // from an empty state, and the create event is never among the auth events).
    if (roomIdIsCreateHash(roomVersion)) {
      const create = usable(createEventIdOfRoom(event.room_id));
      if (create) authState.set(CREATE_KEY, create);
      else authState.delete(CREATE_KEY);
    }
    if (checkAuth(event, authState, roomVersion, options.auth).allowed) {
      state.set(stateKey(event.type, event.state_key), id);
    }
  }
  return state;
}

/**
 * Resolve `stateSets` (the states after each prev event) into the state before an event.
 * Events `fetchEvent` does not know are left out, as they cannot be checked.
 */
export function resolveState(
  roomVersion: RoomVersionId,
  stateSets: readonly StateMap[],
  fetchEvent: FetchEvent,
  authChain: AuthChain,
  options: StateResOptions = {},
): StateMap {
  const { unconflicted, conflicted } = splitConflicted(stateSets);
  if (conflicted.size === 0) return unconflicted;

  // Full conflicted set = conflicted state set ∪ auth difference (∪, in v2.1, the conflicted
  // state subgraph).
  const v21 = usesStateResV21(roomVersion);
  const full = new Map<string, RoomEvent>();
  const subgraph = v21 ? conflictedSubgraph(conflicted, fetchEvent) : [];
  for (const id of [...conflicted, ...subgraph, ...authDifference(stateSets, authChain)]) {
    const e = fetchEvent(id);
    if (e) full.set(id, e);
  }

  // 1. Power events of the full conflicted set, plus the members of the full conflicted
  // set in their auth chains, in reverse topological power ordering.
  const chainCache = new Map<string, Set<string>>();
  const chainOf = (id: string): Set<string> => {
    let chain = chainCache.get(id);
    if (!chain) chainCache.set(id, (chain = authChain([id])));
    return chain;
  };
  const selected = new Map<string, RoomEvent>();
  for (const e of full.values()) {
    if (!isPowerEvent(e)) continue;
    selected.set(e.event_id, e);
    for (const a of chainOf(e.event_id)) {
      const ae = full.get(a);
      if (ae) selected.set(a, ae);
    }
  }
  const powerOrder = reverseTopologicalPowerSort([...selected.values()], chainOf, fetchEvent, roomVersion);

  // 2. Iterative auth checks from the unconflicted state map (v2.1: from an empty one).
  const partial = iterativeAuthChecks(roomVersion, powerOrder, v21 ? new Map() : unconflicted, fetchEvent, options);

  // 3. The rest, in mainline order of the partially resolved power levels.
  const rest = [...full.values()].filter((e) => !selected.has(e.event_id));
  const restOrder = mainlineSort(rest, partial.get(POWER_LEVELS_KEY), fetchEvent);

  // 4. Iterative auth checks again, from the partially resolved state.
  const resolved = iterativeAuthChecks(roomVersion, restOrder, partial, fetchEvent, options);

  // 5. Unconflicted state wins over anything resolution put under the same key.
  for (const [key, id] of unconflicted) resolved.set(key, id);
  return resolved;
}
