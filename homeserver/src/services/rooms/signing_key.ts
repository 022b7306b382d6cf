import type { KeyObject } from 'node:crypto';
import { randomString } from '../../core/ids.js';
import {
  decodeBase64,
  encodeBase64,
  generateSeed,
  privateKeyFromSeed,
  publicKeyBytes,
  signJson,
  type Signatures,
} from '../../core/signing.js';
import type { Sql } from '../../storage/db.js';
import { getOrCreateSecret } from '../../storage/server_secrets.js';
import { encodeCanonicalJson } from '../../core/canonical_json.js';
import { checkEvent, eventIdFor, signEvent } from './event_format.js';
import { withImpliedRoomId } from './room_v12.js';
import type { RoomEvent, RoomVersionId } from './pdu.js';
import type { EventSigner, UnsignedPdu } from './signer.js';

/** The `server_secrets` row holding the federation signing key. */
export const SIGNING_KEY_SECRET = 'federation_signing_key';

/**
 * The stored form is Synapse's signing key file format, `ed25519 <version> <seed base64>`, so a
 * key can be moved between Hearth and a `signing.key` file by copying one line.
 */
const STORED = /^ed25519 ([A-Za-z0-9_]+) ([A-Za-z0-9+/]{43}=?)$/;

/**
 * This server's federation signing key. Generated on first start and kept in the database,
 * never regenerated: other servers cache the public key under its key id, so a new key
 * would make our past events unverifiable to them until they refetch.
 */
export class ServerSigningKey implements EventSigner {
  /** e.g. `ed25519:a_AbCd` */
  readonly keyId: string;
  /** The 32-byte public key in unpadded base64, as `/_matrix/key/v2/server` publishes it. */
  readonly publicKeyBase64: string;

  private constructor(
    readonly serverName: string,
    version: string,
    private readonly privateKey: KeyObject,
  ) {
    this.keyId = `ed25519:${version}`;
    this.publicKeyBase64 = encodeBase64(publicKeyBytes(privateKey));
  }

  /** Loads the key, creating it if this is the first start; concurrent starters get the same key. */
  static async load(sql: Sql, serverName: string): Promise<ServerSigningKey> {
    const stored = await getOrCreateSecret(sql, SIGNING_KEY_SECRET, async () => {
      // Synapse-style version: "a_" and four random alphanumerics ([a-zA-Z0-9_] per the keys schema).
      return `ed25519 a_${randomString(4)} ${encodeBase64(generateSeed())}`;
    });
    return ServerSigningKey.fromStored(stored, serverName);
  }

  /** Parses the stored line; a malformed one is an error, never a reason to make a new key. */
  static fromStored(stored: string, serverName: string): ServerSigningKey {
    const m = STORED.exec(stored.trim());
    if (!m) throw new Error(`the stored ${SIGNING_KEY_SECRET} is malformed (expected "ed25519 <version> <seed>")`);
    return new ServerSigningKey(serverName, m[1]!, privateKeyFromSeed(decodeBase64(m[2]!)));
  }

  /** Signs a JSON object (e.g. a key response or a request) as this server; returns a copy. */
  sign<T extends object>(obj: T): Omit<T, 'signatures'> & { signatures: Signatures } {
    return signJson(obj, this.serverName, this.keyId, this.privateKey);
  }

  /** Hashes and signs an event for the given room version; returns a copy. */
  signEvent<T extends object>(pdu: T, roomVersion: RoomVersionId) {
    return signEvent(pdu, roomVersion, this.serverName, this.keyId, this.privateKey);
  }

  /**
   * EventSigner: signs a new local event, checks its format and size (throws EventFormatError,
   * a 400/413 MatrixError), and returns it with its event id plus the canonical JSON of the
   * federation form (no event_id), which is the exact text to store and send.
   */
  build(pdu: UnsignedPdu, version: RoomVersionId): { event: RoomEvent; json: string } {
    const signed = this.signEvent(pdu, version);
    checkEvent(signed, version);
    // v12: a create event has no room_id on the wire; the in-memory event gets the implied one.
    return { event: withImpliedRoomId({ ...signed, event_id: eventIdFor(signed, version) }, version), json: encodeCanonicalJson(signed) };
  }
}
