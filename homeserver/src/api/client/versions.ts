/**
 * Spec versions advertised in /versions. Accounts, tokens and UIA follow these; see
 * protocol-spec/ for what is not yet implemented (rooms and sync come with their issue).
 * v1.3 is the version that introduced refresh tokens, which we implement.
 */
export const SUPPORTED_VERSIONS = ['v1.1', 'v1.2', 'v1.3'];
