/**
 * Protocol shapes shared by more than one Hearth workspace (homeserver, web client, SFU).
 * Field names follow the Matrix specification exactly.
 */

/** The body of every Matrix error response. */
export interface MatrixErrorBody {
  errcode: string;
  error: string;
  /** M_LIMIT_EXCEEDED */
  retry_after_ms?: number;
  /** M_UNKNOWN_TOKEN: true when the client may refresh or log in again without losing data. */
  soft_logout?: boolean;
  [extra: string]: unknown;
}

/** POST /login and POST /register answers (spec v1.3 refresh tokens included). */
export interface LoginResponse {
  user_id: string;
  device_id: string;
  access_token: string;
  refresh_token?: string;
  expires_in_ms?: number;
  home_server?: string;
}

/** POST /refresh answer. */
export interface RefreshResponse {
  access_token: string;
  refresh_token?: string;
  expires_in_ms?: number;
}

/** A user-interactive auth challenge (401 answer of a protected endpoint). */
export interface UiaChallenge {
  flows: { stages: string[] }[];
  params: Record<string, unknown>;
  session: string;
  completed?: string[];
  errcode?: string;
  error?: string;
}
