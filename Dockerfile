# One image per deployable: docker build --build-arg SERVICE=fanout-gateway .
# (docker-compose.yml builds the four and the demo app from this file.)
FROM node:20-bookworm-slim AS build
RUN npm install -g pnpm@10.34.8
WORKDIR /repo
COPY . .
RUN pnpm install --frozen-lockfile && pnpm build

FROM node:20-bookworm-slim
ARG SERVICE
ENV NODE_ENV=production SERVICE=${SERVICE}
WORKDIR /repo
COPY --from=build /repo /repo
USER node
CMD ["sh", "-c", "exec node services/${SERVICE}/dist/main.js"]
