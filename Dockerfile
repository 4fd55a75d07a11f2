# edgecache: build with the dev toolchain, run on a slim image with production dependencies only.
#   docker build -t edgecache .
#   docker run --rm -p 8080:8080 -e EDGECACHE_ORIGIN=http://origin.internal:3000 -v edgecache-data:/data edgecache
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json ./
COPY proxy ./proxy
COPY cache-store ./cache-store
COPY policies ./policies
COPY config ./config
# `npm ci` runs the prepare script, which compiles the product (tsconfig.build.json: proxy, cache-store, policies,
# config) into dist/; the development scripts are not built, nor copied. Then drop the dev dependencies.
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    EDGECACHE_HOST=0.0.0.0 \
    EDGECACHE_PORT=8080 \
    EDGECACHE_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# The admin API stays on the container's loopback (127.0.0.1:8081); the health check runs inside the container.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8081/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/proxy/cli.js"]
