# edgecache: build with the dev toolchain, run on a slim image with production dependencies only.
#   docker build -t edgecache .
#   docker run --rm -p 8080:8080 -p 127.0.0.1:8081:8081 -e EDGECACHE_ORIGIN=http://origin.internal:3000 \
#     -e EDGECACHE_ADMIN_TOKEN="$(openssl rand -hex 24)" -v edgecache-data:/data edgecache
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
    EDGECACHE_ADMIN_HOST=0.0.0.0 \
    EDGECACHE_ADMIN_PORT=8081 \
    EDGECACHE_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080 8081
# The admin API listens on every interface of the container (0.0.0.0:8081), where Kubernetes probes and Prometheus
# reach it; that requires EDGECACHE_ADMIN_TOKEN (edgecache refuses to start without one), which purges and the
# dashboard's purge form then need, while /livez, /readyz and /metrics stay open. Publish 8081 only where you mean to.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8081/readyz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# docker stop sends SIGTERM: edgecache drains (--shutdown-grace, 10 s by default) and exits 0. Give docker stop
# more than that (docker stop -t 30; Kubernetes: terminationGracePeriodSeconds) so it does not kill the drain.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/proxy/cli.js"]
