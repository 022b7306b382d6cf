/**
 * Spec versions advertised in /versions. Each one is advertised only once everything it adds to the
 * client-server API works or is a documented optional omission: the audit, item by item with the
 * test proving it, is protocol-spec/versions.md. matrix-js-sdk switches behaviour on these (v1.4
 * stable thread names and threaded receipts, v1.7 edit aggregation, v1.11 authenticated media), so
 * a version must never be claimed ahead of the server.
 */
export const SUPPORTED_VERSIONS = ['v1.1', 'v1.2', 'v1.3', 'v1.4', 'v1.5', 'v1.6', 'v1.7', 'v1.8', 'v1.9', 'v1.10', 'v1.11'];
