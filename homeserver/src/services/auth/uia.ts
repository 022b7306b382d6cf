import { MatrixError } from '../../core/errors.js';
import { isObject, type JsonObject } from '../../core/json.js';
import { randomString } from '../../core/ids.js';
import type { Database } from '../../storage/db.js';
import * as store from '../../storage/uia.js';

export type Stage =
  | 'm.login.dummy'
  | 'm.login.password'
  | 'm.login.email.identity'
  | 'm.login.registration_token';

export interface ValidatedThreepid {
  medium: string;
  address: string;
  validated_ts: number;
  sid: string;
}

/** What a stage validator learned, kept in the UIA session for the final handler. */
export interface StageOutcome {
  threepid?: ValidatedThreepid;
  /** The registration token a `m.login.registration_token` stage accepted (spent when the account is made). */
  registrationToken?: string;
}

/** Checks one stage's `auth` dict; throws a MatrixError (usually 401 M_FORBIDDEN) when it fails. */
export type StageValidator = (auth: JsonObject) => Promise<StageOutcome>;

export interface UiaRequest {
  /** e.g. `POST /register`: a session can only complete the request it was started for. */
  endpoint: string;
  userId: string | null;
  auth: unknown;
  flows: Stage[][];
  params?: Record<string, unknown>;
  validators: Partial<Record<Stage, StageValidator>>;
}

export interface UiaResult {
  session: string;
  threepid: ValidatedThreepid | null;
  registrationToken: string | null;
}

/** The 401 of user-interactive auth: flows, params, session, completed stages, and any stage error. */
export class UiaRequired extends MatrixError {
  constructor(
    private readonly uia: { flows: Stage[][]; params: Record<string, unknown>; session: string; completed: string[] },
    cause?: MatrixError,
  ) {
    super(401, cause?.errcode ?? '', cause?.message ?? 'Additional authentication required');
  }

  override body(): Record<string, unknown> {
    const b: Record<string, unknown> = {
      flows: this.uia.flows.map((stages) => ({ stages })),
      params: this.uia.params,
      session: this.uia.session,
    };
    if (this.uia.completed.length > 0) b.completed = this.uia.completed;
    if (this.errcode) {
      b.errcode = this.errcode;
      b.error = this.message;
    }
    return b;
  }
}

/** User-interactive authentication (spec: client-server API, "User-Interactive Authentication API"). */
export class UiaService {
  constructor(
    private readonly db: Database,
    private readonly sessionLifetimeMs: number,
  ) {}

  /** Returns once a whole flow is complete; otherwise throws UiaRequired (or a 4xx for a bad session). */
  async authenticate(req: UiaRequest): Promise<UiaResult> {
    const params = req.params ?? {};
    const auth = req.auth;
    if (auth === undefined || auth === null) {
      const session = await this.start(req);
      throw new UiaRequired({ flows: req.flows, params, session, completed: [] });
    }
    if (!isObject(auth)) throw new MatrixError(400, 'M_BAD_JSON', "'auth' must be an object");
    let sessionId: string;
    let row: store.UiaSessionRow;
    if (auth.session !== undefined) {
      if (typeof auth.session !== 'string') throw new MatrixError(400, 'M_BAD_JSON', "'auth.session' must be a string");
      sessionId = auth.session;
      const found = await store.getUiaSession(this.db, sessionId);
      if (!found || Number(found.expires_ts) < Date.now()) {
        throw new MatrixError(400, 'M_UNKNOWN', 'Unknown or expired UIA session');
      }
      if (found.endpoint !== req.endpoint || found.user_id !== req.userId) {
        throw new MatrixError(403, 'M_FORBIDDEN', 'This UIA session was started for a different request');
      }
      row = found;
    } else {
      sessionId = await this.start(req);
      row = { session_id: sessionId, endpoint: req.endpoint, user_id: req.userId, completed: [], threepid: null, registration_token: null, expires_ts: '0' };
    }
    const completed = [...row.completed];
    let threepid = row.threepid;
    let registrationToken = row.registration_token;
    const type = auth.type;
    if (type !== undefined) {
      const state = { flows: req.flows, params, session: sessionId, completed };
      if (typeof type !== 'string') throw new UiaRequired(state, new MatrixError(400, 'M_BAD_JSON', "'auth.type' must be a string"));
      const validator = req.validators[type as Stage];
      const offered = req.flows.some((f) => f.includes(type as Stage));
      if (!validator || !offered) {
        throw new UiaRequired(state, new MatrixError(400, 'M_UNRECOGNIZED', `Unsupported auth type '${type}'`));
      }
      try {
        const outcome = await validator(auth);
        if (outcome.threepid) threepid = outcome.threepid;
        if (outcome.registrationToken) registrationToken = outcome.registrationToken;
      } catch (err) {
        // A failed stage is a 401 that lets the client try again; a malformed request stays a 400.
        if (err instanceof MatrixError && (err.status === 401 || err.status === 403)) throw new UiaRequired(state, err);
        throw err;
      }
      if (!completed.includes(type)) completed.push(type);
      await store.updateUiaSession(this.db, sessionId, completed, threepid, registrationToken);
    }
    const done = req.flows.some((flow) => flow.every((stage) => completed.includes(stage)));
    if (!done) throw new UiaRequired({ flows: req.flows, params, session: sessionId, completed });
    return { session: sessionId, threepid, registrationToken };
  }

  /** A completed session is single-use: the handler calls this once its action has succeeded. */
  async finish(sessionId: string): Promise<void> {
    await store.deleteUiaSession(this.db, sessionId);
  }

  private async start(req: UiaRequest): Promise<string> {
    const sessionId = randomString(24);
    await store.deleteExpiredUiaSessions(this.db, Date.now());
    await store.insertUiaSession(this.db, {
      sessionId,
      endpoint: req.endpoint,
      userId: req.userId,
      expiresTs: Date.now() + this.sessionLifetimeMs,
    });
    return sessionId;
  }
}
