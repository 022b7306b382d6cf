/**
 * `m.room.server_acl` (spec: client-server "Server Access Control Lists"; server-server "Server
 * ACLs"): which servers may take part in a room. Applied to every federation request about a room
 * and to every incoming PDU (by its sender's server).
 */
import type { Sql } from '../../storage/db.js';
import * as events from '../../storage/events.js';
import { parseServerName } from './server_name.js';

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

/** Whether an ACL's content lets `serverName` in (its port is ignored, as the spec says). */
export function aclAllows(content: Record<string, unknown>, serverName: string): boolean {
  const parsed = parseServerName(serverName);
  const host = parsed ? parsed.host : serverName.replace(/:\d+$/, '');
  const isIpLiteral = parsed ? parsed.ipFamily !== 0 : false;
  if (content.allow_ip_literals === false && isIpLiteral) return false;
  const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  if (list(content.deny).some((g) => globToRegExp(g).test(host))) return false;
  return list(content.allow).some((g) => globToRegExp(g).test(host));
}

/** Whether the room's current ACL (if any) lets `serverName` in. */
export async function roomAclAllows(sql: Sql, roomId: string, serverName: string): Promise<boolean> {
  const acl = (await events.currentStateEvents(sql, roomId, ['m.room.server_acl'])).get('m.room.server_acl');
  if (!acl || acl.redactedBy) return true;
  return aclAllows(acl.event.content, serverName);
}
