import type { Sql } from '../../storage/db.js';
import type { Filter } from './filter.js';
import type { ExtraStream } from './token.js';

type Json = Record<string, unknown>;

/** A stream a sync source serves (account data is built into SyncService). */
export type SourceStream = Exclude<ExtraStream, 'accountData'>;

/** What a source is asked for, inside the sync's read-only REPEATABLE READ snapshot. */
export interface SyncStreamContext {
  sql: Sql;
  userId: string;
  deviceId: string;
  filter: Filter;
  /** This stream's position in the `since` token; undefined for an initial sync. */
  since: number | undefined;
  /** The position this response reaches (what `position()` returned in the same snapshot). */
  upTo: number;
  /** Rooms the user is joined to at the response's events position. */
  joinedRooms: readonly string[];
  /**
   * Joined rooms the client holds nothing of yet (initial sync, or joined in this response): a
   * source sends their whole current data (e.g. every receipt), not only changes since `since`.
   */
  newRooms: ReadonlySet<string>;
}

/** A source's contribution to one sync response. */
export interface SyncStreamPart {
  /** Top-level response fields this source owns (e.g. `presence`, `to_device`); replaces the defaults. */
  top?: Json;
  /**
   * Ephemeral events per joined room (`rooms.join[id].ephemeral.events`); sources' lists are
   * concatenated. A room listed here is in the response even without new timeline events.
   */
  ephemeral?: Map<string, Json[]>;
  /**
   * Where this response leaves the stream: `upTo` by default; less when the source stopped short
   * (a batch limit) and more is waiting (the next computation continues from here).
   */
  reached?: number;
  /** The part carries something new for the client (a waiting long-poll returns with it). */
  nonEmpty: boolean;
}

/**
 * One of the server's non-event streams delivered by /sync and the WebSocket sync (receipts,
 * typing, presence, to-device, device lists). Positions must commit in order (a writer takes its
 * position and commits under the stream's own lock), so a snapshot that sees position P sees every
 * item at or below P.
 */
export interface SyncStream {
  readonly name: SourceStream;
  /** The newest committed position of this stream that concerns the user's device (0 if none). */
  position(sql: Sql, userId: string, deviceId: string): Promise<number>;
  collect(ctx: SyncStreamContext): Promise<SyncStreamPart>;
  /**
   * Runs before each computation, outside its read-only snapshot: work the request itself implies
   * (to-device: delete what the `since` token acknowledges; presence: `set_presence`).
   */
  prepare?(req: SyncPrepareRequest): Promise<void>;
}

export interface SyncPrepareRequest {
  userId: string;
  deviceId: string;
  /** This stream's position in the `since` token; undefined for an initial sync. */
  since: number | undefined;
  /** `set_presence` of a /sync request (undefined: the default, `online`; the WebSocket sync sends none). */
  setPresence?: 'online' | 'offline' | 'unavailable';
  /** How long this request may wait for news (a long-poll's timeout; 0 for the WebSocket sync). */
  timeoutMs: number;
}

/**
 * Adds per-room fields to every joined room of a response once the rooms are assembled (unread
 * notification counts). Such fields change only with the room's new events or the user's own
 * receipts, both of which already bring the room into the response.
 */
export interface RoomDecorator {
  decorate(sql: Sql, userId: string, joinedRooms: Map<string, Json>, filter: Filter): Promise<void>;
}
