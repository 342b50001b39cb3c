import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import type { JwtSecret } from '@ripple/auth';
import { requireUser, serviceShell, userOf } from '@ripple/http';
import type { ReadinessCheck } from '@ripple/http';
import type { Registry } from '@ripple/telemetry';
import { createPost } from './posts.js';
import type { PostDeps } from './posts.js';

const CreatePostBody = Type.Object(
  { body: Type.String({ minLength: 1, maxLength: 10_000 }) },
  { additionalProperties: false },
);

const PostView = Type.Object({
  id: Type.String(),
  authorId: Type.String(),
  body: Type.String(),
  createdAt: Type.String(),
  eventId: Type.String(),
});

export interface PostAppDeps extends PostDeps {
  readonly jwtSecret: JwtSecret;
  readonly logger: FastifyBaseLogger;
  readonly metrics: Registry;
  readonly checks: Record<string, ReadinessCheck>;
}

export function buildApp(deps: PostAppDeps): FastifyInstance {
  const app = serviceShell({ logger: deps.logger, metrics: deps.metrics, checks: deps.checks });

  app.post<{ Body: Static<typeof CreatePostBody> }>(
    '/posts',
    {
      schema: { body: CreatePostBody, response: { 201: PostView } },
      onRequest: requireUser(deps.jwtSecret),
    },
    async (request, reply) => {
      const { traceparent, tracestate } = request.headers;
      const { post, event } = await createPost(deps, {
        authorId: userOf(request).sub,
        body: request.body.body,
        // The request's trace context travels with the outbox row to Kafka.
        trace: {
          ...(typeof traceparent === 'string' && { traceparent }),
          ...(typeof tracestate === 'string' && { tracestate }),
        },
      });
      return reply.status(201).send({ ...post, createdAt: post.createdAt.toISOString(), eventId: event.id });
    },
  );
  return app;
}
