/**
 * Authorization rule 4 (`m.room.member`) of room versions 10 and 11 (rooms/v10.md,
 * rooms/v11.md "Authorisation rules"), plus the result/option types and state keys that
 * auth_rules.ts shares. Callers use auth_rules.ts; this file is split out only for size.
 *
 * "Current membership state" and "power level" below are read from the auth state given
 * to the check: the event's own auth events on receipt, or the partially resolved state
 * during state resolution.
 */
import { stateKey, type RoomEvent, type RoomVersionId, type StateKey } from './pdu.js';
import {
  domainOf,
  isPlainObject,
  isValidUserId,
  ownGet,
  parsePowerLevels,
  roomCreator,
  userPowerLevel,
} from './power_levels.js';

export type AuthResult = { allowed: true } | { allowed: false; reason: string };

/** Room state as the rules see it: (type, state_key) → event. */
export type AuthState = ReadonlyMap<StateKey, RoomEvent>;

/** Checks that need cryptography, which this module deliberately does not do itself. */
export interface AuthOptions {
  /**
   * Rule 4.2.1: is `event` validly signed by `serverName`? The default only checks that
   * a signature from that server is *present*; that is sound only if the PDU receipt
   * pipeline has already verified every signature on the event cryptographically (the
   * sender's server and the `join_authorised_via_users_server` user's server).
   */
  isSignedBy?: (event: RoomEvent, serverName: string) => boolean;
  /**
   * Rule 4.4.1.7: does any signature in `signed` verify against any of `publicKeys`
   * (the unpadded-base64 keys of the `m.room.third_party_invite` event)? Without it, every
   * invite carrying `third_party_invite` is rejected at that step, with a reason saying so.
   */
  verifyThirdPartyInvite?: (signed: Record<string, unknown>, publicKeys: string[]) => boolean;
}

export const ALLOW: AuthResult = Object.freeze({ allowed: true }) as AuthResult;
export const deny = (reason: string): AuthResult => ({ allowed: false, reason });

export const CREATE_KEY = stateKey('m.room.create', '');
export const POWER_LEVELS_KEY = stateKey('m.room.power_levels', '');
export const JOIN_RULES_KEY = stateKey('m.room.join_rules', '');
export const memberKey = (userId: string): StateKey => stateKey('m.room.member', userId);
export const thirdPartyInviteKey = (token: string): StateKey =>
  stateKey('m.room.third_party_invite', token);

/** `content.membership` of the user's current member event, if any. */
export function membershipOf(state: AuthState, userId: string): string | undefined {
  const m = ownGet(state.get(memberKey(userId))?.content ?? {}, 'membership');
  return typeof m === 'string' ? m : undefined;
}

/**
 * The current join rule. The rules do not say what applies when the room has no
 * `m.room.join_rules` event (or its `join_rule` is missing); Synapse and ruma both read
 * that as `invite`, and agreeing with them keeps state resolution convergent.
 */
export function joinRuleOf(state: AuthState): string {
  const rule = ownGet(state.get(JOIN_RULES_KEY)?.content ?? {}, 'join_rule');
  return typeof rule === 'string' ? rule : 'invite';
}

const defaultIsSignedBy = (event: RoomEvent, serverName: string): boolean => {
  const sigs = ownGet(event.signatures ?? {}, serverName);
  return isPlainObject(sigs) && Object.keys(sigs).length > 0;
};

/** Rule 4 in full. `create` is the `m.room.create` event of the auth state. */
export function checkMemberEvent(
  event: RoomEvent,
  state: AuthState,
  create: RoomEvent,
  roomVersion: RoomVersionId,
  options: AuthOptions = {},
): AuthResult {
  // 4.1: a member event needs a state_key and a content.membership.
  const target = event.state_key;
  const membership = ownGet(event.content, 'membership');
  if (target === undefined) return deny('rule 4.1: m.room.member event has no state_key');
  if (membership === undefined) return deny('rule 4.1: m.room.member event has no membership');
  // Not a numbered rule: the m.room.member schema makes state_key a user ID, so an event
  // with anything else is malformed (Synapse and ruma also refuse to authorise it).
  if (!isValidUserId(target)) return deny('rule 4.1: m.room.member state_key is not a user ID');

  // 4.2.1: a join_authorised_via_users_server claim must be backed by that user's server's
  // signature, whatever the membership.
  if (Object.hasOwn(event.content, 'join_authorised_via_users_server')) {
    const via = event.content.join_authorised_via_users_server;
    const server = typeof via === 'string' ? domainOf(via) : undefined;
    const isSignedBy = options.isSignedBy ?? defaultIsSignedBy;
    if (!server || !isSignedBy(event, server)) {
      return deny('rule 4.2.1: not signed by the server of join_authorised_via_users_server');
    }
  }

  const plEvent = state.get(POWER_LEVELS_KEY);
  const pl = parsePowerLevels(plEvent?.content);
  const levelOf = (user: string) => userPowerLevel(user, plEvent, create, roomVersion);
  const senderMembership = membershipOf(state, event.sender);
  const targetMembership = membershipOf(state, target);
  const joinRule = joinRuleOf(state);

  switch (membership) {
    case 'join': {
      // 4.3.1: the creator's own first join, directly after the create event. The creator is
      // content.creator in v10 and the create event's sender in v11 (roomCreator).
      if (
        event.prev_events.length === 1 &&
        event.prev_events[0] === create.event_id &&
        target === roomCreator(create, roomVersion)
      ) {
        return ALLOW;
      }
      // 4.3.2: nobody can join on someone else's behalf.
      if (event.sender !== target) return deny('rule 4.3.2: join sender does not match state_key');
      // 4.3.3
      if (senderMembership === 'ban') return deny('rule 4.3.3: sender is banned');
      // 4.3.4: invite-only (and knock) rooms admit the invited and the already joined.
      if (joinRule === 'invite' || joinRule === 'knock') {
        if (senderMembership === 'invite' || senderMembership === 'join') return ALLOW;
        return deny(`rule 4.3.4: join rule is ${joinRule} and the sender is not invited`);
      }
      // 4.3.5: restricted rooms also admit a join vouched for by a joined member who may invite.
      if (joinRule === 'restricted' || joinRule === 'knock_restricted') {
        if (senderMembership === 'join' || senderMembership === 'invite') return ALLOW; // 4.3.5.1
        const via = ownGet(event.content, 'join_authorised_via_users_server');
        if (typeof via !== 'string') {
          return deny('rule 4.3.5.2: restricted join without join_authorised_via_users_server');
        }
        if (membershipOf(state, via) !== 'join') {
          return deny('rule 4.3.5.2: join_authorised_via_users_server is not a joined member');
        }
        if (levelOf(via) < pl.levels.invite) {
          return deny('rule 4.3.5.2: join_authorised_via_users_server may not invite');
        }
        return ALLOW; // 4.3.5.3
      }
      // 4.3.6
      if (joinRule === 'public') return ALLOW;
      // 4.3.7: e.g. `private` or an unknown rule.
      return deny(`rule 4.3.7: join rule ${JSON.stringify(joinRule)} does not allow joining`);
    }

    case 'invite': {
      // 4.4.1: invites on behalf of a third-party identifier.
      if (Object.hasOwn(event.content, 'third_party_invite')) {
        return checkThirdPartyInvite(event, target, targetMembership, state, options);
      }
      // 4.4.2 - 4.4.5
      if (senderMembership !== 'join') return deny('rule 4.4.2: inviter is not joined');
      if (targetMembership === 'join' || targetMembership === 'ban') {
        return deny(`rule 4.4.3: invitee's membership is ${targetMembership}`);
      }
      if (levelOf(event.sender) >= pl.levels.invite) return ALLOW;
      return deny('rule 4.4.5: sender is below the invite level');
    }

    case 'leave': {
      // 4.5.1: leaving yourself (incl. rejecting an invite or withdrawing a knock).
      if (event.sender === target) {
        if (senderMembership === 'invite' || senderMembership === 'join' || senderMembership === 'knock') {
          return ALLOW;
        }
        return deny(`rule 4.5.1: cannot leave from membership ${senderMembership ?? '(none)'}`);
      }
      // 4.5.2 - 4.5.5: kicks and unbans.
      if (senderMembership !== 'join') return deny('rule 4.5.2: kicker is not joined');
      const senderLevel = levelOf(event.sender);
      if (targetMembership === 'ban' && senderLevel < pl.levels.ban) {
        return deny('rule 4.5.3: unban needs the ban level');
      }
      if (senderLevel >= pl.levels.kick && levelOf(target) < senderLevel) return ALLOW;
      return deny('rule 4.5.5: kick needs the kick level and a higher level than the target');
    }

    case 'ban': {
      if (senderMembership !== 'join') return deny('rule 4.6.1: banner is not joined');
      const senderLevel = levelOf(event.sender);
      if (senderLevel >= pl.levels.ban && levelOf(target) < senderLevel) return ALLOW;
      return deny('rule 4.6.3: ban needs the ban level and a higher level than the target');
    }

    case 'knock': {
      // 4.7.1 (changed in v10: knock_restricted also accepts knocks).
      if (joinRule !== 'knock' && joinRule !== 'knock_restricted') {
        return deny(`rule 4.7.1: join rule ${JSON.stringify(joinRule)} does not allow knocking`);
      }
      if (event.sender !== target) return deny('rule 4.7.2: knock sender does not match state_key');
      if (senderMembership !== 'ban' && senderMembership !== 'invite' && senderMembership !== 'join') {
        return ALLOW;
      }
      return deny(`rule 4.7.4: cannot knock with membership ${senderMembership}`);
    }

    default:
      return deny(`rule 4.8: unknown membership ${JSON.stringify(membership)}`);
  }
}

/** Rule 4.4.1: an invite that claims a third-party invite (`m.room.third_party_invite`). */
function checkThirdPartyInvite(
  event: RoomEvent,
  target: string,
  targetMembership: string | undefined,
  state: AuthState,
  options: AuthOptions,
): AuthResult {
  if (targetMembership === 'ban') return deny('rule 4.4.1.1: invitee is banned');
  const tpi = event.content.third_party_invite;
  const signed = isPlainObject(tpi) ? ownGet(tpi, 'signed') : undefined;
  if (!isPlainObject(signed)) return deny('rule 4.4.1.2: third_party_invite has no signed object');
  const mxid = ownGet(signed, 'mxid');
  const token = ownGet(signed, 'token');
  if (typeof mxid !== 'string' || typeof token !== 'string') {
    return deny('rule 4.4.1.3: third_party_invite.signed lacks mxid or token');
  }
  if (mxid !== target) return deny('rule 4.4.1.4: signed mxid does not match state_key');
  const invite = state.get(thirdPartyInviteKey(token));
  if (!invite) return deny('rule 4.4.1.5: no m.room.third_party_invite for this token');
  if (invite.sender !== event.sender) {
    return deny('rule 4.4.1.6: sender did not send the m.room.third_party_invite');
  }
  // 4.4.1.7: the keys are `public_key` and each `public_keys[].public_key`.
  const keys: string[] = [];
  const single = ownGet(invite.content, 'public_key');
  if (typeof single === 'string') keys.push(single);
  const list = ownGet(invite.content, 'public_keys');
  if (Array.isArray(list)) {
    for (const entry of list) {
      const key = isPlainObject(entry) ? ownGet(entry, 'public_key') : undefined;
      if (typeof key === 'string') keys.push(key);
    }
  }
  if (!options.verifyThirdPartyInvite) {
    return deny('rule 4.4.1.7: third-party invite signatures cannot be verified (no verifier configured)');
  }
  if (options.verifyThirdPartyInvite(signed, keys)) return ALLOW;
  return deny('rule 4.4.1.8: no signature in signed matches a public key of the invite');
}
