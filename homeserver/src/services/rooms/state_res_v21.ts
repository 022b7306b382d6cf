/**
 * State resolution v2.1, room version 12's algorithm (spec: rooms/v12.md "State resolution";
 * MSC4297). It is v2 (state_res.ts, which runs both) with two changes:
 *  - the full conflicted set also holds the *conflicted state subgraph* (below), and
 *  - the first iterative auth checks start from an empty state map, not the unconflicted one.
 * Room version 12 also stops listing the create event in `auth_events`; the auth checks find
 * it from the room id instead (state_res.ts, iterativeAuthChecks).
 */
import type { RoomEvent, RoomVersionId } from './pdu.js';

/** Room versions resolved with v2.1 (v12 onwards); v10 and v11 keep v2. */
export function usesStateResV21(roomVersion: RoomVersionId): boolean {
  return roomVersion === '12';
}

/**
 * The conflicted state subgraph: every event on an `auth_events` path from one conflicted event
 * to another, endpoints included. An event is on such a path when a conflicted event reaches
 * it (it is in that event's auth chain, or is that event) and it reaches a conflicted event
 * itself. Walks each event of the conflicted events' auth chains once, without recursion (auth
 * chains can be thousands of events deep). Events `fetchEvent` does not know end a path.
 */
export function conflictedSubgraph(
  conflicted: ReadonlySet<string>,
  fetchEvent: (eventId: string) => RoomEvent | undefined,
): Set<string> {
  // reaches.get(x): does some conflicted event sit in x's auth chain (x itself not counted)?
  const reaches = new Map<string, boolean>();
  const out = new Set<string>();
  for (const start of conflicted) {
    // Iterative post-order DFS over auth_events from `start`.
    const stack: { id: string; next: number; auth: readonly string[] }[] = [];
    const open = (id: string) => stack.push({ id, next: 0, auth: fetchEvent(id)?.auth_events ?? [] });
    if (reaches.has(start)) continue;
    open(start);
    const onStack = new Set<string>([start]);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.auth.length) {
        const a = top.auth[top.next++]!;
        if (!reaches.has(a) && !onStack.has(a)) {
          onStack.add(a);
          open(a);
        }
        continue;
      }
      stack.pop();
      onStack.delete(top.id);
      reaches.set(top.id, top.auth.some((a) => conflicted.has(a) || reaches.get(a) === true));
    }
  }
  // Every walked event is reached from a conflicted event; it is on a path if it reaches one
  // too. Conflicted events are all included: those that are endpoints of no path are in the
  // full conflicted set anyway, so the difference never matters to the resolution.
  for (const [id, r] of reaches) if (r) out.add(id);
  for (const id of conflicted) out.add(id);
  return out;
}
