import { domainServiceEnv } from '@ripple/service';

export const SERVICE_NAME = 'post-service';

/** post-service's environment (README "Configuration"): a domain service's, on port 3001. */
export const PostEnv = domainServiceEnv(SERVICE_NAME, 3001);
