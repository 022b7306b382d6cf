import type { Area } from '../../app.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';

type PushRule = {
  rule_id: string;
  default: true;
  enabled: boolean;
  conditions?: Record<string, unknown>[];
  pattern?: string;
  actions: (string | Record<string, unknown>)[];
};

const match = (key: string, pattern: string) => ({ kind: 'event_match', key, pattern });
const sound = (value: string) => ({ set_tweak: 'sound', value });
const highlight = { set_tweak: 'highlight' };
const rule = (rule_id: string, conditions: Record<string, unknown>[], actions: PushRule['actions'], enabled = true): PushRule => ({
  rule_id,
  default: true,
  enabled,
  conditions,
  actions,
});

/**
 * The server-default push rules of the spec (v1.19 text, client-server-api/modules/push.md,
 * "Predefined Rules"), in the spec's order, for `userId`. Since v1.17 there are no default
 * content rules (the legacy body-matching mention rules were removed).
 */
export function defaultPushRules(userId: string): Record<'override' | 'content' | 'room' | 'sender' | 'underride', PushRule[]> {
  return {
    override: [
      rule('.m.rule.master', [], [], false),
      rule('.m.rule.suppress_notices', [match('content.msgtype', 'm.notice')], []),
      rule(
        '.m.rule.invite_for_me',
        [match('type', 'm.room.member'), match('content.membership', 'invite'), match('state_key', userId)],
        ['notify', sound('default')],
      ),
      rule('.m.rule.member_event', [match('type', 'm.room.member')], []),
      rule(
        '.m.rule.is_user_mention',
        [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: userId }],
        ['notify', sound('default'), highlight],
      ),
      rule(
        '.m.rule.is_room_mention',
        [
          { kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true },
          { kind: 'sender_notification_permission', key: 'room' },
        ],
        ['notify', highlight],
      ),
      rule('.m.rule.tombstone', [match('type', 'm.room.tombstone'), match('state_key', '')], ['notify', highlight]),
      rule('.m.rule.reaction', [match('type', 'm.reaction')], []),
      rule('.m.rule.room.server_acl', [match('type', 'm.room.server_acl'), match('state_key', '')], []),
      rule('.m.rule.suppress_edits', [{ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' }], []),
    ],
    content: [],
    room: [],
    sender: [],
    underride: [
      rule('.m.rule.call', [match('type', 'm.call.invite')], ['notify', sound('ring')]),
      rule(
        '.m.rule.encrypted_room_one_to_one',
        [{ kind: 'room_member_count', is: '2' }, match('type', 'm.room.encrypted')],
        ['notify', sound('default')],
      ),
      rule('.m.rule.room_one_to_one', [{ kind: 'room_member_count', is: '2' }, match('type', 'm.room.message')], ['notify', sound('default')]),
      rule('.m.rule.message', [match('type', 'm.room.message')], ['notify']),
      rule('.m.rule.encrypted', [match('type', 'm.room.encrypted')], ['notify']),
    ],
  };
}

/**
 * Endpoints matrix-js-sdk calls when a client starts, that belong to later issues. Read-only
 * stand-ins until push rules (issue 4) replace them: `GET /pushrules/` and `/pushrules/global/`
 * answer the spec's server-default rule set (users cannot change rules yet).
 */
export const sdkCompatArea: Area = (router, { services }) => {
  const auth = requireAuth(services.sessions);
  router.get('/pushrules/', auth, (ctx) => {
    ctx.body = { global: defaultPushRules(requesterOf(ctx).userId) };
  });
  router.get('/pushrules/global/', auth, (ctx) => {
    ctx.body = defaultPushRules(requesterOf(ctx).userId);
  });
};
