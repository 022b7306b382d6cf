import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { FederationConfig } from '../../core/config.js';

/**
 * The dedicated federation listener's server, without a request handler yet (attach one with
 * `server.on('request', createFederationApp(deps).callback())`): HTTPS with the configured
 * certificate and key, else plain HTTP for a TLS-terminating proxy in front. Made before the app
 * so a test can bind port 0 first and put the port into the server name.
 */
export function createFederationServer(config: Pick<FederationConfig, 'tls'>): http.Server | https.Server {
  const server = config.tls
    ? https.createServer({ cert: fs.readFileSync(config.tls.certFile), key: fs.readFileSync(config.tls.keyFile) })
    : http.createServer();
  // Peers keep connections open between transactions; outlive their idle pools a little.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  return server;
}
