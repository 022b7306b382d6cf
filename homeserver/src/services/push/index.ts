import type { PushConfig } from '../../core/config.js';
import type { Logger } from '../../core/logger.js';
import type { Database } from '../../storage/db.js';
import type { Notifier } from '../../bus/notifier.js';
import type { PushRuleService } from '../push_rules.js';
import type { TimelineService } from '../rooms/timeline.js';
import type { SyncService } from '../sync/sync.js';
import { PushEvaluator } from './evaluator.js';
import { NotificationService } from './notifications.js';
import { PusherService } from './pushers.js';
import { PushSender } from './sender.js';

export interface PushServices {
  evaluator: PushEvaluator;
  notifications: NotificationService;
  pushers: PusherService;
  sender: PushSender;
}

/**
 * Push notifications: rule evaluation on every new event (a timeline append hook), unread counts
 * on every joined room of /sync (a room decorator), /notifications, pushers and the gateway
 * sender. The sender is started by the caller (`sender.start()`) and stopped with `sender.close()`.
 */
export function createPushServices(deps: {
  db: Database;
  notifier: Notifier;
  logger: Logger;
  config: PushConfig;
  pushRules: PushRuleService;
  timeline: TimelineService;
  sync: SyncService;
}): PushServices {
  const evaluator = new PushEvaluator({ pushRules: deps.pushRules, maxCachedUsers: deps.config.ruleCacheUsers, maxCachedRooms: deps.config.memberCacheRooms });
  deps.timeline.addAppendHook(evaluator.onEvent);
  const notifications = new NotificationService({ db: deps.db, config: deps.config });
  deps.sync.addRoomDecorator(notifications);
  const pushers = new PusherService({ db: deps.db, config: deps.config });
  const sender = new PushSender({ db: deps.db, notifier: deps.notifier, logger: deps.logger, config: deps.config, notifications });
  return { evaluator, notifications, pushers, sender };
}
