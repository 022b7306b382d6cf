import { forbidden } from '../../core/errors.js';

/** MatrixRTC call membership state (MSC3401/MSC4143), one state key per user device. */
export const CALL_MEMBER_EVENT_TYPE = 'org.matrix.msc3401.call.member';

/**
 * Owned state keys (MSC3757/MSC3779 style): a call-membership key that names a user, `@user...`
 * or `_@user...`, must name the sender, exactly or followed by `_` (`_@alice:hs_DEVICE`).
 *
 * Room versions 10 and 11 only protect keys that ARE a user id (auth rule 8), so `_@bob:hs_X`
 * passes auth whoever sends it; enforcing ownership in the auth rules needs a new room version.
 * Until then this is local policy on our own clients' sends: it keeps a member of one of our
 * rooms from announcing (or ending) someone else's call membership through this server.
 */
export function checkCallMemberStateKey(sender: string, stateKey: string): void {
  const named = stateKey.startsWith('_@') ? stateKey.slice(1) : stateKey.startsWith('@') ? stateKey : undefined;
  if (named === undefined) return;
  if (named === sender || named.startsWith(`${sender}_`)) return;
  throw forbidden('This call membership state key belongs to another user');
}
