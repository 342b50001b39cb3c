export {
  DEVELOPMENT_JWT_SECRET,
  accessClaimsOf,
  extractBearerToken,
  jwtSecret,
  resolveJwtSecret,
  signAccessToken,
  signSubscriptionToken,
  verifyAccessToken,
  verifySubscriptionToken,
} from './tokens.js';
export type { AccessClaims, JwtSecret, SubscriptionClaims } from './tokens.js';
export { authorizeChannel, parseChannel } from './channels.js';
export type { ChannelKind, MembershipMarks, ParsedChannel } from './channels.js';
export { accessTokenVerifier, jwtOptionsFrom } from './verifier.js';
export type { AccessVerifier, JwtEnv, JwtOptions, JwtVerification } from './verifier.js';
