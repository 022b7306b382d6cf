/**
 * The seams between inbound room federation (PDUs: /send, joins, invites, backfill) and the
 * outbound sender + EDUs. Inbound code depends only on these interfaces; the sender implements
 * them. Both are wired in services/index.ts.
 */

/** An EDU as it travels in a transaction (server-server API: "EDUs"). */
export interface Edu {
  edu_type: string;
  content: Record<string, unknown>;
}

/** Applies the EDUs of an incoming transaction (typing, receipts, presence, device lists, to-device). */
export interface FederationEduHandler {
  /** Never throws for one bad EDU: it is logged and skipped (a transaction's answer does not report EDUs). */
  receive(origin: string, edus: readonly Edu[]): Promise<void>;
}

/** The outgoing side, as inbound room code sees it. */
export interface FederationOutbox {
  /**
   * A remote server's event this server accepted as the resident server (send_join, send_leave,
   * send_knock): it must reach the room's other servers too. Durable once the promise resolves.
   */
  forward(roomId: string, eventId: string): Promise<void>;
  /** Events of ours were committed (the sender also notices through the notifier; this wakes it at once). */
  wake(): void;
}
