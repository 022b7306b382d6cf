import type { Pdu, RoomEvent, RoomVersionId } from './pdu.js';

/** The fields of a new event before hashes and signatures are added. */
export type UnsignedPdu = Omit<Pdu, 'hashes' | 'signatures' | 'unsigned'>;

/** Adds content hash and this server's signature, derives the event id, and gives the exact canonical JSON. */
export interface EventSigner {
  build(pdu: UnsignedPdu, version: RoomVersionId): { event: RoomEvent; json: string };
}
