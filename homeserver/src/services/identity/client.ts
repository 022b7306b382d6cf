/**
 * The identity server API calls a homeserver makes for third-party invites (identity-service-api.md):
 * `hash_details` + `lookup` (sha256 with the server's pepper), `store-invite`, and the
 * `key_validity_url` check (`pubkey/isvalid`). Every call is authenticated with the user's
 * `id_access_token` where the API asks for one. Failures become Matrix errors a client can act on,
 * never a 500: an identity server we will not talk to is `M_SERVER_NOT_TRUSTED`, one that refuses the
 * token is 403, one that is down or answers nonsense is 502.
 */
import { createHash } from 'node:crypto';
import type { IdentityConfig } from '../../core/config.js';
import type { Logger } from '../../core/logger.js';
import { MatrixError } from '../../core/errors.js';
import { parseUserId } from '../../core/ids.js';
import { ServerNameAccess, parseServerName } from '../federation/server_name.js';
import { IdentityHttp, IdentityHttpError } from './http.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The spec's token grammar for store-invite answers (it becomes a state key). */
const TOKEN_RE = /^[0-9a-zA-Z.=_-]{1,255}$/;
/** Bounds on what an answer may put into room state. */
const MAX_DISPLAY_NAME = 512;
const MAX_PUBLIC_KEYS = 8;
const MAX_URL = 2048;

/** What `store-invite` returns: the token (state key), the keys and the redacted display name. */
export interface StoredInvite {
  token: string;
  displayName: string;
  publicKeys: { public_key: string; key_validity_url: string }[];
}

/** `store-invite`'s request body (beyond medium/address/room_id/sender, everything optional). */
export interface StoreInviteRequest {
  medium: string;
  address: string;
  room_id: string;
  sender: string;
  room_alias?: string;
  room_avatar_url?: string;
  room_join_rules?: string;
  room_name?: string;
  room_type?: string;
  sender_display_name?: string;
  sender_avatar_url?: string;
}

export class IdentityClient {
  private readonly http: IdentityHttp;
  private readonly access: ServerNameAccess;

  constructor(private readonly deps: { config: IdentityConfig; logger: Logger }) {
    const c = deps.config;
    this.http = new IdentityHttp({ timeoutMs: c.requestTimeoutMs, maxResponseBytes: c.maxResponseBytes, allowPrivateAddresses: c.allowPrivateAddresses, caFile: c.caFile });
    this.access = new ServerNameAccess(c.serverAllowlist, []);
  }

  /** Refuses an `id_server` that is not a host[:port] or not on the allow list (before anything is sent). */
  checkServer(idServer: string): void {
    if (!parseServerName(idServer)) throw new MatrixError(400, 'M_INVALID_PARAM', "'id_server' must be a hostname with an optional port");
    if (!this.access.isAllowed(idServer)) throw new MatrixError(400, 'M_SERVER_NOT_TRUSTED', `This server does not use the identity server ${idServer}`);
  }

  /** The Matrix user id bound to `medium`/`address`, if the identity server knows one (v2 lookup, sha256). */
  async lookup(idServer: string, accessToken: string, medium: string, address: string): Promise<string | undefined> {
    this.checkServer(idServer);
    for (let attempt = 0; ; attempt++) {
      const details = await this.call(idServer, 'GET', '/_matrix/identity/v2/hash_details', accessToken);
      const pepper = details.lookup_pepper;
      const algorithms = details.algorithms;
      if (typeof pepper !== 'string' || !Array.isArray(algorithms)) throw badAnswer(idServer, 'hash_details');
      // sha256 is the one algorithm every identity server must offer; `none` would send the address in clear.
      if (!algorithms.includes('sha256')) throw badAnswer(idServer, 'hash_details without sha256');
      const hash = createHash('sha256').update(`${address} ${medium} ${pepper}`).digest('base64url');
      try {
        const res = await this.call(idServer, 'POST', '/_matrix/identity/v2/lookup', accessToken, { algorithm: 'sha256', pepper, addresses: [hash] });
        if (!isObject(res.mappings)) throw badAnswer(idServer, 'lookup');
        const mxid = Object.hasOwn(res.mappings, hash) ? res.mappings[hash] : undefined;
        if (mxid === undefined) return undefined;
        if (typeof mxid !== 'string' || !parseUserId(mxid)) throw badAnswer(idServer, 'lookup (not a user id)');
        return mxid;
      } catch (err) {
        // The pepper rotated between the two calls: fetch it again, once.
        if (attempt === 0 && err instanceof MatrixError && err.errcode === 'M_INVALID_PEPPER') continue;
        throw err;
      }
    }
  }

  /** `POST /store-invite`: the identity server records the invite and mails the address. */
  async storeInvite(idServer: string, accessToken: string, body: StoreInviteRequest): Promise<StoredInvite> {
    this.checkServer(idServer);
    const res = await this.call(idServer, 'POST', '/_matrix/identity/v2/store-invite', accessToken, body);
    const { token, display_name: displayName, public_keys: keys } = res;
    if (typeof token !== 'string' || !TOKEN_RE.test(token)) throw badAnswer(idServer, 'store-invite token');
    if (typeof displayName !== 'string' || displayName.length > MAX_DISPLAY_NAME) throw badAnswer(idServer, 'store-invite display_name');
    if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_PUBLIC_KEYS) throw badAnswer(idServer, 'store-invite public_keys');
    const publicKeys = keys.map((k) => {
      if (!isObject(k) || typeof k.public_key !== 'string' || !/^[A-Za-z0-9+/_-]{40,64}$/.test(k.public_key)) throw badAnswer(idServer, 'store-invite public key');
      if (typeof k.key_validity_url !== 'string' || k.key_validity_url.length > MAX_URL || !/^https?:\/\//.test(k.key_validity_url)) {
        throw badAnswer(idServer, 'store-invite key_validity_url');
      }
      return { public_key: k.public_key, key_validity_url: k.key_validity_url };
    });
    return { token, displayName, publicKeys };
  }

  /** `GET <key_validity_url>?public_key=…` (the URL as given, not rebuilt): is the key still valid? */
  async isKeyValid(validityUrl: string, publicKey: string): Promise<boolean> {
    let url: URL;
    try {
      url = new URL(validityUrl);
    } catch {
      throw new MatrixError(403, 'M_FORBIDDEN', 'The invite\'s key_validity_url is not a URL');
    }
    url.searchParams.set('public_key', publicKey);
    const where = url.host;
    if (!this.access.isAllowed(where)) throw new MatrixError(400, 'M_SERVER_NOT_TRUSTED', `This server does not use the identity server ${where}`);
    const res = await this.send(where, url.toString(), 'GET');
    if (res.status < 200 || res.status >= 300) throw new MatrixError(502, 'M_UNKNOWN', `The identity server ${where} did not say whether the invite's key is valid (HTTP ${res.status})`);
    const body = parseJson(res.body);
    if (!isObject(body) || typeof body.valid !== 'boolean') throw badAnswer(where, 'isvalid');
    return body.valid;
  }

  private async send(idServer: string, url: string, method: 'GET' | 'POST', accessToken?: string, body?: unknown) {
    try {
      return await this.http.request(url, { method, headers: accessToken ? { authorization: `Bearer ${accessToken}` } : {}, body });
    } catch (err) {
      if (err instanceof IdentityHttpError && err.kind === 'refused_address') {
        throw new MatrixError(400, 'M_SERVER_NOT_TRUSTED', `This server does not connect to the identity server ${idServer}: ${err.message}`);
      }
      this.deps.logger.info({ idServer, err: (err as Error).message }, 'identity server request failed');
      throw new MatrixError(502, 'M_UNKNOWN', `The identity server ${idServer} could not be reached (${(err as Error).message})`);
    }
  }

  /** One API call; a non-2xx answer becomes the Matrix error the client gets. */
  private async call(idServer: string, method: 'GET' | 'POST', path: string, accessToken: string, body?: unknown): Promise<Record<string, unknown>> {
    const res = await this.send(idServer, `https://${idServer}${path}`, method, accessToken, body);
    const parsed = parseJson(res.body);
    if (res.status >= 200 && res.status < 300) {
      if (!isObject(parsed)) throw badAnswer(idServer, path);
      return parsed;
    }
    throw remoteError(idServer, res.status, parsed);
  }
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

const badAnswer = (idServer: string, what: string) => new MatrixError(502, 'M_UNKNOWN', `The identity server ${idServer} gave an invalid answer (${what})`);

/**
 * The identity server's own error, as the client should see it: refusals of the token or terms
 * are 403 (never 401, which a client reads as "your homeserver session ended"), request errors it
 * names (`M_THREEPID_IN_USE`, `M_UNRECOGNIZED`, `M_INVALID_PEPPER`…) stay 400 with their code,
 * anything else means the identity server is not usable: 502.
 */
function remoteError(idServer: string, status: number, body: unknown): MatrixError {
  const errcode = isObject(body) && typeof body.errcode === 'string' && /^M_[A-Z0-9_]{1,64}$/.test(body.errcode) ? body.errcode : undefined;
  const detail = isObject(body) && typeof body.error === 'string' ? `: ${body.error.slice(0, 200)}` : '';
  const what = `The identity server ${idServer} refused the request (HTTP ${status}${errcode ? ` ${errcode}` : ''}${detail})`;
  const tokenProblem = errcode === 'M_UNAUTHORIZED' || errcode === 'M_UNKNOWN_TOKEN' || errcode === 'M_MISSING_TOKEN';
  if (status === 401 || status === 403 || tokenProblem) return new MatrixError(403, errcode === 'M_TERMS_NOT_SIGNED' ? errcode : 'M_FORBIDDEN', what);
  if (status === 400 && errcode) return new MatrixError(400, errcode, what);
  return new MatrixError(502, 'M_UNKNOWN', what);
}
