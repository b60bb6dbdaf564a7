-- HotDash (runbook 004): the Shopify app's session storage and its dashboard data (Supabase database).
CREATE TABLE "Session" (
    id TEXT PRIMARY KEY,
    shop TEXT NOT NULL,
    state TEXT NOT NULL,
    "isOnline" BOOLEAN NOT NULL DEFAULT false,
    "accessToken" TEXT NOT NULL,
    expires TIMESTAMPTZ
);
CREATE TABLE "DashboardMetric" (
    id SERIAL PRIMARY KEY,
    shop TEXT NOT NULL,
    name TEXT NOT NULL,
    value NUMERIC NOT NULL,
    "recordedAt" TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO "Session" (id, shop, state, "accessToken") SELECT 'offline_shop' || g, 'shop' || g || '.myshopify.com', 'ok', md5('tok' || g) FROM generate_series(1, 20) AS g;
INSERT INTO "DashboardMetric" (shop, name, value) SELECT 'shop' || (1 + g % 20) || '.myshopify.com', 'orders', g FROM generate_series(1, 1000) AS g;
