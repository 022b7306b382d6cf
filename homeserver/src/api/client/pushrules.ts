import type { Area } from '../../app.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';
import { parseKind } from '../../services/push_rules.js';
import { queryString } from './params.js';

/**
 * Push rules (spec: client-server API, "Push Rules: API"): the user's rule set (server-default
 * rules merged with their own), and adding, replacing, deleting, enabling rules and setting actions.
 * Only the `global` scope exists.
 */
export const pushRulesArea: Area = (router, { services }) => {
  const auth = requireAuth(services.sessions);
  const rules = services.pushRules;
  router.get('/pushrules/', auth, async (ctx) => {
    ctx.body = { global: await rules.ruleset(requesterOf(ctx).userId) };
  });
  router.get('/pushrules/global/', auth, async (ctx) => {
    ctx.body = await rules.ruleset(requesterOf(ctx).userId);
  });
  router.get('/pushrules/global/:kind/:ruleId', auth, async (ctx) => {
    ctx.body = await rules.get(requesterOf(ctx).userId, parseKind(ctx.params.kind), ctx.params.ruleId!);
  });
  router.put('/pushrules/global/:kind/:ruleId', auth, async (ctx) => {
    const kind = parseKind(ctx.params.kind);
    const before = queryString(ctx.query.before, 'before');
    const after = queryString(ctx.query.after, 'after');
    await rules.put(requesterOf(ctx).userId, kind, ctx.params.ruleId!, ctx.request.json, { before, after });
    ctx.body = {};
  });
  router.delete('/pushrules/global/:kind/:ruleId', auth, async (ctx) => {
    await rules.delete(requesterOf(ctx).userId, parseKind(ctx.params.kind), ctx.params.ruleId!);
    ctx.body = {};
  });
  for (const field of ['enabled', 'actions'] as const) {
    router.get(`/pushrules/global/:kind/:ruleId/${field}`, auth, async (ctx) => {
      const rule = await rules.get(requesterOf(ctx).userId, parseKind(ctx.params.kind), ctx.params.ruleId!);
      ctx.body = field === 'enabled' ? { enabled: rule.enabled } : { actions: rule.actions };
    });
    router.put(`/pushrules/global/:kind/:ruleId/${field}`, auth, async (ctx) => {
      await rules.setAttribute(requesterOf(ctx).userId, parseKind(ctx.params.kind), ctx.params.ruleId!, field, ctx.request.json);
      ctx.body = {};
    });
  }
};
