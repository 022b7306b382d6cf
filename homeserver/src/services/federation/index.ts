/**
 * Federation services, wired from the config: who we may talk to, how names resolve, the outgoing
 * client, the key ring and the notary. They exist even when federation is disabled (the client
 * then refuses every request), so callers never need to check.
 */
import type { FederationConfig } from '../../core/config.js';
import type { Logger } from '../../core/logger.js';
import type { Sql } from '../../storage/db.js';
import { FederationClient } from './client.js';
import { KeyRing } from './key_ring.js';
import { KeyNotary, type PublishingKey } from './notary.js';
import { ServerResolver, systemDns, type FederationDns } from './resolver.js';
import { ServerNameAccess } from './server_name.js';
import { FederationTransport } from './transport.js';
import type { FederationEduHandler, FederationOutbox } from './seams.js';

export interface FederationServices {
  config: FederationConfig;
  access: ServerNameAccess;
  resolver: ServerResolver;
  transport: FederationTransport;
  client: FederationClient;
  keyRing: KeyRing;
  notary: KeyNotary;
  /**
   * The seams with room federation (seams.ts): the sender (sender/index.ts) and the incoming EDU
   * handler (edus.ts). services/index.ts replaces these placeholders once the services they need exist.
   */
  outbox: FederationOutbox;
  edus: FederationEduHandler;
  /** Closes pooled connections. */
  close(): void;
}

export interface FederationServicesDeps {
  config: FederationConfig;
  db: Sql;
  signingKey: PublishingKey;
  logger: Logger;
  /** DNS for server name resolution; tests inject a table (default: node:dns). */
  dns?: FederationDns;
}

export function createFederationServices(deps: FederationServicesDeps): FederationServices {
  const { config, logger } = deps;
  if (config.enabled && config.tlsInsecure) {
    logger.warn('HEARTH_FEDERATION_TLS_INSECURE is set: certificates of other servers are NOT verified; anyone on the network path can impersonate them. Never use this in production.');
  }
  if (config.enabled && config.allowPrivateAddresses) {
    logger.warn('HEARTH_FEDERATION_ALLOW_PRIVATE_ADDRESSES is set: federation may connect to private and loopback addresses.');
  }
  const access = new ServerNameAccess(config.domainAllowlist, config.domainDenylist);
  const transport = new FederationTransport({ caFile: config.caFile, insecure: config.tlsInsecure });
  const resolver = new ServerResolver({
    dns: deps.dns ?? systemDns,
    transport,
    allowPrivateAddresses: config.allowPrivateAddresses,
    wellKnownTimeoutMs: Math.min(config.requestTimeoutMs, 10_000),
    logger,
  });
  const client = new FederationClient({
    enabled: config.enabled,
    signer: deps.signingKey,
    resolver,
    transport,
    access,
    requestTimeoutMs: config.requestTimeoutMs,
    maxResponseBytes: config.maxResponseBytes,
    logger,
  });
  const keyRing = new KeyRing({ db: deps.db, ownKey: deps.signingKey, client, access, trustedKeyServers: config.trustedKeyServers, logger, storedKeyCacheMs: config.keyCacheMs });
  const notary = new KeyNotary({ db: deps.db, key: deps.signingKey, keyRing, access, keyValidityMs: config.keyValidityMs, logger });
  const outbox: FederationOutbox = { forward: async () => {}, wake: () => {} };
  const edus: FederationEduHandler = { receive: async () => {} };
  return { config, access, resolver, transport, client, keyRing, notary, outbox, edus, close: () => transport.close() };
}
