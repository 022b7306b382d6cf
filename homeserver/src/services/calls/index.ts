import type { Config } from '../../core/config.js';
import type { Database } from '../../storage/db.js';
import { CallTokenService } from './call_tokens.js';
import { TurnService } from './turn.js';

/** VoIP and group calls: SFU call tokens and TURN credentials (protocol-spec/calls.md). */
export interface CallServices {
  tokens: CallTokenService;
  turn: TurnService;
}

export async function createCallServices(config: Config, db: Database): Promise<CallServices> {
  const tokens = await CallTokenService.load({
    db,
    serverName: config.serverName,
    ttlMs: config.calls.tokenTtlMs,
    sfuPublicUrl: config.calls.sfuPublicUrl,
  });
  return { tokens, turn: new TurnService(config.turn) };
}
