# One image per deployable (fanout-gateway, post-service, chat-service, notification-service,
# and the demo app):
#   docker build --build-arg SERVICE=fanout-gateway --target service -t ripple/fanout-gateway .
# docker-compose.yml builds all five from this file.
#   build   - every dependency, the whole workspace compiled once (Prisma clients generated);
#   deploy  - one service with its production dependencies only (`pnpm deploy --prod`, the
#             workspace libs it uses copied in, sources and dev tools left behind);
#   service - that copy on a slim Node image, owned by root and run as the unprivileged `node`
#             user, so the process cannot change its own code.
ARG NODE_IMAGE=node:20.20-bookworm-slim

FROM ${NODE_IMAGE} AS build
ENV CI=true
RUN npm install -g pnpm@10.34.8
WORKDIR /repo
COPY . .
RUN pnpm install --frozen-lockfile && pnpm build

FROM build AS deploy
ARG SERVICE
RUN test -f "services/${SERVICE}/package.json" \
  && pnpm --filter "./services/${SERVICE}" deploy --prod --legacy /app \
  && rm -rf /app/src /app/tsconfig.json /app/tsconfig.tsbuildinfo

FROM ${NODE_IMAGE} AS service
ARG SERVICE
ENV NODE_ENV=production OTEL_SERVICE_NAME=${SERVICE}
WORKDIR /app
COPY --from=deploy /app /app
USER node
CMD ["node", "dist/main.js"]
