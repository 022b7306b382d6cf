import { createHmac } from 'node:crypto';
import type { TurnConfig } from '../../core/config.js';

/** The body of GET /voip/turnServer. */
export interface TurnCredentials {
  username: string;
  password: string;
  uris: string[];
  ttl: number;
}

/**
 * TURN credentials in coturn's "TURN REST API" scheme (`use-auth-secret`): the username is
 * `<expiry unix seconds>:<user id>` and the password base64(HMAC-SHA1(shared secret, username)).
 * coturn recomputes the HMAC and refuses the username once its expiry has passed, so nothing
 * is stored here and the TURN server needs no connection to us.
 */
export class TurnService {
  constructor(private readonly config: TurnConfig | undefined) {}

  get configured(): boolean {
    return this.config !== undefined;
  }

  /** Credentials for `userId`, or undefined when no TURN server is configured. */
  credentials(userId: string, nowMs = Date.now()): TurnCredentials | undefined {
    const c = this.config;
    if (!c) return undefined;
    const username = `${Math.floor(nowMs / 1000) + c.ttlSeconds}:${userId}`;
    const password = createHmac('sha1', c.sharedSecret).update(username).digest('base64');
    return { username, password, uris: [...c.uris], ttl: c.ttlSeconds };
  }
}
